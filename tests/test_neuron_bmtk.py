"""livn export --to bmtk: BMTK's bionet runs the exported folder as it is (its own run loop,
cell loader, synapse placement and spike output) and gives the spikes of livn's NEURON target;
its extracellular module records livn's recording electrodes with livn's MEA signal.

Both integrate the same mechanisms in the same order with the same OU noise streams (keyed by
seed, gid, stream), so the comparison is spike for spike, noise included: same gids, times
within one step (dt 0.025 ms).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from bmtk_circuit import make_bmtk_circuit
from conftest import run_livn

BIN = Path(sys.executable).parent
DT = 0.025


def _spikes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(gids, times ms) of a SONATA spike file, sorted by time then gid."""
    with h5py.File(path, "r") as h5:
        (population,) = list(h5["spikes"])
        gids = h5[f"spikes/{population}/node_ids"][:].astype(np.int64)
        times = h5[f"spikes/{population}/timestamps"][:].astype(float)
    order = np.lexsort((gids, times))
    return gids[order], times[order]


def _bionet(folder: Path, ranks: int = 1) -> subprocess.CompletedProcess:
    command = [sys.executable, "run_bmtk.py"]
    if ranks > 1:
        command = [str(BIN / "mpiexec"), "-n", str(ranks)] + command
    env = {k: v for k, v in os.environ.items() if k != "MPI_LIB_NRN_PATH"}  # the run script sets it
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=900, env=env)


def _assert_same_spikes(ours, theirs) -> None:
    (g1, t1), (g2, t2) = ours, theirs
    assert len(g1) == len(g2), f"livn {len(g1)} spikes, bionet {len(g2)}"
    np.testing.assert_array_equal(g1, g2)
    assert np.abs(t1 - t2).max() <= DT


DURATION = 300.0


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """EI2 exported for 300 ms with BMTK's extracellular report (--ecp)."""
    folder = tmp_path_factory.mktemp("bmtk") / "EI2"
    done = run_livn("export", "EI2", "--to", "bmtk", "-o", folder, "--duration", DURATION, "--ecp")
    assert done.returncode == 0, done.stderr[-2000:]
    return folder


@pytest.fixture(scope="module")
def bionet(exported):
    """bionet's run of the export: (spikes, ECP µV (samples, channels))."""
    done = _bionet(exported)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    with h5py.File(exported / "output" / "ecp.h5", "r") as h5:
        ecp = h5["ecp/data"][:] * 1e3  # mV -> µV
    return _spikes(exported / "output" / "spikes.h5"), ecp


@pytest.fixture(scope="module")
def livn_run():
    """livn's NEURON target, as the Env gives it: spikes and the MEA channel potentials (µV)."""
    from livn import make

    env = make("EI2", backend="neuron")
    try:
        env.record_spikes()
        env.record_membrane_current()
        result = env.run(DURATION)
    finally:
        env.close()
    order = np.lexsort((result.it, result.t))
    return (np.asarray(result.it)[order], np.asarray(result.t)[order]), np.asarray(result.mp).T


@pytest.mark.slow
def test_bionet_runs_the_export_with_livns_spikes(bionet, livn_run):
    theirs, ours = bionet[0], livn_run[0]
    assert len(theirs[0]) > 50 and len(np.unique(theirs[0])) > 20  # a network that fires, not a silent one
    _assert_same_spikes(ours, theirs)


@pytest.mark.slow
def test_bmtk_extracellular_recording_agrees_with_livns_mea_signal(bionet, livn_run):
    """Same membrane currents, two field models: BMTK a line source per segment at 0.3 S/m,
    livn a point source per compartment at the circuit's 3.5 Ω·m (0.286 S/m). Measured on EI2:
    correlation 0.95-0.996 per channel, BMTK's RMS 0.84-0.93 of livn's."""
    theirs, ours = bionet[1], livn_run[1]
    assert theirs.shape == ours.shape == (round(DURATION / DT), 16)
    for channel in range(theirs.shape[1]):
        a, b = ours[:, channel], theirs[:, channel]
        assert np.corrcoef(a, b)[0, 1] > 0.9, f"channel {channel}"
        assert 0.75 < b.std() / a.std() < 1.05, f"channel {channel}: RMS {b.std():.3f} vs {a.std():.3f} µV"


@pytest.mark.mpi
def test_bionet_on_two_ranks_gives_the_same_spikes(tmp_path):
    folder = tmp_path / "EI1"
    done = run_livn("export", "EI1", "--to", "bmtk", "-o", folder, "--duration", "300")
    assert done.returncode == 0, done.stderr[-2000:]
    ran = run_livn("run", "EI1", "--backend", "neuron", "--duration", "300", "-o", tmp_path / "livn")
    assert ran.returncode == 0, ran.stderr[-2000:]
    bionet = _bionet(folder, ranks=2)
    assert bionet.returncode == 0, (bionet.stdout + bionet.stderr)[-3000:]
    ours = _spikes(tmp_path / "livn" / "spikes.h5")
    assert len(ours[0]) > 10
    _assert_same_spikes(ours, _spikes(folder / "output" / "spikes.h5"))


def test_the_export_is_what_bionet_looks_for(exported):
    """Templates and compiled mechanisms where the config points, hoc: templates per node type,
    each receptor a synapse model, one spike threshold, sections left as livn made them (dL null)."""
    folder = exported
    circuit = json.loads((folder / "circuit_config.json").read_text())
    assert circuit["components"]["templates_dir"] == "$COMPONENTS_DIR/templates"
    assert sorted(p.name for p in (folder / "components" / "templates").iterdir()) == ["EXC.hoc", "INH.hoc"]
    assert list((folder / "components" / "mechanisms").glob("*/libnrnmech.so")) or \
        list((folder / "components" / "mechanisms").glob("*/.libs/libnrnmech.so"))
    types = (folder / "network" / "EI2_node_types.csv").read_text().splitlines()
    assert "hoc:EXC" in types[1] and "hoc:INH" in types[2] and types[0].endswith("model_processing")
    config = json.loads((folder / "simulation_config.json").read_text())
    assert config["run"]["dL"] is None and config["run"]["spike_threshold"] == 0.0
    assert config["reports"]["ecp"]["electrode_positions"] == "$BASE_DIR/mea/recording_electrodes.csv"
    settings = json.loads((folder / "livn_bmtk.json").read_text())
    assert set(settings["synapses"]) == {"AMPA", "NMDA", "GABA_A"}
    assert "import livn" not in (folder / "run_bmtk.py").read_text()


LAYERED = Path(__file__).parent / "data" / "ca1_layers" / "CA1_layers.yaml"
LAYERED_CELLS = [0, 5, 200, 320, 346]  # PYR (multi-section CA1 morphology) and stand-in interneurons


@pytest.mark.slow
def test_bionet_integrates_a_layered_circuit_with_spike_inputs_as_livn_does(tmp_path):
    """CA1_layers at scale 0.001: stand-in cells on CA1 morphologies (69 compartments), 495
    virtual nodes replaying their spike trains, AMPA, NMDA and GABA_A on dendritic sites
    (1.3e5 edges). bionet's somatic potentials equal those of livn's NEURON target (the
    network is sub-threshold for 50 ms: potentials, not spikes, are the comparison)."""
    built = run_livn("build", LAYERED, "--scale", "0.001", "-o", tmp_path / "circuit")
    assert built.returncode == 0, built.stderr[-2000:]
    folder = tmp_path / "bmtk"
    done = run_livn("export", tmp_path / "circuit", "--to", "bmtk", "-o", folder, "--duration", "50")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (folder / "inputs" / "CA1_layers_inputs_spikes.h5").is_file()
    config = json.loads((folder / "simulation_config.json").read_text())
    assert set(config["inputs"]) == {"CA1_layers_inputs_spikes"}
    config["reports"]["soma_v"] = {"module": "membrane_report", "variable_name": "v", "sections": "soma",
                                   "cells": {"population": "CA1_layers", "node_id": LAYERED_CELLS},
                                   "file_name": "soma_v.h5"}
    (folder / "simulation_config.json").write_text(json.dumps(config))
    bionet = _bionet(folder)
    assert bionet.returncode == 0, (bionet.stdout + bionet.stderr)[-3000:]
    ran = run_livn("run", tmp_path / "circuit", "--backend", "neuron", "--duration", "50", "-o", tmp_path / "livn",
                   "--voltage", ",".join(map(str, LAYERED_CELLS)))
    assert ran.returncode == 0, ran.stderr[-2000:]
    with h5py.File(folder / "output" / "soma_v.h5", "r") as theirs, h5py.File(tmp_path / "livn" / "voltage.h5") as ours:
        theirs, ours = theirs["report/CA1_layers"], ours["report/CA1_layers"]
        # bionet samples after each step (t = dt, 2 dt, ...), livn every 0.1 ms from t = 0
        every = round(0.1 / DT)
        ids, pointers = list(ours["mapping/node_ids"][:]), ours["mapping/index_pointers"][:]
        for column, node in enumerate(theirs["mapping/node_ids"][:].tolist()):
            mine = ours["data"][1:, pointers[ids.index(node)]]  # compartment 0: the soma
            bionets = theirs["data"][every - 1::every, column][:len(mine)]
            assert len(mine) == len(bionets) == round(50 / 0.1) - 1
            np.testing.assert_allclose(bionets, mine, atol=1e-4, err_msg=f"node {node}")  # livn stores float32
        assert ours["data"][:, 0].max() - ours["data"][:, 0].min() > 2, "the inputs must move the PYR soma"


def test_export_refuses_edges_without_livns_synapse_sites_before_writing(tmp_path):
    """A BMTK-built circuit places synapses by target_sections/distance_range: bionet would draw
    its own sites there, so the export refuses rather than give a different network."""
    circuit = make_bmtk_circuit(tmp_path / "foreign", seed=1)
    done = run_livn("export", circuit, "--to", "bmtk", "-o", tmp_path / "out")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "afferent_section_id" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign"]  # no scratch folder left


def test_ecp_is_an_option_of_the_bmtk_export_only(tmp_path):
    done = run_livn("export", "EI1", "--to", "neuroml", "--ecp", "-o", tmp_path / "out")
    assert done.returncode == 2 and "--ecp" in done.stderr and not list(tmp_path.iterdir())


@pytest.mark.parametrize("option, value", [("duration", float("nan")), ("duration", -1.0), ("dt", 0.0), ("dt", "0.1")])
def test_export_bmtk_refuses_bad_run_settings_before_writing(tmp_path, option, value):
    from livn.system import System, predefined
    from livn.targets.neuron.bmtk import export_bmtk

    with pytest.raises(ValueError, match=option):
        export_bmtk(System(predefined("EI1")), tmp_path / "out", **{option: value})
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_bionet_gives_livns_spikes_with_tsodyks_markram_synapses(spec_copy, tmp_path):
    """EI1 with Tsodyks–Markram depression on AMPA and depression with facilitation on NMDA (and
    its block), 1 s of spontaneous activity. bionet makes a point process and a NetCon per edge
    itself, livn one point process per compartment and one NetCon per (source, point process,
    delay, weight group); the plasticity state lives in each NetCon's weight vector, so every
    connection depresses on its own in both, and bionet gives livn's NEURON spikes, gid for gid
    within one step. The plasticity matters: EI1 without it fires differently."""
    from conftest import DEPRESSION, FACILITATION, make_plastic
    from livn.build import build_circuit
    from livn.spec import load_spec

    make_plastic(spec_copy.folder, "AMPA", DEPRESSION)
    make_plastic(spec_copy.folder, "NMDA", FACILITATION)
    circuit = build_circuit(load_spec(spec_copy("EI1")), tmp_path / "EI1-plastic")
    folder = tmp_path / "bmtk"
    done = run_livn("export", circuit, "--to", "bmtk", "-o", folder, "--duration", "1000")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "NET_RECEIVE(weight (uS), R, tlast (ms))" in "".join(
        p.read_text() for p in (folder / "components" / "mechanisms").glob("AMPA_*.mod"))
    bionet = _bionet(folder)
    assert bionet.returncode == 0, (bionet.stdout + bionet.stderr)[-3000:]
    for name, source in (("livn", circuit), ("plain", "EI1")):
        ran = run_livn("run", source, "--backend", "neuron", "--duration", "1000", "-o", tmp_path / name)
        assert ran.returncode == 0, ran.stderr[-2000:]
    ours, plain = _spikes(tmp_path / "livn" / "spikes.h5"), _spikes(tmp_path / "plain" / "spikes.h5")
    assert len(ours[0]) > 15 and len(np.unique(ours[0])) >= 5
    print(f"{len(ours[0])} spikes (EI1 without plasticity: {len(plain[0])})")
    _assert_same_spikes(ours, _spikes(folder / "output" / "spikes.h5"))
    assert len(ours[0]) != len(plain[0]) or np.abs(ours[1] - plain[1]).max() > 1.0
