"""CA1 simulated on NEURON at small scales: rates per type under the default input drives, theta
locking, NetCons merged, and the same spikes on any number of ranks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from livn.sonata import read_spike_report
from livn.system import predefined

BIN = Path(sys.executable).parent


def _run(ranks: int, circuit: Path, duration: float, output: Path) -> dict:
    command = [str(BIN / "mpiexec"), "-n", str(ranks), sys.executable, "-m", "livn.targets.neuron.run", str(circuit),
               "--duration", str(duration), "--output", str(output)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.mpi
def test_ca1_spikes_are_identical_on_1_2_and_3_ranks(tmp_path):
    """CA1 at scale 1e-4 (42 cells of all 12 types, 1.3e6 connections), 100 ms of default input:
    the same spikes whatever the ranks; the compartments are dealt evenly (LPT)."""
    circuit = predefined("CA1", scale=1e-4)
    reports = []
    for ranks in (1, 2, 3):
        summary = _run(ranks, circuit, 100.0, tmp_path / f"{ranks}.h5")
        loads = np.array(summary["compartments_per_rank"])
        assert len(loads) == ranks and loads.max() <= 1.1 * loads.mean()
        memory = summary["peak_memory_gib_per_rank"]
        assert len(memory) == ranks and all(0.05 < m < 8 for m in memory), memory
        reports.append(read_spike_report(tmp_path / f"{ranks}.h5", "CA1"))
    assert len(reports[0][0]) > 10, "the comparison needs spikes"
    for gids, times in reports[1:]:
        np.testing.assert_array_equal(gids, reports[0][0])
        np.testing.assert_array_equal(times, reports[0][1])


@pytest.mark.slow
def test_ca1_runs_with_the_env_api_and_its_inputs_drive_it(monkeypatch):
    """make("CA1", scale=1e-4) with no backend named runs on NEURON (Brian2 cannot), 150 ms: the
    input drives make pyramidal cells fire; set to 0 by name (every CA3/CA2/EC weight), nothing
    fires in 50 ms (the cells are quiet at rest). Connections sharing source, compartment, receptor and
    delay share one NetCon."""
    from livn import make

    monkeypatch.delenv("LIVN_BACKEND", raising=False)
    env = make("CA1", scale=1e-4)
    try:
        assert env.backend == "neuron"
        wiring = env.simulation.network._wiring
        connections = env.system.num_edges
        assert wiring.netcons.count() < connections / 2, (wiring.netcons.count(), connections)
        env.record_spikes()
        driven = env.run(150.0)
        pyramidal = np.isin(driven.it, env.system.gids("PYR"))
        assert pyramidal.sum() >= 5, "the inputs drive the pyramidal cells"
        inputs = {name: 0.0 for name in env.default_params() if name.split("->")[0] in ("CA3", "CA2", "EC")}
        assert len(inputs) > 30
        env.set_params(inputs)
        env.clear()
        quiet = env.run(50.0)
        assert len(quiet.it) == 0, f"{len(quiet.it)} spikes without input"
    finally:
        env.close()


def test_compiling_ca1_for_brian2_is_refused_naming_what_and_why(tmp_path):
    from conftest import run_livn

    out = tmp_path / "CA1-brian2"
    done = run_livn("compile", "CA1", "--scale", "0.0001", "--target", "brian2", "-o", out)
    assert done.returncode == 1
    assert "the brian2 target cannot run this system" in done.stderr
    assert "use --target neuron" in done.stderr and "channelDensityGHK2 of CA1_CavL" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_naming_brian2_for_ca1_is_refused_not_replaced():
    from livn import make
    from livn.env import TargetError

    with pytest.raises(TargetError, match="the brian2 target cannot run this system") as refused:
        make("CA1", backend="brian2", scale=1e-4)
    assert any("use --target neuron" in str(p) for p in refused.value.problems)
