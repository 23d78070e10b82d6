"""Building circuits: statistics of placement and connectivity, determinism, atomic output."""

import hashlib

import h5py
import numpy as np
import pytest

from livn.build import build_circuit
from livn.build import circuit as circuit_module
from livn.build.streams import Streams
from livn.resources import spec_path
from livn.spec import load_spec
from livn.system import System

from conftest import run_livn, spec_of


def test_population_counts_fractions_and_positions(circuits):
    for name, (n, side) in {"EI1": (10, 40), "EI2": (100, 400), "EI3": (1000, 1000)}.items():
        system = System(circuits[name])
        assert system.num_neurons == n
        assert len(system.gids("EXC")) == 0.8 * n and len(system.gids("INH")) == 0.2 * n
        xyz = system.coordinates
        assert xyz.shape == (n, 3)
        assert (xyz[:, :2] >= 0).all() and (xyz[:, :2] <= side).all() and (xyz[:, 2] == 0).all()
    # uniform placement: EI3 quadrant counts are binomial(1000, 1/4)
    xyz = System(circuits["EI3"]).coordinates
    quadrants = np.histogram2d(xyz[:, 0], xyz[:, 1], bins=2, range=[[0, 1000], [0, 1000]])[0]
    assert np.all(np.abs(quadrants - 250) < 4 * np.sqrt(1000 * 0.25 * 0.75))


def fit_gaussian(system):
    """Weighted least squares of log p = log p_max - d^2 / (2 sigma^2), all projections pooled."""
    d2, logp, weight = [], [], []
    for projection in spec_of(system).projections:
        centres, p, candidates = system.connection_probability(projection.name, bins=15)
        ok = (candidates > 50) & (p > 0)
        d2 += list(centres[ok] ** 2)
        logp += list(np.log(p[ok]))
        weight += list(candidates[ok] * p[ok] / (1 - p[ok]))  # inverse variance of log p
    slope, intercept = np.polyfit(d2, logp, 1, w=np.sqrt(weight))
    return np.sqrt(-1 / (2 * slope)), np.exp(intercept)


def test_connection_probability_follows_the_gaussian_kernel(circuits):
    system = System(circuits["EI3"])
    sigma, p_max = fit_gaussian(system)
    assert sigma == pytest.approx(200, rel=0.08)
    assert p_max == pytest.approx(0.74, rel=0.08)
    # and no pair beyond the cutoff distance
    kernel = spec_of(system).projections[0].kernel
    assert system.edges["distance"].max() <= kernel.max_distance + 1e-3


@pytest.mark.slow
def test_ei4_kernel_and_in_degree(tmp_path):
    system = System(build_circuit(load_spec(spec_path("EI4")), tmp_path / "EI4"))
    sigma, p_max = fit_gaussian(system)
    assert sigma == pytest.approx(200, rel=0.03)
    assert p_max == pytest.approx(0.74, rel=0.03)
    # ~100 connections onto a cell away from the edges (2 pi sigma^2 density (p_max - cutoff))
    xyz = system.coordinates
    inner = np.flatnonzero(np.all((xyz[:, :2] > 500) & (xyz[:, :2] < 3500), axis=1))
    first = system.edges["receptor"] != "NMDA"
    in_degree = np.bincount(system.edges["target"][first], minlength=system.num_neurons)[inner]
    expected = 2 * np.pi * 200**2 * (10000 / 4000**2) * (0.74 - 0.1)
    assert in_degree.mean() == pytest.approx(expected, rel=0.05)


def test_edges_have_no_self_connections_or_duplicates(circuits):
    for name in ("EI1", "EI2", "EI3"):
        e = System(circuits[name]).edges
        assert not np.any(e["source"] == e["target"])
        key = np.stack([e["source"], e["target"], e["edge_type_id"]], axis=1)
        assert len(np.unique(key, axis=0)) == len(key)
        # sorted by target, as the index expects
        assert np.all(np.diff(e["target"]) >= 0)


def test_excitatory_pairs_carry_ampa_and_nmda_inhibitory_gaba(circuits):
    system = System(circuits["EI2"])
    e = system.edges
    for projection in spec_of(system).projections:
        mask = e["projection"] == projection.name
        assert set(e["receptor"][mask]) == set(projection.receptors)
        pairs = [set(zip(e["source"][mask & (e["receptor"] == r)], e["target"][mask & (e["receptor"] == r)]))
                 for r in projection.receptors]
        assert all(p == pairs[0] for p in pairs)
        source_pop = system.gids(projection.source)
        assert np.isin(e["source"][mask], source_pop).all()
        assert np.isin(e["target"][mask], system.gids(projection.target)).all()
        assert (e["afferent_section_id"][mask] == (1 if projection.onto == "dendrite" else 0)).all()


def test_a_synaptic_delay_adds_to_the_conduction_delay(spec_copy, tmp_path):
    path = spec_copy("EI1", lambda s: s.replace("delay: {velocity: 250 um/ms, synaptic: 1 ms, min: 0.05 ms}",
                                                  "delay: {velocity: 250 um/ms, synaptic: 1 ms, min: 1.1 ms}"))
    system = System(build_circuit(load_spec(path), tmp_path / "EI1"))
    e = system.edges
    expected = np.maximum(1.0 + e["distance"] / 250.0, 1.1)
    np.testing.assert_allclose(e["delay"], expected, rtol=1e-5)
    assert (e["delay"] > 1.1 + 1e-6).any() and np.isclose(e["delay"], 1.1).any()  # both the sum and the floor occur
    assert system.livn["delay"]["synaptic_ms"] == 1.0


def test_delays_are_latency_plus_distance_over_velocity_and_weights_from_defaults(circuits):
    system = System(circuits["EI3"])
    e, xyz = system.edges, system.coordinates
    distance = np.linalg.norm(xyz[e["source"]] - xyz[e["target"]], axis=1)
    np.testing.assert_allclose(e["distance"], distance, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(e["delay"], 1.0 + distance / 250.0, rtol=1e-5)  # EI3: 1 ms synaptic latency
    defaults = system.default_params()
    unit = {r.name: r.unit_conductance for r in spec_of(system).receptors}
    for name in system.weight_names:
        projection, receptor = name.split(".")
        mask = (e["projection"] == projection) & (e["receptor"] == receptor)
        np.testing.assert_allclose(e["syn_weight"][mask], defaults[name] * unit[receptor])


def digest(circuit):
    """Hash of every dataset and every types/electrode file of a circuit."""
    h = hashlib.sha256()
    for path in sorted(circuit.rglob("*.h5")):
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: isinstance(obj, h5py.Dataset) and h.update(name.encode() + obj[()].tobytes()
                                                                                     if obj.dtype.kind != "O" else
                                                                                     name.encode() + repr(list(obj[()])).encode()))
    for path in sorted(list(circuit.rglob("*.csv")) + list(circuit.rglob("*.swc"))):
        h.update(path.read_bytes())
    return h.hexdigest()


def test_same_spec_and_seed_give_identical_circuits(tmp_path, circuits):
    again = build_circuit(load_spec(spec_path("EI3")), tmp_path / "EI3")
    assert digest(again) == digest(circuits["EI3"])


def test_a_different_seed_gives_a_different_circuit(spec_copy, tmp_path, circuits):
    other = build_circuit(load_spec(spec_copy("EI2", lambda s: s.replace("seed: 2", "seed: 22"))), tmp_path / "other")
    assert not np.allclose(System(other).coordinates, System(circuits["EI2"]).coordinates)


def test_random_streams_are_keyed_by_gid_not_by_order():
    streams = Streams(7, "placement")
    forward = [streams.uniform(g, 5) for g in range(20)]
    backward = [streams.uniform(g, 5) for g in reversed(range(20))][::-1]
    np.testing.assert_array_equal(forward, backward)
    assert len({tuple(u) for u in forward}) == 20
    other = Streams(7, "connectivity:EXC->EXC").uniform(0, 5)
    assert not np.allclose(other, forward[0])
    # a million draws from one stream look uniform
    u = Streams(1, "test").uniform(3, 1_000_000)
    assert abs(u.mean() - 0.5) < 0.002 and abs(u.var() - 1 / 12) < 0.001


def test_a_cell_keeps_its_position_and_inputs_when_other_cells_change(spec_copy, tmp_path, circuits):
    """Per-gid streams: adding INH cells at the end leaves the EXC cells' draws untouched."""
    bigger = spec_copy("EI2", lambda s: s.replace("fraction: 0.8", "count: 80").replace("fraction: 0.2", "count: 25")
                       .replace("neurons: 100", "neurons: 105"))
    grown, base = System(build_circuit(load_spec(bigger), tmp_path / "grown")), System(circuits["EI2"])
    np.testing.assert_array_equal(grown.coordinates[:80], base.coordinates[:80])
    s1, t1, _ = grown.connections("EXC->EXC")
    s0, t0, _ = base.connections("EXC->EXC")
    np.testing.assert_array_equal(s1, s0)
    np.testing.assert_array_equal(t1, t0)


def test_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    spec = load_spec(spec_path("EI2"))

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(circuit_module.sonata, "write_edges", explode)
    with pytest.raises(RuntimeError):
        build_circuit(spec, tmp_path / "out" / "EI2")
    assert list((tmp_path / "out").iterdir()) == []


def test_failed_rebuild_keeps_the_previous_circuit(tmp_path, monkeypatch):
    spec = load_spec(spec_path("EI1"))
    target = build_circuit(spec, tmp_path / "EI1")
    before = digest(target)
    monkeypatch.setattr(circuit_module.sonata, "write_electrodes", lambda *a: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        build_circuit(spec, target)
    assert digest(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["EI1"]


def test_build_refuses_to_replace_a_directory_that_is_not_a_circuit(tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")
    with pytest.raises(FileExistsError):
        build_circuit(load_spec(spec_path("EI1")), precious)
    assert (precious / "chapter1.tex").read_text() == "..."


def test_build_command_with_a_bad_spec_writes_nothing(spec_copy, tmp_path):
    bad = spec_copy("EI2", lambda s: s.replace("neurons: 100", "neurons: -1"))
    result = run_livn("build", bad, "-o", tmp_path / "out" / "EI2")
    assert result.returncode == 1
    assert "culture.neurons" in result.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
