"""A circuit exported as a NeuroML2 network: pyNeuroML validates it, it holds every cell and
edge of the circuit with livn's conductances, and jNeuroML's NEURON export of it runs with
the rates livn's NEURON target gives."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import jneuroml
from conftest import run_livn
from livn.system import System, predefined


def _export(name, folder, duration=1000.0):
    done = run_livn("export", name, "--to", "neuroml", "-o", folder, "--duration", duration)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder / f"LEMS_{name}.xml"


def test_export_holds_every_cell_and_edge_with_livns_conductances(tmp_path):
    system = System(predefined("EI2"))
    model = system.network
    lems = _export("EI2", tmp_path / "nml")
    folder = lems.parent
    validated = jneuroml.run([str(jneuroml.PYNML), "-validate", "EI2.net.nml", "synapses.nml"], folder)
    assert "All valid and no warnings" in validated.stdout + validated.stderr
    text = (folder / "EI2.net.nml").read_text()
    instances = re.findall(r'<instance id="(\d+)"><location x="([^"]+)" y="([^"]+)"', text)
    assert len(instances) == system.num_neurons
    exc = system.gids("EXC")
    xy = np.array([(float(x), float(y)) for _, x, y in instances[:len(exc)]])
    np.testing.assert_allclose(xy, system.coordinates[exc, :2], rtol=1e-5)
    connections = re.findall(r'<connectionWD id="\d+" preCellId="\.\./(\w+)/(\d+)/\w+" postCellId="\.\./(\w+)/(\d+)/\w+" '
                             r'postSegmentId="(\d+)" postFractionAlong="[^"]+" weight="([^"]+)" delay="([^"]+)ms"', text)
    assert len(connections) == system.num_edges
    # one projection per (pre, post, synapse): the weights times the unit give livn's conductances
    edges = model.afferent(system.gids())
    conductance = np.sort(model.conductance_scale(model.default_params())[edges.group] * edges.relative)
    exported, projections = [], set()
    for block in re.split(r"<projection ", text)[1:]:
        pre, post, syn = re.match(r'id="\w+" presynapticPopulation="(\w+)" postsynapticPopulation="(\w+)" '
                                  r'synapse="(\w+)"', block).groups()
        projections.add((pre, post, syn))
        exported += [float(w) * model.synapses[syn].gbase for w in re.findall(r'weight="([^"]+)"', block)]
    np.testing.assert_allclose(np.sort(exported), conductance, rtol=1e-6)
    assert projections == {tuple(re.split(r"->|\.", name)) for name in model.weight_names}
    assert {seg for *_, seg, _, _ in connections} <= {"0", "1"}
    lems_text = lems.read_text()
    assert lems_text.count("<EventSelection") == system.num_neurons
    assert 'length="1000ms"' in lems_text and "pointConductanceOU" in lems_text


@pytest.mark.parametrize("fmt", ["neuroml", "bmtk"])
def test_export_refuses_an_existing_folder_and_keeps_it(tmp_path, fmt):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    done = run_livn("export", "EI1", "--to", fmt, "-o", mine)
    assert done.returncode == 1 and "exists" in done.stderr and "Traceback" not in done.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no scratch folder left


@pytest.mark.parametrize("option, value", [("--duration", "-5"), ("--duration", "nan"), ("--dt", "0"), ("--to", "nest")])
def test_export_refuses_bad_options_before_writing(option, value, tmp_path):
    args = {"--to": "neuroml", "--duration": "100", "--dt": "0.025", option: value}
    done = run_livn("export", "EI1", "-o", tmp_path / "out", *[x for kv in args.items() for x in kv])
    assert done.returncode == 2 and option in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())


def _jneuroml_rates(system, folder, duration) -> dict:
    jneuroml.run_network_export(f"LEMS_{system.name}.xml", folder)
    data = np.loadtxt(folder / "spikes.dat", ndmin=2)
    gids, times = data[:, 1].astype(int), data[:, 0] * 1000.0
    return {p: np.isin(gids, system.gids(p)).sum() / len(system.gids(p)) / (duration / 1000.0)
            for p in system.populations}


def _livn_rates(system, duration) -> dict:
    from livn import make

    env = make(str(system.directory), backend="neuron")
    try:
        env.record_spikes()
        it, t = env.run(duration)[:2]
    finally:
        env.close()
    return {p: np.isin(it, system.gids(p)).sum() / len(system.gids(p)) / (duration / 1000.0)
            for p in system.populations}


@pytest.mark.slow
@pytest.mark.parametrize("name, duration", [("EI1", 80_000.0), ("EI2", 12_000.0)])
def test_jneuroml_runs_the_export_with_livns_rates(name, duration, tmp_path):
    """Spontaneous activity: jNeuroML's NEURON export of the exported network and livn's NEURON
    target give each population's mean rate within 10 % (measured: EI1 over 80 s, EXC 3.06 vs
    3.02 Hz, INH 3.97 vs 3.88 Hz before the 2026-12-02 re-tune; over 20 s the ten cells still
    differed by 16 %). EI2 since its re-tune moves in slow waves and bursts, so its rates
    fluctuate: over 4 s EXC was 1.70 vs 2.31 Hz; over 12 s within 20 %."""
    system = System(predefined(name))
    lems = _export(name, tmp_path / "nml", duration)
    theirs = _jneuroml_rates(system, lems.parent, duration)
    ours = _livn_rates(system, duration)
    print("jNeuroML", theirs, "livn", ours)
    for population in system.populations:
        assert ours[population] > 1.0
        assert theirs[population] == pytest.approx(ours[population], rel=0.10 if name == "EI1" else 0.20), population


def test_export_writes_the_plasticity_back(spec_copy, tmp_path):
    """A circuit whose AMPA depresses (no block) and whose NMDA depresses and facilitates (with its
    block): synapses.nml holds each plasticityMechanism before the block (the schema's order),
    pyNeuroML validates it, and livn reads back the synapses it exported."""
    from conftest import FACILITATION, make_plastic, DEPRESSION
    from livn.build import build_circuit
    from livn.neuroml import read_synapse
    from livn.neuroml.export import export_network
    from livn.spec import load_spec

    make_plastic(spec_copy.folder, "AMPA", DEPRESSION)
    make_plastic(spec_copy.folder, "NMDA", FACILITATION)
    system = System(build_circuit(load_spec(spec_copy("EI1")), tmp_path / "EI1-plastic"))
    lems = export_network(system, tmp_path / "nml", duration=100.0)
    folder = lems.parent
    text = (folder / "synapses.nml").read_text()
    assert text.count("<plasticityMechanism") == 2 and text.count("<blockingPlasticSynapse") == 2
    assert text.index('type="tsodyksMarkramDepFacMechanism"') < text.index("<blockMechanism")
    validated = jneuroml.run([str(jneuroml.PYNML), "-validate", "synapses.nml", f"{system.name}.net.nml"], folder)
    assert "All valid and no warnings" in validated.stdout + validated.stderr
    model = system.network
    for name in ("AMPA", "NMDA", "GABA_A"):
        again = read_synapse(folder / "synapses.nml", name)
        assert again == model.synapses[name], name
    assert model.synapses["AMPA"].plasticity.mechanism == "tsodyksMarkramDepMechanism"
    assert model.synapses["NMDA"].plasticity.tau_fac == 600.0 and model.synapses["GABA_A"].plasticity is None
