"""System, predefined() and the build cache; the seed page's code as written."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import livn.system as system_module
from conftest import spec_of
from livn.resources import spec_path
from livn.spec import load_spec
from livn.system import System, predefined


def test_seed_page_code_runs_as_written():
    from livn.system import predefined, System
    path = predefined("EI2")
    system = System(path)
    assert system.num_neurons == 100
    assert system.populations == ["EXC", "INH"]
    assert system.weight_names == ["EXC->EXC.AMPA", "EXC->EXC.NMDA", "EXC->INH.AMPA", "EXC->INH.NMDA",
                                   "INH->EXC.GABA_A", "INH->INH.GABA_A"]
    summary = system.summary()
    assert "EXC           80 cells" in summary and "INH           20 cells" in summary
    for projection in ("EXC->EXC", "EXC->INH", "INH->EXC", "INH->INH"):
        count = len(system.connections(projection)[0])
        assert count > 0 and f"{projection}" in summary and str(count) in summary
    assert "16 channels" in summary


def test_default_params_are_the_spec_values_under_the_weight_names():
    system = System(predefined("EI2"))
    params = system.default_params()
    assert list(params)[: len(system.weight_names)] == system.weight_names
    assert set(params) - set(system.weight_names) == {"noise.excitatory.g0", "noise.excitatory.sigma",
                                                      "noise.inhibitory.g0", "noise.inhibitory.sigma"}
    spec = load_spec(spec_path("EI2"))
    assert params == spec.default_params()
    assert params["noise.excitatory.g0"] == pytest.approx(spec.noise.excitatory.g0)
    # a copy: changing it does not change the system
    params["EXC->EXC.AMPA"] = 99.0
    assert system.default_params()["EXC->EXC.AMPA"] != 99.0


def test_accessors_agree_with_each_other(circuits):
    system = System(circuits["EI2"])
    assert system.coordinates.shape == (100, 3)
    assert list(system.gids("INH")) == list(range(80, 100))
    assert system.electrodes.shape == (16, 3)
    members = system.channel_members
    for channel, gids in enumerate(members):
        d = np.hypot(*(system.coordinates[gids, :2] - system.electrodes[channel, :2]).T)
        assert (d <= 60).all()
    # every cell within 60 um of an electrode is on that channel
    all_d = np.hypot(*(system.coordinates[:, None, :2] - system.electrodes[None, :, :2]).transpose(2, 0, 1))
    assert sum(len(m) for m in members) == int((all_d <= 60).sum())


def test_predefined_builds_once_then_reuses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVN_CACHE", str(tmp_path))
    first = predefined("EI1")
    assert first.parent == tmp_path / "systems" and first.name.startswith("EI1-")
    stamp = (first / "circuit_config.json").stat().st_mtime_ns
    calls = []
    monkeypatch.setattr(system_module, "build_circuit", lambda *a: calls.append(a))
    assert predefined("EI1") == first
    assert calls == [] and (first / "circuit_config.json").stat().st_mtime_ns == stamp


def test_editing_a_spec_or_a_file_it_references_rebuilds(tmp_path, monkeypatch, spec_copy):
    monkeypatch.setenv("LIVN_CACHE", str(tmp_path / "cache"))
    folder = spec_copy.folder
    monkeypatch.setattr(system_module, "spec_path", lambda name: folder / f"{name}.yaml")
    original = predefined("EI2")
    spec_copy("EI2", lambda s: s.replace("seed: 2", "seed: 5"))
    reseeded = predefined("EI2")
    assert reseeded != original and spec_of(System(reseeded)).seed == 5
    synapse = folder / "synapses" / "GABA_A.synapse.nml"
    synapse.write_text(synapse.read_text().replace("<notes>", "<notes>edited. ", 1) if "<notes>" in synapse.read_text()
                       else synapse.read_text() + "\n<!-- edited -->\n")
    assert predefined("EI2") not in (original, reseeded)
    assert System(original).num_neurons == 100  # old builds stay intact


def test_unknown_system_names_the_known_ones():
    with pytest.raises(ValueError, match="CA1, EI1, EI2, EI3, EI4"):
        predefined("EI9")


def test_concurrent_processes_share_one_build(tmp_path):
    script = textwrap.dedent("""
        import sys
        from livn.system import predefined, System
        path = predefined("EI3")
        print(path, System(path).num_neurons, len(System(path).edges["source"]))
    """)
    env = {**os.environ, "LIVN_CACHE": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outputs]
    results = {o[0].strip() for o in outputs}
    assert len(results) == 1, results
    path, neurons, edges = results.pop().split()
    assert int(neurons) == 1000 and int(edges) > 100_000
    entries = sorted(p.name for p in (tmp_path / "systems").iterdir())
    assert len(entries) == 2 and entries[1] == entries[0] + ".lock", entries  # one build, no temporary leftovers


def test_content_key_ignores_spec_comments_but_not_values(spec_copy, tmp_path):
    """A tuning study and a dataset are keyed by the circuit's content: rebuilding after a
    comment edit (tune --promote writes comments) keeps the key, a changed default does not."""
    from livn.build import build_circuit

    def key(tag, edit=None):
        return System(build_circuit(load_spec(spec_copy("EI1", edit)), tmp_path / tag)).content_key

    original = key("original")
    assert key("again") == original
    assert key("commented", lambda text: text.replace("defaults:\n", "defaults:\n  # tuned by hand\n", 1)) == original
    assert key("changed", lambda text: text.replace("INH -> INH.GABA_A: 9", "INH -> INH.GABA_A: 8", 1)) != original
