"""Second opinion on the CA1 pyramidal-cell (PYR) channels and Ca2+ pool of specs/channels/.

The files `*_PYR.channel.nml` / `*_PYR.pool.nml` were written from the kinetics of the
reference sheet shared/reference/ca1.md (section 3.4, PYR at 36 degC). Here the sheet's
equations are written again, independently, in numpy, and compared with what jNeuroML
computes from the NeuroML:

* fast: one jLEMS run (one JVM) of a LEMS harness that steps the membrane potential of
  every channel from -100.25 to +50.25 mV in 0.5 mV steps (and, for the Ca2+-dependent
  gates, the internal Ca2+ concentration from 1e-6 to 1 mM) and records each gate's steady
  state and time constant; the open fraction at fixed points (gate exponents, km's
  conductance scaling); channelDensityGHK2's factor (cal's GHK); and the two pools under a
  constant Ca2+ current;
* slow (~1-2 min, mostly nrnivmodl): jNeuroML's NEURON export of two one-compartment cells
  that carry every channel and each pool, compiled and evaluated in NEURON (the export is
  what livn's conformance references are made with).

The staircase starts at -100.25 mV so that no sample falls on a breakpoint of a piecewise
time constant (h_mech at -30 mV, kad at -20 mV), where a last-digit difference in the
recorded V would pick the other branch. jLEMS writes single precision, hence RTOL 1e-3 is
loose for all but kap (see KAPPA).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import jneuroml

REPO = Path(__file__).resolve().parents[1]
CHANNELS = REPO / "specs" / "channels"

T_C = 36.0  # degC, the CA1 spec temperature (docs/CA1-plan.md)
T_K = T_C + 273.15
RTOL = 1e-3

# --------------------------------------------------------------------------- the sheet's equations

F_C = 96485.33212  # C/mol
R_GAS = 8.314462618  # J/(mol K)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _efun(x, k):
    """x / (exp(x/k) - 1), -> k at x = 0 (ca1.md section 3.0)."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x / k) < 1e-9
    return np.where(small, k, x / np.expm1(np.where(small, 1.0, x / k)))


def _const(value):
    return lambda v, ca: np.full_like(v, value)


def _rates(alpha, beta, tfa=1.0):
    """(inf, tau) of a two-rate gate; tau = 1/(tfa (alpha + beta))."""
    inf = lambda v, ca: alpha(v, ca) / (alpha(v, ca) + beta(v, ca))  # noqa: E731
    tau = lambda v, ca: 1.0 / (tfa * (alpha(v, ca) + beta(v, ca)))  # noqa: E731
    return inf, tau


def _boltz(v_half, k):
    """1/(1 + exp(-(V - v_half)/k)); k < 0 for an inactivation curve."""
    return lambda v, ca: _sig((v - v_half) / k)


# section 3.0: Migliore-style kT = 1e-3 F/(R T_K) per mV with F = 9.648e4, R = 8.315.
# kaprox.mod, and so KA_kap_PYR, write 273.16 + celsius: up to 4e-4 apart at -100 mV.
KAPPA = 1e-3 * 9.648e4 / (8.315 * T_K)


def _kap():
    sh = 24.0
    zeta = lambda w: -1.5 - 1.0 / (1.0 + np.exp((w + 40.0) / 5.0))  # noqa: E731
    qt = 5.0 ** ((T_C - 24.0) / 10.0)

    def n_inf(v, ca):
        w = v - sh
        return 1.0 / (1.0 + np.exp(zeta(w) * KAPPA * (w - 11.0)))

    def n_tau(v, ca):
        w = v - sh
        tau = np.exp(zeta(w) * 0.55 * KAPPA * (w - 11.0)) / (
            qt * 0.05 * (1.0 + np.exp(zeta(w) * KAPPA * (w - 11.0))))
        return np.maximum(tau, 0.1)

    l_inf = lambda v, ca: 1.0 / (1.0 + np.exp(3.0 * KAPPA * (v - sh + 56.0)))  # noqa: E731
    l_tau = lambda v, ca: np.maximum(0.26 * (v - sh + 50.0), 2.0)  # noqa: E731
    return {"n": (1, n_inf, n_tau), "l": (1, l_inf, l_tau)}


def _kad():
    l_tau = lambda v, ca: np.where(v > -20.0, 5.0 + 2.6 * (v + 20.0) / 10.0, 5.0)  # noqa: E731
    return {"n": (4, _boltz(-34.4, 21.0), _const(0.2)), "l": (1, _boltz(-58.0, -8.2), l_tau)}


def _km():
    alpha = lambda v, ca: 1e-3 * _efun(-(v + 30.0), 9.0)  # noqa: E731
    beta = lambda v, ca: 1e-3 * _efun(v + 30.0, 9.0)  # noqa: E731
    return {"n": (1, *_rates(alpha, beta))}


def _kca():
    tadj = 3.0 ** ((T_C - 22.0) / 10.0)
    r = lambda ca: (ca / 0.025) ** 2  # noqa: E731
    inf = lambda v, ca: r(ca) / (1.0 + r(ca))  # noqa: E731
    tau = lambda v, ca: np.maximum(1.0 / (0.03 * (1.0 + r(ca)) * tadj), 0.5)  # noqa: E731
    return {"m": (3, inf, tau)}


def _mahp():
    fp = 1e-3 * F_C / (R_GAS * T_K)  # F' per mV, F in kC/mol
    alpha = lambda v, ca: 0.48 / (1.0 + 0.18 * np.exp(-2.0 * 0.84 * fp * v) / ca)  # noqa: E731
    beta = lambda v, ca: 0.28 / (1.0 + ca / (0.011 * np.exp(-2.0 * fp * v)))  # noqa: E731
    return {"o": (1, *_rates(alpha, beta))}


def _h2(ca):
    return 1e-3 / (1e-3 + ca)


def _ghk_sheet(v, ci, co=2.0):
    """GHK(V, ci, co) of ca1.md section 3.0 for cal/cat (mV): KTF = 0.0853 mV/K * T."""
    f = 0.0853 * T_K / 2.0
    nu = v / f
    return -f * (1.0 - ci / co * np.exp(nu)) * _efun(nu, 1.0)


def _cal():
    alpha = lambda v, ca: 0.055 * _efun(-(v + 27.01), 3.8)  # noqa: E731
    beta = lambda v, ca: 0.94 * np.exp(-(v + 63.01) / 17.0)  # noqa: E731
    return {"m": (1, *_rates(alpha, beta, tfa=5.0)), "h2": (1, lambda v, ca: _h2(ca) + 0 * v, None)}


CAT_EREV = 140.0  # mV


def _cat():
    am = lambda v, ca: 0.1967 * _efun(-(v - 19.88), 10.0)  # noqa: E731
    bm = lambda v, ca: 0.046 * np.exp(-v / 22.73)  # noqa: E731
    ah = lambda v, ca: 1.6e-4 * np.exp(-(v + 57.0) / 19.0)  # noqa: E731
    bh = lambda v, ca: 1.0 / (np.exp(-(v - 15.0) / 10.0) + 1.0)  # noqa: E731
    # decision 7.9: cat sees a fixed cai of 5e-5 mM (cao 2 mM). Its GHK factor is a gate of
    # a non_specific channel with erev 140 mV: ghk = GHK/(V - 140 mV) (see the channel notes)
    ghk = lambda v, ca: _ghk_sheet(v, 5e-5) / (v - CAT_EREV)  # noqa: E731
    return {"m": (2, *_rates(am, bm)), "h": (1, *_rates(ah, bh, tfa=0.68)),
            "h2": (1, _const(_h2(5e-5)), None), "ghk": (1, ghk, None)}


def _hmech():
    def tau(v, ca):
        slow = 2.0 * (1.0 / (np.exp(-(v + 145.0) / 17.5) + np.exp((v + 16.8) / 16.5)) + 10.0)
        return np.where(v > -30.0, 1.0, slow)

    return {"n": (1, _boltz(-90.0, -3.5), tau)}


def _na(shift, tau_h):
    return {"m": (2, _boltz(-39.5 + shift, 3.0), _const(0.05)),
            "h": (1, _boltz(-46.0 + shift, -3.5), _const(tau_h))}


def _na_s(ar2):
    def s_inf(v, ca):
        e = np.exp((v + 60.0) / 2.0)
        return (1.0 + ar2 * e) / (1.0 + e)

    # decision 7.9: tau_s = 1/(a0r + b0r)
    return {**_na(5.0, 0.5), "s": (1, s_inf, _const(1.0 / (3e-4 + 3e-4)))}


# id -> (gates {name: (instances, inf(V mV, cai mM), tau(V, cai) in ms or None for an
#        instantaneous gate)}, conductance scale at 36 degC)
REFERENCE = {
    "Na_hha2_PYR": (_na(0.0, 1.0), 1.0),
    "Kdr_hha2_PYR": ({"n": (2, _boltz(-43.3, 3.0), _const(1.0))}, 1.0),
    "Na_hhadend_PYR": (_na(5.0, 0.5), 1.0),
    "Na_hhadend_ar2_0p90_PYR": (_na_s(0.9), 1.0),
    "Na_hhadend_ar2_0p95_PYR": (_na_s(0.95), 1.0),
    "Kdr_hhadend_PYR": ({"n": (2, _boltz(-38.3, 3.0), _const(2.2))}, 1.0),
    "KA_kap_PYR": (_kap(), 1.0),
    "KA_kad_PYR": (_kad(), 1.0),
    "KM_km_PYR": (_km(), 2.3 ** ((T_C - 23.0) / 10.0)),
    "KCa_sAHP_kca_PYR": (_kca(), 1.0),
    "KCa_mAHP_PYR": (_mahp(), 1.0),
    "CaL_cal_PYR": (_cal(), 1.0),
    "CaL_caldend_PYR": ({"m": (3, _boltz(-37.0, 1.0), _const(3.6)),
                         "h": (1, _boltz(-41.0, -0.5), _const(29.0))}, 1.0),
    "CaR_car_PYR": ({"m": (3, _boltz(-48.5, 3.0), _const(50.0)),
                     "h": (1, _boltz(-53.0, -1.0), _const(5.0))}, 1.0),
    "CaR_carsoma_PYR": ({"m": (3, _boltz(-55.0, 3.0), _const(100.0)),
                         "h": (1, _boltz(-57.0, -1.0), _const(5.0))}, 1.0),
    "CaT_cat_PYR": (_cat(), 1.0),
    "Ih_hmech_PYR": (_hmech(), 1.0),
    "Leak_pas_PYR": ({}, 1.0),
}
SPECIES = {"Na_hha2_PYR": "na", "Kdr_hha2_PYR": "k", "Na_hhadend_PYR": "na",
           "Na_hhadend_ar2_0p90_PYR": "na", "Na_hhadend_ar2_0p95_PYR": "na",
           "Kdr_hhadend_PYR": "k", "KA_kap_PYR": "k", "KA_kad_PYR": "k", "KM_km_PYR": "k",
           "KCa_sAHP_kca_PYR": "k", "KCa_mAHP_PYR": "k", "CaL_cal_PYR": "ca",
           "CaL_caldend_PYR": "ca", "CaR_car_PYR": "ca", "CaR_carsoma_PYR": "ca",
           "CaT_cat_PYR": "non_specific", "Ih_hmech_PYR": "non_specific", "Leak_pas_PYR": "non_specific"}

# pools: id -> (kind, restingConc mM, decay ms, shell um or rho mol/(m A s))
POOLS = {"CaPool_cad_PYR": ("decaying", 1e-4, 200.0, 1.8),
         "CaPool_cad_planar_PYR": ("fixed", 1e-4, 200.0, 1.0 / (2 * F_C * 1.8e-6))}


def _pool_rate_factor(kind, shell_or_rho, area_um2):
    """dC/dt (mM/ms) per pA of inward Ca2+ current."""
    if kind == "fixed":  # rho iCa / A; mol/(m A s) * A / m2 = mM/s
        return shell_or_rho * 1e-12 / (area_um2 * 1e-12) * 1e-3
    r = np.sqrt(area_um2 / (4 * np.pi))
    d = shell_or_rho
    vol = 4.0 / 3.0 * np.pi * (r**3 - (r - d) ** 3)  # um3 (NeuroML's spherical shell)
    return 1e-12 / (2 * F_C * vol * 1e-18) * 1e-3  # mol/m3 per s -> mM/ms


# --------------------------------------------------------------------------- helpers


def _copy_specs(dest: Path) -> list[str]:
    names = [f"{cid}.channel.nml" for cid in REFERENCE] + [f"{pid}.pool.nml" for pid in POOLS]
    for name in names:
        shutil.copy(CHANNELS / name, dest / name)
    return names


def test_reference_covers_every_pyr_file():
    on_disk = {p.name.split(".")[0] for p in CHANNELS.glob("*_PYR.*.nml")}
    assert on_disk == set(REFERENCE) | set(POOLS)
    ns = "{http://www.neuroml.org/schema/neuroml2}"
    for cid, (gates, _scale) in REFERENCE.items():
        chan = ET.parse(CHANNELS / f"{cid}.channel.nml").getroot().find(f"{ns}ionChannelHH")
        assert chan.get("id") == cid and chan.get("species") == SPECIES[cid], cid
        found = {g.get("id"): int(g.get("instances")) for g in chan
                 if g.tag != f"{ns}notes" and g.get("instances") is not None}
        assert found == {g: spec[0] for g, spec in gates.items()}, cid


# --------------------------------------------------------------------------- jLEMS harness

DT = 0.01  # ms; below half the fastest tau (cal m, 0.024 ms) so the gate states stay bounded
HOLD = 5  # steps per voltage (or cai) value of the staircase
V0, DV = -100.25, 0.5  # mV
N_LEVELS = 302  # -100.25 ... +50.25 mV
CA0, CA_FACTOR = 1e-6, 1e6 ** (1 / 300)  # mM; 1e-6 ... 1 mM over 300 levels
N_STEPS = HOLD * N_LEVELS + 10

# sweeps: (name, channel, v0 mV, dv per level mV, cai0 mM, cai factor per level)
FIXED_POINTS = [(-70.0, 1e-3), (-40.0, 1e-3), (0.0, 2e-2)]
RAMP_CAI = {"KCa_mAHP_PYR": [5e-5, 1e-4, 1e-3, 1e-2], "CaL_cal_PYR": [1e-4, 1e-2]}
CA_RAMP_V = {"KCa_sAHP_kca_PYR": [-65.0], "KCa_mAHP_PYR": [-80.0, -40.0, 0.0, 40.0],
             "CaL_cal_PYR": [-65.0]}


def _sweeps():
    out = []
    for cid, (gates, _scale) in REFERENCE.items():
        if gates and cid != "KCa_sAHP_kca_PYR":
            for k, ca in enumerate(RAMP_CAI.get(cid, [1e-4])):
                out.append((f"{cid}__v{k}", cid, V0, DV, ca, 1.0))
        for k, v in enumerate(CA_RAMP_V.get(cid, [])):
            out.append((f"{cid}__c{k}", cid, v, 0.0, CA0, CA_FACTOR))
        for k, (v, ca) in enumerate(FIXED_POINTS):
            out.append((f"{cid}__f{k}", cid, v, 0.0, ca, 1.0))
    return out


# pool sweeps: (name, pool, area um2, inward current pA, C0 mM)
POOL_RUNS = [("soma_influx", 628.3, 5.0, 1e-4), ("thin_influx", 47.1, 0.5, 1e-4),
             ("decay", 628.3, 0.0, 1.0)]

GHK_CAI = [5e-5, 1e-4, 1e-2]  # mM

HARNESS_TYPES = """
  <ComponentType name="pyrGateSweep" description="Steps v (and caConc) of one channel instance every hold.">
    <Parameter name="v0" dimension="voltage"/>
    <Parameter name="dv" dimension="voltage"/>
    <Parameter name="c0" dimension="concentration"/>
    <Parameter name="cfactor" dimension="none"/>
    <Parameter name="hold" dimension="time"/>
    <Parameter name="temperature" dimension="temperature"/>
    <Parameter name="caConcExt" dimension="concentration"/>
    <ComponentReference name="ionChannel" type="baseIonChannel"/>
    <Exposure name="v" dimension="voltage"/>
    <Exposure name="caConc" dimension="concentration"/>
    <Dynamics>
      <StateVariable name="v" dimension="voltage" exposure="v"/>
      <StateVariable name="caConc" dimension="concentration" exposure="caConc"/>
      <StateVariable name="tsince" dimension="time"/>
      <TimeDerivative variable="tsince" value="1"/>
      <OnStart>
        <StateAssignment variable="v" value="v0"/>
        <StateAssignment variable="caConc" value="c0"/>
        <StateAssignment variable="tsince" value="0"/>
      </OnStart>
      <OnCondition test="tsince .gt. hold">
        <StateAssignment variable="tsince" value="0"/>
        <StateAssignment variable="v" value="v + dv"/>
        <StateAssignment variable="caConc" value="caConc * cfactor"/>
      </OnCondition>
    </Dynamics>
    <Structure><ChildInstance component="ionChannel"/></Structure>
  </ComponentType>
  <ComponentType name="pyrDensitySweep" description="pyrGateSweep for a channel density.">
    <Parameter name="v0" dimension="voltage"/>
    <Parameter name="dv" dimension="voltage"/>
    <Parameter name="caConc" dimension="concentration"/>
    <Parameter name="caConcExt" dimension="concentration"/>
    <Parameter name="hold" dimension="time"/>
    <Parameter name="temperature" dimension="temperature"/>
    <ComponentReference name="density" type="baseChannelDensity"/>
    <Exposure name="v" dimension="voltage"/>
    <Dynamics>
      <StateVariable name="v" dimension="voltage" exposure="v"/>
      <StateVariable name="tsince" dimension="time"/>
      <TimeDerivative variable="tsince" value="1"/>
      <OnStart>
        <StateAssignment variable="v" value="v0"/>
        <StateAssignment variable="tsince" value="0"/>
      </OnStart>
      <OnCondition test="tsince .gt. hold">
        <StateAssignment variable="tsince" value="0"/>
        <StateAssignment variable="v" value="v + dv"/>
      </OnCondition>
    </Dynamics>
    <Structure><ChildInstance component="density"/></Structure>
  </ComponentType>
  <ComponentType name="pyrPoolDrive" description="A constant inward Ca2+ current into one pool.">
    <Parameter name="iCa" dimension="current"/>
    <Parameter name="surfaceArea" dimension="area"/>
    <Parameter name="initialConcentration" dimension="concentration"/>
    <Parameter name="initialExtConcentration" dimension="concentration"/>
    <ComponentReference name="pool" type="concentrationModel"/>
    <Structure><ChildInstance component="pool"/></Structure>
  </ComponentType>
  <ComponentType name="pyrHarness">
    <Children name="sweeps" type="pyrGateSweep"/>
    <Children name="drives" type="pyrPoolDrive"/>
    <Children name="densities" type="pyrDensitySweep"/>
  </ComponentType>
"""


def _harness_lems(includes: list[str]) -> str:
    lines = ['<Lems>', '  <Target component="sim"/>']
    lines += [f'  <Include file="{f}"/>' for f in ("Cells.xml", "Simulation.xml", *includes)]
    lines.append(HARNESS_TYPES)
    lines.append('  <pyrHarness id="harness">')
    for name, cid, v0, dv, c0, cg in _sweeps():
        lines.append(
            f'    <pyrGateSweep id="{name}" ionChannel="{cid}" v0="{v0}mV" dv="{dv}mV" '
            f'c0="{c0}mM" cfactor="{cg!r}" hold="{(HOLD - 0.5) * DT:.4f}ms" temperature="{T_K}K" '
            f'caConcExt="2mM"/>')
    for pid in POOLS:
        for run, area, ipa, c0 in POOL_RUNS:
            lines.append(
                f'    <pyrPoolDrive id="{pid}__{run}" pool="{pid}" iCa="{ipa}pA" '
                f'surfaceArea="{area}um2" initialConcentration="{c0}mM" '
                f'initialExtConcentration="2mM"/>')
    for k, ca in enumerate(GHK_CAI):
        lines.append(
            f'    <pyrDensitySweep id="ghk2__{k}" density="ghk2_cal" v0="{V0}mV" dv="{DV}mV" '
            f'caConc="{ca}mM" caConcExt="2mM" hold="{(HOLD - 0.5) * DT:.4f}ms" temperature="{T_K}K"/>')
    lines.append('  </pyrHarness>')
    lines.append('  <channelDensityGHK2 id="ghk2_cal" ionChannel="CaL_cal_PYR" condDensity="1S_per_m2" ion="ca"/>')
    lines.append(f'  <Simulation id="sim" length="{N_STEPS * DT:.4f}ms" step="{DT}ms" target="harness">')
    for name, cid, *_ in _sweeps():
        lines.append(f'    <OutputFile id="of_{name}" fileName="{name}.dat">')
        lines.append(f'      <OutputColumn id="v" quantity="{name}/v"/>')
        lines.append(f'      <OutputColumn id="ca" quantity="{name}/caConc"/>')
        for gate, (_n, _inf, tau) in REFERENCE[cid][0].items():
            lines.append(f'      <OutputColumn id="{gate}_inf" quantity="{name}/{cid}/{gate}/inf"/>')
            lines.append(f'      <OutputColumn id="{gate}_tau" quantity="{name}/{cid}/{gate}/tau"/>')
        lines.append(f'      <OutputColumn id="fopen" quantity="{name}/{cid}/fopen"/>')
        lines.append('    </OutputFile>')
    for pid in POOLS:
        for run, *_ in POOL_RUNS:
            name = f"{pid}__{run}"
            lines.append(f'    <OutputFile id="of_{name}" fileName="{name}.dat">')
            lines.append(f'      <OutputColumn id="c" quantity="{name}/{pid}/concentration"/>')
            lines.append('    </OutputFile>')
    for k, _ca in enumerate(GHK_CAI):
        name = f"ghk2__{k}"
        lines.append(f'    <OutputFile id="of_{name}" fileName="{name}.dat">')
        lines.append(f'      <OutputColumn id="v" quantity="{name}/v"/>')
        lines.append(f'      <OutputColumn id="ca" quantity="{name}/v"/>')  # keeps _settled's layout
        lines.append(f'      <OutputColumn id="i" quantity="{name}/ghk2_cal/iDensity"/>')
        lines.append(f'      <OutputColumn id="g" quantity="{name}/ghk2_cal/gDensity"/>')
        lines.append('    </OutputFile>')
    lines.append('  </Simulation>')
    lines.append('</Lems>')
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def jlems(tmp_path_factory):
    """Run the harness once with jLEMS; return {sweep name: recorded array}."""
    run_dir = tmp_path_factory.mktemp("pyr_jlems")
    includes = _copy_specs(run_dir)
    (run_dir / "LEMS_pyr_harness.xml").write_text(_harness_lems(includes))
    res = jneuroml.pynml(["LEMS_pyr_harness.xml", "-nogui"], cwd=run_dir)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    return {p.stem: np.loadtxt(p, ndmin=2) for p in run_dir.glob("*.dat")}


def _settled(data):
    """Rows at the end of a staircase level. jLEMS writes the derived variables of nested
    components a step or two behind the driving state (two rows for a gate of a channel of
    the sweep), so only rows whose V and cai have not changed for HOLD - 1 rows are used."""
    d = data[:, 1:]
    same = np.ones(len(d), dtype=bool)
    same[: HOLD - 1] = False
    for lag in range(1, HOLD - 1):
        same[lag:] &= np.all(d[lag:, :2] == d[:-lag, :2], axis=1)
    rows = d[same]
    return rows[:, 0] * 1e3, rows[:, 1], rows[:, 2:]  # mV, mM (mol/m3 = mM), SI


def _compare(got, want, what, rtol=RTOL):
    # jLEMS writes single precision: values below ~1e-37 are subnormal and lose digits
    err = np.abs(got - want) / (np.abs(want) + 1e-33)
    worst = int(np.argmax(err))
    assert err[worst] <= rtol, f"{what}: rel. error {err[worst]:.2e} at sample {worst} ({got[worst]} vs {want[worst]})"
    return err[worst]


@pytest.mark.parametrize("cid", [c for c, (g, _s) in REFERENCE.items() if g])
def test_gates_match_sheet_jlems(jlems, cid):
    gates, _scale = REFERENCE[cid]
    sweeps = [s for s in _sweeps() if s[1] == cid and "__f" not in s[0]]
    assert sweeps
    for name, _cid, v0, dv, c0, cg in sweeps:
        v, ca, derived = _settled(jlems[name])
        if dv:  # the staircase covers -100..+50 mV in 0.5 mV steps
            assert v.min() < -100 and v.max() > 50, name
            assert np.allclose(np.diff(np.unique(v)), DV, atol=1e-4), name
        if cg != 1.0:
            assert ca.min() < 1.1e-6 and ca.max() > 0.9, name
        col = 0
        for gate, (_n, inf, tau) in gates.items():
            _compare(derived[:, col], inf(v, ca), f"{name} {gate}_inf")
            if tau is None:  # instantaneous
                assert np.all(derived[:, col + 1] == 0), f"{name} {gate}_tau"
            else:
                _compare(derived[:, col + 1] * 1e3, tau(v, ca), f"{name} {gate}_tau")
            col += 2


@pytest.mark.parametrize("cid", list(REFERENCE))
def test_open_fraction_jlems(jlems, cid):
    """fopen = conductance scale x product of inf^instances at fixed V and cai: checks the
    exponents, km's q10ConductanceScaling, and that nothing else scales the conductance."""
    gates, scale = REFERENCE[cid]
    for k, (v, ca) in enumerate(FIXED_POINTS):
        data = jlems[f"{cid}__f{k}"]
        want = scale * np.prod([inf(np.array([v]), np.array([ca]))[0] ** n
                                for n, inf, _t in gates.values()])
        got = data[:, -1]
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-33, err_msg=f"{cid} at {v} mV, {ca} mM")


@pytest.mark.parametrize("pid", list(POOLS))
def test_pool_jlems(jlems, pid):
    kind, rest, tau, par = POOLS[pid]
    t = np.arange(N_STEPS + 1) * DT
    for run, area, ipa, c0 in POOL_RUNS:
        c = jlems[f"{pid}__{run}"][:, 1]  # mol/m3 = mM
        c_inf = rest + tau * _pool_rate_factor(kind, par, area) * ipa
        want = c_inf + (c0 - c_inf) * np.exp(-t[: len(c)] / tau)
        change = want - c0
        # forward Euler at dt/tau = 5e-5 stays within 3e-5 of the exact exponential
        np.testing.assert_allclose(c - c0, change, rtol=0, atol=1e-4 * np.abs(change).max(),
                                   err_msg=f"{pid} {run}")


def test_ghk2_factor_jlems(jlems):
    """channelDensityGHK2 (the density cal is meant for) against the sheet's GHK:
    i = -g GHK (NeuroML counts inward current positive). GHK2 takes KTF = 25 mV T/293.15,
    cal.mod 0.0853 mV/K T, which moves f by 2.2e-4 and the factor by up to 1.2e-3 at +50 mV."""
    for k, ca in enumerate(GHK_CAI):
        v, _v, d = _settled(jlems[f"ghk2__{k}"])
        got = d[:, 0] / d[:, 1] * 1e3  # A/m2 per S/m2 -> mV
        _compare(got, -_ghk_sheet(v, ca), f"GHK2 at cai {ca} mM", rtol=1.5e-3)


def test_pool_shell_geometry():
    """The decaying pool's shell is spherical (NeuroML semantics), the fixed-factor pool
    planar: per pA, the soma's cai rises 1.30x faster in the former, a 47 um2 segment's 2.8x."""
    planar = _pool_rate_factor("fixed", POOLS["CaPool_cad_planar_PYR"][3], 628.3)
    sphere = _pool_rate_factor("decaying", 1.8, 628.3)
    assert sphere / planar == pytest.approx(1.304, abs=2e-3)
    assert (_pool_rate_factor("decaying", 1.8, 47.1)
            / _pool_rate_factor("fixed", POOLS["CaPool_cad_planar_PYR"][3], 47.1)) == pytest.approx(2.79, abs=0.01)
    # cad itself: 1e4 ica / (2 F 0.1 um) / 18 with ica in mA/cm2 -> the same factor as rho
    ica = 1e-12 / (628.3e-8) * 1e3  # 1 pA over the soma, in mA/cm2
    assert 1e4 * ica / (2 * F_C * 0.1) / 18 == pytest.approx(planar, rel=1e-9)


# --------------------------------------------------------------------------- jNeuroML's NEURON export

EREV = {"na": "71.2mV", "k": "-89.7mV"}  # ca1.md section 2.3, PYR at 36 degC
NONSPECIFIC_EREV = {"Ih_hmech_PYR": "-30mV", "Leak_pas_PYR": "-70mV", "CaT_cat_PYR": f"{CAT_EREV}mV"}
NERNST = {"CaL_caldend_PYR", "CaR_car_PYR", "CaR_carsoma_PYR"}


def _densities() -> list[str]:
    plain, nernst, ghk2 = [], [], []
    for cid in REFERENCE:
        ion = SPECIES[cid]
        head = f'<{{}} id="d_{cid}" ionChannel="{cid}" condDensity="1e-9mS_per_cm2" ion="{ion}"'
        if cid in NERNST:
            nernst.append(head.format("channelDensityNernst") + "/>")
        elif cid == "CaL_cal_PYR":
            ghk2.append(head.format("channelDensityGHK2") + "/>")
        else:
            erev = NONSPECIFIC_EREV.get(cid, EREV.get(ion))
            plain.append(head.format("channelDensity") + f' erev="{erev}"/>')
    return plain + nernst + ghk2  # the XSD's order


def _cell(cid: str, pool: str, densities: list[str]) -> str:
    dens = "\n".join(f"                {d}" for d in densities)
    return f"""
    <cell id="{cid}">
        <morphology id="{cid}_morph">
            <segment id="0" name="soma">
                <proximal x="0" y="0" z="0" diameter="20"/>
                <distal x="0" y="10" z="0" diameter="20"/>
            </segment>
            <segmentGroup id="soma_group" neuroLexId="sao1044911821"><member segment="0"/></segmentGroup>
        </morphology>
        <biophysicalProperties id="{cid}_biophys">
            <membraneProperties>
{dens}
                <spikeThresh value="0mV"/>
                <specificCapacitance value="1uF_per_cm2"/>
                <initMembPotential value="-65mV"/>
            </membraneProperties>
            <intracellularProperties>
                <species id="ca" ion="ca" concentrationModel="{pool}" initialConcentration="1e-4mM" initialExtConcentration="2mM"/>
                <resistivity value="150ohm_cm"/>
            </intracellularProperties>
        </biophysicalProperties>
    </cell>"""


def _export_net(includes: list[str]) -> str:
    inc = "\n".join(f'    <include href="{f}"/>' for f in includes)
    cal = [d for d in _densities() if "CaL_cal_PYR" in d]
    cells = (_cell("pyr_all", "CaPool_cad_planar_PYR", _densities())
             + _cell("pyr_shell", "CaPool_cad_PYR", cal))
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="pyr_channels_net">
{inc}
{cells}
    <network id="net" type="networkWithTemperature" temperature="{T_C}degC">
        <population id="pop_all" component="pyr_all" size="1"/>
        <population id="pop_shell" component="pyr_shell" size="1"/>
    </network>
</neuroml>
"""


EXPORT_LEMS = """<Lems>
  <Target component="sim"/>
  <Include file="Cells.xml"/>
  <Include file="Networks.xml"/>
  <Include file="Simulation.xml"/>
  <Include file="pyr_channels.net.nml"/>
  <Simulation id="sim" length="1ms" step="0.025ms" target="net">
    <OutputFile id="of" fileName="v.dat"><OutputColumn id="v" quantity="pop_all[0]/v"/></OutputFile>
  </Simulation>
</Lems>
"""

# Run with the venv's python in the export directory (NEURON loads x86_64/ from there).
# Gates: finitialize(V) sets q = inf; the export computes fcond in rates() before that
# assignment, so fopen is stale until one step has run (all densities are 0, V stays put).
NEURON_GATES = textwrap.dedent("""
    import json, sys
    from neuron import h
    h.celsius = float(sys.argv[2])
    spec = json.loads(open(sys.argv[1]).read())
    sec = h.Section(name="chan")
    for cid in spec:
        sec.insert(cid)
    seg = sec(0.5)
    out = {}
    for cid, (gates, points) in spec.items():
        mech, rows = getattr(seg, cid), []
        for v, ca in points:
            seg.cai = ca
            h.finitialize(v)
            h.fadvance()
            h.fcurrent()
            row = [seg.v, seg.cai]
            for g in gates:
                row += [getattr(mech, g + "_inf"), getattr(mech, g + "_tau")]
            rows.append(row + [mech.fopen])
        out[cid] = rows
    print(json.dumps(out))
""")

# Pools: cal (7 mS/cm2, GHK2) under a -20 mV clamp loads the pool of a 628 um2 soma.
NEURON_POOL = textwrap.dedent("""
    import json, sys
    from neuron import h
    h.load_file("stdrun.hoc")
    h.celsius = float(sys.argv[2])
    sec = h.Section(name="p")
    sec.L, sec.diam = 10.0, 20.0
    sec.insert(sys.argv[1])
    sec.insert("CaL_cal_PYR")
    seg = sec(0.5)
    seg.CaL_cal_PYR.gmax = 7e-3
    h.cai0_ca_ion, h.cao0_ca_ion = 1e-4, 2.0
    clamp = h.SEClamp(seg)
    clamp.dur1, clamp.amp1, clamp.rs = 1e9, -20.0, 1e-3
    cai, ica = h.Vector().record(seg._ref_cai), h.Vector().record(seg._ref_ica)
    h.dt = 0.025
    h.finitialize(-20.0)
    h.continuerun(30.0)
    print(json.dumps({"cai": list(cai), "ica": list(ica), "area": seg.area()}))
""")


def _nrn_points(cid: str) -> list[tuple[float, float]]:
    vs = np.arange(V0, 50.3, DV)
    pts = []
    if cid != "KCa_sAHP_kca_PYR":
        pts += [(v, ca) for ca in RAMP_CAI.get(cid, [1e-4]) for v in vs]
    pts += [(v, ca) for v in CA_RAMP_V.get(cid, []) for ca in np.logspace(-6, 0, 121)]
    return [(float(v), float(ca)) for v, ca in pts + FIXED_POINTS]


@pytest.fixture(scope="module")
def nrn_export(tmp_path_factory):
    """Export a test network carrying every PYR channel and both pools with jNeuroML,
    compile the .mod files; return the directory."""
    run_dir = tmp_path_factory.mktemp("pyr_neuron")
    includes = _copy_specs(run_dir)
    (run_dir / "pyr_channels.net.nml").write_text(_export_net(includes))
    (run_dir / "LEMS_pyr_channels.xml").write_text(EXPORT_LEMS)
    res = jneuroml.pynml(["-validate", "pyr_channels.net.nml"], cwd=run_dir)
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "All valid and no warnings" in out, out[-4000:]
    jneuroml.export_neuron("LEMS_pyr_channels.xml", run_dir)
    jneuroml.nrnivmodl(run_dir)
    return run_dir


def _run_neuron_script(run_dir: Path, script: str, *args: str) -> dict:
    (run_dir / "script.py").write_text(script)
    res = subprocess.run([sys.executable, "script.py", *args, str(T_C)], cwd=run_dir,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_gates_match_sheet_neuron(nrn_export):
    spec = {cid: (list(gates), _nrn_points(cid)) for cid, (gates, _s) in REFERENCE.items()}
    (nrn_export / "points.json").write_text(json.dumps(spec))
    out = _run_neuron_script(nrn_export, NEURON_GATES, "points.json")
    for cid, (gates, scale) in REFERENCE.items():
        rows = np.array(out[cid])
        v, ca = rows[:, 0], rows[:, 1]
        np.testing.assert_allclose(v, [p[0] for p in spec[cid][1]], atol=1e-9, err_msg=cid)
        want_open = np.full_like(v, scale)
        for k, (gate, (n, inf, tau)) in enumerate(gates.items()):
            want_inf = inf(v, ca)
            _compare(rows[:, 2 + 2 * k], want_inf, f"NEURON {cid} {gate}_inf")
            if tau is None:
                assert np.all(rows[:, 3 + 2 * k] == 0), f"NEURON {cid} {gate}_tau"
            else:
                _compare(rows[:, 3 + 2 * k], tau(v, ca), f"NEURON {cid} {gate}_tau")
            want_open *= want_inf**n
        _compare(rows[:, -1], want_open, f"NEURON {cid} fopen")


@pytest.mark.slow
@pytest.mark.parametrize("pid", list(POOLS))
def test_pool_neuron(nrn_export, pid):
    """cai under a steady Ca2+ influx, against cad's equation integrated (forward Euler, as
    the export does) with the recorded ica: dcai/dt = -ica k - (cai - rest)/tau, with
    k = 1e4/(2 F d) and d = 1.8 um (planar) or the spherical shell's volume/area."""
    kind, rest, tau, par = POOLS[pid]
    out = _run_neuron_script(nrn_export, NEURON_POOL, pid)
    cai, ica = np.array(out["cai"]), np.array(out["ica"])
    # mM/ms per mA/cm2 of outward current: the per-pA factor scaled to the compartment area
    k = _pool_rate_factor(kind, par, out["area"]) * out["area"] * 1e-8 * 1e9
    ref = [cai[0]]
    for n in range(len(cai) - 1):  # the pool's step from t_n uses the ica of that step (t_n+1)
        ref.append(ref[-1] + 0.025 * (-ica[n + 1] * k - (ref[-1] - rest) / tau))
    rise = cai - cai[0]
    assert rise[-1] > 1e-3  # the pool really loads (mM)
    np.testing.assert_allclose(cai - cai[0], np.array(ref) - cai[0], rtol=0, atol=1e-4 * rise.max())
