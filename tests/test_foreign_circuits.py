"""Circuits livn did not build: BMTK's NetworkBuilder (nml: cells, a virtual population with a
SONATA spike-train input in simulation_config.json, exp2syn synapses placed by
target_sections/distance_range, gzip-compressed HDF5, BMTK's singular index name, several edge
groups) load as a System and run on every target; so do bionet's point-process cells
(nrn:IntFire1), spike for spike with bionet itself; what livn cannot run is refused first."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from bmtk_circuit import make_bmtk_circuit
from conftest import run_livn
from livn import make
from livn.measures import mean_rate
from livn.system import System
from livn.targets import target_names


@pytest.fixture(scope="module")
def bmtk(tmp_path_factory):
    """simulation_config.json of the BMTK-built circuit."""
    return make_bmtk_circuit(tmp_path_factory.mktemp("bmtk") / "circuit", seed=1)


def test_bmtk_circuit_loads_with_every_population_and_edge(bmtk):
    system = System(bmtk)
    assert system.num_neurons == 30 and system.populations == ["Exc", "Inh"]
    model = system.network
    assert {p.name: (p.kind, p.size, p.offset) for p in model.populations.values()} == {
        "cortex": ("biophysical", 30, 0), "inputs": ("virtual", 20, 30)}
    # the reader against the files read directly (h5py: gzip, BMTK's own layout)
    network = bmtk.parent / "network"
    with h5py.File(network / "cortex_nodes.h5") as h5:
        xyz = np.column_stack([h5[f"nodes/cortex/0/{a}"][:] for a in "xyz"])
    np.testing.assert_allclose(system.coordinates[:30], xyz)
    with h5py.File(network / "inputs_cortex_edges.h5") as h5:
        assert h5["edges/inputs_to_cortex/source_node_id"].compression == "gzip"
        sources = h5["edges/inputs_to_cortex/source_node_id"][:]
        targets = h5["edges/inputs_to_cortex/target_node_id"][:]
    edges = system.edges
    mask = np.isin(edges["source"], np.arange(30, 50))
    assert sorted(zip(edges["source"][mask] - 30, edges["target"][mask])) == sorted(zip(sources, targets))
    # per-type syn_weight / delay from the CSV, per-edge ones from either HDF5 group
    assert set(system.default_params()) == {"inputs->Exc.AMPA_ExcToExc", "inputs->Inh.AMPA_ExcToExc",
                                            "e->cortex.AMPA_ExcToExc", "i->cortex.GABA_InhToExc"}
    assert system.default_params()["inputs->Exc.AMPA_ExcToExc"] == pytest.approx(0.005)
    assert np.isfinite(edges["delay"]).all() and np.isfinite(edges["syn_weight"]).all()
    # spike inputs: every spike of the input file reaches its virtual node
    with h5py.File(bmtk.parent / "inputs" / "inputs_spikes.h5") as h5:
        count = len(h5["spikes/inputs/timestamps"])
    assert sum(len(t) for t in model.spike_inputs.values()) == count > 100


def test_bmtk_placement_by_target_sections_is_deterministic(bmtk):
    """Edges without afferent_section_id land in the named sections (somatic, basal), the same
    whatever subset of cells asks (a rank reads only its own)."""
    model = System(bmtk).network
    everything = model.afferent(model.biophysical_gids)
    some = model.afferent([3, 17, 25])
    mask = np.isin(everything.target, [3, 17, 25])
    np.testing.assert_array_equal(everything.section[mask], some.section)
    np.testing.assert_array_equal(everything.x[mask], some.x)
    inputs = everything.source >= 30
    assert (everything.section[inputs] == 0).all()  # ['somatic']
    excitatory = (everything.source < 24) & ~inputs
    assert (everything.section[excitatory] == 1).all()  # ['basal'] -> the dendrite of livn's cells


@pytest.mark.slow
def test_bmtk_circuit_runs_on_every_target_with_the_same_rates(bmtk):
    rates = {}
    for backend in target_names():
        env = make(bmtk, backend=backend)
        env.record_spikes()
        result = env.run(500)
        rates[backend] = {p: mean_rate(result.it, result.t, env.system.gids(p), 0, 500) for p in ("Exc", "Inh")}
        env.close()
    first = rates[target_names()[0]]
    assert first["Exc"] > 2 and first["Inh"] > 10, rates
    for backend in target_names()[1:]:
        for population, rate in first.items():
            assert abs(rates[backend][population] - rate) <= 0.1 * rate, rates


@pytest.mark.slow
def test_bmtk_circuit_runs_and_compiles_from_the_command_line(bmtk, tmp_path):
    done = run_livn("run", bmtk, "--backend", "neuron", "--duration", "300", "-o", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    assert "Exc:" in done.stdout and (tmp_path / "run" / "raster.png").is_file()
    from livn.sonata import read_spike_report_all

    spikes = read_spike_report_all(tmp_path / "run" / "spikes.h5")
    assert set(spikes) == {"cortex"} and len(spikes["cortex"][0]) > 20 and spikes["cortex"][0].max() < 30
    compiled = run_livn("compile", bmtk, "--target", "brian2", "-o", tmp_path / "b2", "--duration", "300")
    assert compiled.returncode == 0, compiled.stderr


@pytest.mark.slow
def test_point_process_cells_run_on_both_targets_with_the_same_rates(tmp_path):
    """BMTK's NetworkBuilder adds 20 nrn:IntFire1 cells (tau 20 ms, refractory 3 ms) driven by
    the inputs and by the cortex (excitatory +, inhibitory -) and driving the Exc cells."""
    circuit = make_bmtk_circuit(tmp_path / "circuit", seed=1, points=True)
    system = System(circuit)
    assert system.populations == ["Exc", "Inh", "LIF"] and system.num_neurons == 50
    lif = system.network.populations["lif"]
    assert lif.kind == "point" and np.allclose(lif.point["tau"], 20.0) and np.allclose(lif.point["refrac"], 3.0)
    rates = {}
    for backend in target_names():
        env = make(circuit, backend=backend)
        with pytest.raises(ValueError, match="point-process cells"):
            env.record_voltage([int(system.gids("LIF")[0])])
        env.record_spikes()
        result = env.run(500)
        rates[backend] = {p: mean_rate(result.it, result.t, system.gids(p), 0, 500) for p in system.populations}
        env.close()
    first = rates[target_names()[0]]
    assert first["LIF"] > 5, rates
    for backend in target_names()[1:]:
        for population, rate in first.items():
            assert abs(rates[backend][population] - rate) <= 0.1 * rate, rates


@pytest.mark.slow
def test_bionets_own_run_of_point_process_cells_gives_livns_spikes(tmp_path):
    """Inputs and IntFire1 cells only (bionet cannot load livn's nml: cells), run by bionet's
    own run_bionet.py and by livn's NEURON target: the same spikes. The input times are put on
    the 0.025 ms grid first, where livn delivers them (bionet would deliver them in between)."""
    config = make_bmtk_circuit(tmp_path / "circuit", seed=1, points=True, with_cortex=False)
    folder = config.parent
    with h5py.File(folder / "inputs" / "inputs_spikes.h5", "r+") as h5:
        times = h5["spikes/inputs/timestamps"]
        times[...] = np.round(times[:] / 0.025) * 0.025
    mechanisms = folder / "components" / "mechanisms"  # a BMTK user compiles BMTK's VecStim here
    import bmtk

    shutil.copy(Path(bmtk.__file__).parent / "utils/scripts/bionet/mechanisms/modfiles/vecevent.mod", mechanisms)
    built = subprocess.run([str(Path(sys.executable).parent / "nrnivmodl"), "vecevent.mod"], cwd=mechanisms,
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    bionet = subprocess.run([sys.executable, "run_bionet.py", "simulation_config.json"], cwd=folder,
                            capture_output=True, text=True, timeout=600)
    assert bionet.returncode == 0, (bionet.stdout + bionet.stderr)[-3000:]
    done = run_livn("run", config, "--backend", "neuron", "--duration", "500", "-o", tmp_path / "livn")
    assert done.returncode == 0, done.stderr[-2000:]
    from livn.sonata import read_spike_report_all

    theirs = read_spike_report_all(folder / "output" / "spikes.h5")["lif"]
    ours = read_spike_report_all(tmp_path / "livn" / "spikes.h5")["lif"]
    assert len(ours[0]) > 100
    order = [np.lexsort((ids, t)) for ids, t in (ours, theirs)]
    np.testing.assert_array_equal(ours[0][order[0]], theirs[0][order[1]])
    assert np.abs(ours[1][order[0]] - theirs[1][order[1]]).max() <= 0.025


def _edit_node_types(simulation_config, tmp_path, old, new):
    """A copy of the BMTK circuit with the cortex node types table edited."""
    copy = tmp_path / "edited"
    shutil.copytree(simulation_config.parent, copy)
    types = copy / "network" / "cortex_node_types.csv"
    text = types.read_text()
    assert old in text
    types.write_text(text.replace(old, new))
    return copy / "simulation_config.json"


@pytest.mark.parametrize("old, new, expected", [
    ("nml:INH.cell.nml", "hoc:Scnn1a", "model_template 'hoc:Scnn1a' cannot be simulated"),
    ("nml:INH.cell.nml", "nml:missing.cell.nml", "missing.cell.nml does not exist"),
    ("biophysical", "point_process", "point-process model_template 'nml:INH.cell.nml' is not supported "
                                     "(supported: nrn:IntFire1)"),
])
def test_what_livn_cannot_run_is_refused_before_anything_runs(bmtk, tmp_path, old, new, expected):
    edited = _edit_node_types(bmtk, tmp_path, old, new)
    done = run_livn("run", edited, "--duration", "10", "-o", tmp_path / "out")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert expected in done.stderr and "cortex_node_types.csv" in done.stderr, done.stderr
    assert not (tmp_path / "out" / "spikes.h5").exists()


def test_an_unknown_synapse_model_names_the_edge_type(bmtk, tmp_path):
    copy = tmp_path / "edited"
    shutil.copytree(bmtk.parent, copy)
    types = copy / "network" / "cortex_cortex_edge_types.csv"
    types.write_text(types.read_text().replace("exp2syn", "stp2syn", 1))
    done = run_livn("inspect", copy / "simulation_config.json")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "model_template 'stp2syn' is not supported" in done.stderr and "edge type 100" in done.stderr


def test_a_circuit_without_an_mea_cannot_be_stimulated(bmtk):
    env = make(bmtk, backend="brian2", codegen="numpy")
    with pytest.raises(ValueError, match="no MEA"):
        env.run(10, stimulus=np.zeros((400, 1)))
    assert json.loads(bmtk.read_text())["inputs"]  # the spike input is what drives this circuit
