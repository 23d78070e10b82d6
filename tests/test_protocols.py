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


def test_the_report_gives_theta_locking_when_the_drives_have_theta():
    """A significant lock prints strength and phase, a weak one is marked n.s., a silent
    population says so; without theta drives there is no such line."""
    import math

    from livn.protocols import Dynamics

    theta = {"PYR": (0.73, math.radians(45), 1e-9), "OLM": (0.9, 0.1, 0.2), "IVY": (math.nan,) * 3}
    report = Dynamics({"PYR": 0.4}, {"PYR": 0.4}, 1.0, 400.0, 100.0, 8.0, theta).report()
    assert "PYR 0.73 at 45 deg," in report and "OLM 0.90 at 6 deg (n.s.)" in report
    assert "IVY no spikes" in report and "8 Hz" in report
    assert "theta locking" not in Dynamics({"A": 1.0}, {"A": 2.0}, 1.0, 400.0, 100.0).report()
