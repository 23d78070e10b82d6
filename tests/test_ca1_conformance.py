"""Single-cell conformance of livn's NEURON target for the 12 CA1 cell types against jNeuroML's
NEURON export of the same NeuroML cells (docs/CA1-plan.md Step 7): somatic current steps,
the same spike count and every spike within TOL_MS = 0.5 ms.

Reference: the "cvode" block of tests/data/ca1_cells/reference_spikes.json (jNeuroML's export
under CVODE, tests/reference_cells.py), which must belong to the current cell, channel and
morphology files. livn runs each cell alone (livn.targets.neuron.cell.current_clamp: an IClamp
at soma(0.5), the NetCon at soma(0.5) with the cell's spikeThresh, V and states initialised
at the cell's initMembPotential) under the reference's protocol (step delay and duration,
tstop, temperature) and threshold, at each of its reference amplitudes, integrated by CVODE
at atol = rtol = LIVN_CVODE_TOL. A spike that only one side has is allowed if it lies within
TOL_MS of tstop (its partner may fall just after the end of the run).

Known failures (strict xfail, see UNCONVERGED): the stored references were made at
atol = rtol = 1e-7 and are not converged where a cell fires close to a threshold. Measured
against jNeuroML's export of the same cells at 1e-9 (a network of PVBC and CCKBC only, whose
pools start at their own 5e-5 mM), livn agrees within 0.08 ms on those pairs. The stored export
also starts every cell's calcium pool at PYR's initial [Ca] (1e-4 mM: jNeuroML sets NEURON's
global ``cai0_ca_ion`` per population, the last one wins, and the pools initialise from it
before each cell's own value is set); in livn, starting the pools at 1e-4 mM moves IS1's
spikes at 0.1 nA by 0.24 ms and CCKBC's by 0.13 ms. Regenerating the references from a repaired
harness is the cure, not a wider tolerance; the xfails are strict, so they fail once it is done
and go with it.

Cost (2 cores, shared with other simulations, load average ~5): nrnivmodl of the 12 cells'
mechanisms 105-135 s, the 36 runs of 550 ms 1.5-3 min. Marked slow.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from livn.neuroml import read_cell
from reference_cells import CA1_AMPLITUDES, CA1_REFERENCE, CA1_TYPES, SPECS, ca1_model_hash

pytestmark = pytest.mark.slow

TOL_MS = 0.5
LIVN_CVODE_TOL = 1e-7  # livn's spike times are within 0.02 ms of atol = rtol = 1e-9 on every pair

# (type, amplitude nA) -> why the stored reference is not the converged export
UNCONVERGED = {
    ("PVBC", 0.3): "stored last spike 491.33 ms; the export at 1e-9 gives 490.58, livn 490.50",
    ("CCKBC", 0.1): "stored 10th spike 501.54 ms; the export at 1e-9 gives 500.98, livn 500.93",
    ("CCKBC", 0.6): "stored 32 spikes (the last at 240.86 ms, at the onset of depolarisation block); the "
                    "export at 1e-9 and livn give 31",
}


def _params():
    out = []
    for t in CA1_TYPES:
        for amp in CA1_AMPLITUDES[t]:
            reason = UNCONVERGED.get((t, amp))
            marks = [pytest.mark.xfail(strict=True, reason=f"reference not converged: {reason}")] if reason else []
            out.append(pytest.param(t, amp, marks=marks, id=f"{t}-{amp:g}nA"))
    return out


@pytest.fixture(scope="module")
def reference():
    stored = json.loads(CA1_REFERENCE.read_text())
    assert stored["cvode"]["model_sha256"] == ca1_model_hash(), \
        f"{CA1_REFERENCE.name}: the 'cvode' references were made from other cell/channel/morphology files; " \
        f"regenerate them: python tests/data/ca1_cells/regenerate.py"
    assert {t: tuple(a) for t, a in stored["amplitudes_nA"].items()} == CA1_AMPLITUDES
    return stored


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """The 12 cells, their mechanisms compiled together once (in this session's directory, not
    the user's cache) and loaded into this process."""
    from livn.targets.neuron import nmodl

    cells = {t: read_cell(SPECS / "cells" / f"{t}.cell.nml", t) for t in CA1_TYPES}
    nmodl.load_mechanisms(nmodl.mechanisms(cells.values()), cache=tmp_path_factory.mktemp("nrnmech"))
    return cells


def _pair(got: np.ndarray, expected: np.ndarray, tstop: float) -> tuple[np.ndarray, np.ndarray]:
    """Both trains without a last spike that only one of them has within TOL_MS of tstop."""
    if len(got) == len(expected) + 1 and got[-1] > tstop - TOL_MS:
        return got[:-1], expected
    if len(expected) == len(got) + 1 and expected[-1] > tstop - TOL_MS:
        return got, expected[:-1]
    return got, expected


@pytest.mark.parametrize("cell_type, amplitude", _params())
def test_livn_neuron_matches_jneuroml_export(cell_type, amplitude, reference, cells):
    from livn.targets.neuron.cell import current_clamp

    protocol = reference["protocol"]
    threshold = float(re.search(r"spikeThresh \((-?[0-9.]+) mV\)", reference["spike_detection"]).group(1))
    cell = cells[cell_type]
    assert cell.threshold == threshold, f"{cell_type}: spikeThresh {cell.threshold} mV, the reference's {threshold}"
    # the reference's site, segment 0 at fractionAlong 0.5, is soma(0.5) if the soma is segment 0 alone
    assert len(cell.sections[0].points) == 2, f"{cell_type}: the soma section holds more than segment 0"
    tstop = protocol["tstop_ms"]
    got = current_clamp(cell, amplitude, protocol["step_delay_ms"], protocol["step_duration_ms"], tstop,
                        method="cvode", atol=LIVN_CVODE_TOL, rtol=LIVN_CVODE_TOL, extracellular=False,
                        temperature=protocol["temperature_degC"])[2]
    expected = np.asarray(reference["cvode"]["spikes_ms"][cell_type][f"{amplitude:g}"])
    got, expected = _pair(got, expected, tstop)
    assert len(got) == len(expected), f"{cell_type} {amplitude} nA: livn {len(got)} spikes, jNeuroML {len(expected)}"
    worst = float(np.abs(got - expected).max()) if len(got) else 0.0
    print(f"{cell_type} {amplitude} nA: {len(got)} spikes, max |dt| {worst:.3f} ms")
    assert worst <= TOL_MS, f"{cell_type} {amplitude} nA: spike times differ by up to {worst:.3f} ms"
