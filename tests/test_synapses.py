"""Synapses by site (livn.build.synapses): counts per site, positions in their layer and group,
projections by proportion, sources from the windowed Gaussian of the source's axon extent."""

from pathlib import Path

import h5py
import libsonata
import numpy as np
import pytest
from scipy import stats

from livn.build import build_circuit
from livn.build.synapses import choose_sources
from livn.neuroml import read_cell
from livn.spec import load_spec
from livn.system import System

SPEC = Path(__file__).parent / "data" / "ca1_layers" / "CA1_layers.yaml"
SCALE = 0.002


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    spec = load_spec(SPEC, SCALE)
    return spec, build_circuit(spec, tmp_path_factory.mktemp("sites") / "circuit")


def _edges(path):
    """Every edge of both edge populations as gids: source, target, type, section, pos."""
    config = libsonata.CircuitConfig.from_file(str(path / "circuit_config.json"))
    offsets = {"CA1_layers": 0, "CA1_layers_inputs": config.node_population("CA1_layers").size}
    columns = {k: [] for k in ("source", "target", "section", "position", "projection", "receptor")}
    for name in config.edge_populations:
        edges = config.edge_population(name)
        everything = edges.select_all()
        types = {}
        for line in open(path / "network" / f"{name}_edge_types.csv").read().splitlines()[1:]:
            fields = line.split(" ")
            types[int(fields[0])] = (fields[1], fields[2])
        with h5py.File(path / "network" / f"{name}_edges.h5") as h5:
            type_ids = h5[f"edges/{name}/edge_type_id"][:]
        columns["source"].append(edges.source_nodes(everything) + offsets[edges.source])
        columns["target"].append(edges.target_nodes(everything))
        columns["section"].append(edges.get_attribute("afferent_section_id", everything))
        columns["position"].append(edges.get_attribute("afferent_section_pos", everything))
        columns["projection"].append(np.array([types[t][0] for t in type_ids]))
        columns["receptor"].append(np.array([types[t][1] for t in type_ids]))
    return {k: np.concatenate(v) for k, v in columns.items()}


def test_synapses_per_site_and_projection_follow_the_spec(built):
    spec, path = built
    edges = _edges(path)
    pyr = spec.population("PYR")
    # one receptor's edges per synapse: count AMPA (excitatory) and GABA_A (inhibitory) edges
    for projection in spec.projections:
        if projection.target != "PYR":
            continue
        receptor = projection.receptors[0]
        mine = (edges["projection"] == projection.name) & (edges["receptor"] == receptor)
        kind = "exc" if spec.population(projection.source).role == "excitatory" else "inh"
        expected = 0.0
        for group, layer, share in projection.sites:
            site = next(s for s in pyr.synapses if (s.group, s.layer, s.kind) == (group, layer, kind))
            total = sum(p for other in spec.projections if other.target == "PYR" and
                        ("exc" if spec.population(other.source).role == "excitatory" else "inh") == kind
                        for g, l, p in other.sites if (g, l) == (group, layer))
            expected += site.mean * share / total
        per_cell = mine.sum() / pyr.count
        # Poisson counts, multinomial split: sd of the mean over cells <= sqrt(expected / cells)
        assert abs(per_cell - expected) < 4 * np.sqrt(expected / pyr.count) + 1e-9, (projection.name, per_cell, expected)
    # a receptor pair shares its synapse: AMPA and NMDA edges of a projection are the same synapses
    for name in ("CA3->PYR", "EC->PYR"):
        ampa = (edges["projection"] == name) & (edges["receptor"] == "AMPA")
        nmda = (edges["projection"] == name) & (edges["receptor"] == "NMDA")
        key = lambda m: sorted(zip(edges["target"][m], edges["source"][m], edges["section"][m], edges["position"][m]))
        assert key(ampa) == key(nmda)


def test_synapses_lie_in_their_group_and_layer(built):
    spec, path = built
    edges = _edges(path)
    cell = read_cell(spec.population("PYR").cell, spec.population("PYR").cell_id)
    system = System(path)
    z = system.circuit.nodes["CA1_layers"].positions[:, 2]
    base = cell.compartments[0].centre[2]
    groups = {"AAC->PYR": "ais", "EC->PYR": "apical", "OLM->PYR": "apical"}
    for name, group in groups.items():
        mine = edges["projection"] == name
        assert mine.any()
        assert all(group in cell.sections[s].groups for s in np.unique(edges["section"][mine])), name
    # EC and OLM synapses onto PYR sit on compartments whose middle is in SLM (350-450 um): the
    # PYR tuft reaches it from anywhere in SP
    for name in ("EC->PYR", "OLM->PYR"):
        mine = np.flatnonzero(edges["projection"] == name)
        heights = np.array([cell.compartments[cell.compartment_at(s, x)].centre[2] - base for s, x in
                            zip(edges["section"][mine], edges["position"][mine])])
        depth = z[edges["target"][mine]] + heights
        assert (depth >= 350 - 1e-3).all() and (depth <= 450 + 1e-3).all(), name


def test_sources_follow_the_windowed_gaussian():
    rng = np.random.default_rng(5)
    # sources uniform around the window, dense enough that their own scatter does not show
    grid = 2005.0 + (rng.random((1_000_000, 2)) - 0.5) * np.array([1200.0, 600.0])
    grid = grid[np.argsort(grid[:, 0])]  # the builder keeps sources sorted by x
    gids = np.arange(len(grid))
    half, sigma = np.array([500.0, 250.0]), np.array([1000.0, 500.0]) / 6
    centre = np.array([2005.0, 2005.0])
    chosen = choose_sources(rng, gids, grid, half, sigma, centre, exclude=-1, n=20000)
    d = grid[chosen] - centre
    assert (np.abs(d) < half).all()
    for axis in range(2):
        # a normal of sd sigma truncated to the window
        truncated = stats.truncnorm(-half[axis] / sigma[axis], half[axis] / sigma[axis], scale=sigma[axis])
        assert stats.kstest(d[:, axis], truncated.cdf).pvalue > 0.01
    # nothing in the window: no source
    far = np.array([[0.0, 0.0]])
    assert (choose_sources(rng, gids[:1], far, half, sigma, centre, -1, 3) == -1).all()


def test_the_build_is_deterministic_and_readable(built, tmp_path):
    spec, path = built
    again = build_circuit(load_spec(SPEC, SCALE), tmp_path / "again")
    first, second = _edges(path), _edges(again)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    system = System(path)
    afferent = system.network.afferent(np.arange(5))
    assert set(np.unique(afferent.target)) <= set(range(5)) and len(afferent.source) > 0
    # inputs reach the cells from the virtual population's gids
    assert (afferent.source >= spec.num_neurons).any()
