"""Multi-compartment cells: the ball-and-stick test cell (tests/data/ballstick) from NeuroML and
from SWC, its compartmental circuit, and livn's NEURON cell against jNeuroML's NEURON export."""

from pathlib import Path

import numpy as np
import pytest

from livn.neuroml import read_cell
from reference_cells import (BALLSTICK_AMPLITUDES, BALLSTICK_CELL, BALLSTICK_DIR, BALLSTICK_SWC, STEP_DELAY,
                             STEP_DURATION, TSTOP, jneuroml_ballstick_spikes)

BIOPHYS = BALLSTICK_DIR / "BallStickBiophys.cell.nml"


@pytest.fixture(scope="module")
def cells():
    """The cell with its NeuroML morphology, and its biophysics on the SWC morphology (BMTK style)."""
    return {"neuroml": read_cell(BALLSTICK_CELL), "swc": read_cell(BIOPHYS, morphology=BALLSTICK_SWC)}


def test_sections_from_neuroml_and_swc_agree(cells):
    nml, swc = cells["neuroml"], cells["swc"]
    assert len(nml.sections) == len(swc.sections) == 7
    # the same cables, in the order of the files (soma first), attached at the same places
    by_geometry = lambda cell: sorted((round(s.length, 6), round(s.area, 6), s.nseg) for s in cell.sections)  # noqa: E731
    assert by_geometry(nml) == by_geometry(swc)
    assert nml.sections[0].groups >= {"soma_group"} and swc.sections[0].groups >= {"soma_group", "somatic"}
    assert [s.parent_x for s in nml.sections if "axon_group" in s.groups] == [0.0]
    assert [s.parent_x for s in swc.sections if "axon_group" in s.groups] == [0.0]
    # NeuroML nseg from numberInternalDivisions, SWC nseg from the d_lambda rule: the same numbers here
    assert sorted(s.nseg for s in nml.sections) == sorted(s.nseg for s in swc.sections) == [1, 3, 3, 3, 3, 5, 5]
    # channels only where the NeuroML puts them
    assert {d.channel.id for d in nml.sections[0].densities} == {"Na_RS", "Kd_RS", "Leak"}
    assert all({d.channel.id for d in s.densities} == {"Leak"} for s in nml.sections[1:])


def test_compartments_match_neurons_own_geometry(cells):
    """livn's compartments (areas, the axial conductances of the circuit with junctions
    eliminated) are NEURON's segments of the same sections."""
    from livn.targets.neuron.cell import NeuronCell
    from livn.targets.neuron.nmodl import load_mechanisms, mechanisms

    for cell in cells.values():
        built = NeuronCell(cell, load_mechanisms(mechanisms([cell])), extracellular=False)
        areas = np.array([seg.area() for seg in built.segments])
        np.testing.assert_allclose(areas, [c.area for c in cell.compartments], rtol=1e-5)  # pt3d in float32
        # parent-child conductances where no junction is shared: 1 / (ri of the child segment) in µS
        for sec_model, sec in zip(cell.sections, built.sections):
            first = cell.compartment_at(sec_model.index, 0.5 / sec_model.nseg)
            for k, seg in enumerate(list(sec)[1:], start=1):
                expected = 1.0 / seg.ri()  # MΩ → µS, centre to centre
                assert cell.coupling_conductance(first + k - 1, first + k) == pytest.approx(expected, rel=1e-5)


def _field_response(cell, extracellular: bool):
    """Membrane potentials of every compartment after 0.2 ms of a field from a point source 50 µm
    off the dendrite (backward Euler, where the two couplings are the same equations)."""
    from neuron import h

    from livn.targets.neuron.cell import NeuronCell, run, set_integration
    from livn.targets.neuron.nmodl import load_mechanisms, mechanisms

    built = NeuronCell(cell, load_mechanisms(mechanisms([cell])), extracellular=extracellular)
    centres = np.array([c.centre for c in cell.compartments])
    source = np.array([150.0, 50.0, 0.0])
    ve = 1e3 * 3.5 / (4 * np.pi * np.linalg.norm(centres - source, axis=1)) * 50.0  # 50 µA, mV
    set_integration("fixed", dt=0.025, secondorder=0)
    try:
        h.finitialize(cell.v_init)
        built.set_field(np.zeros(len(ve)))
        run(1.0)
        built.set_field(ve)
        run(1.2)
        return np.array([seg.v for seg in built.segments]), ve
    finally:
        set_integration("fixed")


def test_field_by_extracellular_equals_axial_currents_on_a_tree(cells):
    """The equivalent-current form of the MEA field (L·Ve per compartment) is NEURON's
    extracellular mechanism on a branched cable, segment by segment."""
    for cell in cells.values():
        mechanism, ve = _field_response(cell, True)
        currents, _ = _field_response(cell, False)
        assert np.ptp(ve) > 5.0 and np.ptp(mechanism) > 1.0, "the field must polarise the cell"
        np.testing.assert_allclose(currents, mechanism, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["neuroml", "swc"])
def test_neuron_cell_matches_jneuroml(cells, source, tmp_path_factory):
    """Somatic steps: livn's NEURON cell (from NeuroML, or NeuroML biophysics on the SWC) fires
    the spikes of jNeuroML's NEURON export within 0.5 ms (both CVODE at 1e-9)."""
    from livn.targets.neuron.cell import current_clamp

    cache = Path(tmp_path_factory.getbasetemp()) / "ballstick-reference"
    for amplitude in BALLSTICK_AMPLITUDES:
        reference = jneuroml_ballstick_spikes(amplitude, cache)
        _, _, spikes = current_clamp(cells[source], amplitude, STEP_DELAY, STEP_DURATION, TSTOP, method="cvode",
                                     atol=1e-9, rtol=1e-9, extracellular=False)
        assert len(reference) >= 9 and len(spikes) == len(reference), (amplitude, spikes, reference)
        assert np.abs(spikes - reference).max() < 0.5


@pytest.fixture(scope="module")
def ballstick_culture(tmp_path_factory):
    """EI1 with the ball-and-stick cell as its excitatory cell, built into a circuit."""
    import shutil

    from livn.build import build_circuit
    from livn.resources import resource_dir
    from livn.spec import load_spec

    root = tmp_path_factory.mktemp("ballstick-culture")
    specs = root / "specs"
    shutil.copytree(resource_dir("specs"), specs)
    text = BALLSTICK_CELL.read_text().replace("../../../specs/channels/", "../channels/")
    (specs / "cells" / "BallStick.cell.nml").write_text(text)
    spec = specs / "EI1.yaml"
    spec.write_text(spec.read_text().replace("cells/EXC.cell.nml", "cells/BallStick.cell.nml"))
    return build_circuit(load_spec(spec), root / "EI1")


@pytest.mark.slow
def test_a_culture_of_multicompartment_cells_runs_on_both_targets(ballstick_culture, tmp_path):
    """Eight 23-compartment cells and two INH cells, noise, synapses on the dendrite's first
    section, MEA pulses: NEURON builds the trees, Brian2 SpatialNeurons; spike counts agree
    within 10 % (spontaneous and stimulated), every compartment is recorded, and a compiled
    (livn-free) Brian2 directory refuses the SpatialNeuron cells with the reason."""
    from conftest import run_livn
    from livn import make
    from livn.io import pulse_train

    counts = {}
    for backend, options in (("brian2", {"codegen": "numpy"}), ("neuron", {"field": "currents"})):
        env = make(ballstick_culture, backend=backend, **options)
        env.record_spikes()
        env.record_voltage([0, 9])
        quiet = env.run(150)
        assert quiet.voltages[0].shape == (23, 6000) and quiet.voltages[9].shape == (2, 6000)
        assert quiet.v[:, 0] == pytest.approx([-70.0, -64.3])
        stimulated = env.run(150, stimulus=pulse_train(150, [0], 1, 40.0, 20.0, dt=env.dt))
        counts[backend] = (len(quiet.it), len(stimulated.it))
        env.close()
    assert counts["neuron"][0] > 40 and counts["neuron"][1] > counts["neuron"][0] * 0.5, counts
    for brian2, neuron in zip(counts["brian2"], counts["neuron"]):
        assert abs(brian2 - neuron) <= 0.1 * neuron, counts
    compiled = run_livn("compile", ballstick_culture, "--target", "brian2", "-o", tmp_path / "b2")
    assert compiled.returncode == 1 and "Traceback" not in compiled.stderr
    assert "Run it in-process (make/Env) or on NEURON" in compiled.stderr and "BallStick.cell.nml" in compiled.stderr


def test_dynamics_protocols_are_shorter_for_multicompartment_cells(ballstick_culture):
    """`livn dynamics` defaults: 5.5 s per protocol for point cells, 1 s for trees (CA1 would take hours)."""
    from livn.protocols import default_protocol
    from livn.system import System, predefined

    assert default_protocol(System(ballstick_culture)) == (1000.0, 200.0)
    assert default_protocol(System(predefined("EI1"))) == (7000.0, 2000.0)
