"""The 12 CA1 cell types (specs/cells/<T>.cell.nml; docs/CA1-plan.md Step 7) under somatic
current steps, simulated by NEURON through jNeuroML's NEURON export (tests/reference_cells.py's
CA1 harness: one network per initial [Ca] of the cells, one nrnivmodl; two repairs of the
export; fixed step dt = 0.025 ms).

Checks (plan Step 7): every cell is silent at 0 nA and stays within REST_TOL_MV of its
initMembPotential (its own steady state); every interneuron fires repetitively at a step
<= 0.5 nA, PYR at <= 0.8 nA; PYR adapts (last ISI > first ISI at 0.8 nA); PVBC, AAC and BS
reach >= 50 Hz at 1 nA; OLM sags under -0.1 nA (h current).

The spike times of the reference steps (0.1/0.3/0.6 nA; PYR 0.2/0.5/0.8 nA) must equal the
stored "fixed_step" references of tests/data/ca1_cells/reference_spikes.json (same counts,
times within REFERENCE_TOL_MS), and both stored blocks must belong to the current model files.
After changing a cell or one of its channels, regenerate them:
``python tests/data/ca1_cells/regenerate.py``.

Cost (2 shared cores): 2-4 min, depending on the machine's load (reference_cells.py). Marked
slow.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from reference_cells import (CA1_AMPLITUDES, CA1_DELAY, CA1_DURATION, CA1_INTERNEURONS, CA1_REFERENCE, CA1_TYPES,
                             NS, SPECS, ca1_model_hash, ca1_spike_table, ca1_steps)

pytestmark = pytest.mark.slow

FAST_SPIKING = ("PVBC", "AAC", "BS")
# amplitude (nA) -> cells run: 0 for silence and rest; the reference steps; 0.5 (0.8 PYR)
# for "fires at <= 0.5 nA"; 1 nA for the fast-spiking rates; -0.1 nA for the OLM sag
STEPS = {t: tuple(sorted({0.0, 0.5, *CA1_AMPLITUDES[t]} | ({1.0} if t in FAST_SPIKING else set())
                         | ({-0.1} if t == "OLM" else set())))
         for t in CA1_INTERNEURONS} | {"PYR": (0.0, 0.2, 0.5, 0.8)}
REST_TOL_MV = 2.0
REFERENCE_TOL_MS = 0.01


def _init_potential(cell_type: str) -> float:
    root = ET.parse(SPECS / "cells" / f"{cell_type}.cell.nml").getroot()
    value = root.find(".//nml:membraneProperties/nml:initMembPotential", NS).get("value")
    assert value.endswith("mV"), value
    return float(value[:-2])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(cell type, amplitude nA) -> (spike times ms, somatic V mV or None); "time" -> t (ms).
    V is recorded at 0 nA (rest) and for OLM at -0.1 nA (sag)."""
    record_v = {(t, 0.0) for t in CA1_TYPES} | {("OLM", -0.1)}
    return ca1_steps(tmp_path_factory.mktemp("ca1_cells"), STEPS, record_v=record_v)


def _in_step(spikes: np.ndarray) -> np.ndarray:
    return spikes[(spikes >= CA1_DELAY) & (spikes <= CA1_DELAY + CA1_DURATION)]


@pytest.mark.parametrize("cell_type", CA1_TYPES)
def test_silent_at_rest_and_at_its_init_potential(runs, cell_type):
    spikes, v = runs[(cell_type, 0.0)]
    assert len(spikes) == 0, f"{cell_type} fires at 0 nA: {spikes[:10]}"
    v0 = _init_potential(cell_type)
    assert np.abs(v - v0).max() < REST_TOL_MV, \
        f"{cell_type}: V leaves initMembPotential {v0} mV by {np.abs(v - v0).max():.2f} mV at 0 nA"


@pytest.mark.parametrize("cell_type", CA1_TYPES)
def test_fires_at_a_moderate_step(runs, cell_type):
    limit = 0.8 if cell_type == "PYR" else 0.5
    counts = {a: len(_in_step(runs[(cell_type, a)][0])) for a in STEPS[cell_type] if 0 < a <= limit}
    assert max(counts.values()) >= 2, f"{cell_type}: no repetitive firing up to {limit} nA: {counts}"


@pytest.mark.parametrize("cell_type", FAST_SPIKING)
def test_fast_spiking_at_1nA(runs, cell_type):
    rate = len(_in_step(runs[(cell_type, 1.0)][0])) / (CA1_DURATION * 1e-3)
    assert rate >= 50.0, f"{cell_type}: {rate:.0f} Hz at 1 nA"


def test_pyr_adapts(runs):
    spikes = _in_step(runs[("PYR", 0.8)][0])
    assert len(spikes) >= 3, spikes
    isi = np.diff(spikes)
    assert isi[-1] > isi[0], f"PYR at 0.8 nA: first ISI {isi[0]:.2f} ms, last {isi[-1]:.2f} ms"


def test_olm_sags(runs):
    t = runs["time"]
    spikes, v = runs[("OLM", -0.1)]
    assert len(spikes) == 0
    during = (t > CA1_DELAY) & (t < CA1_DELAY + CA1_DURATION)
    late = (t > CA1_DELAY + CA1_DURATION - 20) & (t < CA1_DELAY + CA1_DURATION)
    sag = v[late].mean() - v[during].min()
    assert sag > 1.0, f"OLM at -0.1 nA: sag {sag:.2f} mV"


def test_reference_spikes(runs):
    """The fixed-step references equal this run; both stored blocks belong to the current model files."""
    stored = json.loads(CA1_REFERENCE.read_text())
    for block in ("fixed_step", "cvode"):
        assert block in stored, f"{CA1_REFERENCE.name}: no '{block}' block"
        assert stored[block]["model_sha256"] == ca1_model_hash(), \
            f"{CA1_REFERENCE.name}: the '{block}' references were made from other cell/channel/morphology files; " \
            f"regenerate them: python tests/data/ca1_cells/regenerate.py"
    for t, table in ca1_spike_table(runs).items():
        for amp, times in table.items():
            ref = np.asarray(stored["fixed_step"]["spikes_ms"][t][amp])
            assert len(times) == len(ref), f"{t} {amp} nA: {len(times)} spikes, stored {len(ref)}"
            if len(ref):
                worst = np.abs(np.asarray(times) - ref).max()
                assert worst <= REFERENCE_TOL_MS, f"{t} {amp} nA: spike times moved by {worst:.3f} ms"
