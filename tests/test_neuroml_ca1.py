"""The NeuroML constructs of the CA1 cells (docs/CA1-plan.md Step 6), read by livn and
translated to NEURON, against jNeuroML's NEURON export of the same files.

Reference cells: the Step 0 probe cells (tests/data/ca1_probe/probe.cell.nml, with their
jNeuroML references in reference_spikes.json; docs/ca1-neuroml-probe.md) and livn's extra cells
for what the probe does not cover (tests/data/ca1_probe/livn/extra.cell.nml, references in
livn/reference_spikes.json). Each is one soma (x_ballstick: soma + 3-compartment dendrite)
under a 0.2 and a 0.4 nA step from 50 to 350 ms at 36 degC.

Criterion (fast): livn's NEURON translation under CVODE against jNeuroML's export under CVODE
(tolerance 1e-8 both): the same spike count and every spike within 0.05 ms. Both sides are
then accurate integrations of their translations, so what is left is the translation (and
jNeuroML's float32 constants: measured max 0.012 ms). jNeuroML's fixed-step export cannot be
the reference: its mods integrate every gate with forward Euler (unstable for CavL's 9-us m gate
at dt 0.025 ms, and off by tenths of ms elsewhere). livn at its own fixed step (Crank-Nicolson,
cnexp, dt 0.025 ms) stays within 1 ms of the CVODE times over the 300-ms steps (measured
0.18-0.61 ms) and within one spike where firing stops near the end of the step.

Also here: the restricted expression parser (refusals with file and line), numpy and NMODL
evaluation of every CA1 channel in specs/channels agreeing, reader refusals, the temperature
contract, and the Brian2 target's refusal. The stored references must belong to the current
probe files and tools (``python tests/data/ca1_probe/regenerate.py`` makes them again;
tests/probe_references.py). Slow (``-m slow``): livn's numpy rates of every CA1 channel
against jNeuroML's mods at 36 and 24 degC.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from livn.neuroml import NeuroMLError, read_cell
from livn.neuroml.cell import ConcentrationModel
from livn.neuroml.reader import CHANNEL_TAGS, _local, document, read_channel

import jneuroml

from probe_references import (AMPLITUDES, EXTRA, EXTRA_REFERENCE, JNEUROML_TIMEOUT, PROBE, PROBE_REFERENCE, STEP,
                              TEMPERATURE, TOLERANCE, TSTOP, inputs_hash, tools)

REPO = Path(__file__).resolve().parents[1]
CHANNELS = REPO / "specs" / "channels"
MAX_DT = 0.05  # ms, CVODE vs CVODE
FIXED_MAX_DT = 1.0  # ms, livn at dt 0.025 vs the CVODE reference

#: reference cell -> (file, what it proves)
CELLS = {
    "probe_hh": (PROBE / "probe.cell.nml", "q10ExpTemp (network temperature)"),
    "probe_nernst": (PROBE / "probe.cell.nml", "decayingPool, channelDensityNernst, custom cai rate (SK), "
                                               "custom cai/T tauInf (kca)"),
    "probe_planar": (PROBE / "probe.cell.nml", "fixedFactorConcentrationModel (planar shell)"),
    "probe_ghk2": (PROBE / "probe.cell.nml", "channelDensityGHK2, instantaneous cai gate, custom V/cai/T rates (BK)"),
    "probe_custom": (PROBE / "probe.cell.nml", "gateHHratesInf, gateHHratesTau, gateHHtauInf, fixedTimeCourse, "
                                               "custom rate/variable/time, ConditionalDerivedVariable"),
    "probe_all": (PROBE / "probe.cell.nml", "all of the above in one cell"),
    "probe_ref": (PROBE / "cells" / "probe_ref.cell.nml", "<cell morphology=...>"),
    "probe_refbio": (PROBE / "cells" / "probe_ref.cell.nml", "<cell biophysicalProperties=...>"),
    "x_fixedca": (EXTRA, "fixed cai (fixedFactor rho 0) under Nernst, GHK2 and cai gates"),
    "x_scaled": (EXTRA, "q10ConductanceScaling, gateHHratesTauInf"),
    "x_ohmicca": (EXTRA, "fixed-erev calcium current feeding a pool"),
    "x_ballstick": (EXTRA, "pool, Nernst and kca on the dendrite group only (nseg 3)"),
}


def _references() -> dict:
    """cell -> [spike times (ms) per amplitude], jNeuroML's NEURON export under CVODE."""
    probe = json.loads(PROBE_REFERENCE.read_text())
    extra = json.loads(EXTRA_REFERENCE.read_text())
    for data in (probe, extra):
        assert data["amplitudes_nA"] == list(AMPLITUDES) and data["tstop_ms"] == TSTOP
        assert data["cvode"]["abs_tol"] == TOLERANCE
    return {**probe["cvode"]["spikes_ms"], **extra["cvode"]["spikes_ms"]}


def test_references_belong_to_the_current_probe_files_and_tools():
    for path in (PROBE_REFERENCE, EXTRA_REFERENCE):
        stored = json.loads(path.read_text())
        assert stored["cvode"].get("inputs_sha256") == inputs_hash(), \
            f"{path}: made from other probe files; run python tests/data/ca1_probe/regenerate.py"
        assert {k: stored["tools"].get(k) for k in tools()} == tools(), \
            f"{path}: made with {stored['tools']}, installed {tools()}; run python tests/data/ca1_probe/regenerate.py"


@pytest.fixture(scope="module")
def cells():
    return {cid: read_cell(path, cid) for cid, (path, _) in CELLS.items()}


@pytest.fixture(scope="module")
def loaded(cells):
    """The reference cells' mechanisms, compiled once and loaded into this process."""
    from livn.targets.neuron import nmodl

    return nmodl.load_mechanisms(nmodl.mechanisms(cells.values()))


def _clamp(cell, amp, **kw):
    from livn.targets.neuron.cell import current_clamp

    return current_clamp(cell, amp, STEP[0], STEP[1] - STEP[0], TSTOP, extracellular=False, temperature=TEMPERATURE,
                         **kw)[2]


# --------------------------------------------------------------------------- conformance


@pytest.mark.parametrize("cell_id", list(CELLS))
def test_neuron_translation_matches_jneuroml_under_cvode(cell_id, cells, loaded):
    reference = _references()[cell_id]
    worst = 0.0
    for amp, expected in zip(AMPLITUDES, reference):
        got = _clamp(cells[cell_id], amp, method="cvode", atol=TOLERANCE, rtol=TOLERANCE)
        assert len(got) == len(expected), f"{cell_id} {amp} nA: livn {len(got)} spikes, jNeuroML {len(expected)}"
        assert len(got) >= 2, f"{cell_id} {amp} nA: the comparison needs spikes"
        worst = max(worst, float(np.abs(got - np.asarray(expected)).max()))
    print(f"{cell_id} ({CELLS[cell_id][1]}): max |dt| {worst:.4f} ms")
    assert worst < MAX_DT, f"{cell_id}: spike times differ by up to {worst:.3f} ms"


@pytest.mark.parametrize("cell_id", ["probe_nernst", "probe_ghk2", "probe_custom", "x_ballstick"])
def test_fixed_step_stays_near_the_cvode_reference(cell_id, cells, loaded):
    """livn's fixed step (Crank-Nicolson, cnexp gates, dt 0.025 ms): integration error only."""
    for amp, expected in zip(AMPLITUDES, _references()[cell_id]):
        got = _clamp(cells[cell_id], amp, method="fixed", dt=0.025, secondorder=2)
        assert abs(len(got) - len(expected)) <= 1, f"{cell_id} {amp} nA: {len(got)} vs {len(expected)} spikes"
        n = min(len(got), len(expected))
        assert np.abs(got[:n] - np.asarray(expected)[:n]).max() < FIXED_MAX_DT


def test_calcium_follows_the_pool_and_nernst(cells, loaded):
    """In the Nernst cell, cai rises with spiking and decays to rest, and eca is NEURON's Nernst
    potential of cai/cao at 36 degC; in the rho = 0 cell, cai and eca stay put."""
    from neuron import h

    from livn.targets.neuron.cell import build_cell, run, set_integration, set_temperature

    def trace(cell_id):
        ncell = build_cell(cells[cell_id], extracellular=False, mechs=loaded)
        celsius = h.celsius
        set_temperature(TEMPERATURE, [ncell.ir])
        stim = h.IClamp(ncell.soma(0.5))
        stim.delay, stim.dur, stim.amp = STEP[0], STEP[1] - STEP[0], 0.2
        cai = h.Vector().record(ncell.soma(0.5)._ref_cai)
        eca = h.Vector().record(ncell.soma(0.5)._ref_eca)
        set_integration("cvode", atol=1e-7)
        h.finitialize(ncell.ir.v_init)
        run(TSTOP)
        set_integration("fixed")
        h.celsius = celsius
        return np.array(cai.to_python()), np.array(eca.to_python())

    cai, eca = trace("probe_nernst")
    assert cai.max() > 100 * 5e-5 and cai[-1] < cai.max() / 2
    nernst = 1e3 * 8.314462618 * (TEMPERATURE + 273.15) / (2 * 96485.33212) * np.log(2.0 / cai)
    assert np.allclose(eca, nernst, atol=0.01)
    cai, eca = trace("x_fixedca")
    assert np.allclose(cai, 5e-5, rtol=1e-12) and np.allclose(eca, 141.1497, atol=1e-3)


def test_each_cell_starts_at_its_own_concentrations(cells, loaded):
    """The initial cai is the species' (per segment, not NEURON's global cai0_ca_ion), and the
    calcium-dependent gates start at their steady state at that cai: NEURON initialises the
    concentration model before the channels that read it."""
    import dataclasses

    from neuron import h

    from livn.targets.neuron.cell import build_cell, set_temperature

    base = cells["x_ohmicca"]
    soma = base.sections[0]
    species = dataclasses.replace(soma.species[0], initial=1e-3, initial_ext=3.0)
    cell = dataclasses.replace(base, sections=(dataclasses.replace(soma, species=(species,)),))
    ncell = build_cell(cell, extracellular=False, mechs=loaded)
    celsius = h.celsius
    set_temperature(TEMPERATURE, [cell])
    try:
        h.finitialize(cell.v_init)
        seg = ncell.soma(0.5)
        assert (seg.cai, seg.cao, h.cai0_ca_ion) == (1e-3, 3.0, 5e-5)
        sk = next(d for d in cell.densities if d.channel.id == "probe_KCaS")
        gate = getattr(seg, loaded.density(sk)).q
        assert gate == pytest.approx(sk.channel.gates[0].steady(cell.v_init, cai=1e-3, temperature=TEMPERATURE))
    finally:
        h.celsius = celsius


# --------------------------------------------------------------------------- numpy = NMODL


def _ca1_channels() -> dict:
    """Every channel with gates in specs/channels (the CA1 and EI files)."""
    out = {}
    for path in sorted(CHANNELS.glob("*.channel.nml")):
        doc = document(path)
        for cid, element in doc.elements.items():
            if _local(element.tag) in CHANNEL_TAGS:
                channel = read_channel(doc, cid)
                if channel.gates:
                    out[cid] = channel
    return out


V_GRID = np.arange(-100.25, 50.3, 7.5)  # mV; off the breakpoints of piecewise time constants
CAI_GRID = (5e-6, 1e-4, 5e-3)  # mM


def test_numpy_and_nmodl_evaluations_agree_on_every_channel():
    """The expression trees have one meaning: livn's numpy steady states and time constants
    equal what its NMODL computes in NEURON (x after finitialize(v) = x_inf; one cnexp step
    from x = 0 gives tau), for every channel of specs/channels at 36 degC over V and cai."""
    from neuron import h

    from livn.targets.neuron import nmodl

    channels = _ca1_channels()
    assert {"CA1_KvA", "CA1_KCaS", "CA1_KvCaB", "KA_kap_PYR", "CA1_Navaxonp", "KM_km_PYR"} <= set(channels)
    clamp = ConcentrationModel("livn_test_ca_clamp", "fixedFactor", "ca", 5e-5, 1e9, rho=0.0)
    mechs = {cid: nmodl.channel_mechanism(ch, "ohmic") for cid, ch in channels.items()}
    loaded = nmodl.load_mechanisms(nmodl.MechanismSet(mechs, pools={clamp.id: nmodl.pool_mechanism(clamp)}))
    sec = h.Section(name="evaluation")
    sec.insert(loaded.pool(clamp.id))
    for cid in mechs:
        sec.insert(loaded.channel(cid))  # gmax 0: v stays where finitialize puts it
    seg = sec(0.5)
    pool = getattr(seg, loaded.pool(clamp.id))
    saved = h.celsius, h.dt, h.secondorder
    h.celsius, h.secondorder = TEMPERATURE, 0
    h.CVode().active(0)
    worst = 0.0
    try:
        for cai in CAI_GRID:
            pool.initial = pool.resting = cai
            for v in V_GRID:
                h.finitialize(v)
                h.dt = 1e-4
                for cid, ch in channels.items():
                    mech = getattr(seg, loaded.channel(cid))
                    for g in ch.gates:
                        state = nmodl._state_name(g)
                        inf = float(g.steady(v, cai=cai, temperature=TEMPERATURE))
                        got = getattr(mech, state)
                        worst = max(worst, abs(got - inf) / max(abs(inf), 1e-300))
                        assert got == pytest.approx(inf, rel=1e-9, abs=1e-300), f"{cid}.{g.name} x_inf at {v} mV, {cai} mM"
                        if g.kind != "instantaneous":
                            setattr(mech, state, 0.0)
                h.fadvance()
                for cid, ch in channels.items():
                    mech = getattr(seg, loaded.channel(cid))
                    for g in ch.gates:
                        if g.kind == "instantaneous":
                            continue
                        inf = float(g.steady(v, cai=cai, temperature=TEMPERATURE))
                        tau = float(g.tau(v, cai=cai, temperature=TEMPERATURE))
                        x = getattr(mech, nmodl._state_name(g))
                        # cnexp from 0: x = inf (1 - exp(-dt/tau))
                        assert x == pytest.approx(-inf * np.expm1(-1e-4 / tau), rel=1e-6, abs=1e-300), \
                            f"{cid}.{g.name} tau at {v} mV, {cai} mM"
    finally:
        h.celsius, h.dt, h.secondorder = saved
    print(f"{len(channels)} channels: worst relative x_inf difference {worst:.2e}")


# --------------------------------------------------------------------------- the expression parser

#: expression -> fragment of the refusal
BAD_EXPRESSIONS = {
    "__import__('os').system('echo pwned')": "unexpected",
    "v.__class__": "unexpected '.__class",
    "exp.real": "unexpected",
    "open(v)": "unknown function 'open'",
    "eval(v)": "unknown function 'eval'",
    "lambda: v": "unexpected ':",
    "[v]": "unexpected '[",
    "v; v": "unexpected ';",
    "V_UNKNOWN * 2": "'V_UNKNOWN', which is not defined",
    "exp(v)": "exp() needs a dimensionless argument",
    "v + TIME_SCALE": "'+' of a voltage and a time",
    "v ** 2": "expected a number, a name or '('",
    "1 .lt. 2 .lt. 3": "comparisons cannot be chained",
    "(v / VOLT_SCALE": "expected ')'",
    "": "empty expression",
    "v / VOLT_SCALE .gt. 0": "is a condition",
    "x" * 3000: "longer than",
    "(" * 500 + "1" + ")" * 500: "nested deeper",
}

_TYPE = """<?xml version="1.0" encoding="UTF-8"?>
<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="t">
    <ionChannelHH id="k_test" conductance="10pS" species="k">
        <gateHHtauInf id="n" instances="1">
            <timeCourse type="t_tau"/>
            <steadyState type="HHSigmoidVariable" rate="1" midpoint="-40mV" scale="5mV"/>
        </gateHHtauInf>
    </ionChannelHH>
    <ComponentType name="t_tau" extends="{base}">
        <Constant name="TIME_SCALE" dimension="time" value="1ms"/>
        <Constant name="VOLT_SCALE" dimension="voltage" value="1mV"/>{extra}
        <Dynamics>
            <DerivedVariable name="t" dimension="time" exposure="t" value="{value}"/>
        </Dynamics>
    </ComponentType>
</neuroml>
"""


def _read_type(tmp_path, value="TIME_SCALE", base="baseVoltageDepTime", extra=""):
    path = tmp_path / "t.channel.nml"
    path.write_text(_TYPE.format(value=value.replace("<", "&lt;").replace('"', "&quot;"), base=base, extra=extra))
    return read_channel(document(path), "k_test")


@pytest.mark.parametrize("expression", list(BAD_EXPRESSIONS))
def test_parser_refuses_with_file_and_line(tmp_path, expression):
    with pytest.raises(NeuroMLError) as err:
        _read_type(tmp_path, expression)
    (file, line, message), = err.value.problems
    assert file.endswith("t.channel.nml") and line == 13, (file, line)
    assert BAD_EXPRESSIONS[expression] in message, message
    assert "\n" not in message


def test_parser_accepts_what_lems_writes(tmp_path):
    channel = _read_type(tmp_path, "(2 + -3 * 2^2 / (1 + abs(-1)) + sqrt(4) + log(exp(1.5)) + 1.e0 + .5) * TIME_SCALE")
    assert channel.gates[0].tau(-60.0) == pytest.approx(2 - 6 + 2 + 1.5 + 1 + 0.5)


@pytest.mark.parametrize("extra, value, base, fragment", [
    ("", "temperature / 1 * TIME_SCALE", "baseVoltageDepTime", "declare <Requirement name=\"temperature\""),
    ("", "caConc * TIME_SCALE", "baseVoltageDepTime", "only in types extending a baseVoltageConcDep"),
    ('\n        <Parameter name="gain" dimension="none"/>', "TIME_SCALE", "baseVoltageDepTime", "Parameter gain"),
    ('\n        <Constant name="BAD" dimension="time" value="1mV"/>', "TIME_SCALE", "baseVoltageDepTime",
     "is a voltage, expected a time"),
    ('\n        <Exposure name="y" dimension="none"/>', "TIME_SCALE", "baseVoltageDepTime", "<Exposure> is not supported"),
    ("", "TIME_SCALE", "baseVoltageDepRate", "a rate type (baseVoltageDepRate) where a time belongs"),
    ("", "TIME_SCALE", "baseSomethingElse", "extends 'baseSomethingElse'"),
    ("", "v / VOLT_SCALE", "baseVoltageDepTime", "t is declared time, but 'v / VOLT_SCALE' is a none"),
])
def test_custom_types_are_checked(tmp_path, extra, value, base, fragment):
    with pytest.raises(NeuroMLError) as err:
        _read_type(tmp_path, value, base, extra)
    (file, line, message), = err.value.problems
    assert file.endswith("t.channel.nml") and line, (file, line)
    assert fragment in message, message


def test_custom_type_emitters_agree_on_lems_semantics():
    """SI inside: a rate of 15 cai^2 /ms from caConc in mol/m3 and a 1 ms TIME_SCALE; temperature in K."""
    channel = read_channel(document(PROBE / "probe.channels.nml"), "probe_KCaS")
    alpha = channel.gates[0].forward
    assert alpha.kind == "custom" and alpha.inputs == {"caConc"}
    assert alpha.value(-60.0, cai=0.01) == pytest.approx(15 * 0.01**2)
    text = alpha.custom.nmodl_function("f")
    assert "FUNCTION f(v (mV)) (/ms)" in text and "cai" in text and "eval" not in text
    kca = read_channel(document(PROBE / "probe.channels.nml"), "probe_kca").gates[0]
    tau36 = kca.tau(-60.0, cai=1e-4, temperature=36.0)
    tau22 = kca.tau(-60.0, cai=1e-4, temperature=22.0)
    assert tau22 / tau36 == pytest.approx(3 ** 1.4)  # tadj = 3^((T - 22 degC)/10 K), T in kelvin inside


# --------------------------------------------------------------------------- reader refusals

_CELL = """<?xml version="1.0" encoding="UTF-8"?>
<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="c">
    <include href="{probe}/probe.channels.nml"/>
    <cell id="c">
        <morphology id="m">
            <segment id="0" name="soma"><proximal x="0" y="0" z="0" diameter="20"/><distal x="0" y="20" z="0" diameter="20"/></segment>
            <segmentGroup id="soma_group"><member segment="0"/></segmentGroup>
            <segmentGroup id="all"><include segmentGroup="soma_group"/></segmentGroup>
        </morphology>
        <biophysicalProperties id="b">
            <membraneProperties>
                {density}
                <spikeThresh value="-20mV"/>
                <specificCapacitance value="1uF_per_cm2"/>
                <initMembPotential value="-65mV"/>
            </membraneProperties>
            <intracellularProperties>
                {species}
                <resistivity value="100ohm_cm"/>
            </intracellularProperties>
        </biophysicalProperties>
    </cell>
</neuroml>
"""
SPECIES = '<species id="ca" ion="ca" concentrationModel="probe_CaPool" initialConcentration="5e-5mM" ' \
          'initialExtConcentration="2mM"/>'


@pytest.mark.parametrize("density, species, fragment", [
    ('<channelDensityNernst id="d" ionChannel="probe_CavN" condDensity="1mS_per_cm2" ion="ca"/>', "",
     "reads the calcium concentration, but sections soma have no <species"),
    ('<channelDensity id="d" ionChannel="probe_KCaS" condDensity="1mS_per_cm2" erev="-90mV" ion="k"/>', "",
     "probe_KCaS (calcium-dependent gates) reads the calcium concentration"),
    ('<channelDensityNernst id="d" ionChannel="probe_Na" condDensity="1mS_per_cm2" ion="na"/>', SPECIES,
     "ion 'na' is not supported"),
    ('<channelDensityNernst id="d" ionChannel="probe_CavN" condDensity="1mS_per_cm2" erev="50mV" ion="ca"/>', SPECIES,
     "erev is computed from the concentrations"),
    ('<channelDensityGHK id="d" ionChannel="probe_CavL_P" permeability="1e-4cm_per_s" ion="ca"/>', SPECIES,
     "<channelDensityGHK> is not supported"),
    ("", SPECIES.replace("probe_CaPool", "probe_Na"), "is not a decayingPoolConcentrationModel or"),
    ("", SPECIES.replace('ion="ca"', 'ion="ca2"', 1), "ion 'ca2' is not supported"),
    ("", SPECIES.replace('initialExtConcentration="2mM"', 'initialExtConcentration="0mM"'),
     "initialExtConcentration > 0"),
    ("", SPECIES + SPECIES, "overlaps species"),
])
def test_cells_with_calcium_are_checked(tmp_path, density, species, fragment):
    path = tmp_path / "c.cell.nml"
    path.write_text(_CELL.format(probe=PROBE, density=density, species=species))
    with pytest.raises(NeuroMLError) as err:
        read_cell(path, "c")
    assert any(fragment in m and f.endswith("c.cell.nml") and line for f, line, m in err.value.problems), \
        err.value.problems


def test_gate_forms_are_checked(tmp_path):
    base = (PROBE / "probe.channels.nml").read_text()
    cases = {
        # a rate type where a time course belongs
        '<timeCourse type="fixedTimeCourse" tau="1ms"/>': ('<timeCourse type="HHExpRate" rate="1per_ms" '
                                                            'midpoint="0mV" scale="10mV"/>', "expected a time"),
        '<steadyState type="HHSigmoidVariable" rate="1" midpoint="-43.3mV" scale="3mV"/>':
            ('<steadyState type="HHSigmoidVariable" rate="1" midpoint="-43.3mV" scale="3mV"/><forwardRate '
             'type="HHExpRate" rate="1per_ms" midpoint="0mV" scale="10mV"/>', "forwardRate does not belong"),
        '<q10Settings type="q10ExpTemp" q10Factor="3" experimentalTemp="34degC"/>\n            <forwardRate '
        'type="HHExpLinearRate" rate="0.42per_ms"':
            ('<q10Settings type="q10Fixed" fixedQ10="2"/><q10Settings type="q10ExpTemp" q10Factor="3" '
             'experimentalTemp="34degC"/>\n            <forwardRate type="HHExpLinearRate" rate="0.42per_ms"',
             "more than one <q10Settings>"),
        'experimentalTemp="34degC"/>\n            <forwardRate type="HHExpLinearRate" rate="0.42per_ms"':
            ('experimentalTemp="34mV"/>\n            <forwardRate type="HHExpLinearRate" rate="0.42per_ms"',
             "expected a temperature"),
        '<forwardRate type="probe_KCaS_alpha"/>': ('<forwardRate type="probe_CavL_h2"/>',
                                                   "a variable type (baseVoltageConcDepVariable) where a rate belongs"),
        '<reverseRate type="probe_constRate" rate="2.5e-4per_ms"/>': ('<reverseRate type="probe_constRate"/>',
                                                                      "needs the attribute rate"),
    }
    for old, (new, fragment) in cases.items():
        assert base.count(old) >= 1, old
        path = tmp_path / "probe.channels.nml"
        path.write_text(base.replace(old, new, 1))
        doc = document(path)
        problems = []
        for cid, element in doc.elements.items():
            if _local(element.tag) in CHANNEL_TAGS:
                try:
                    read_channel(doc, cid)
                except NeuroMLError as err:
                    problems += err.problems
        assert any(fragment in m and line for _, line, m in problems), (fragment, problems)


def test_every_ca1_cell_and_channel_reads():
    """The CA1 files written so far read (the cells with their species, pools and densities)."""
    channels = _ca1_channels()
    assert len(channels) >= 30
    for path in sorted((REPO / "specs" / "cells").glob("*.cell.nml")):
        cell = read_cell(path)
        assert cell.sections and all(d.gmax >= 0 for d in cell.densities)


# --------------------------------------------------------------------------- temperature


def test_temperature_is_required_where_kinetics_depend_on_it(cells, loaded):
    from neuron import h

    from livn.targets.neuron.cell import current_clamp

    celsius = h.celsius

    with pytest.raises(ValueError, match="depend on the temperature"):
        current_clamp(cells["probe_hh"], 0.2, 50, 10, 60, extracellular=False)
    cold = _clamp(cells["probe_hh"], 0.2, method="cvode", atol=1e-6)
    hot = current_clamp(cells["probe_hh"], 0.2, STEP[0], STEP[1] - STEP[0], TSTOP, extracellular=False,
                        temperature=24.0, method="cvode", atol=1e-6)[2]
    assert len(hot) != len(cold)  # q10 3 over 12 degC changes the firing
    assert h.celsius == celsius  # restored


def test_network_temperature_comes_from_the_circuit(tmp_path):
    from livn.network.model import NetworkModel

    model = NetworkModel.__new__(NetworkModel)

    class Circuit:
        livn, simulation = {}, None

    model.circuit = Circuit()
    assert model.temperature is None
    Circuit.simulation = {"conditions": {"celsius": 34.0}}
    assert model.temperature == 34.0
    Circuit.livn = {"temperature_celsius": 36}
    assert model.temperature == 36.0


def test_targets_check_temperature_and_brian2_refuses_ca1_constructs(cells):
    from livn.network.model import Components
    from livn.targets import get_target

    calcium = [cells["probe_all"], cells["x_fixedca"]]
    problems = get_target("neuron").check(Components(calcium, {}, "spec.yaml"))
    assert len(problems) == 2 and all("depend on the temperature" in p.message and p.line for p in problems)
    assert get_target("neuron").check(Components(calcium, {}, "spec.yaml", temperature=TEMPERATURE)) == []
    refused = get_target("brian2").check(Components(calcium, {}, "spec.yaml", temperature=TEMPERATURE))
    messages = "\n".join(p.message for p in refused)
    for construct in ("<species> ca with a decayingPoolConcentrationModel", "fixedFactorConcentrationModel",
                      "channelDensityNernst of probe_CavN", "channelDensityGHK2 of probe_CavL", "q10ExpTemp",
                      "custom ComponentType probe_BK_alpha at probe.channels.nml:", "gateHHratesInf", "fixedTimeCourse"):
        assert construct in messages, construct
    assert all(p.message.endswith("use --target neuron") and p.line and Path(p.file).exists() for p in refused)
    assert len({p.message for p in refused}) == len(refused)  # each channel once
    ei = [read_cell(REPO / "specs" / "cells" / f"{c}.cell.nml", c) for c in ("EXC", "INH")]
    assert get_target("brian2").check(Components(ei, {}, "spec.yaml")) == []
    assert get_target("neuron").check(Components(ei, {}, "spec.yaml")) == []


# --------------------------------------------------------------------------- jNeuroML (slow)


_SWEEP = '''
import json, sys
from neuron import h
spec = json.load(open(sys.argv[1]))
h.celsius = spec["celsius"]
sec = h.Section(name="sweep")
for channel in spec["channels"]:
    sec.insert(channel)
out = {c: {g: {"inf": [], "tau": []} for g in gates} for c, gates in spec["channels"].items()}
for cai in spec["cai"]:
    h.cai0_ca_ion = cai
    for v in spec["v"]:
        sec(0.5).cai = cai  # no mechanism writes cai here: set it, then initialise the gates
        h.finitialize(v)
        for c, gates in spec["channels"].items():
            mech = getattr(sec(0.5), c)
            for g in gates:
                out[c][g]["inf"].append(getattr(mech, g + "_inf"))
                out[c][g]["tau"].append(getattr(mech, g + "_tau"))
print("JSON" + json.dumps(out))
'''


@pytest.mark.slow
def test_numpy_rates_match_jneuroml_mods_for_every_channel(tmp_path):
    """livn's reading of every channel in specs/channels, evaluated with numpy, against jNeuroML's
    own mods (exported from a cell that carries them all and a calcium species, so that
    caConc is cai) at 36 and 24 degC, over V and cai: steady states and time constants."""
    channels = _ca1_channels()
    folder = tmp_path / "sweep"
    folder.mkdir()
    for path in CHANNELS.glob("*.nml"):
        shutil.copy2(path, folder)
    densities = "".join(f'<channelDensity id="d_{cid}" ionChannel="{cid}" condDensity="0mS_per_cm2" erev="0mV" '
                        f'ion="{ch.species if ch.species in ("na", "k", "ca") else "non_specific"}"/>'
                        for cid, ch in channels.items())
    includes = "".join(f'<include href="{p.name}"/>' for p in sorted(CHANNELS.glob("*.channel.nml")))
    (folder / "sweep.net.nml").write_text(
        f'<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="sweep_net">{includes}'
        f'<include href="CA1_CaPool_CCK.pool.nml"/><cell id="sweep"><morphology id="m"><segment id="0" name="soma">'
        f'<proximal x="0" y="0" z="0" diameter="20"/><distal x="0" y="20" z="0" diameter="20"/></segment>'
        f'<segmentGroup id="all"><member segment="0"/></segmentGroup></morphology><biophysicalProperties id="b">'
        f'<membraneProperties>{densities}<spikeThresh value="-20mV"/><specificCapacitance value="1uF_per_cm2"/>'
        f'<initMembPotential value="-65mV"/></membraneProperties><intracellularProperties><species id="ca" ion="ca" '
        f'concentrationModel="CA1_CaPool_CCK" initialConcentration="5e-5mM" initialExtConcentration="2mM"/>'
        f'<resistivity value="100ohm_cm"/></intracellularProperties></biophysicalProperties></cell>'
        f'<network id="sweep_net" type="networkWithTemperature" temperature="36degC"><population id="p" '
        f'component="sweep" size="1"/></network></neuroml>')
    (folder / "LEMS_sweep.xml").write_text(
        '<Lems><Target component="sim"/><Include file="Cells.xml"/><Include file="Networks.xml"/>'
        '<Include file="Simulation.xml"/><Include file="sweep.net.nml"/>'
        '<Simulation id="sim" length="1ms" step="0.025ms" target="sweep_net"/></Lems>')
    # only the exported mods are used, so export_neuron's check of the script does not apply
    jneuroml.run([str(jneuroml.PYNML), "LEMS_sweep.xml", "-neuron", "-nogui"], folder, JNEUROML_TIMEOUT)
    jneuroml.nrnivmodl(folder, timeout=JNEUROML_TIMEOUT)
    (folder / "sweep.py").write_text(_SWEEP)
    cai_grid = [5e-6, 5e-5, 1e-3, 2e-2]
    for celsius in (36.0, 24.0):
        spec = {"celsius": celsius, "v": V_GRID.tolist(), "cai": cai_grid,
                "channels": {cid: [g.name for g in ch.gates] for cid, ch in channels.items()}}
        (folder / "spec.json").write_text(json.dumps(spec))
        done = jneuroml.run([sys.executable, "sweep.py", "spec.json"], folder, JNEUROML_TIMEOUT)
        result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("JSON"))[4:])
        for cid, ch in channels.items():
            for g in ch.gates:
                inf = np.array(result[cid][g.name]["inf"]).reshape(len(cai_grid), -1)
                tau = np.array(result[cid][g.name]["tau"]).reshape(len(cai_grid), -1)
                for k, cai in enumerate(cai_grid):
                    ours = np.broadcast_to(g.steady(V_GRID, cai=cai, temperature=celsius), V_GRID.shape)
                    np.testing.assert_allclose(ours, inf[k], rtol=2e-5, atol=1e-12,
                                               err_msg=f"{cid}.{g.name} x_inf, {cai} mM, {celsius} degC")
                    if g.kind != "instantaneous":
                        ours = np.broadcast_to(g.tau(V_GRID, cai=cai, temperature=celsius), V_GRID.shape)
                        np.testing.assert_allclose(ours, tau[k], rtol=2e-5,
                                                   err_msg=f"{cid}.{g.name} tau, {cai} mM, {celsius} degC")
