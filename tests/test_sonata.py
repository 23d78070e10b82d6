"""SONATA interchange: libsonata and BMTK read livn's circuits, and the MEA files follow BMTK's formats.

Every check compares what a third-party reader returns with the stored arrays (read with h5py /
the CSVs) and with :class:`livn.system.System`. See shared/reference/sonata-notes.md for the
dialect differences these tests guard against.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import h5py
import libsonata
import numpy as np
import pandas as pd
import pytest

from conftest import spec_of
from livn.build import build_circuit
from livn.build.placement import place
from livn.resources import spec_path
from livn.spec import load_spec
from livn.system import System

NAMES = ("EI2", "EI3")
#: culture side (µm, square cultures) and electrode count of each system
CULTURE_SIDE = {"EI2": 400.0, "EI3": 1000.0}
CHANNELS = {"EI2": 16, "EI3": 64}
PITCH = 100.0
#: NEURON section index of the site named by an edge type's "onto" (livn cells: soma, then dendrite)
SECTION_OF = {"soma": 0, "dendrite": 1}
SONATA_MAGIC = 0x0A7A
NODE_STRING_ATTRIBUTES = ("model_type", "model_template", "morphology", "pop_name")
EDGE_ATTRIBUTES = ("syn_weight", "delay", "distance", "afferent_section_id", "afferent_section_pos")

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index")  # raised inside BMTK


def _text(value) -> str:
    """h5py (and so BMTK) hands back HDF5 strings as bytes."""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class Circuit:
    name: str
    directory: Path
    config: dict
    node_pop: str
    edge_pop: str
    nodes_h5: Path
    node_types_csv: Path
    edges_h5: Path
    edge_types_csv: Path
    system: System

    def expand(self, value: str) -> Path:
        """Resolve a config path the SONATA way: manifest variables, relative to the config's folder."""
        manifest = self.config["manifest"]
        for _ in range(len(manifest) + 1):
            for key, replacement in manifest.items():
                value = value.replace(key, replacement)
        assert "$" not in value, f"unresolved manifest variable in {value!r}"
        return (self.directory / value).resolve()

    @property
    def gids(self) -> np.ndarray:
        """Gids checked one by one: all of EI2; for EI3 a random sample plus the population edges."""
        n = self.system.num_neurons
        if n <= 100:
            return np.arange(n)
        rng = np.random.default_rng(0)
        ends = [0, n - 1] + [g for p in self.system.populations for g in self.system.gids(p)[[0, -1]]]
        return np.unique(np.concatenate([rng.choice(n, 40, replace=False), ends]))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """EI2 and EI3 built once, from the shipped specs."""
    root = tmp_path_factory.mktemp("sonata")
    return {name: build_circuit(load_spec(spec_path(name)), root / name) for name in NAMES}


@pytest.fixture(scope="module", params=NAMES)
def circuit(request, built) -> Circuit:
    directory = Path(built[request.param])
    config = json.loads((directory / "circuit_config.json").read_text())
    nodes, edges = config["networks"]["nodes"], config["networks"]["edges"]
    assert len(nodes) == 1 and len(edges) == 1
    c = Circuit(request.param, directory, config, next(iter(nodes[0]["populations"])),
                next(iter(edges[0]["populations"])), Path(), Path(), Path(), Path(), System(directory))
    c.nodes_h5, c.node_types_csv = c.expand(nodes[0]["nodes_file"]), c.expand(nodes[0]["node_types_file"])
    c.edges_h5, c.edge_types_csv = c.expand(edges[0]["edges_file"]), c.expand(edges[0]["edge_types_file"])
    return c


@pytest.fixture(scope="module")
def stored(circuit):
    """The edge population's arrays as h5py reads them, plus the node type ids."""
    with h5py.File(circuit.edges_h5, "r") as h5:
        pop = h5[f"edges/{circuit.edge_pop}"]
        out = {name: pop[name][:] for name in ("source_node_id", "target_node_id", "edge_type_id")}
        out.update({name: pop["0"][name][:] for name in EDGE_ATTRIBUTES})
    with h5py.File(circuit.nodes_h5, "r") as h5:
        out["node_type_id"] = h5[f"nodes/{circuit.node_pop}/node_type_id"][:]
    return out


def _types(path: Path, id_field: str) -> dict[int, dict]:
    with open(path, newline="") as handle:
        return {int(row[id_field]): row for row in csv.DictReader(handle, delimiter=" ")}


# -- HDF5 layout ------------------------------------------------------------------------------


def test_root_attributes_no_compression_and_both_index_names(circuit):
    for path in (circuit.nodes_h5, circuit.edges_h5):
        with h5py.File(path, "r") as h5:
            magic, version = h5.attrs["magic"], h5.attrs["version"]
            assert np.asarray(magic).dtype == np.uint32 and int(magic) == SONATA_MAGIC
            assert np.asarray(version).dtype == np.uint32 and list(version) == [0, 1]
            datasets = []
            h5.visititems(lambda name, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
            assert len(datasets) > 5
            for ds in datasets:
                assert ds.compression is None, f"{path.name}:{ds.name} is {ds.compression}-compressed"
                assert not ds.shuffle and not ds.fletcher32 and ds.scaleoffset is None, ds.name
    with h5py.File(circuit.edges_h5, "r") as h5:
        pop = h5[f"edges/{circuit.edge_pop}"]
        for end in ("source_node_id", "target_node_id"):
            assert _text(pop[end].attrs["node_population"]) == circuit.node_pop
        n = circuit.system.num_neurons
        for direction in ("source_to_target", "target_to_source"):
            index = pop[f"indices/{direction}"]
            spec_name, bmtk_name = index["node_id_to_ranges"], index["node_id_to_range"]
            assert spec_name.shape == (n, 2)
            assert spec_name.id == bmtk_name.id, f"{direction}: node_id_to_range is not a hard link"
            np.testing.assert_array_equal(spec_name[:], bmtk_name[:])
            assert index["range_to_edge_id"].ndim == 2 and index["range_to_edge_id"].shape[1] == 2


# -- libsonata --------------------------------------------------------------------------------


def test_libsonata_circuit_config_finds_populations(circuit):
    config = libsonata.CircuitConfig.from_file(str(circuit.directory / "circuit_config.json"))
    assert config.node_populations == {circuit.node_pop}
    assert config.edge_populations == {circuit.edge_pop}
    nodes = config.node_population_properties(circuit.node_pop)
    assert nodes.type == "biophysical"
    assert Path(nodes.elements_path) == circuit.nodes_h5 and Path(nodes.types_path) == circuit.node_types_csv
    morphologies = Path(nodes.morphologies_dir)
    assert morphologies.is_dir() and Path(nodes.biophysical_neuron_models_dir).is_dir()
    for population in circuit.system.populations:
        assert (morphologies / f"{population}.swc").is_file()
    edges = config.edge_population_properties(circuit.edge_pop)
    assert edges.type == "Exp2Syn_synapse"  # the SONATA extension's type for these synapses
    assert Path(edges.elements_path) == circuit.edges_h5 and Path(edges.types_path) == circuit.edge_types_csv

    node_pop, edge_pop = config.node_population(circuit.node_pop), config.edge_population(circuit.edge_pop)
    assert node_pop.size == circuit.system.num_neurons
    assert edge_pop.size == len(circuit.system.edges["source"]) > 0
    assert edge_pop.source == edge_pop.target == circuit.node_pop


def test_libsonata_storages_open(circuit):
    nodes = libsonata.NodeStorage(str(circuit.nodes_h5))
    assert nodes.population_names == {circuit.node_pop}
    assert nodes.open_population(circuit.node_pop).size == circuit.system.num_neurons
    edges = libsonata.EdgeStorage(str(circuit.edges_h5))
    assert edges.population_names == {circuit.edge_pop}
    assert edges.open_population(circuit.edge_pop).size == len(circuit.system.edges["source"])


def test_libsonata_node_attributes_are_per_node_and_match_system(circuit, stored):
    pop = libsonata.NodeStorage(str(circuit.nodes_h5)).open_population(circuit.node_pop)
    system, n = circuit.system, circuit.system.num_neurons
    assert set("xyz") | set(NODE_STRING_ATTRIBUTES) <= pop.attribute_names
    everything = pop.select_all()
    xyz = np.column_stack([pop.get_attribute(axis, everything) for axis in "xyz"])
    assert xyz.shape == (n, 3)
    np.testing.assert_array_equal(xyz, system.coordinates)
    # System reads the same file, so also check against the placement itself (axis order, gid order)
    np.testing.assert_allclose(xyz, place(spec_of(system))[0], rtol=1e-6, atol=1e-3)

    expected_pop = np.empty(n, dtype=object)
    for population in system.populations:
        expected_pop[system.gids(population)] = population
    assert list(pop.get_attribute("pop_name", everything)) == list(expected_pop)

    # every per-node string equals the node types CSV row of that node's node_type_id
    types = _types(circuit.node_types_csv, "node_type_id")
    for name in NODE_STRING_ATTRIBUTES:
        values = pop.get_attribute(name, everything)
        assert len(values) == n and all(isinstance(v, str) for v in values)
        assert list(values) == [types[int(t)][name] for t in stored["node_type_id"]], name
    assert set(pop.get_attribute("model_type", everything)) == {"biophysical"}
    assert list(pop.get_attribute("morphology", everything)) == list(expected_pop)  # SONATA: no extension

    # single-node selections give the same values as the full read
    for gid in circuit.gids[:10]:
        one = libsonata.Selection([int(gid)])
        assert pop.get_attribute("x", one)[0] == system.coordinates[gid, 0]
        assert pop.get_attribute("pop_name", one)[0] == expected_pop[gid]
    # strings are stored plainly (no @library): then libsonata lists no enumerations
    for name in pop.enumeration_names:
        library = pop.enumeration_values(name)
        np.testing.assert_array_equal(np.asarray(library)[pop.get_enumeration(name, everything)],
                                      pop.get_attribute(name, everything))


def test_libsonata_afferent_and_efferent_edges_match_stored_arrays(circuit, stored):
    pop = libsonata.EdgeStorage(str(circuit.edges_h5)).open_population(circuit.edge_pop)
    source, target = stored["source_node_id"], stored["target_node_id"]
    for gid in circuit.gids:
        gid = int(gid)
        for query, own, other, own_nodes, other_nodes in (
                (pop.afferent_edges, target, source, pop.target_nodes, pop.source_nodes),
                (pop.efferent_edges, source, target, pop.source_nodes, pop.target_nodes)):
            selection = query(gid)
            ids = selection.flatten()
            expected = np.flatnonzero(own == gid)
            assert len(ids) == len(set(ids.tolist()))
            assert set(ids.tolist()) == set(expected.tolist()), f"{query.__name__}({gid})"
            assert (own_nodes(selection) == gid).all()
            np.testing.assert_array_equal(np.sort(other_nodes(selection)), np.sort(other[expected]))
    # every edge is afferent to exactly one node and efferent from exactly one node
    everyone = list(range(circuit.system.num_neurons))
    assert pop.afferent_edges(everyone).flat_size == pop.efferent_edges(everyone).flat_size == pop.size
    # connecting_edges agrees with the arrays for a pair that is connected
    s, t = int(source[len(source) // 2]), int(target[len(target) // 2])
    assert set(pop.connecting_edges(s, t).flatten().tolist()) == set(
        np.flatnonzero((source == s) & (target == t)).tolist())


def test_libsonata_edge_attributes_agree_with_h5py_and_system(circuit, stored):
    pop = libsonata.EdgeStorage(str(circuit.edges_h5)).open_population(circuit.edge_pop)
    assert set(EDGE_ATTRIBUTES) <= pop.attribute_names
    everything = pop.select_all()
    for name in EDGE_ATTRIBUTES:
        np.testing.assert_array_equal(pop.get_attribute(name, everything), stored[name], err_msg=name)
    edges = circuit.system.edges
    np.testing.assert_array_equal(pop.get_attribute("syn_weight", everything), edges["syn_weight"])
    np.testing.assert_array_equal(pop.get_attribute("delay", everything), edges["delay"])
    np.testing.assert_array_equal(pop.source_nodes(everything), edges["source"])
    np.testing.assert_array_equal(pop.target_nodes(everything), edges["target"])
    # scattered selections (the afferent edges of the sampled gids, several ranges)
    selection = pop.afferent_edges([int(g) for g in circuit.gids[::3]])
    assert len(selection.ranges) > 1
    ids = selection.flatten()
    for name in ("syn_weight", "delay"):
        np.testing.assert_array_equal(pop.get_attribute(name, selection), stored[name][ids], err_msg=name)
    assert (stored["delay"] > 0).all() and (stored["syn_weight"] > 0).all()


def test_edge_types_agree_with_spec_and_attributes(circuit, stored):
    """Each edge type (projection, receptor) labels edges whose endpoints, weight and site fit it."""
    pop = libsonata.EdgeStorage(str(circuit.edges_h5)).open_population(circuit.edge_pop)
    everything = pop.select_all()
    weight, section = pop.get_attribute("syn_weight", everything), pop.get_attribute("afferent_section_id", everything)
    source, target = pop.source_nodes(everything), pop.target_nodes(everything)
    system, spec = circuit.system, spec_of(circuit.system)
    types = _types(circuit.edge_types_csv, "edge_type_id")
    used = np.unique(stored["edge_type_id"])
    assert set(used.tolist()) <= set(types), "edge_type_id without a row in the edge types CSV"
    expected_types = {(p.name, r) for p in spec.projections for r in p.receptors}
    assert {(types[t]["projection"], types[t]["receptor"]) for t in used} == expected_types
    assert len(pop.enumeration_names) == 0  # no @library in the edge group
    weights = dict(spec.weights)
    for type_id in used:
        row, mask = types[int(type_id)], stored["edge_type_id"] == type_id
        pre, post = row["projection"].split("->")
        assert np.isin(source[mask], system.gids(pre)).all() and np.isin(target[mask], system.gids(post)).all()
        unit = spec.receptor(row["receptor"]).unit_conductance
        np.testing.assert_allclose(weight[mask], weights[f"{row['projection']}.{row['receptor']}"] * unit, rtol=1e-12)
        assert (section[mask] == SECTION_OF[row["onto"]]).all(), row


# -- BMTK -------------------------------------------------------------------------------------


def test_bmtk_sonata_reader_nodes(circuit, stored):
    from bmtk.utils import sonata

    net = sonata.File(data_files=[str(circuit.nodes_h5)], data_type_files=[str(circuit.node_types_csv)])
    assert net.has_nodes and not net.has_edges
    assert list(net.nodes.population_names) == [circuit.node_pop]
    pop = net.nodes[circuit.node_pop]
    system, n = circuit.system, circuit.system.num_neurons
    assert len(pop) == n
    types = _types(circuit.node_types_csv, "node_type_id")

    frame = pop.to_dataframe()
    assert len(frame) == n and list(frame.index) == list(range(n))
    assert set(NODE_STRING_ATTRIBUTES) | {"node_type_id", "x", "y", "z"} <= set(frame.columns)
    np.testing.assert_array_equal(frame[["x", "y", "z"]].to_numpy(float), system.coordinates)
    np.testing.assert_array_equal(frame["node_type_id"].to_numpy(), stored["node_type_id"])
    for name in NODE_STRING_ATTRIBUTES:
        assert [_text(v) for v in frame[name]] == [types[int(t)][name] for t in stored["node_type_id"]], name

    for gid in circuit.gids:
        node = pop.get_node_id(int(gid))
        assert node.node_id == gid and node.node_type_id == stored["node_type_id"][gid]
        assert [node["x"], node["y"], node["z"]] == list(system.coordinates[gid])
        row = types[int(node.node_type_id)]
        for name in NODE_STRING_ATTRIBUTES:
            assert _text(node[name]) == row[name], (gid, name)
        assert _text(node["pop_name"]) in system.populations and gid in system.gids(_text(node["pop_name"]))


def test_bmtk_sonata_reader_edges(circuit, stored):
    from bmtk.utils import sonata

    net = sonata.File(data_files=[str(circuit.edges_h5)], data_type_files=[str(circuit.edge_types_csv)])
    assert net.has_edges and list(net.edges.population_names) == [circuit.edge_pop]
    pop = net.edges[circuit.edge_pop]
    source, target = stored["source_node_id"], stored["target_node_id"]
    assert len(pop) == len(source)
    assert pop.source_population == pop.target_population == circuit.node_pop
    types = _types(circuit.edge_types_csv, "edge_type_id")
    for gid in circuit.gids[:: 1 if circuit.name == "EI2" else 4]:
        gid = int(gid)
        incoming = list(pop.get_target(gid))  # uses BMTK's target_to_source/node_id_to_range
        mask = target == gid
        assert len(incoming) == mask.sum()
        assert all(e.target_node_id == gid for e in incoming)
        got = Counter((int(e.source_node_id), int(e.edge_type_id), float(e["syn_weight"]), float(e["delay"]))
                      for e in incoming)
        want = Counter(zip(source[mask].tolist(), stored["edge_type_id"][mask].tolist(),
                           stored["syn_weight"][mask].tolist(), stored["delay"][mask].tolist()))
        assert got == want, gid
        for e in incoming[:3]:  # edge-type columns come from the CSV
            assert e["receptor"] == types[int(e.edge_type_id)]["receptor"]
        outgoing = list(pop.get_source(gid))  # source_to_target index
        assert sorted(int(e.target_node_id) for e in outgoing) == sorted(target[source == gid].tolist())


def test_bmtk_config_resolves_manifest_and_components(circuit, monkeypatch, tmp_path):
    """BMTK's SonataConfig resolves the manifest; run from the circuit folder (BMTK's convention) or
    with $BASE_DIR given explicitly, every component directory and network file exists."""
    from bmtk.utils.sonata.config import SonataConfig

    def check(config):
        for key in ("morphologies_dir", "biophysical_neuron_models_dir", "synaptic_models_dir"):
            assert os.path.isdir(config["components"][key]), (key, config["components"][key])
            assert Path(config["components"][key]).resolve() == circuit.expand(circuit.config["components"][key])
        (nodes,), (edges,) = config["networks"]["nodes"], config["networks"]["edges"]
        assert Path(nodes["nodes_file"]).resolve() == circuit.nodes_h5
        assert Path(nodes["node_types_file"]).resolve() == circuit.node_types_csv
        assert Path(edges["edges_file"]).resolve() == circuit.edges_h5
        assert Path(edges["edge_types_file"]).resolve() == circuit.edge_types_csv
        assert set(nodes["populations"]) == {circuit.node_pop} and set(edges["populations"]) == {circuit.edge_pop}
        synapses = Path(config["components"]["synaptic_models_dir"])
        for row in _types(circuit.edge_types_csv, "edge_type_id").values():
            assert (synapses / row["dynamics_params"]).is_file(), row
        assert Path(config["livn"]["stimulation_electrodes"]).resolve().is_file()

    monkeypatch.chdir(circuit.directory)
    check(SonataConfig.from_json("circuit_config.json"))
    monkeypatch.chdir(tmp_path)
    check(SonataConfig.from_json(str(circuit.directory / "circuit_config.json"), BASE_DIR=str(circuit.directory)))


def _bmtk_nodes(circuit):
    """BMTK's simulator-side view of the nodes (what bionet/pointnet build cells from), without edges."""
    from bmtk.simulator.core import sonata_reader
    from bmtk.simulator.core.simulator_network import SimNetwork
    from bmtk.utils.sonata.config import SonataConfig

    config = SonataConfig.from_json(str(circuit.directory / "circuit_config.json"), BASE_DIR=str(circuit.directory))
    network = SimNetwork()
    for name, value in config["components"].items():
        network.add_component(name, value)
    (entry,) = config["networks"]["nodes"]
    (population,) = sonata_reader.load_nodes(entry["nodes_file"], entry["node_types_file"],
                                             adaptor=network.get_node_adaptor("sonata"))
    network.add_nodes(population)  # resolves node-type morphologies against morphologies_dir
    return network, population


def test_bmtk_simulator_network_loads_nodes(circuit):
    _, population = _bmtk_nodes(circuit)
    assert population.name == circuit.node_pop
    assert population.n_nodes() == circuit.system.num_neurons
    assert population.internal_nodes_only and not population.mixed_nodes
    nodes = list(population.get_nodes())
    assert [n.node_id for n in nodes] == list(range(circuit.system.num_neurons))
    # BMTK resolved the node types' morphology column to files in morphologies_dir
    table = population._node_pop.types_table
    for type_id in np.unique(population._node_pop.type_ids):
        assert os.path.isfile(table[type_id]["morphology"])


def test_bmtk_simulator_node_properties_of_the_bmtk_export(circuit, tmp_path):
    """livn's nodes carry per-node strings (bluepysnap requires them) that BMTK would read as
    bytes ahead of its types table; ``livn export --to bmtk`` leaves them to the table, and
    BMTK's simulator then sees every node's model type, template and morphology file
    (tests/test_neuron_bmtk.py runs the export)."""
    from conftest import run_livn

    done = run_livn("export", circuit.directory, "--to", "bmtk", "-o", tmp_path / "bmtk")
    assert done.returncode == 0, done.stderr[-2000:]
    exported = Circuit(**{**circuit.__dict__, "directory": tmp_path / "bmtk"})
    with h5py.File(exported.directory / circuit.nodes_h5.relative_to(circuit.directory), "r") as h5:
        assert not {"model_type", "model_template", "morphology"} & set(h5[f"nodes/{circuit.node_pop}/0"])
        assert {"x", "y", "z", "orientation_w"} <= set(h5[f"nodes/{circuit.node_pop}/0"])
    _, population = _bmtk_nodes(exported)
    for node in list(population.get_nodes())[:: max(1, circuit.system.num_neurons // 20)]:
        pop_name = next(p for p in circuit.system.populations if node.node_id in circuit.system.gids(p))
        assert node.model_type == "biophysical"
        assert node["pop_name"] == pop_name
        assert os.path.isfile(node["morphology"])
        try:
            directive, template = node.model_template
        except TypeError as err:  # bytes.split(":")
            raise AssertionError(f"BMTK cannot parse model_template {node['model_template']!r}: {err}") from err
        assert (directive, template) == ("hoc", pop_name)  # the template livn writes per cell type


def test_bmtk_simulator_network_from_config(circuit, stored, monkeypatch):
    from bmtk.simulator.core.simulator_network import SimNetwork

    monkeypatch.chdir(circuit.directory)  # BMTK resolves "$BASE_DIR": "." against the working directory
    try:
        network = SimNetwork.from_config("circuit_config.json")
    except Exception as err:  # BMTK's io.log_exception raises a bare Exception
        if "dynamics_params" not in str(err):
            raise
        raise AssertionError(f"BMTK SimNetwork.from_config: {err}") from err
    assert [p.name for p in network.node_populations] == [circuit.node_pop]
    (edges,) = network._edge_populations
    assert edges.source_nodes == edges.target_nodes == circuit.node_pop
    gid = int(circuit.gids[len(circuit.gids) // 2])
    got = sorted(int(e.source_node_id) for e in edges.get_target(gid))
    assert got == sorted(stored["source_node_id"][stored["target_node_id"] == gid].tolist())


# -- bluepysnap (BBP's reader and validator) --------------------------------------------------

def test_bluepysnap_validates_the_circuit_without_errors(circuit):
    """bluepysnap's validator finds nothing fatal: nodes with orientation, morphologies found,
    BBP type names; edges of the SONATA extension's Exp2Syn_synapse type with their required
    per-edge conductance, tau1, tau2 and erev, which equal the receptors' kinetics. Its one
    warning about files is the model_template convention: BBP names a template without
    extension and appends the directive ("nml:EXC" -> EXC.nml), BMTK names the file
    ("nml:EXC.cell.nml", what livn writes and reads)."""
    import re

    from bluepysnap.circuit_validation import validate
    from bluepysnap.exceptions import BluepySnapValidationError

    problems = validate(str(circuit.directory / "circuit_config.json"), skip_slow=False, print_errors=False)
    fatal = [p.message for p in problems if p.level == BluepySnapValidationError.FATAL]
    assert not fatal, fatal
    missing = [p.message for p in problems if p.level != BluepySnapValidationError.FATAL and "missing" in p.message]
    assert len(missing) == 1 and "group model_template" in missing[0], missing
    assert sorted(re.findall(r"\t(\S+)", missing[0])) == sorted(f"{p}.cell.nml.nml" for p in circuit.system.populations)
    spec = spec_of(circuit.system)
    types = {int(row["edge_type_id"]): row for row in csv.DictReader(open(circuit.edge_types_csv), delimiter=" ")}
    with h5py.File(circuit.edges_h5, "r") as h5:
        group = h5[f"edges/{circuit.edge_pop}"]
        type_ids = group["edge_type_id"][:]
        for type_id, row in types.items():
            mine = type_ids == type_id
            tau1, tau2, erev = spec.receptor(row["receptor"]).kinetics
            for name, value in (("tau1", tau1), ("tau2", tau2), ("erev", erev)):
                np.testing.assert_allclose(group[f"0/{name}"][:][mine], value, rtol=1e-6)
        np.testing.assert_allclose(group["0/conductance"][:], group["0/syn_weight"][:], rtol=1e-6)


def test_bluepysnap_reads_nodes_edges_and_node_sets(circuit, stored):
    from bluepysnap import Circuit as SnapCircuit

    snap = SnapCircuit(str(circuit.directory / "circuit_config.json"))
    system = circuit.system
    nodes = snap.nodes[circuit.node_pop]
    assert nodes.size == system.num_neurons
    table = nodes.get(properties=["x", "y", "mtype", "synapse_class", "orientation_w", "orientation_z"])
    np.testing.assert_allclose(table[["x", "y"]].to_numpy(), system.coordinates[:, :2], rtol=1e-6)
    with h5py.File(circuit.nodes_h5, "r") as h5:
        rotation = h5[f"nodes/{circuit.node_pop}/0/rotation_angle_zaxis"][:]
    np.testing.assert_allclose(table["orientation_w"] ** 2 + table["orientation_z"] ** 2, 1.0, rtol=1e-6)
    np.testing.assert_allclose(2 * np.arctan2(table["orientation_z"], table["orientation_w"]), rotation, atol=1e-5)
    for population in system.populations:
        ids = snap.nodes.ids(population).get_ids()  # a node set per cell type
        assert ids.tolist() == system.gids(population).tolist()
        assert set(table.loc[ids, "mtype"]) == {population}
    assert set(table["synapse_class"]) == {"EXC", "INH"}
    edges = snap.edges[circuit.edge_pop]
    assert edges.size == len(stored["source_node_id"])
    for gid in circuit.gids[:10]:
        got = edges.afferent_nodes(int(gid), unique=False)
        expected = stored["source_node_id"][stored["target_node_id"] == gid]
        assert sorted(np.asarray(got).tolist()) == sorted(expected.tolist())


# -- MEA electrode files ----------------------------------------------------------------------


def test_electrode_csvs_match_system_and_form_a_centred_grid(circuit):
    mea = circuit.directory / "mea"
    livn = circuit.config["livn"]
    assert circuit.expand(livn["stimulation_electrodes"]) == (mea / "stimulation_electrodes.csv").resolve()
    assert circuit.expand(livn["recording_electrodes"]) == (mea / "recording_electrodes.csv").resolve()

    # read exactly as BMTK does: xstim.StimXElectrode and ecp.RecXElectrode
    stimulation = pd.read_csv(mea / "stimulation_electrodes.csv", sep=" ")
    recording = pd.read_csv(mea / "recording_electrodes.csv", sep=" ")
    assert list(stimulation.columns) == ["pos_x", "pos_y", "pos_z", "rotation_x", "rotation_y", "rotation_z"]
    assert list(recording.columns) == ["channel", "x_pos", "y_pos", "z_pos"]
    elpos = stimulation[["pos_x", "pos_y", "pos_z"]].T.values
    elrot = stimulation[["rotation_x", "rotation_y", "rotation_z"]].values
    pos = recording[["x_pos", "y_pos", "z_pos"]].T.values
    count = CHANNELS[circuit.name]
    assert elpos.shape == pos.shape == (3, count)
    assert np.issubdtype(elpos.dtype, np.number) and np.issubdtype(pos.dtype, np.number)
    assert (elrot == 0).all()
    assert list(recording["channel"]) == list(range(count))
    np.testing.assert_array_equal(elpos, pos)

    electrodes = circuit.system.electrodes
    assert electrodes.shape == (count, 3) and circuit.system.num_channels == count
    np.testing.assert_allclose(elpos.T, electrodes)

    # a side x side grid with 100 µm pitch, centred on the culture, one plane below it
    side = int(round(np.sqrt(count)))
    assert side * side == count
    xs, ys = np.unique(elpos[0]), np.unique(elpos[1])
    assert len(xs) == len(ys) == side
    np.testing.assert_allclose(np.diff(xs), PITCH)
    np.testing.assert_allclose(np.diff(ys), PITCH)
    centre = CULTURE_SIDE[circuit.name] / 2
    assert xs.mean() == pytest.approx(centre) and ys.mean() == pytest.approx(centre)
    assert len(np.unique(elpos[2])) == 1 and elpos[2, 0] < 0
    assert elpos[2, 0] == pytest.approx(-spec_of(circuit.system).mea.offset)
    # channel = row-major over (row, column): x varies fastest
    grid = elpos[:2].T.reshape(side, side, 2)
    assert (np.diff(grid[:, :, 0], axis=1) == PITCH).all() and (np.diff(grid[:, :, 1], axis=0) == PITCH).all()
