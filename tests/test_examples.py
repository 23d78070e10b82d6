"""Every script in examples/ runs as a new user would run it, and says what it should."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    if script.stem == "01_load_system":
        assert out.splitlines()[0] == "100" and "['EXC', 'INH']" in out
    elif script.stem == "02_run_spontaneous":
        assert (tmp_path / "out/examples/spontaneous.png").stat().st_size > 10_000
        assert "voltages (100, 40000) (mV)" in out
    elif script.stem == "03_stimulate_mea":
        total = out.strip().splitlines()[-1]
        before, during = (int(x) for x in total.split(";")[0].replace("total:", "").split("->"))
        centre_before, centre_during = (int(x) for x in total.split(":")[-1].split("->"))
        # the stimulated channels at least double; the whole array rises with them
        assert centre_during > 2 * centre_before and during > before, out
    elif script.stem == "04_parameters":
        rates = [float(line.split(":")[1].split()[0]) for line in out.splitlines() if line.startswith("excitatory")]
        assert len(rates) == 3 and rates[2] > rates[0]
    elif script.stem == "05_what_a_pulse_excites":
        rows = [line.split() for line in out.splitlines() if line.split()[1:2] == ["uA"]]
        counts = [int(row[2]) for row in rows]
        assert len(rows) == 3 and counts == sorted(counts) and counts[-1] > 0, out
        assert float(rows[-1][5]) <= 50, "only somata close to an electrode are excited directly"
