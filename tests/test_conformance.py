"""Second opinion on the Brian2 translation: the same NeuroML cells simulated by NEURON through
jNeuroML's own export (``pynml -neuron``), integrated accurately (CVODE, tolerance 1e-7).

Brian2 runs at the networks' method and step (RK4, dt = 0.025 ms). Criterion: for every
current step, the same number of spikes and every spike time within 1 ms over 1 s.
"""

import numpy as np
import pytest

from livn.resources import resource_dir
from livn.targets.brian2.cell import current_clamp
from livn.neuroml import read_cell

import jneuroml
from test_models import STEP_AMPS, STEP_OFF, STEP_ON, _scratch


def neuron_cvode_spikes(cell_id: str, root) -> dict:
    """Spike times (ms) per step amplitude, from jNeuroML's NEURON export run with CVODE."""
    run_dir = _scratch(root / cell_id)
    script = jneuroml.export_neuron(f"LEMS_{cell_id}_step.xml", run_dir)
    jneuroml.use_cvode(script, 1e-7)
    jneuroml.compile_and_run(script)
    spikes = np.loadtxt(run_dir / f"{cell_id}_step.spikes", ndmin=2)
    return {amp: np.sort(spikes[spikes[:, 0] == k, 1] * 1e3) for k, amp in enumerate(STEP_AMPS[cell_id])}


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """cell id -> jNeuroML/NEURON CVODE spike times per amplitude, computed once per module."""
    root = tmp_path_factory.mktemp("jnml")
    cache = {}

    def get(cell_id):
        if cell_id not in cache:
            cache[cell_id] = neuron_cvode_spikes(cell_id, root)
        return cache[cell_id]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("cell_id", ["EXC", "INH"])
def test_brian2_matches_neuron_on_current_steps(cell_id, references):
    reference = references(cell_id)
    cell = read_cell(resource_dir("specs") / "cells" / f"{cell_id}.cell.nml", cell_id)
    spiking = 0
    for amp, expected in reference.items():
        got = current_clamp(cell, amp, STEP_ON, STEP_OFF - STEP_ON, 1200.0, dt=0.025, codegen="cython")[2]
        assert len(got) == len(expected), f"{cell_id} {amp} nA: Brian2 {len(got)} spikes, NEURON {len(expected)}"
        if len(got):
            spiking += 1
            assert np.abs(got - expected).max() < 1.0, f"{cell_id} {amp} nA: spike times differ by " \
                                                      f"{np.abs(got - expected).max():.3f} ms"
    assert spiking >= 3, "the comparison must cover spiking steps"


@pytest.mark.slow
@pytest.mark.parametrize("cell_id", ["EXC", "INH"])
def test_livn_neuron_cells_match_jneuroml_neuron_export(cell_id, references):
    """livn's own NMODL translation against jNeuroML's, both in NEURON under CVODE."""
    from livn.targets.neuron.cell import current_clamp as neuron_clamp

    reference = references(cell_id)
    cell = read_cell(resource_dir("specs") / "cells" / f"{cell_id}.cell.nml", cell_id)
    for amp, expected in reference.items():
        got = neuron_clamp(cell, amp, STEP_ON, STEP_OFF - STEP_ON, 1200.0, method="cvode", atol=1e-7,
                           extracellular=False)[2]
        assert len(got) == len(expected), f"{cell_id} {amp} nA: livn {len(got)} spikes, jNeuroML {len(expected)}"
        if len(got):
            assert np.abs(got - expected).max() < 0.1
