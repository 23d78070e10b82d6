"""NeuroML2 dynamics as simulator-neutral values: channels, synapses, cells, the noise type.

Read with lxml, so that every problem names the ``.nml`` file and line; every quantity is
parsed with its dimension checked (a time where a voltage belongs, a bare number, ``nan``
or an unknown unit is an error, never a silent conversion). Units inside this module:
mV, ms, 1/ms, µm, mS/cm², µF/cm², Ω·cm, µS, mM.

Supported NeuroML2 subset (anything else is refused with file and line):
``ionChannelHH`` / ``ionChannel`` / ``ionChannelPassive`` with gates ``gateHHrates``,
``gateHHtauInf``, ``gateHHInstantaneous`` (or ``<gate type=...>``); rates/variables
``HHExpRate``, ``HHSigmoidRate``, ``HHExpLinearRate``, ``HHSigmoidVariable``,
``HHExpVariable``; ``q10Fixed``; ``expTwoSynapse``, ``expOneSynapse``,
``blockingPlasticSynapse`` with a ``voltageConcDepBlockMechanism``; cells with
``channelDensity`` (fixed erev) on segment groups.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

#: NeuroML unit symbol -> (dimension, factor to livn's unit of that dimension)
NEUROML_UNITS = {
    "voltage": {"mV": 1.0, "V": 1e3, "uV": 1e-3},
    "time": {"ms": 1.0, "s": 1e3, "us": 1e-3},
    "per_time": {"per_ms": 1.0, "per_s": 1e-3, "Hz": 1e-3, "kHz": 1.0},
    "conductance_density": {"mS_per_cm2": 1.0, "S_per_cm2": 1e3, "S_per_m2": 0.1, "mS_per_m2": 1e-4,
                            "uS_per_cm2": 1e-3, "nS_per_um2": 1e5, "pS_per_um2": 100.0},
    "capacitance_density": {"uF_per_cm2": 1.0, "F_per_m2": 100.0, "nF_per_cm2": 1e-3},
    "resistivity": {"ohm_cm": 1.0, "kohm_cm": 1e3, "ohm_m": 100.0, "Mohm_cm": 1e6},
    "conductance": {"uS": 1.0, "nS": 1e-3, "pS": 1e-6, "mS": 1e3, "S": 1e6},
    "concentration": {"mM": 1.0, "M": 1e3, "uM": 1e-3, "mol_per_m3": 1.0, "mol_per_cm3": 1e6},
    "length": {"um": 1.0, "cm": 1e4, "mm": 1e3, "m": 1e6},
    "current": {"nA": 1.0, "pA": 1e-3, "uA": 1e3, "mA": 1e6, "A": 1e9},
    "none": {"": 1.0},
}

_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z_0-9]*)\s*$")

#: ids a target emits as identifiers must be plain identifiers
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class NeuroMLError(ValueError):
    """Problems in NeuroML files: ``problems`` is a list of (file, line, message)."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(f"{f}:{line or ''}: {m}" for f, line, m in self.problems))


class UnsupportedNeuroML(ValueError):
    """A NeuroML construct a target cannot translate (raised by a target's translator)."""


def _local(tag) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def quantity(element, attribute: str, dimension: str, required: bool = True, default: float | None = None) -> float:
    """``element``'s ``attribute`` as a finite number in livn's unit of ``dimension``."""
    text = element.get(attribute)
    where = (element.getroottree().docinfo.URL, element.sourceline)
    if text is None:
        if not required:
            return default
        raise NeuroMLError([(*where, f"<{_local(element.tag)} id={element.get('id')!r}> has no {attribute}")])
    match = _QUANTITY.match(text)
    units = NEUROML_UNITS[dimension]
    if not match or match.group(2) not in units:
        expected = ", ".join(u or "no unit" for u in units)
        raise NeuroMLError([(*where, f"{attribute}={text!r}: expected a {dimension.replace('_', ' ')} ({expected})")])
    value = float(match.group(1)) * units[match.group(2)]
    if not math.isfinite(value):
        raise NeuroMLError([(*where, f"{attribute}={text!r} is not finite")])
    return float(f"{value:.12g}")


class Document:
    """A NeuroML file with its includes: elements by id (first definition wins)."""

    def __init__(self, path: Path):
        self.path = Path(path).resolve()
        self.elements: dict[str, etree._Element] = {}
        self.component_types: dict[str, etree._Element] = {}
        self.files: list[Path] = []
        self._read(self.path)

    def _read(self, path: Path):
        if path in self.files:
            return
        self.files.append(path)
        try:
            tree = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
        except (OSError, etree.XMLSyntaxError) as err:
            raise NeuroMLError([(str(path), getattr(err, "lineno", None), f"cannot read NeuroML: {err}")]) from None
        for element in tree.getroot():
            tag = _local(element.tag)
            if tag == "include":
                target = (path.parent / element.get("href", "")).resolve()
                if not target.is_file():
                    raise NeuroMLError([(str(path), element.sourceline, f"included file {element.get('href')!r} not found")])
                self._read(target)
            elif tag == "ComponentType":
                self.component_types.setdefault(element.get("name"), element)
            elif element.get("id") is not None:
                self.elements.setdefault(element.get("id"), element)

    def find(self, element_id: str, tags=None):
        element = self.elements.get(element_id)
        if element is None or (tags and _local(element.tag) not in tags):
            return None
        return element

    def cells(self) -> list[str]:
        return [i for i, e in self.elements.items() if _local(e.tag) == "cell"]


_DOCUMENTS: dict = {}


def document(path) -> Document:
    """The parsed document at ``path``, re-read whenever it or a file it includes changed."""
    path = Path(path).resolve()
    cached = _DOCUMENTS.get(path)
    if cached is not None:
        doc, stamps = cached
        if all(_stamp(f) == s for f, s in stamps):
            return doc
    doc = Document(path)
    _DOCUMENTS[path] = (doc, [(f, _stamp(f)) for f in doc.files])
    return doc


def _stamp(path: Path):
    try:
        st = os.stat(path)
        return st.st_mtime_ns, st.st_size
    except OSError:
        return None


def _where(element) -> tuple:
    return element.getroottree().docinfo.URL, element.sourceline


# -- channels ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Rate:
    """A standard HH rate or variable: kind, rate (1/ms, or dimensionless for variables),
    midpoint (mV), scale (mV)."""

    kind: str
    rate: float
    midpoint: float
    scale: float

    def expression(self, v: str, exprel: str = "exprel") -> str:
        """The rate as arithmetic in ``v`` (mV, a plain number), result in 1/ms or 1.

        ``HHExpLinearRate`` x/(1 - exp(-x)) = 1/exprel(-x), with exprel(y) = (exp(y) - 1)/y,
        which simulators evaluate without the removable singularity at x = 0.
        """
        r, m, s = f"{self.rate!r}", f"{self.midpoint!r}", f"{self.scale!r}"
        x = f"(({v}) - ({m}))/({s})"
        if self.kind in ("HHExpRate", "HHExpVariable"):
            return f"{r}*exp({x})"
        if self.kind in ("HHSigmoidRate", "HHSigmoidVariable"):
            return f"{r}/(1 + exp(-{x}))"
        return f"{r}/{exprel}(-{x})"

    def value(self, v):
        """The rate at ``v`` (mV, number or array)."""
        import numpy as np

        x = (np.asarray(v, dtype=float) - self.midpoint) / self.scale
        if self.kind in ("HHExpRate", "HHExpVariable"):
            return self.rate * np.exp(x)
        if self.kind in ("HHSigmoidRate", "HHSigmoidVariable"):
            return self.rate / (1 + np.exp(-x))
        safe = np.where(np.abs(x) < 1e-9, 1e-9, x)
        return self.rate * np.where(np.abs(x) < 1e-9, 1 + x / 2, safe / (1 - np.exp(-safe)))


RATE_KINDS = {"HHExpRate", "HHSigmoidRate", "HHExpLinearRate"}
VARIABLE_KINDS = {"HHSigmoidVariable", "HHExpVariable"}


@dataclass(frozen=True)
class Gate:
    """An HH gate: ``kind`` is "rates", "tauInf" or "instantaneous"; ``q10`` multiplies rates."""

    name: str
    kind: str
    instances: int
    forward: Rate | None = None
    reverse: Rate | None = None
    steady_state: Rate | None = None
    time_course: Rate | None = None
    q10: float = 1.0

    def relaxation_rate(self, v):
        """How fast the gate approaches its steady state at ``v`` (mV): q10·(α + β) or q10/τ, 1/ms."""
        if self.kind == "rates":
            return self.q10 * (self.forward.value(v) + self.reverse.value(v))
        if self.kind == "tauInf":
            return self.q10 / self.time_course.value(v)
        raise ValueError(f"gate {self.name}: an instantaneous gate has no relaxation rate")

    def steady(self, v):
        """Steady-state value of the gate at ``v`` (mV)."""
        if self.kind == "rates":
            a, b = self.forward.value(v), self.reverse.value(v)
            return a / (a + b)
        return self.steady_state.value(v)


@dataclass(frozen=True)
class Channel:
    """An ion channel; ``file`` and ``line`` say where it is defined."""

    id: str
    species: str | None
    gates: tuple
    file: str = field(default="", compare=False)
    line: int | None = field(default=None, compare=False)


def _rate(element, variable: bool = False) -> Rate | None:
    if element is None:
        return None
    kind = element.get("type")
    allowed = VARIABLE_KINDS if variable else RATE_KINDS
    if kind not in allowed:
        raise NeuroMLError([(*_where(element), f"<{_local(element.tag)} type={kind!r}>: supported types are "
                                               f"{', '.join(sorted(allowed))}")])
    rate = quantity(element, "rate", "none" if variable else "per_time")
    scale = quantity(element, "scale", "voltage")
    if scale == 0:
        raise NeuroMLError([(*_where(element), "scale must not be 0 mV")])
    return Rate(kind, rate, quantity(element, "midpoint", "voltage"), scale)


_GATE_KINDS = {"gateHHrates": "rates", "gateHHtauInf": "tauInf", "gateHHInstantaneous": "instantaneous"}


def _gate(element) -> Gate:
    tag = _local(element.tag)
    kind = _GATE_KINDS.get(element.get("type") if tag == "gate" else tag)
    if kind is None:
        raise NeuroMLError([(*_where(element), f"gate {element.get('id')!r}: type "
                                               f"{element.get('type') or tag!r} is not supported "
                                               f"(supported: {', '.join(_GATE_KINDS)})")])
    name = element.get("id") or ""
    if not IDENTIFIER.match(name):
        raise NeuroMLError([(*_where(element), f"gate id {name!r} is not an identifier (letters, digits, _)")])
    try:
        instances = int(element.get("instances", "1"))
    except ValueError:
        instances = -1
    if instances < 1:
        raise NeuroMLError([(*_where(element), f"gate {name}: instances must be a positive integer, "
                                               f"found {element.get('instances')!r}")])
    children = {_local(c.tag): c for c in element}
    q10 = 1.0
    if "q10Settings" in children:
        q = children["q10Settings"]
        if q.get("type") != "q10Fixed":
            raise NeuroMLError([(*_where(q), f"q10Settings type {q.get('type')!r} is not supported (use q10Fixed)")])
        q10 = quantity(q, "fixedQ10", "none")
    gate = Gate(name, kind, instances, _rate(children.get("forwardRate")), _rate(children.get("reverseRate")),
                _rate(children.get("steadyState"), variable=True), _rate(children.get("timeCourse")), q10)
    need = {"rates": ("forward", "reverse"), "tauInf": ("steady_state", "time_course"),
            "instantaneous": ("steady_state",)}[kind]
    missing = [n for n in need if getattr(gate, n) is None]
    if missing:
        raise NeuroMLError([(*_where(element), f"gate {name} ({kind}) needs "
                                               f"{', '.join(m.replace('_', ' ') for m in missing)}")])
    return gate


CHANNEL_TAGS = {"ionChannelHH", "ionChannel", "ionChannelPassive"}


def read_channel(doc: Document, channel_id: str, where=None) -> Channel:
    element = doc.find(channel_id)
    if element is not None and _local(element.tag) not in CHANNEL_TAGS:
        raise NeuroMLError([(*_where(element), f"<{_local(element.tag)} id={channel_id!r}> is not a supported ion "
                                               f"channel (supported: {', '.join(sorted(CHANNEL_TAGS))})")])
    if element is None:
        raise NeuroMLError([(*(where or (str(doc.path), None)), f"ion channel {channel_id!r} not found "
                                                                f"(in {doc.path.name} and its includes)")])
    if not IDENTIFIER.match(channel_id):
        raise NeuroMLError([(*_where(element), f"channel id {channel_id!r} is not an identifier")])
    gates = []
    for child in element:
        tag = _local(child.tag)
        if tag in ("gate", *_GATE_KINDS):
            gates.append(_gate(child))
        elif tag.startswith("gate"):
            raise NeuroMLError([(*_where(child), f"<{tag}> is not supported (supported: {', '.join(_GATE_KINDS)})")])
    return Channel(channel_id, element.get("species"), tuple(gates), *_where(element))


# -- synapses ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Synapse:
    """A conductance synapse: g(t) = weight · s(t), peak s = 1 for a single spike (µS per unit weight).

    ``kind`` is "exp2" (dual exponential; ``tau_rise`` 0 means single exponential) or
    "exp2_block" (dual exponential × Mg²⁺ block B(V) = 1 / (1 + [Mg]/scaling_conc ·
    exp(−V / scaling_volt))).
    """

    id: str
    kind: str
    tau_rise: float
    tau_decay: float
    erev: float
    gbase: float = 0.0  # µS
    block_concentration: float = 0.0  # mM
    block_scaling_conc: float = 1.0  # mM
    block_scaling_volt: float = 1.0  # mV

    @property
    def peak_factor(self) -> float:
        """Normalisation so that a dual exponential peaks at 1 (NeuroML expTwoSynapse, NEURON Exp2Syn)."""
        if self.tau_rise <= 0:
            return 1.0
        if math.isclose(self.tau_rise, self.tau_decay):
            return math.e  # the limit: an alpha function t/τ·e^{−t/τ} peaks at 1/e
        t_peak = self.tau_rise * self.tau_decay / (self.tau_decay - self.tau_rise) * math.log(self.tau_decay / self.tau_rise)
        return 1.0 / (math.exp(-t_peak / self.tau_decay) - math.exp(-t_peak / self.tau_rise))


SYNAPSE_TAGS = {"expTwoSynapse", "expOneSynapse", "blockingPlasticSynapse"}


def read_synapse(path, synapse_id: str) -> Synapse:
    """The synapse ``synapse_id`` of NeuroML file ``path``."""
    doc = document(path)
    element = doc.find(synapse_id)
    if element is None:
        raise NeuroMLError([(str(doc.path), None, f"synapse {synapse_id!r} not found")])
    tag = _local(element.tag)
    if tag not in SYNAPSE_TAGS:
        raise NeuroMLError([(*_where(element), f"<{tag} id={synapse_id!r}> is not a supported synapse "
                                               f"(supported: {', '.join(sorted(SYNAPSE_TAGS))})")])
    tau_rise = quantity(element, "tauRise", "time") if tag != "expOneSynapse" else 0.0
    tau_decay = quantity(element, "tauDecay", "time")
    if tau_decay <= 0 or tau_rise < 0 or (tau_rise > 0 and tau_rise >= tau_decay and tag != "expOneSynapse"):
        raise NeuroMLError([(*_where(element), f"synapse {synapse_id}: need 0 <= tauRise < tauDecay, "
                                               f"found {tau_rise:g} ms, {tau_decay:g} ms")])
    common = dict(tau_rise=tau_rise, tau_decay=tau_decay, erev=quantity(element, "erev", "voltage"),
                  gbase=quantity(element, "gbase", "conductance"))
    if tag != "blockingPlasticSynapse":
        return Synapse(synapse_id, "exp2", **common)
    children = {_local(c.tag): c for c in element}
    block = children.get("blockMechanism")
    if block is None or block.get("type") != "voltageConcDepBlockMechanism":
        raise NeuroMLError([(*_where(block if block is not None else element),
                             f"synapse {synapse_id}: only a voltageConcDepBlockMechanism block is supported")])
    plastic = children.get("plasticityMechanism")
    if plastic is not None and float(plastic.get("initReleaseProb", "1") or 1) != 1:
        raise NeuroMLError([(*_where(plastic), f"synapse {synapse_id}: plasticity is not supported")])
    return Synapse(synapse_id, "exp2_block", **common,
                   block_concentration=quantity(block, "blockConcentration", "concentration"),
                   block_scaling_conc=quantity(block, "scalingConc", "concentration"),
                   block_scaling_volt=quantity(block, "scalingVolt", "voltage"))


# -- the noise ComponentType ------------------------------------------------------------
#: parameters (name -> dimension) a point-conductance (Ornstein–Uhlenbeck) noise type declares
OU_PARAMETERS = {"g0": "conductance", "sigma": "conductance", "tau": "time", "erev": "voltage"}


@dataclass(frozen=True)
class NoiseType:
    """An Ornstein–Uhlenbeck conductance ComponentType: its name and parameter dimensions."""

    name: str
    parameters: dict
    file: str


def read_noise_type(path) -> NoiseType:
    """The OU conductance ComponentType defined in ``path``.

    It must extend ``baseVoltageDepPointCurrent`` and declare g0, sigma (conductance), tau
    (time) and erev (voltage), with a TimeDerivative of its state g that relaxes to g0 with
    tau: the targets integrate it with the exact OU update (see the file's notes).
    """
    doc = document(path)
    problems = []
    for name, element in doc.component_types.items():
        params = {p.get("name"): p.get("dimension") for p in element if _local(p.tag) == "Parameter"}
        if not set(OU_PARAMETERS) <= set(params):
            continue
        for key, dimension in OU_PARAMETERS.items():
            if params[key] != dimension:
                problems.append((*_where(element), f"ComponentType {name}: parameter {key} must have dimension "
                                                   f"{dimension}, found {params[key]}"))
        derivative = [d for d in element.iter() if _local(d.tag) == "TimeDerivative" and d.get("variable") == "g"]
        if not derivative or not re.search(r"\(\s*g0\s*-\s*g\s*\)\s*/\s*tau", derivative[0].get("value", "")):
            problems.append((*_where(element), f"ComponentType {name}: expected TimeDerivative of g with "
                                               f"(g0 - g) / tau + noise (an Ornstein–Uhlenbeck conductance)"))
        if problems:
            raise NeuroMLError(problems)
        return NoiseType(name, params, str(doc.path))
    raise NeuroMLError([(str(doc.path), None, "no ComponentType with parameters g0, sigma, tau, erev "
                                              "(an Ornstein–Uhlenbeck conductance) in this file")])
