"""Shared fixtures: the shipped specs, copies a test may edit, and built circuits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

from livn.resources import resource_dir

LIVN = str(Path(sys.executable).parent / "livn")

#: the longest test files (seconds of one full run on this 2-core machine, 2026-12-03, sharing it
#: with one other job; compiled mechanisms cached) are collected first. xdist hands out whole
#: files in collection order (--dist loadfile --no-loadscope-reorder, the Makefile's test
#: command): a long file handed out last left one worker running alone for ~4 min.
LONGEST_FIRST = ("test_brian2.py",  # 669 s
                 "test_neuroml_export.py",  # 389
                 "test_foreign_circuits.py",  # 323
                 "test_neuron_cell.py",  # 211
                 "test_neuron_bmtk.py",  # 199
                 "test_fuzz.py",  # 186
                 "test_conformance.py",  # 171
                 "test_neuroml_ca1.py",  # 159
                 "test_brian2_spatial.py",  # 159
                 "test_neuron_network.py",  # 155
                 "test_ca1_simulation.py",  # 152
                 "test_gym.py")  # 143


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def livn_cache(tmp_path_factory) -> Path:
    """The test session's own livn cache, never the user's. The xdist workers of one session
    share it: livn locks each cache entry, so a system or a mechanism set that tests on both
    workers need is built or compiled once (what concurrent MPI ranks and users rely on too)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "livn-cache"


#: compiled NEURON mechanisms kept between test sessions, as Brian2 keeps its compiled code in
#: ~/.cython: entries are named by the hash of what they compile (.mod texts, NEURON's version,
#: the platform), so a session can only find what it would have compiled itself; a fresh
#: machine's first session compiles them all (~50 nrnivmodl runs, ~10 CPU minutes)
COMPILED = Path(platformdirs.user_cache_dir("livn-tests"))


@pytest.fixture(scope="session")
def nrnmech_cache() -> Path:
    """Where livn's compiled mechanisms go in this session (``LIVN_NRNMECH_CACHE``)."""
    return COMPILED / "nrnmech"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(livn_cache, nrnmech_cache):
    """Everything livn caches goes to the session's cache (predefined systems) or to the
    suite's cache of compiled mechanisms, for module and session fixtures too (hence session
    scope)."""
    settings = {"LIVN_CACHE": str(livn_cache), "LIVN_NRNMECH_CACHE": str(nrnmech_cache)}
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    yield
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def spec_copy(tmp_path):
    """A writable copy of specs/; returns a function (name, edit) -> path of the edited spec.

    ``edit`` maps the YAML text to new text (plain string surgery, so lines stay meaningful).
    """
    folder = tmp_path / "specs"
    shutil.copytree(resource_dir("specs"), folder)

    def make(name: str = "EI2", edit=None) -> Path:
        path = folder / f"{name}.yaml"
        if edit is not None:
            text = path.read_text()
            new = edit(text)
            assert new != text, "the edit changed nothing"
            path.write_text(new)
        return path

    make.folder = folder
    return make


@pytest.fixture(scope="session")
def circuits(tmp_path_factory):
    """EI1, EI2 and EI3 built once per session from the shipped specs: name -> circuit path."""
    from livn.build import build_circuit
    from livn.resources import spec_path
    from livn.spec import load_spec

    root = tmp_path_factory.mktemp("circuits")
    return {name: build_circuit(load_spec(spec_path(name)), root / name) for name in ("EI1", "EI2", "EI3")}


def run_livn(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    """Run the ``livn`` command as a user would."""
    return subprocess.run([LIVN, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=300)


def spec_of(system):
    """The spec a livn circuit was built from (it travels inside the circuit as provenance)."""
    from livn.spec import load_spec

    return load_spec(system.livn["spec"])


#: EI1's weights before its 2026-12-02 re-tune (GABA_A a third): cross-target spike-for-spike
#: comparisons use them, because the tuned EXC->EXC (~29 nS per connection) puts an injected or
#: stimulated EI1 where one spike near threshold parts the targets
EI1_MODERATE = {"EXC->EXC.AMPA": 18.0, "EXC->EXC.NMDA": 4.5, "EXC->INH.AMPA": 6.0, "EXC->INH.NMDA": 0.3,
                "INH->EXC.GABA_A": 20.0, "INH->INH.GABA_A": 6.0}


#: Tsodyks–Markram mechanisms tests give the shipped synapses (NeuroML2 plasticityMechanism):
#: depression only (U 0.5, recovery 800 ms), and depression with facilitation
DEPRESSION = '<plasticityMechanism type="tsodyksMarkramDepMechanism" initReleaseProb="0.5" tauRec="800ms"/>'
FACILITATION = ('<plasticityMechanism type="tsodyksMarkramDepFacMechanism" initReleaseProb="0.2" tauRec="200ms" '
                'tauFac="600ms"/>')


def make_plastic(folder: Path, receptor: str, mechanism: str | None = DEPRESSION) -> Path:
    """Give the synapse of ``synapses/<receptor>.synapse.nml`` under ``folder`` (a spec copy) the
    ``plasticityMechanism`` element ``mechanism`` in place of the one it has (None: no
    plasticity): an expTwoSynapse becomes a blockingPlasticSynapse without a block; a block
    stays, after the mechanism (the NeuroML schema's order)."""
    import re

    path = folder / "synapses" / f"{receptor}.synapse.nml"
    text = path.read_text()
    text = text.replace("<expTwoSynapse", "<blockingPlasticSynapse").replace("</expTwoSynapse>",
                                                                             "</blockingPlasticSynapse>")
    new = re.sub(r"\n\s*<plasticityMechanism[^>]*/>", "", text)
    if mechanism is None:
        pass
    elif "<blockMechanism" in new:
        new = new.replace("<blockMechanism", f"{mechanism}\n        <blockMechanism", 1)
    else:
        new = new.replace("    </blockingPlasticSynapse>", f"        {mechanism}\n    </blockingPlasticSynapse>", 1)
    assert "<blockingPlasticSynapse" in new, f"{path}: no synapse to give a plasticityMechanism"
    path.write_text(new)
    return path


def without_plasticity(spec_copy, name: str, out: Path) -> Path:
    """The circuit of spec ``name`` of a spec copy with AMPA and NMDA made static (the shipped
    EI synapses depress), built to ``out``; the copy's synapse files are left static."""
    from livn.build import build_circuit
    from livn.spec import load_spec

    for receptor in ("AMPA", "NMDA"):
        make_plastic(spec_copy.folder, receptor, None)
    return build_circuit(load_spec(spec_copy(name)), out)


def tm_factors(arrivals, release: float, tau_rec: float, tau_fac: float = 0.0):
    """NeuroML's plasticityFactor u·R at each event of one connection (``arrivals``: event times
    at the synapse, ms, sorted), written from the LEMS definitions of tsodyksMarkramDepMechanism
    and tsodyksMarkramDepFacMechanism (NeuroML2CoreTypes/Synapses.xml) as an independent
    reference: R = 1 and u = U at the start; between events dR/dt = (1 - R)/tauRec and
    du/dt = (U - u)/tauFac (u = U without facilitation), solved exactly; at an event the synapse
    takes u·R, then R <- R(1 - u), then u <- u + U(1 - u)."""
    import numpy as np

    r, u, last, out = 1.0, release, None, []
    for t in np.asarray(arrivals, dtype=float).tolist():
        if last is not None:
            r = 1.0 - (1.0 - r) * np.exp(-(t - last) / tau_rec)
            if tau_fac > 0:
                u = release + (u - release) * np.exp(-(t - last) / tau_fac)
        out.append(u * r)
        r *= 1.0 - u
        if tau_fac > 0:
            u += release * (1.0 - u)
        last = t
    return np.array(out)


def conductance_peaks(arrivals, amplitudes, synapse, window: float = 8.0):
    """The largest conductance (units of ``amplitudes``) within ``window`` ms after each event of
    a peak-normalised dual exponential (``synapse``: tau_rise, tau_decay, peak_factor) receiving
    events of ``amplitudes`` at ``arrivals`` (ms): what a recording shows, earlier events' tails
    included. Evaluated on a 1 µs grid."""
    import numpy as np

    arrivals, amplitudes = np.asarray(arrivals, dtype=float), np.asarray(amplitudes, dtype=float)
    peaks = []
    for a in arrivals:
        t = np.arange(a, a + window, 1e-3)
        g = np.zeros_like(t)
        for b, x in zip(arrivals, amplitudes):
            s = t - b
            on = s > 0
            g[on] += x * synapse.peak_factor * (np.exp(-s[on] / synapse.tau_decay) - np.exp(-s[on] / synapse.tau_rise))
        peaks.append(g.max())
    return np.array(peaks)
