"""The streaming edge writer (livn.build.edges, livn.build.sonata.write_edges): blocks of
targets, byte-identical files whatever the blocks and the number of MPI ranks, and SONATA
indices equal to libsonata's own."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import libsonata
import numpy as np
import pytest

from livn.build import build_circuit
from livn.build import edges as edges_module
from livn.build import estimate as estimate_module
from livn.build import sonata as sonata_module
from livn.resources import spec_path
from livn.spec import load_spec
from livn.system import System

SPEC = Path(__file__).parent / "data" / "ca1_layers" / "CA1_layers.yaml"
BIN = Path(sys.executable).parent


def file_hashes(circuit: Path) -> dict:
    """SHA-256 of every file livn wrote (the manifest aside: it names the build's own files)."""
    return {p.relative_to(circuit).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(circuit.rglob("*")) if p.is_file() and p.name != ".livn-manifest.json"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return build_circuit(load_spec(SPEC, 0.002), tmp_path_factory.mktemp("stream") / "one-block")


def test_blocks_do_not_change_a_byte(reference, tmp_path, monkeypatch):
    monkeypatch.setattr(estimate_module, "BLOCK_EDGES", 5000)
    assert len(edges_module.target_blocks(load_spec(SPEC, 0.002))) > 20
    blocked = build_circuit(load_spec(SPEC, 0.002), tmp_path / "blocked")
    assert file_hashes(blocked) == file_hashes(reference)
    assert not any(p.name.startswith(".blocks") for p in blocked.rglob("*"))


def test_ei_circuits_in_blocks_too(tmp_path, monkeypatch):
    whole = build_circuit(load_spec(spec_path("EI2")), tmp_path / "whole")
    monkeypatch.setattr(estimate_module, "BLOCK_EDGES", 300)
    assert file_hashes(build_circuit(load_spec(spec_path("EI2")), tmp_path / "blocked")) == file_hashes(whole)


def test_indices_are_libsonata_s(reference, tmp_path):
    for path in sorted((reference / "network").glob("*_edges.h5")):
        name = path.name.removesuffix("_edges.h5")
        theirs = tmp_path / path.name
        shutil.copy(path, theirs)
        with h5py.File(theirs, "r+") as h5:
            del h5[f"edges/{name}/indices"]
            sources = h5[f"edges/{name}/source_node_id"].attrs["node_population"]
        nodes = {p.stem.removesuffix("_nodes"): p for p in (reference / "network").glob("*_nodes.h5")}
        with h5py.File(nodes[sources]) as h5:
            num_sources = len(h5[f"nodes/{sources}/node_id"])
        num_targets = System(reference).num_neurons
        libsonata.EdgePopulation.write_indices(str(theirs), name, num_sources, num_targets)
        with h5py.File(path) as mine, h5py.File(theirs) as other:
            for direction in ("source_to_target", "target_to_source"):
                for key in ("node_id_to_ranges", "range_to_edge_id"):
                    np.testing.assert_array_equal(mine[f"edges/{name}/indices/{direction}/{key}"][()],
                                                  other[f"edges/{name}/indices/{direction}/{key}"][()])
                assert (mine[f"edges/{name}/indices/{direction}/node_id_to_range"][()] ==
                        mine[f"edges/{name}/indices/{direction}/node_id_to_ranges"][()]).all()


def test_above_the_index_limit_only_target_to_source(reference, tmp_path, monkeypatch):
    monkeypatch.setattr(sonata_module, "INDEX_LIMIT", 1000)
    big = build_circuit(load_spec(SPEC, 0.002), tmp_path / "big")
    for path in (big / "network").glob("*_edges.h5"):
        name = path.name.removesuffix("_edges.h5")
        with h5py.File(path) as h5, h5py.File(reference / "network" / path.name) as ref:
            assert "source_to_target" not in h5[f"edges/{name}/indices"]
            for key in ("node_id_to_ranges", "range_to_edge_id"):
                np.testing.assert_array_equal(h5[f"edges/{name}/indices/target_to_source/{key}"][()],
                                              ref[f"edges/{name}/indices/target_to_source/{key}"][()])
    # afferent reads work from it
    a, b = System(big).network.afferent(np.arange(10)), System(reference).network.afferent(np.arange(10))
    np.testing.assert_array_equal(a.source, b.source)


@pytest.mark.mpi
def test_one_two_and_three_ranks_write_the_same_bytes(reference, tmp_path):
    for ranks in (2, 3):
        out = tmp_path / f"ranks{ranks}"
        done = subprocess.run([str(BIN / "mpiexec"), "-n", str(ranks), str(BIN / "livn"), "build", str(SPEC),
                               "--scale", "0.002", "-o", str(out)], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("built CA1_layers") == 1, done.stdout
        assert file_hashes(out) == file_hashes(reference)
