"""The SONATA reader and the network model: what every target is built from."""

import re
import subprocess
import sys

import libsonata
import numpy as np
import pytest

from livn.network.model import NetworkModel
from livn.resources import spec_path
from livn.sonata import Circuit
from livn.spec import load_spec


def test_reader_agrees_with_libsonata(circuits):
    """Node attributes and the afferent edges of any gids: livn's reader = libsonata's."""
    path = circuits["EI2"]
    circuit = Circuit(path)
    nodes = libsonata.NodeStorage(str(path / "network" / "EI2_nodes.h5")).open_population("EI2")
    population = circuit.nodes["EI2"]
    for name in ("x", "y", "z", "model_type", "model_template", "pop_name", "rotation_angle_zaxis"):
        expected = nodes.get_attribute(name, libsonata.Selection([(0, nodes.size)]))
        ours = population.attribute(name)
        if ours.dtype == object:
            assert list(ours) == list(expected), name
        else:
            np.testing.assert_allclose(ours, expected, rtol=1e-7, err_msg=name)
    edges = libsonata.EdgeStorage(str(path / "network" / "EI2_to_EI2_edges.h5")).open_population("EI2_to_EI2")
    for gids in ([0], [3, 50, 99], list(range(0, 100, 7))):
        selection = edges.afferent_edges(gids)
        ids = circuit.edges["EI2_to_EI2"].afferent(gids)
        np.testing.assert_array_equal(ids, selection.flatten())
        chosen = circuit.edges["EI2_to_EI2"].select(ids, ["syn_weight", "delay", "afferent_section_id"])
        for name in ("syn_weight", "delay", "afferent_section_id"):
            np.testing.assert_array_equal(chosen.attributes[name], edges.get_attribute(name, selection))
        np.testing.assert_array_equal(chosen.source, edges.source_nodes(selection))


def test_the_model_reads_only_the_edges_a_rank_needs(circuits):
    """afferent(gids) returns exactly the edges onto those gids, in (type, edge id) order, and
    the union over a split of the cells is every edge once (what MPI ranks read)."""
    model = NetworkModel(circuits["EI3"])
    every = model.afferent(np.arange(1000))
    parts = [model.afferent(np.arange(rank, 1000, 3)) for rank in range(3)]
    assert sum(len(p) for p in parts) == len(every) == Circuit(circuits["EI3"]).edges["EI3_to_EI3"].size
    for rank, part in enumerate(parts):
        assert np.all(part.target % 3 == rank)
    pairs = lambda c: sorted(zip(c.source.tolist(), c.target.tolist(), c.synapse.tolist()))  # noqa: E731
    assert pairs(every) == sorted(sum((pairs(p) for p in parts), []))


def test_the_model_carries_the_specs_defaults_without_reading_the_yaml(circuits, tmp_path):
    """Weights (× unit conductance), noise and the synapse sections come from the circuit: the
    YAML spec inside it can go and nothing changes."""
    import shutil

    spec = load_spec(spec_path("EI2"))
    copy = tmp_path / "EI2"
    shutil.copytree(circuits["EI2"], copy)
    (copy / "components" / "EI2.yaml").unlink()
    model = NetworkModel(copy)
    assert model.default_params() == spec.default_params()
    assert [s.kind for s in model.noise] == ["excitatory", "inhibitory"]
    assert [(s.group, s.tau, s.erev) for s in model.noise] == [("dendrite_group", 2.728, 0.0),
                                                               ("dendrite_group", 10.49, -75.0)]
    conn = model.afferent(np.arange(100))
    names = np.array(model.synapse_names)[conn.synapse]
    assert set(conn.section[names == "GABA_A"]) == {0} and set(conn.section[names != "GABA_A"]) == {1}
    scale = model.conductance_scale(model.default_params())[conn.group] * conn.relative
    units = {"AMPA": 5e-4, "NMDA": 5e-4, "GABA_A": 1e-3}
    weights = model.default_params()
    expected = [weights[model.weight_names[g]] * units[n] for g, n in zip(conn.group, names)]
    np.testing.assert_allclose(scale, expected, rtol=1e-12)


def test_parameters_are_checked_where_they_enter(circuits):
    model = NetworkModel(circuits["EI1"])
    with pytest.raises(KeyError, match="valid: EXC->EXC.AMPA"):
        model.check_params({"EXC->EXC.GABA_B": 1.0})
    for bad in (float("nan"), float("inf"), -1.0, "abc", None):
        with pytest.raises(ValueError, match="EXC->INH.AMPA"):
            model.check_params({"EXC->INH.AMPA": bad})
    with pytest.raises(TypeError):
        model.check_params([("EXC->INH.AMPA", 1.0)])
    assert model.check_params({"noise.excitatory.g0": 0}) == {"noise.excitatory.g0": 0.0}


def test_a_circuit_without_a_livn_block_has_no_mea_and_says_so(tmp_path, circuits):
    import json
    import shutil

    copy = tmp_path / "plain"
    shutil.copytree(circuits["EI1"], copy)
    config = json.loads((copy / "circuit_config.json").read_text())
    del config["livn"]
    (copy / "circuit_config.json").write_text(json.dumps(config))
    model = NetworkModel(copy)
    assert model.electrodes.shape == (0, 3) and model.noise == ()
    # weight_unit is in the CSV: the defaults of the circuit with its livn block
    assert model.default_params()["INH->EXC.GABA_A"] == pytest.approx(
        NetworkModel(circuits["EI1"]).default_params()["INH->EXC.GABA_A"])
    with pytest.raises(ValueError, match="no MEA"):
        model.check_stimulus(np.zeros((10, 1)), 1.0, 0.025)


def test_an_edited_neuroml_file_is_read_again(tmp_path):
    """Parsed NeuroML used to be cached for the life of the process."""
    from livn.neuroml import read_synapse

    path = tmp_path / "s.nml"
    text = ('<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="s">'
            '<expTwoSynapse id="S" gbase="1nS" erev="0mV" tauRise="0.5ms" tauDecay="{}ms"/></neuroml>')
    path.write_text(text.format(3))
    assert read_synapse(path, "S").tau_decay == 3.0
    path.write_text(text.format(30))
    assert read_synapse(path, "S").tau_decay == 30.0


def test_layers_import_on_their_own():
    """The spec layer needs no HDF5 and no simulator; importing livn.plot does not choose a
    matplotlib backend for the user."""
    script = ("import sys, matplotlib; matplotlib.use('svg'); import livn.spec, livn.neuroml, livn.plot;"
              "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'brian2', 'neuron', 'libsonata', 'bmtk'});"
              "print(heavy, matplotlib.get_backend())")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "svg"]
    spec_only = subprocess.run([sys.executable, "-c", "import sys, livn.spec; print('h5py' in sys.modules)"],
                               capture_output=True, text=True, timeout=120)
    assert spec_only.stdout.strip() == "False", spec_only.stderr


# -- noise per membrane area ---------------------------------------------------------------

def _noise_specs(tmp_path):
    """The same 20-cell culture with its noise written per area (mS/cm2) and as the conductances
    that gives each cell type (uS): (per-area spec, EXC-equivalent absolute spec)."""
    from livn.tools.generate import Culture2D, generate_2d

    base = generate_2d(Culture2D("Noisy", exc=16, inh=4, width=200, height=200), tmp_path / "area")
    text = base.read_text()
    text, count = re.subn(r"excitatory: \{onto: dendrite, g0: [0-9.]+ mS/cm2, sigma: [0-9.]+ mS/cm2",
                          "excitatory: {onto: dendrite, g0: 0.6 mS/cm2, sigma: 0.15 mS/cm2", text)
    text, count2 = re.subn(r"inhibitory: \{onto: dendrite, g0: [0-9.]+ mS/cm2, sigma: [0-9.]+ mS/cm2",
                           "inhibitory: {onto: soma, g0: 0.855 mS/cm2, sigma: 0.13 mS/cm2", text)
    assert count == count2 == 1, text
    base.write_text(text)
    return base


def test_noise_per_area_scales_with_each_cell_types_membrane(tmp_path):
    from livn.system import System, built

    system = System(built(_noise_specs(tmp_path)))
    model = system.network
    assert system.default_params()["noise.excitatory.g0"] == pytest.approx(0.6)  # tuned in mS/cm2
    by_kind = {s.kind: s for s in model.noise}
    exc, inh = (model.cell_of(int(system.gids(p)[0])) for p in ("EXC", "INH"))
    # EXC: dendrite pi 6 um x 266.67 um = 5026.6 um2, soma pi 40 x 40 = 5026.5 um2; INH dendrite pi 2 x 200
    assert model.noise_scale(exc, by_kind["excitatory"]) == pytest.approx(5026.6e-5, rel=1e-3)
    assert model.noise_scale(exc, by_kind["inhibitory"]) == pytest.approx(5026.5e-5, rel=1e-3)
    assert model.noise_scale(inh, by_kind["excitatory"]) == pytest.approx(1256.6e-5, rel=1e-3)


@pytest.mark.parametrize("backend", ["brian2", "neuron"])
def test_noise_per_area_gives_each_cell_its_area_times_the_density(tmp_path, backend):
    """On both targets the per-area culture's EXC cells get the conductances an absolute spec
    would give them (so an EXC-only comparison is exact), its INH cells a quarter of the
    dendritic one (their dendrite is a quarter of EXC's); set_params keeps the scaling."""
    from livn.env import make

    env = make(str(_noise_specs(tmp_path)), backend=backend)
    try:
        env.set_params({"noise.excitatory.g0": 1.2})
        sim = env.simulation
        if backend == "neuron":
            network = sim.network if hasattr(sim, "network") else sim
            cells = network.cells
            exc = cells[int(env.system.gids("EXC")[0])]
            inh = cells[int(env.system.gids("INH")[0])]
            g_exc, g_inh = exc.noise["excitatory"].g0, inh.noise["excitatory"].g0
            sigma = exc.noise["inhibitory"].sigma
        else:
            group = sim.runtime.groups  # one Brian2 group per cell type, named after it
            g_exc = float(group["EXC"].g0_noise_excitatory[:]) / 1e-6
            g_inh = float(group["INH"].g0_noise_excitatory[:]) / 1e-6
            sigma = float(group["EXC"].sigma_noise_inhibitory[:]) / 1e-6
        assert g_exc == pytest.approx(1.2 * 5026.6e-5, rel=1e-3)
        assert g_inh == pytest.approx(1.2 * 1256.6e-5, rel=1e-3)
        assert sigma == pytest.approx(0.13 * 5026.5e-5, rel=1e-3)
    finally:
        env.close()


def test_noise_mixing_conductances_and_densities_is_refused(spec_copy):
    from livn.spec import SpecError

    path = spec_copy("EI2", lambda s: re.sub(r"(excitatory: \{onto: dendrite, g0: )[0-9.]+ mS/cm2", r"\g<1>0.03 uS", s))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    messages = [str(p) for p in err.value.problems]
    assert any("noise.excitatory.g0" in m and "conductance density" in m for m in messages), messages
    assert any(":" in m and "EI2.yaml" in m for m in messages)
