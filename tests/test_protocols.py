"""The tuned defaults reproduce the target dynamics (short runs, looser bounds than the spec's
5 s measurements; `livn dynamics EI2` prints the full figures)."""

import pytest

from livn import make
from livn.protocols import measure


@pytest.mark.slow
def test_ei2_defaults_give_the_target_dynamics():
    dynamics = measure(make("EI2"), duration=2500.0, transient=500.0)
    spontaneous, stimulated = dynamics.spontaneous, dynamics.stimulated
    assert 1.0 <= spontaneous["all"] <= 8.0, dynamics.report()
    assert spontaneous["EXC"] > 0.5 and spontaneous["INH"] > 0.5, "both populations active"
    assert 6.0 <= stimulated["all"] <= 20.0, dynamics.report()
    assert stimulated["all"] > 2 * spontaneous["all"]
    assert 0.6 <= dynamics.branching_ratio <= 1.4, dynamics.report()


def test_dynamics_command_prints_the_three_figures():
    from conftest import run_livn
    result = run_livn("dynamics", "EI1", "--duration", "600", "--transient", "100")
    assert result.returncode == 0, result.stderr[-2000:]
    for words in ("spontaneous mean rate:", "stimulated mean rate:", "branching ratio:", "EXC", "INH", "4 ms bins"):
        assert words in result.stdout
