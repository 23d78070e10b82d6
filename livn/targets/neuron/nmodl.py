"""NMODL generated from the NeuroML dynamics (``livn.targets.dynamics``): channels, synapses, noise.

Nothing here is written per model: every rate constant, time constant and reversal potential
comes from the NeuroML files through the simulator-neutral model, so editing a ``.nml`` file
changes the generated ``.mod`` text (and its mechanism name, see below).

Mechanisms
----------
channel (density mechanism, ``SUFFIX``)
    ``RANGE gmax`` (S/cm²), ``e`` (mV); ``g`` (S/cm²) and ``i`` (mA/cm², NONSPECIFIC_CURRENT,
    so the per-density reversal potential of the cell applies whatever the ion). Gates are
    STATEs integrated with ``cnexp`` (their equations are linear in the gate):
    dx/dt = (x∞ − x)/τ with x∞ and τ as NeuroML's gate kind defines them (``rates``:
    α/(α + β) and 1/(s(α + β)); ``tauInf``: steady state and time course/s; ``ratesInf``,
    ``ratesTau``, ``ratesTauInf`` mix the two; s = q10Fixed, or q10ExpTemp at ``celsius``);
    "instantaneous" gates are evaluated in the BREAKPOINT (so NEURON's di/dv includes them).
    INITIAL puts every gate at its steady state at the initial potential. A custom LEMS rate,
    steady state or time course becomes a FUNCTION ``livn_<gate>_<alpha|beta|inf|tau>(v)``
    (:meth:`livn.neuroml.lems.CustomType.nmodl_function`: SI inside, as LEMS defines it;
    ``caConc`` is ``cai``, ``temperature`` is ``celsius`` + 273.15). A ``q10ConductanceScaling``
    multiplies g. Calcium variants (:data:`VARIANTS`, one mechanism per (channel, variant)):
    "ohmic_ca" (a fixed-erev current of ion ca: ``WRITE ica`` with its own e, so it feeds the
    concentration model as NeuroML's iCa does), "nernst" (``READ eca``: NEURON's Nernst
    potential of cai, cao at celsius) and "ghk2" (``READ cai, cao``: NeuroML's
    channelDensityGHK2 driving term). Gates that read calcium add ``USEION ca READ cai``.
concentration model (density mechanism; :func:`pool_mechanism`)
    cai is its STATE (``USEION ca READ ica WRITE cai, cao``), with NeuroML's equations of
    ``decayingPoolConcentrationModel`` or ``fixedFactorConcentrationModel``; it starts at the
    species' initial concentration and holds cao at its external one (``RANGE initial,
    initial_ext``, per segment, so cells with different species share one mechanism). NEURON
    initialises concentration writers before the channels that read cai.
synapse (``POINT_PROCESS``)
    Dual exponential with NeuroML's peak normalisation (``expTwoSynapse``): states A, B
    (µS) decay with ``tau_rise`` / ``tau_decay``; ``NET_RECEIVE(weight (uS))`` adds
    weight·factor to both, so one event of weight w peaks at w µS. g = B − A (× the Mg²⁺
    block 1/(1 + conc/scaling_conc · exp(−v/scaling_volt)) for "exp2_block"), i = g (v − e)
    (nA). ``tau_rise`` 0 gives a single exponential (state B only). Events add linearly: one
    instance per (cell, receptor) takes every NetCon of that receptor. Tsodyks–Markram
    plasticity (NeuroML ``plasticityMechanism``) keeps its state per NetCon, in the weight
    vector (``NET_RECEIVE(weight, R[, u], tlast)`` with an INITIAL block): each connection
    depresses on its own, event-driven and exact (:func:`synapse_mechanism`).
noise (``POINT_PROCESS``)
    The Ornstein–Uhlenbeck conductance of the point-conductance model (Destexhe et al.
    2001; ``specs/noise/point_conductance.nml``): ``RANGE g0, sigma`` (µS), ``tau`` (ms),
    ``e`` (mV); the current is ``g_active``·(v − e) with ``g_active`` = max(g, 0), the OU
    process's positive part (σ may exceed g0); exact update once per time step (``SOLVE update``: NEURON's state update at the
    end of a step, and once in INITIAL),
    g ← g0 + (g − g0)e^{−dt/τ} + σ√(1 − e^{−2dt/τ})·N(0,1), with N(0,1) the counter-based
    number of :mod:`livn.targets.gid_normal` for (``seed``, ``gid``, ``stream``, round(t/dt))
    (RANGE variables of the instance; integers below 2⁵³). A cell's noise depends only on
    those, not on the MPI rank count or on other cells, and it is the Brian2 target's noise.
    g starts at g0 and INITIAL applies the update of step 0, so the first step already uses
    an updated g, as in the Brian2 runtime. Fixed steps only (``cvode.active(0)``). The
    numbers come in Box–Muller pairs (steps 2k, 2k + 1): an even step keeps the odd one.
    Random123 through NMODL ``RANDOM`` cost twice as much per draw, and a ``BEFORE STEP``
    block a function call and a voltage lookup per instance and step: on EI4 the noise was
    more than half of the run time.

Names
-----
NEURON cannot unload or redefine a mechanism, so each mechanism is named after its NeuroML
id plus a short hash of its own NMODL text (``Na_RS_1a2b3c4d``): two versions of a channel
(an edited ``.nml``) get different names and can live in one process, and identical
mechanisms from different systems share a name and a compiled library. Look names up in the
:class:`MechanismSet`; never hard-code them.

Compilation
-----------
:func:`compile_mechanisms` runs ``nrnivmodl`` in a cache directory keyed by a hash of the
``.mod`` contents (and of the NEURON version), under ``$LIVN_CACHE``/the user cache, with a
file lock so concurrent processes (MPI ranks) compile once. :func:`load_mechanisms` makes a
set available in this process, compiling and loading only the mechanisms that are not
loaded yet.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ...neuroml.reader import Channel, Gate, Synapse, UnsupportedNeuroML
from ..gid_normal import C_SOURCE

#: bumped whenever the generated code changes in a way the text hash would not show
NMODL_FORMAT = 1

#: noise mechanism: the NeuroML ComponentType it translates
OU_COMPONENT = "pointConductanceOU"

#: the exprel replacement used in rate expressions (defined in every channel file)
EXPREL = "livn_exprel"

_NAME_PLACEHOLDER = "@NAME@"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# names a gate state may not take in the generated file
_RESERVED = {"v", "i", "g", "e", "gmax", "t", "dt", "celsius", "area", "diam", "exp", "fabs", "log", "sqrt",
             "pow", "rates", "states", "a", "b", EXPREL}


@dataclass(frozen=True)
class Mechanism:
    """One generated NMODL mechanism.

    Attributes
    ----------
    name : str
        The NEURON name (``SUFFIX`` or ``POINT_PROCESS``): NeuroML id + "_" + 8 hex digits.
    kind : str
        "density" (channels) or "point" (synapses, noise).
    source : str
        What it translates: the channel id, the synapse id, or "pointConductanceOU".
    text : str
        The NMODL source.
    """

    name: str
    kind: str
    source: str
    text: str

    @property
    def filename(self) -> str:
        return f"{self.name}.mod"


def _named(kind: str, source: str, template: str) -> Mechanism:
    """Name a mechanism after its source id and the hash of its text (name left out)."""
    digest = hashlib.sha256(f"livn-nmodl-{NMODL_FORMAT}\n{template}".encode()).hexdigest()[:8]
    name = f"{source}_{digest}"
    return Mechanism(name, kind, source, template.replace(_NAME_PLACEHOLDER, name))


def _num(x: float) -> str:
    """A float literal NMODL parses (repr, with negative values parenthesised)."""
    s = repr(float(x))
    if "inf" in s or "nan" in s:
        raise UnsupportedNeuroML(f"cannot write the number {x!r} into NMODL")
    return f"({s})" if x < 0 else s


def _literal(x: float) -> str:
    """A number for a PARAMETER declaration (NMODL wants a plain signed literal there)."""
    _num(x)
    return repr(float(x))


def _power(name: str, n: int) -> str:
    if n < 1:
        raise UnsupportedNeuroML(f"gate {name!r}: {n} instances")
    return "*".join([name] * n) if n <= 4 else f"{name}^{n}"


def _state_name(gate: Gate) -> str:
    if not _IDENT.match(gate.name):
        raise UnsupportedNeuroML(f"gate id {gate.name!r} is not an NMODL identifier")
    return f"gate_{gate.name}" if gate.name in _RESERVED or gate.name.endswith(("_inf", "_tau")) else gate.name


def _exprel_function() -> str:
    return f"""
FUNCTION {EXPREL}(x) {{
    : exprel(x) = (exp(x) - 1)/x, with its limit 1 at x = 0 (HHExpLinearRate = rate/exprel(-x))
    if (fabs(x) < 1e-6) {{
        {EXPREL} = 1 + x/2 + x*x/6
    }} else {{
        {EXPREL} = (exp(x) - 1)/x
    }}
}}
"""


#: how a density's current is computed -> (USEION line or None, current statement, RANGE e?)
#: "ohmic": NONSPECIFIC_CURRENT with the density's own e; "ohmic_ca": the same as a calcium
#: current (it feeds the section's concentration model, as NeuroML sums every density of
#: ion "ca" into iCa); "nernst": e = eca, which NEURON computes from cai/cao at celsius;
#: "ghk2": NeuroML's channelDensityGHK2 driving force
VARIANTS = ("ohmic", "ohmic_ca", "nernst", "ghk2")


def density_variant(density) -> str:
    """The mechanism variant of a :class:`~livn.neuroml.cell.ChannelDensity`."""
    if density.kind != "ohmic":
        return density.kind
    return "ohmic_ca" if density.ion == "ca" else "ohmic"


def _celsius_scale(fixed: float, exponentials: tuple) -> str:
    """NMODL text of q10 · Π factor^((T − T_exp)/10 K) with T = celsius + 273.15 (jNeuroML's form)."""
    if not exponentials:
        return _num(fixed)
    terms = [_num(fixed)] if fixed != 1.0 else []
    for factor, experimental in exponentials:
        terms.append(f"pow({_num(factor)}, ((celsius + 273.15) - {_num(experimental + 273.15)})/10)")
    return f"({'*'.join(terms)})"


def _rate_code(rate, function: str, functions: list) -> str:
    """The expression of ``rate`` at v inside ``rates``; a custom type becomes FUNCTION ``function``."""
    if rate.kind == "custom":
        functions.append(rate.custom.nmodl_function(function))
        return f"{function}(v)"
    return rate.expression("v", exprel=EXPREL)


def _gate_rates(gate, s: str, functions: list) -> list[str]:
    """Lines of PROCEDURE rates computing ``{s}_inf`` and ``{s}_tau`` of a dynamic gate."""
    q = _celsius_scale(gate.q10, gate.q10_temperature)
    lines = []
    if gate.kind in ("rates", "ratesInf", "ratesTau"):
        lines += [f"    a = {_rate_code(gate.forward, f'livn_{s}_alpha', functions)}",
                  f"    b = {_rate_code(gate.reverse, f'livn_{s}_beta', functions)}"]
    if gate.infinity_from_rates:
        lines.append(f"    {s}_inf = a/(a + b)")
    else:
        lines.append(f"    {s}_inf = {_rate_code(gate.steady_state, f'livn_{s}_inf', functions)}")
    if gate.tau_from_rates:
        lines.append(f"    {s}_tau = 1/({q}*(a + b))")
    else:
        lines.append(f"    {s}_tau = ({_rate_code(gate.time_course, f'livn_{s}_tau', functions)})/{q}")
    return lines


def _ghk2_functions() -> str:
    return """
FUNCTION livn_ghk2(v (mV), ci (mM), co (mM)) (mV) {
    : NeuroML channelDensityGHK2 (modified GHK of Jaffe et al. 1994): i = g*livn_ghk2(v, cai, cao)
    : with f = RT/(2F) written as 25 mV*T/(293.15 K)/2, T = celsius + 273.15
    LOCAL f, nu
    f = (25/293.15)*(celsius + 273.15)/2
    nu = v/f
    livn_ghk2 = -f*(1 - (ci/co)*exp(nu))*livn_efun(nu)
}

FUNCTION livn_efun(z) {
    : z/(exp(z) - 1), with its limit at z = 0
    if (fabs(z) < 1e-4) {
        livn_efun = 1 - z/2
    } else {
        livn_efun = z/(exp(z) - 1)
    }
}
"""


def channel_mechanism(channel: Channel, variant: str = "ohmic") -> Mechanism:
    """The density mechanism of ``channel`` whose current is computed as ``variant`` says
    (:data:`VARIANTS`): i = gmax·[conductance scaling]·Πgates·(v − e), or its calcium forms."""
    if not _IDENT.match(channel.id):
        raise UnsupportedNeuroML(f"channel id {channel.id!r} is not an NMODL identifier")
    if variant not in VARIANTS:
        raise UnsupportedNeuroML(f"channel {channel.id!r}: unknown current variant {variant!r}")
    dynamic = [g for g in channel.gates if g.kind != "instantaneous"]
    instantaneous = [g for g in channel.gates if g.kind == "instantaneous"]
    unknown = [g.name for g in channel.gates if g.kind not in Gate.NEEDS]
    if unknown:
        raise UnsupportedNeuroML(f"channel {channel.id!r}: gates {unknown} of unsupported kind")
    names = {g.name: _state_name(g) for g in channel.gates}
    if len(set(names.values())) != len(names):
        raise UnsupportedNeuroML(f"channel {channel.id!r}: gate names collide")
    reads_cai = "caConc" in channel.inputs or variant == "ghk2"
    uses_celsius = "temperature" in channel.inputs or variant == "ghk2"
    calcium = variant != "ohmic"
    functions: list[str] = []
    assigned = ["    v (mV)", "    i (mA/cm2)" if not calcium else "    ica (mA/cm2)", "    g (S/cm2)"]
    assigned += ["    eca (mV)"] if variant == "nernst" else []
    assigned += ["    cai (mM)"] if reads_cai else []
    assigned += ["    cao (mM)"] if variant == "ghk2" else []
    assigned += ["    celsius (degC)"] if uses_celsius else []
    for g in dynamic:
        assigned += [f"    {names[g.name]}_inf", f"    {names[g.name]}_tau (ms)"]
    for g in instantaneous:
        assigned.append(f"    {names[g.name]}")
    rates = []
    for g in dynamic:
        rates += _gate_rates(g, names[g.name], functions)
    inst = [f"    {names[g.name]} = {_rate_code(g.steady_state, f'livn_{names[g.name]}_inf', functions)}"
            for g in instantaneous]
    open_fraction = "*".join(_power(names[g.name], g.instances) for g in channel.gates) or "1"
    scaling = _celsius_scale(1.0, channel.conductance_scaling) + "*" if channel.conductance_scaling else ""
    gates_doc = ", ".join(f"{g.name} ({g.kind}, ^{g.instances}, q10 {g.q10!r}"
                          + "".join(f" x {f!r}^((T - {t!r} degC)/10)" for f, t in g.q10_temperature) + ")"
                          for g in channel.gates) or "none"
    current = {"ohmic": ("i", "(v - e)"), "ohmic_ca": ("ica", "(v - e)"), "nernst": ("ica", "(v - eca)"),
               "ghk2": ("ica", "livn_ghk2(v, cai, cao)")}[variant]
    reads = ", ".join(x for x, on in (("eca", variant == "nernst"), ("cai", reads_cai), ("cao", variant == "ghk2"))
                      if on)
    if variant == "ohmic":
        ion_lines = ["    NONSPECIFIC_CURRENT i"] + (["    USEION ca READ cai VALENCE 2"] if reads_cai else [])
    else:
        ion_lines = [f"    USEION ca {'READ ' + reads + ' ' if reads else ''}WRITE ica VALENCE 2"]
    has_e = variant in ("ohmic", "ohmic_ca")
    formula = {"ohmic": "a NONSPECIFIC_CURRENT with the reversal potential e of\nthe channel density",
               "ohmic_ca": "a calcium current (it feeds the concentration model) with the reversal potential e "
                           "of the channel density",
               "nernst": "a calcium current with e = eca, NEURON's Nernst potential of cai and cao at celsius",
               "ghk2": "a calcium current with NeuroML's channelDensityGHK2 driving term livn_ghk2(v, cai, cao)"}

    parts = [f"""TITLE {channel.id}: NeuroML ion channel (gates: {gates_doc}), generated by livn

COMMENT
Generated by livn.targets.neuron.nmodl from the NeuroML channel {channel.id!r}
(species {channel.species!r}); do not edit, edit the .nml file.
{current[0]} = gmax * {scaling}{open_fraction} * {current[1]}, {formula[variant]}.
ENDCOMMENT

NEURON {{
    SUFFIX {_NAME_PLACEHOLDER}
{chr(10).join(ion_lines)}
    RANGE gmax{', e' if has_e else ''}, g{''.join(', ' + names[g.name] for g in instantaneous)}
    THREADSAFE
}}

UNITS {{
    (mA) = (milliamp)
    (mV) = (millivolt)
    (S) = (siemens)
{'    (mM) = (milli/liter)' + chr(10) if calcium or reads_cai else ''}}}

PARAMETER {{
    gmax = 0 (S/cm2)
{'    e = 0 (mV)' + chr(10) if has_e else ''}}}

ASSIGNED {{
{chr(10).join(assigned)}
}}
"""]
    if dynamic:
        parts.append(f"""
STATE {{
    {' '.join(names[g.name] for g in dynamic)}
}}
""")
    # the current is linear in v unless a gate is instantaneous or the driving force is GHK: the
    # hint spares NEURON a second evaluation of the current for di/dv
    hint = [] if instantaneous or variant == "ghk2" else (
        ["    CONDUCTANCE g"] if not calcium else ["    CONDUCTANCE g USEION ca"])
    breakpoint_lines = hint + (["    SOLVE states METHOD cnexp"] if dynamic else []) + inst + [
        f"    g = gmax*{scaling}{open_fraction}", f"    {current[0]} = g*{current[1]}"]
    parts.append(f"""
BREAKPOINT {{
{chr(10).join(breakpoint_lines)}
}}
""")
    initial = (["    rates(v)"] if dynamic else []) + inst
    initial[1:1] = [f"    {names[g.name]} = {names[g.name]}_inf" for g in dynamic]
    if initial:
        parts.append(f"""
INITIAL {{
{chr(10).join(initial)}
}}
""")
    if dynamic:
        derivs = [f"    {x}' = ({x}_inf - {x})/{x}_tau" for x in (names[g.name] for g in dynamic)]
        parts.append(f"""
DERIVATIVE states {{
    rates(v)
{chr(10).join(derivs)}
}}

PROCEDURE rates(v (mV)) {{
    LOCAL a, b
{chr(10).join(rates)}
}}
""")
    parts.append(_exprel_function())
    parts += functions
    if variant == "ghk2":
        parts.append(_ghk2_functions())
    source = channel.id if variant == "ohmic" else f"{channel.id}_{variant}"
    return _named("density", source, "".join(parts))


def pool_mechanism(model) -> Mechanism:
    """The NMODL mechanism of a calcium :class:`~livn.neuroml.cell.ConcentrationModel`: cai is
    its STATE, relaxing to the resting value and driven by the section's calcium current."""
    if not _IDENT.match(model.id):
        raise UnsupportedNeuroML(f"concentration model id {model.id!r} is not an NMODL identifier")
    if model.kind == "decayingPool":
        what = f"""decayingPoolConcentrationModel: a shell of thickness {model.shell_thickness!r} um under a sphere
of the segment's area, dcai/dt = I_Ca/(2 F V_shell) - (cai - resting)/decay (NeuroML's
definition: F = 96485.3 C/mol, pi written 3.14159), I_Ca = -ica*area the inward current."""
        parameter = f"    shell = {_literal(model.shell_thickness)} (um)"
        range_name = "shell"
        # mM/ms per mA/cm2: ica*area is 1e-11 A per (mA/cm2 um2), V_shell 1e-18 m3 per um3, 1/s -> 1/ms
        factor = """    radius = sqrt(area/(4*3.14159))
    inner = radius - shell
    factor = 1e4*area/(2*96485.3*(4*radius*radius*radius*3.14159/3 - 4*inner*inner*inner*3.14159/3))"""
        locals_ = "    LOCAL radius, inner\n"
    elif model.kind == "fixedFactor":
        what = f"""fixedFactorConcentrationModel: dcai/dt = I_Ca/area*rho - (cai - resting)/decay with
rho = {model.rho!r} mol/(m A s) (SI), I_Ca/area = -ica (10 A/m2 per mA/cm2)."""
        parameter = f"    rho = {_literal(model.rho)} (1)"
        range_name = "rho"
        factor = "    factor = rho*0.01  : mol/(m3 s) per (A/m2) -> mM/ms per mA/cm2: x10 x1e-3"
        locals_ = ""
    else:
        raise UnsupportedNeuroML(f"concentration model {model.id!r}: kind {model.kind!r}")
    text = f"""TITLE {model.id}: NeuroML calcium concentration model, generated by livn

COMMENT
Generated by livn.targets.neuron.nmodl from the NeuroML {model.id!r}; do not edit.
{what}
cai starts at initial and cao is held at initial_ext (the species' initialConcentration and
initialExtConcentration, set per segment); a negative cai is set to 0 (NeuroML's OnCondition).
ENDCOMMENT

NEURON {{
    SUFFIX {_NAME_PLACEHOLDER}
    USEION ca READ ica WRITE cai, cao VALENCE 2
    RANGE initial, initial_ext, resting, decay, {range_name}
    THREADSAFE
}}

UNITS {{
    (mA) = (milliamp)
    (mM) = (milli/liter)
    (um) = (micron)
}}

PARAMETER {{
    resting = {_literal(model.resting)} (mM)
    decay = {_literal(model.decay)} (ms)
{parameter}
    initial = {_literal(model.resting)} (mM)
    initial_ext = 2 (mM)
}}

ASSIGNED {{
    ica (mA/cm2)
    area (um2)
    factor
}}

STATE {{
    cai (mM)
    cao (mM)  : held at initial_ext; a STATE with derivative 0 because NMODL lets a mechanism write cao only so
}}

INITIAL {{
{locals_}{factor}
    cai = initial
    cao = initial_ext
}}

BREAKPOINT {{
    SOLVE states METHOD cnexp
    if (cai < 0) {{
        cai = 0
    }}
}}

DERIVATIVE states {{
    cai' = -ica*factor - (cai - resting)/decay
    cao' = 0
}}
"""
    return _named("density", model.id, text)


def synapse_mechanism(synapse: Synapse) -> Mechanism:
    """The point process of ``synapse`` (NetCon weight = peak conductance of one event, µS).

    With Tsodyks–Markram plasticity (``synapse.plasticity``), the state of each connection
    lives in its NetCon's weight vector — ``NET_RECEIVE(weight, R, u, tlast)``, initialised by
    the INITIAL block inside NET_RECEIVE at every ``finitialize`` — so the NetCons that share
    the point process depress (and facilitate) each on its own, whether livn, BMTK or anyone
    else made them, on any number of ranks. The recovery between a NetCon's events is exact
    (event-driven), in NeuroML's order (:class:`livn.neuroml.reader.Plasticity`).
    """
    if not _IDENT.match(synapse.id):
        raise UnsupportedNeuroML(f"synapse id {synapse.id!r} is not an NMODL identifier")
    if synapse.kind not in ("exp2", "exp2_block"):
        raise UnsupportedNeuroML(f"synapse {synapse.id!r}: kind {synapse.kind!r}")
    if synapse.tau_decay <= 0 or synapse.tau_rise < 0:
        raise UnsupportedNeuroML(f"synapse {synapse.id!r}: time constants must be positive")
    if synapse.tau_rise > 0 and synapse.tau_rise == synapse.tau_decay:
        raise UnsupportedNeuroML(f"synapse {synapse.id!r}: tau_rise = tau_decay has no peak normalisation")
    dual = synapse.tau_rise > 0
    block = synapse.kind == "exp2_block"
    stp = synapse.plasticity
    facilitates = stp is not None and stp.facilitates
    rng = ", tau_rise" if dual else ""
    params = ([f"    tau_rise = {_literal(synapse.tau_rise)} (ms)"] if dual else []) + [
        f"    tau_decay = {_literal(synapse.tau_decay)} (ms)", f"    e = {_literal(synapse.erev)} (mV)"]
    if block:
        params += [f"    block_conc = {_literal(synapse.block_concentration)} (mM)",
                   f"    scaling_conc = {_literal(synapse.block_scaling_conc)} (mM)",
                   f"    scaling_volt = {_literal(synapse.block_scaling_volt)} (mV)"]
    if stp is not None:
        if not (0 < stp.release <= 1 and stp.tau_rec > 0 and stp.tau_fac >= 0):
            raise UnsupportedNeuroML(f"synapse {synapse.id!r}: plasticity needs 0 < U <= 1, tau_rec > 0, tau_fac >= 0")
        params += [f"    release = {_literal(stp.release)}", f"    tau_rec = {_literal(stp.tau_rec)} (ms)"]
        if facilitates:
            params.append(f"    tau_fac = {_literal(stp.tau_fac)} (ms)")
    waveform = "B - A" if dual else "B"
    gating = f"({waveform})/(1 + block_conc/scaling_conc*exp(-v/scaling_volt))" if block else f"{waveform}"
    formula = ("g = (B - A)" if dual else "g = B") + (" * B(v)" if block else "") + ", i = g*(v - e)"
    factor = """    tp = (tau_rise*tau_decay)/(tau_decay - tau_rise)*log(tau_decay/tau_rise)
    factor = 1/(exp(-tp/tau_decay) - exp(-tp/tau_rise))""" if dual else "    factor = 1"
    ranges = ", block_conc, scaling_conc, scaling_volt" if block else ""
    if stp is not None:
        ranges += ", release, tau_rec" + (", tau_fac" if facilitates else "")
    title = "blockingPlasticSynapse" if block or stp is not None else "expTwoSynapse"
    if stp is None:
        receive = "NET_RECEIVE(weight (uS)) {\n"
        receive += ("    A = A + weight*factor\n" if dual else "") + "    B = B + weight*factor\n}\n"
        plastic_comment = ""
    else:
        u = "u" if facilitates else "release"
        lines = ["NET_RECEIVE(weight (uS), R, " + ("u, " if facilitates else "") + "tlast (ms)) {",
                 "    INITIAL {",
                 "        R = 1",
                 *(["        u = release"] if facilitates else []),
                 "        tlast = t",
                 "    }",
                 "    : recover since this NetCon's previous event (exact); the event uses the recovered state",
                 "    R = 1 - (1 - R)*exp(-(t - tlast)/tau_rec)",
                 *(["    u = release + (u - release)*exp(-(t - tlast)/tau_fac)"] if facilitates else []),
                 *([f"    A = A + weight*factor*{u}*R"] if dual else []),
                 f"    B = B + weight*factor*{u}*R",
                 "    : then the plasticity mechanism receives the event (NeuroML's relay)",
                 f"    R = R*(1 - {u})",
                 *(["    u = u + release*(1 - u)"] if facilitates else []),
                 "    tlast = t",
                 "}", ""]
        receive = "\n".join(lines)
        plastic_comment = f"""
Tsodyks-Markram {'depression and facilitation' if facilitates else 'depression'} (NeuroML {stp.mechanism}), state
per NetCon in its weight vector: R (resources) from 1{', u (release probability) from release' if facilitates else ''}
at finitialize. At an event: R {'and u recover' if facilitates else 'recovers'} exactly from the NetCon's previous event
(R -> 1 with tau_rec{', u -> release with tau_fac' if facilitates else ''}), the event adds
weight*factor*{u}*R, then R = R*(1 - {u}){', u = u + release*(1 - u)' if facilitates else ''}.
"""
    text = f"""TITLE {synapse.id}: NeuroML {title}, generated by livn

COMMENT
Generated by livn.targets.neuron.nmodl from the NeuroML synapse {synapse.id!r}; do not edit.
{formula}; B(v) = 1/(1 + block_conc/scaling_conc*exp(-v/scaling_volt)).
An event of NetCon weight w (uS) adds w*factor to {'A and B' if dual else 'B'}; factor normalises
the peak of one event's conductance to w (NeuroML's peak normalisation). Events sum linearly.
The NeuroML gbase ({synapse.gbase!r} uS) is not used: livn puts the whole conductance into the weight.{plastic_comment}
ENDCOMMENT

NEURON {{
    POINT_PROCESS {_NAME_PLACEHOLDER}
    NONSPECIFIC_CURRENT i
    RANGE tau_decay{rng}, e, g, i, factor{ranges}
    THREADSAFE
}}

UNITS {{
    (nA) = (nanoamp)
    (mV) = (millivolt)
    (uS) = (microsiemens)
    (mM) = (milli/liter)
}}

PARAMETER {{
{chr(10).join(params)}
}}

ASSIGNED {{
    v (mV)
    i (nA)
    g (uS)
    factor
}}

STATE {{
    {'A (uS) ' if dual else ''}B (uS)
}}

INITIAL {{
    LOCAL tp
{'    A = 0' + chr(10) if dual else ''}    B = 0
{factor}
}}

BREAKPOINT {{
{'' if block else '    CONDUCTANCE g' + chr(10)}    SOLVE state METHOD cnexp
    g = {gating}
    i = g*(v - e)
}}

DERIVATIVE state {{
{"    A' = -A/tau_rise" + chr(10) if dual else ''}    B' = -B/tau_decay
}}

{receive}"""
    return _named("point", synapse.id, text)


def relay_mechanism() -> Mechanism:
    """An artificial cell that emits a spike at every event it receives: a virtual node's
    spike train is played into it as NetCon events (its own gid, so ``gid_connect`` reaches it)."""
    text = f"""TITLE livn relay: a virtual node's spike source, generated by livn

COMMENT
Every event received at time t is re-emitted as this cell's spike at t (net_event): livn
schedules a virtual node's SONATA spike-train input as events onto its relay.
ENDCOMMENT

NEURON {{
    ARTIFICIAL_CELL {_NAME_PLACEHOLDER}
    THREADSAFE
}}

NET_RECEIVE(w) {{
    net_event(t)
}}
"""
    return _named("point", "livn_relay", text)


def noise_mechanism() -> Mechanism:
    """The Ornstein–Uhlenbeck point conductance (parameters are set per instance)."""
    text = f"""TITLE {OU_COMPONENT}: Ornstein-Uhlenbeck point conductance (Destexhe et al. 2001), generated by livn

COMMENT
Translation of the NeuroML ComponentType {OU_COMPONENT} (specs/noise/point_conductance.nml):
dg/dt = (g0 - g)/tau + sigma*sqrt(2/tau)*xi(t), i = max(g, 0)*(v - e), with the exact update over
each fixed step dt (Gillespie 1996), in INITIAL and then once per step (SOLVE update, in
NEURON's state update at the end of a step, when t is already the start of the next one):
    g <- g0 + (g - g0)*exp(-dt/tau) + sigma*sqrt(1 - exp(-2*dt/tau))*N(0,1)
N(0,1) = livn_gid_normal(seed, gid, stream, step) (livn/targets/gid_normal.py, the numbers the
Brian2 target draws too), step = round(t/dt): a run is determined by (seed, gid, stream,
parameters) alone. g is the OU process itself; the current takes its positive part g_active
(a conductance cannot be negative). Needs fixed-step integration (cvode.active(0)).
ENDCOMMENT

NEURON {{
    POINT_PROCESS {_NAME_PLACEHOLDER}
    NONSPECIFIC_CURRENT i
    RANGE g0, sigma, tau, e, g, g_active, i, seed, gid, stream
    THREADSAFE
}}

UNITS {{
    (nA) = (nanoamp)
    (mV) = (millivolt)
    (uS) = (microsiemens)
}}

PARAMETER {{
    g0 = 0 (uS)
    sigma = 0 (uS)
    tau = 1 (ms)
    e = 0 (mV)
    seed = 0
    gid = 0
    stream = 0
}}

ASSIGNED {{
    v (mV)
    dt (ms)
    i (nA)
    g (uS)
    g_active (uS)
    decay
    spread
    dt_used (ms)
    tau_used (ms)
    counter
    white
    odd_white
    odd_counter
}}

VERBATIM{C_SOURCE}ENDVERBATIM

INITIAL {{
    g = g0
    dt_used = -1
    odd_counter = -1
    update()
}}

BREAKPOINT {{
    CONDUCTANCE g_active
    SOLVE update
    if (g > 0) {{
        g_active = g
    }} else {{
        g_active = 0
    }}
    i = g_active*(v - e)
}}

PROCEDURE update() {{
    if (dt != dt_used || tau != tau_used) {{
        decay = exp(-dt/tau)
        spread = sqrt(1 - decay*decay)
        dt_used = dt
        tau_used = tau
    }}
    counter = floor(t/dt + 0.5)
    : only RANGE names inside VERBATIM: nocmodl and CoreNEURON's nmodl both translate those.
    : An even step computes the pair of normal numbers and keeps the odd step's.
VERBATIM
    if (counter == odd_counter) {{
        white = odd_white;
    }} else {{
        livn_gid_normal_pair((uint64_t)seed, (uint64_t)gid, (uint64_t)stream, ((uint64_t)counter) >> 1,
                             &white, &odd_white);
        if (((uint64_t)counter) & 1ULL) {{
            white = odd_white;
        }}
        odd_counter = counter + 1;
    }}
ENDVERBATIM
    g = g0 + (g - g0)*decay + sigma*spread*white
}}
"""
    return _named("point", OU_COMPONENT, text)


@dataclass(frozen=True)
class MechanismSet:
    """The mechanisms of a system (or of some cells and synapses).

    Attributes
    ----------
    channels : dict
        NeuroML channel id -> :class:`Mechanism` (density; ``SUFFIX`` = ``.name``) for
        channels with an ohmic, non-calcium current; ``"<channel id>:<variant>"`` for the
        other current variants (:data:`VARIANTS`; see :meth:`density`).
    synapses : dict
        receptor name (or synapse id) -> :class:`Mechanism` (point process).
    noise : Mechanism or None
        The OU point conductance, if the system has noise.
    pools : dict
        concentration model id -> :class:`Mechanism` (density; see :func:`pool_mechanism`).
    """

    channels: dict = field(default_factory=dict)
    synapses: dict = field(default_factory=dict)
    noise: Mechanism | None = None
    relay: Mechanism | None = None
    pools: dict = field(default_factory=dict)

    def all(self) -> list[Mechanism]:
        """Every distinct mechanism, sorted by name."""
        every = [*self.channels.values(), *self.synapses.values(), *self.pools.values()] + [
            m for m in (self.noise, self.relay) if m]
        found = {m.name: m for m in every}
        return [found[k] for k in sorted(found)]

    def files(self) -> dict[str, str]:
        """File name -> NMODL text."""
        return {m.filename: m.text for m in self.all()}

    def renamed(self, suffix: str) -> "MechanismSet":
        """The same mechanisms named ``<name>_<suffix>`` (the name appears in the text only as
        the SUFFIX / POINT_PROCESS, a token no other text contains)."""
        def one(m):
            if m is None:
                return None
            name = f"{m.name}_{suffix}"
            return Mechanism(name, m.kind, m.source, m.text.replace(m.name, name))
        return MechanismSet({k: one(m) for k, m in self.channels.items()},
                            {k: one(m) for k, m in self.synapses.items()}, one(self.noise), one(self.relay),
                            {k: one(m) for k, m in self.pools.items()})

    def channel(self, channel_id: str) -> str:
        """NEURON suffix of channel ``channel_id`` (ohmic, non-calcium current)."""
        return self.channels[channel_id].name

    def density(self, density) -> str:
        """NEURON suffix of a :class:`~livn.neuroml.cell.ChannelDensity` (its current variant)."""
        return self.channels[channel_key(density.channel.id, density_variant(density))].name

    def pool(self, model_id: str) -> str:
        """NEURON suffix of concentration model ``model_id``."""
        return self.pools[model_id].name

    def synapse(self, name: str) -> str:
        """NEURON point process name of receptor (or synapse) ``name``."""
        return self.synapses[name].name


def channel_key(channel_id: str, variant: str) -> str:
    """The key of a channel's mechanism in :attr:`MechanismSet.channels`."""
    return channel_id if variant == "ohmic" else f"{channel_id}:{variant}"


def mechanisms(cells=(), synapses=(), noise: bool = False, relay: bool = False) -> MechanismSet:
    """The mechanisms of ``cells`` (iterable of :class:`Cell`: channels in the current variant
    of each density, concentration models), ``synapses`` (iterable of :class:`Synapse`, keyed
    by their id, or a dict name -> Synapse) and, if ``noise``, the OU point conductance."""
    channels, pools = {}, {}
    for cell in cells:
        for density in cell.densities:
            mech = channel_mechanism(density.channel, density_variant(density))
            key = channel_key(density.channel.id, density_variant(density))
            old = channels.get(key)
            if old is not None and old.name != mech.name:
                raise UnsupportedNeuroML(f"two different channels with id {density.channel.id!r}")
            channels[key] = mech
        for species in cell.species:
            mech = pool_mechanism(species.model)
            old = pools.get(species.model.id)
            if old is not None and old.name != mech.name:
                raise UnsupportedNeuroML(f"two different concentration models with id {species.model.id!r}")
            pools[species.model.id] = mech
    items = synapses.items() if isinstance(synapses, dict) else ((s.id, s) for s in synapses)
    return MechanismSet(channels, {name: synapse_mechanism(s) for name, s in items},
                        noise_mechanism() if noise else None, relay_mechanism() if relay else None, pools)


def network_mechanisms(network) -> MechanismSet:
    """Every mechanism of a :class:`livn.network.NetworkModel`: the channels of its cells, one
    synapse per synapse type (keyed by its name) and the noise, if any."""
    return mechanisms(network.cells, dict(network.synapses), noise=bool(network.noise),
                      relay=len(getattr(network, "virtual_gids", ())) > 0)


def write_mechanisms(source, directory) -> list[Path]:
    """Write the ``.mod`` files of ``source`` (a :class:`MechanismSet` or a network model) into
    ``directory`` (created if needed); return their paths. Other files are left alone, but
    note that :func:`compile_mechanisms` compiles every ``.mod`` file of a directory."""
    mechs = source if isinstance(source, MechanismSet) else network_mechanisms(source)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in mechs.files().items():
        path = directory / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
        paths.append(path)
    return paths


def nrnivmodl() -> Path:
    """The ``nrnivmodl`` of this interpreter's NEURON."""
    path = Path(sys.executable).parent / "nrnivmodl"
    if not path.exists():
        found = shutil.which("nrnivmodl")
        if found is None:
            raise FileNotFoundError(f"nrnivmodl not found (looked for {path} and on PATH)")
        path = Path(found)
    return path


def _neuron_version() -> str:
    try:
        from importlib.metadata import version

        return version("neuron")
    except Exception:  # noqa: BLE001 - any NEURON install works, the hash just gets coarser
        return "unknown"


def mod_digest(files: dict[str, str], coreneuron: bool = False) -> str:
    """Hash of .mod files (name -> text), the NEURON version, the platform and the build kind."""
    kind = "coreneuron" if coreneuron else "neuron"
    digest = hashlib.sha256(
        f"livn-nrnmech-{NMODL_FORMAT}\n{_neuron_version()}\n{platform.machine()}\n{kind}\n".encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()


def cache_directory() -> Path:
    """Where compiled mechanisms are kept: ``$LIVN_NRNMECH_CACHE`` or ``<livn cache>/nrnmech``.

    Entries are named by :func:`mod_digest` (the .mod texts, NEURON's version, the platform),
    so one directory can serve several livn caches (the test suite's sessions share one)."""
    import os

    from ...system import cache_root

    setting = os.environ.get("LIVN_NRNMECH_CACHE")
    directory = Path(setting or cache_root() / "nrnmech").absolute()
    if directory.exists() and not directory.is_dir():
        where = "LIVN_NRNMECH_CACHE" if setting else "the livn cache's nrnmech"
        raise NotADirectoryError(f"{where} must be a directory for compiled mechanisms, found a file: {directory}")
    return directory


def _library(directory: Path, stem: str) -> Path | None:
    arch = Path(directory) / platform.machine()
    for name in (f"{stem}.so", f".libs/{stem}.so", f"{stem}.dylib", f".libs/{stem}.dylib"):
        if (arch / name).is_file():
            return arch / name
    return None


def _compiled(directory: Path, coreneuron: bool = False) -> bool:
    return _library(directory, "libnrnmech") is not None and (
        not coreneuron or _library(directory, "libcorenrnmech") is not None)


def compile_mod_files(files: dict[str, str], cache: Path | None = None, coreneuron: bool = False) -> Path:
    """Compile .mod files (name -> text) once: ``<cache>/<hash>`` holding the files and the
    ``nrnivmodl`` output (``<arch>/libnrnmech.so``, and ``<arch>/libcorenrnmech.so`` with
    ``coreneuron``: ``nrnivmodl -coreneuron``). Returns that directory (pass it to
    ``neuron.load_mechanisms``). Safe under concurrent callers (file lock, atomic rename)."""
    from filelock import FileLock

    if not files:
        raise ValueError("no .mod files to compile")
    cache = Path(cache) if cache is not None else cache_directory()
    target = cache / mod_digest(files, coreneuron)[:16]
    if _compiled(target, coreneuron):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if _compiled(target, coreneuron):
            return target
        tmp = cache / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            for name, text in files.items():
                (tmp / name).write_text(text)
            # the files named in order: NEURON registers the mechanisms in this order (a glob's
            # order would follow the locale), and the order is that of their currents' sum
            command = [str(nrnivmodl())] + (["-coreneuron", "."] if coreneuron else sorted(files))
            done = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=1800)
            if done.returncode != 0 or not _compiled(tmp, coreneuron):
                raise RuntimeError(f"{' '.join(command)} failed in {tmp} (exit {done.returncode}):\n"
                                   f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
            if target.exists():
                shutil.rmtree(target)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def compile_mechanisms(directory, cache: Path | None = None) -> Path:
    """Compile every ``.mod`` file of ``directory`` with ``nrnivmodl`` into a cache directory
    keyed by their contents (identical mechanisms compile once); return it. ``directory``
    itself is not touched (no ``x86_64/`` appears there)."""
    files = {p.name: p.read_text() for p in sorted(Path(directory).glob("*.mod"))}
    if not files:
        raise FileNotFoundError(f"no .mod files in {directory}")
    return compile_mod_files(files, cache)


#: mechanism name -> compiled directory it was loaded from, in this process, in the order NEURON
#: registered them
_LOADED: dict[str, Path] = {}


def _registered_in_order(mechs: "MechanismSet") -> bool:
    """Whether loading what is missing of ``mechs`` leaves the whole set registered in name
    order, the order of a process that loads them all at once.

    NEURON sums the currents of a segment's mechanisms in registration order, so a set
    registered in another order (some of it loaded earlier for another model) integrates
    differently in the last bits, which a recurrent network grows into other spikes."""
    names = [m.name for m in mechs.all()]
    present = [n for n in names if n in _LOADED or _declared(n)]
    if len(present) == len(names) and any(n not in _LOADED for n in present):
        return True  # loaded as a whole outside livn (a compiled directory): its own order
    if present != names[:len(present)] or any(n not in _LOADED for n in present):
        return False  # something missing would be registered after a mechanism it sorts before
    rank = {n: i for i, n in enumerate(_LOADED)}
    return all(rank[a] < rank[b] for a, b in zip(present, present[1:]))


def _declared(name: str) -> bool:
    from neuron import h

    return bool(h.name_declared(name))


#: the CoreNEURON mechanism library of this process (CoreNEURON takes the first one it finds)
_CORENEURON_LIBRARY: Path | None = None


def load_mechanisms(mechs: MechanismSet, cache: Path | None = None, coreneuron: bool = False) -> MechanismSet:
    """Make every mechanism of ``mechs`` usable in this process and return the set to use.

    Mechanisms already loaded (same name, hence same text) are skipped; the others are
    compiled together (cached, see :func:`compile_mod_files`) and loaded with
    ``neuron.load_mechanisms``. Every MPI rank must call this (each process loads its own
    library); they share the compiled directory.

    The set is registered in name order, the order of a fresh process, so its cells compute
    the same bits whatever was loaded before: if some of it was loaded earlier out of that
    order, the first copy of the whole set (names with suffix ``_r1``, ``_r2``, ...) in which
    it is in order is used, loaded if needed, and returned: use the returned names.

    With ``coreneuron``, every mechanism of ``mechs`` is also compiled for CoreNEURON and that
    library is loaded for CoreNEURON to find (instead of ``<arch>/libcorenrnmech.so`` in the
    working directory). CoreNEURON uses one mechanism library per process: a second, different
    set raises RuntimeError.
    """
    import neuron

    global _CORENEURON_LIBRARY
    copy = 0
    while not _registered_in_order(mechs.renamed(f"r{copy}") if copy else mechs):
        copy += 1  # out of order here: the first copy of the set (suffix _r1, _r2, ...) where it is in order
    mechs = mechs.renamed(f"r{copy}") if copy else mechs
    missing = {m.filename: m.text for m in mechs.all() if m.name not in _LOADED and not _declared(m.name)}
    if missing:
        directory = compile_mod_files(missing, cache)
        if not neuron.load_mechanisms(str(directory), warn_if_already_loaded=False):
            raise RuntimeError(f"NEURON could not load the mechanisms compiled in {directory}")
        for name in missing:
            _LOADED[name[:-4]] = directory
    for m in mechs.all():
        if not _declared(m.name):
            raise RuntimeError(f"mechanism {m.name} is not available after loading")
    if coreneuron:
        library = _library(compile_mod_files(mechs.files(), cache, coreneuron=True), "libcorenrnmech")
        if _CORENEURON_LIBRARY is None:
            import ctypes

            # global symbols: NEURON looks for an already loaded CoreNEURON before searching
            ctypes.CDLL(str(library), mode=os.RTLD_NOW | os.RTLD_GLOBAL)
            _CORENEURON_LIBRARY = library
        elif _CORENEURON_LIBRARY != library:
            raise RuntimeError(f"CoreNEURON already runs the mechanisms of {_CORENEURON_LIBRARY.parent.parent} in this "
                               f"process; it cannot load another set ({library.parent.parent}): use a new process")
    return mechs
