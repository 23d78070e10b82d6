"""NeuroML2 dynamics as simulator-neutral values: channels, synapses, cells, the noise type.

Read with lxml, so that every problem names the ``.nml`` file and line; every quantity is
parsed with its dimension checked (a time where a voltage belongs, a bare number, ``nan``
or an unknown unit is an error, never a silent conversion). Units inside this module:
mV, ms, 1/ms, µm, mS/cm², µF/cm², Ω·cm, µS, mM.

Supported NeuroML2 subset (anything else is refused with file and line):
``ionChannelHH`` / ``ionChannel`` / ``ionChannelPassive`` with gates ``gateHHrates``,
``gateHHtauInf``, ``gateHHInstantaneous``, ``gateHHratesInf``, ``gateHHratesTau``,
``gateHHratesTauInf`` (or ``<gate type=...>``); rates/variables ``HHExpRate``,
``HHSigmoidRate``, ``HHExpLinearRate``, ``HHSigmoidVariable``, ``HHExpVariable``; time courses
``fixedTimeCourse``; custom ComponentTypes extending the base rate, variable and time types
(``baseVoltage[Conc]Dep{Rate,Variable,Time}``, read by :mod:`livn.neuroml.lems`: Constants,
Parameters rate/midpoint/scale/tau, DerivedVariables and ConditionalDerivedVariables through a
restricted expression parser); ``q10Fixed``, ``q10ExpTemp``, ``q10ConductanceScaling``;
``expTwoSynapse``, ``expOneSynapse``, ``blockingPlasticSynapse`` with a
``voltageConcDepBlockMechanism`` and/or a Tsodyks–Markram ``plasticityMechanism``
(``tsodyksMarkramDepMechanism``, ``tsodyksMarkramDepFacMechanism``; :class:`Plasticity`);
cells with ``channelDensity`` (fixed erev), ``channelDensityNernst`` and
``channelDensityGHK2`` (calcium) on segment groups, and calcium ``species`` with a
``decayingPoolConcentrationModel`` or ``fixedFactorConcentrationModel`` (:mod:`livn.neuroml.cell`).

Temperature: kinetics that depend on it (q10ExpTemp, custom types reading ``temperature``,
Nernst and GHK potentials) take it as an argument in °C — the network's temperature
(NeuroML's ``networkWithTemperature``; in livn the circuit's), never a per-cell value.
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
        name = f" id={element.get('id')!r}" if element.get("id") is not None else ""
        raise NeuroMLError([(*where, f"<{_local(element.tag)}{name}> has no {attribute}")])
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
    """A rate, steady state or time course of a gate.

    ``kind`` is a standard HH form ("HHExpRate", "HHSigmoidRate", "HHExpLinearRate": ``rate``
    in 1/ms; "HHSigmoidVariable", "HHExpVariable": ``rate`` dimensionless; ``midpoint`` and
    ``scale`` in mV), "fixedTimeCourse" (``rate`` holds τ in ms), or "custom" (a custom
    ComponentType, :class:`~livn.neuroml.lems.CustomType` in ``custom``).
    """

    kind: str
    rate: float
    midpoint: float
    scale: float
    custom: object = None

    @property
    def inputs(self) -> frozenset:
        """What the value depends on besides v: "caConc" and/or "temperature"."""
        return self.custom.inputs - {"v"} if self.custom is not None else frozenset()

    def expression(self, v: str, exprel: str = "exprel") -> str:
        """The rate as arithmetic in ``v`` (mV, a plain number), result in 1/ms, 1 or ms.

        ``HHExpLinearRate`` x/(1 - exp(-x)) = 1/exprel(-x), with exprel(y) = (exp(y) - 1)/y,
        which simulators evaluate without the removable singularity at x = 0. A custom
        ComponentType has no single expression: it raises UnsupportedNeuroML (targets that
        translate them emit functions, see :meth:`livn.neuroml.lems.CustomType.nmodl_function`).
        """
        if self.kind == "custom":
            raise UnsupportedNeuroML(f"ComponentType {self.custom.name} ({self.custom.file}:{self.custom.line}) is "
                                     f"a custom LEMS type, which this target does not translate")
        if self.kind == "fixedTimeCourse":
            return repr(self.rate)
        r, m, s = f"{self.rate!r}", f"{self.midpoint!r}", f"{self.scale!r}"
        x = f"(({v}) - ({m}))/({s})"
        if self.kind in ("HHExpRate", "HHExpVariable"):
            return f"{r}*exp({x})"
        if self.kind in ("HHSigmoidRate", "HHSigmoidVariable"):
            return f"{r}/(1 + exp(-{x}))"
        return f"{r}/{exprel}(-{x})"

    def value(self, v, cai=None, temperature=None):
        """The rate at ``v`` (mV, number or array); ``cai`` (mM) and ``temperature`` (°C) for
        custom types that read them."""
        import numpy as np

        if self.kind == "custom":
            return self.custom.evaluate(v, cai=cai, temperature=temperature)
        if self.kind == "fixedTimeCourse":
            return np.full(np.shape(v), self.rate) if np.ndim(v) else self.rate
        x = (np.asarray(v, dtype=float) - self.midpoint) / self.scale
        if self.kind in ("HHExpRate", "HHExpVariable"):
            return self.rate * np.exp(x)
        if self.kind in ("HHSigmoidRate", "HHSigmoidVariable"):
            return self.rate / (1 + np.exp(-x))
        safe = np.where(np.abs(x) < 1e-9, 1e-9, x)
        return self.rate * np.where(np.abs(x) < 1e-9, 1 + x / 2, safe / (1 - np.exp(-safe)))


RATE_KINDS = {"HHExpRate", "HHSigmoidRate", "HHExpLinearRate"}
VARIABLE_KINDS = {"HHSigmoidVariable", "HHExpVariable"}
TIME_KINDS = {"fixedTimeCourse"}
#: the role of each rate element of a gate, and the standard types it may name
ROLES = {"forwardRate": ("rate", RATE_KINDS), "reverseRate": ("rate", RATE_KINDS),
         "steadyState": ("variable", VARIABLE_KINDS), "timeCourse": ("time", TIME_KINDS)}


@dataclass(frozen=True)
class Gate:
    """An HH gate x, dx/dt = (x∞ − x)/τ, open fraction x^instances.

    ``kind`` says where x∞ and τ come from (NeuroML's gate types; α = forward, β = reverse,
    s = rate scale = ``q10`` × Π q10Factor^((T − experimentalTemp)/10 K)):

    - "rates" (gateHHrates): x∞ = α/(α + β), τ = 1/(s(α + β))
    - "ratesInf" (gateHHratesInf): x∞ = steady state, τ = 1/(s(α + β))
    - "ratesTau" (gateHHratesTau): x∞ = α/(α + β), τ = time course/s
    - "tauInf" (gateHHtauInf) and "ratesTauInf" (gateHHratesTauInf): x∞ = steady state,
      τ = time course/s
    - "instantaneous" (gateHHInstantaneous): x = steady state

    ``q10`` is the gate's q10Fixed factor (1 without one); ``q10_temperature`` holds
    (q10Factor, experimentalTemp °C) of its q10ExpTemp (empty without one).
    """

    name: str
    kind: str
    instances: int
    forward: Rate | None = None
    reverse: Rate | None = None
    steady_state: Rate | None = None
    time_course: Rate | None = None
    q10: float = 1.0
    q10_temperature: tuple = ()
    file: str = field(default="", compare=False)
    line: int | None = field(default=None, compare=False)

    #: which rates each kind needs
    NEEDS = {"rates": ("forward", "reverse"), "ratesInf": ("forward", "reverse", "steady_state"),
             "ratesTau": ("forward", "reverse", "time_course"), "tauInf": ("steady_state", "time_course"),
             "ratesTauInf": ("forward", "reverse", "steady_state", "time_course"),
             "instantaneous": ("steady_state",)}

    @property
    def rates(self) -> tuple:
        """The gate's rate objects (forward, reverse, steady state, time course that it has)."""
        return tuple(r for r in (self.forward, self.reverse, self.steady_state, self.time_course) if r is not None)

    @property
    def inputs(self) -> frozenset:
        """What the gate depends on besides v: "caConc" and/or "temperature"."""
        out = frozenset().union(*(r.inputs for r in self.rates))
        return out | {"temperature"} if self.q10_temperature else out

    @property
    def infinity_from_rates(self) -> bool:
        return self.kind in ("rates", "ratesTau")

    @property
    def tau_from_rates(self) -> bool:
        return self.kind in ("rates", "ratesInf")

    def rate_scale(self, temperature=None) -> float:
        """s: the factor on 1/τ (q10Fixed × q10ExpTemp at ``temperature`` °C)."""
        scale = self.q10
        for factor, experimental in self.q10_temperature:
            if temperature is None:
                raise ValueError(f"gate {self.name} has a q10ExpTemp ({self.file}:{self.line}): give the temperature")
            scale = scale * factor ** (((temperature + 273.15) - (experimental + 273.15)) / 10.0)
        return scale

    def tau(self, v, cai=None, temperature=None):
        """τ at ``v`` (mV), ms (``cai`` mM, ``temperature`` °C where the gate reads them)."""
        s = self.rate_scale(temperature)
        if self.kind == "instantaneous":
            raise ValueError(f"gate {self.name}: an instantaneous gate has no time constant")
        if self.tau_from_rates:
            return 1.0 / (s * (self.forward.value(v, cai, temperature) + self.reverse.value(v, cai, temperature)))
        return self.time_course.value(v, cai, temperature) / s

    def relaxation_rate(self, v, cai=None, temperature=None):
        """How fast the gate approaches its steady state at ``v`` (mV): q10·(α + β) or q10/τ, 1/ms."""
        if self.kind == "rates":
            return self.q10 * (self.forward.value(v) + self.reverse.value(v)) if not self.q10_temperature \
                else 1.0 / self.tau(v, cai, temperature)
        if self.kind == "tauInf" and not self.q10_temperature and not self.inputs:
            return self.q10 / self.time_course.value(v)
        if self.kind == "instantaneous":
            raise ValueError(f"gate {self.name}: an instantaneous gate has no relaxation rate")
        return 1.0 / self.tau(v, cai, temperature)

    def steady(self, v, cai=None, temperature=None):
        """Steady-state value of the gate at ``v`` (mV) (``cai`` mM, ``temperature`` °C)."""
        if self.infinity_from_rates:
            a, b = self.forward.value(v, cai, temperature), self.reverse.value(v, cai, temperature)
            return a / (a + b)
        return self.steady_state.value(v, cai, temperature)


@dataclass(frozen=True)
class Channel:
    """An ion channel; ``file`` and ``line`` say where it is defined.

    ``conductance_scaling`` holds (q10Factor, experimentalTemp °C) of each
    ``q10ConductanceScaling``: g = gmax · Π q10Factor^((T − experimentalTemp)/10 K) · Π gates.
    """

    id: str
    species: str | None
    gates: tuple
    file: str = field(default="", compare=False)
    line: int | None = field(default=None, compare=False)
    conductance_scaling: tuple = ()

    @property
    def inputs(self) -> frozenset:
        """What the channel's kinetics read besides v: "caConc" and/or "temperature"."""
        out = frozenset().union(*(g.inputs for g in self.gates))
        return out | {"temperature"} if self.conductance_scaling else out

    def conductance_scale(self, temperature=None) -> float:
        """The q10ConductanceScaling factor at ``temperature`` (°C); 1 without one."""
        scale = 1.0
        for factor, experimental in self.conductance_scaling:
            if temperature is None:
                raise ValueError(f"channel {self.id} has a q10ConductanceScaling: give the temperature")
            scale *= factor ** (((temperature + 273.15) - (experimental + 273.15)) / 10.0)
        return scale

    def beyond_hh(self) -> list[tuple]:
        """[(file, line, description)] of what the channel uses beyond standard HH gates with
        fixed q10 (what a target without LEMS support must refuse); empty if nothing."""
        found: dict = {}
        if self.conductance_scaling:
            found["q10ConductanceScaling"] = []
        for g in self.gates:
            if g.kind not in ("rates", "tauInf", "instantaneous"):
                found.setdefault(next(k for k, v in _GATE_KINDS.items() if v == g.kind), []).append(g.name)
            if g.q10_temperature:
                found.setdefault("q10ExpTemp", []).append(g.name)
            for r in g.rates:
                if r.kind == "fixedTimeCourse":
                    found.setdefault("fixedTimeCourse", []).append(g.name)
                elif r.kind == "custom":
                    label = f"custom ComponentType {r.custom.name} at {Path(r.custom.file).name}:{r.custom.line}"
                    found.setdefault(label, []).append(g.name)
        if not found:
            return []
        parts = [f"{what} (gate{'s' if len(gates) > 1 else ''} {', '.join(dict.fromkeys(gates))})" if gates else what
                 for what, gates in found.items()]
        return [(self.file, self.line, f"channel {self.id}: {'; '.join(parts)}")]


def _problem(element, message: str) -> NeuroMLError:
    return NeuroMLError([(*_where(element), message)])


def _rate(doc, element, role_tag: str) -> Rate | None:
    """The rate element ``element`` (a forwardRate, reverseRate, steadyState or timeCourse)."""
    if element is None:
        return None
    role, standard = ROLES[role_tag]
    kind = element.get("type")
    if kind in standard:
        if kind == "fixedTimeCourse":
            tau = quantity(element, "tau", "time")
            if tau <= 0:
                raise _problem(element, f"fixedTimeCourse tau must be > 0 ms, found {element.get('tau')!r}")
            return Rate(kind, tau, 0.0, 0.0)
        rate = quantity(element, "rate", "none" if role == "variable" else "per_time")
        scale = quantity(element, "scale", "voltage")
        if scale == 0:
            raise _problem(element, "scale must not be 0 mV")
        return Rate(kind, rate, quantity(element, "midpoint", "voltage"), scale)
    custom = doc.component_types.get(kind) if kind else None
    if custom is None:
        other = sorted(k for r, ks in ROLES.values() for k in ks if r != role)
        found = " (a standard type of another role)" if kind in other else ""
        raise _problem(element, f"<{_local(element.tag)} type={kind!r}>{found}: expected a {role}: one of "
                                f"{', '.join(sorted(standard))}, or a ComponentType defined in the file or its "
                                f"includes that extends a base {role} type")
    from .lems import read_custom

    return Rate("custom", 0.0, 0.0, 0.0, read_custom(custom, element, role, _problem))


_GATE_KINDS = {"gateHHrates": "rates", "gateHHtauInf": "tauInf", "gateHHInstantaneous": "instantaneous",
               "gateHHratesInf": "ratesInf", "gateHHratesTau": "ratesTau", "gateHHratesTauInf": "ratesTauInf"}
_ATTRIBUTE = {"forwardRate": "forward", "reverseRate": "reverse", "steadyState": "steady_state",
              "timeCourse": "time_course"}


def _q10(element) -> tuple[float, tuple]:
    """(q10Fixed factor, ((q10Factor, experimentalTemp °C),)) of a gate's q10Settings (at most one)."""
    fixed, by_temperature = 1.0, []
    settings = [q for q in element if _local(q.tag) == "q10Settings"]
    if len(settings) > 1:
        raise _problem(settings[1], f"gate {element.get('id')}: more than one <q10Settings> (NeuroML allows one)")
    for q in settings:
        if q.get("type") == "q10Fixed":
            fixed *= quantity(q, "fixedQ10", "none")
        elif q.get("type") == "q10ExpTemp":
            by_temperature.append(_q10_exp_temp(q))
        else:
            raise _problem(q, f"q10Settings type {q.get('type')!r} is not supported (supported: q10Fixed, q10ExpTemp)")
    return fixed, tuple(by_temperature)


def _q10_exp_temp(element) -> tuple[float, float]:
    """(q10Factor, experimentalTemp in °C) of a q10ExpTemp or q10ConductanceScaling."""
    from .lems import ExpressionError, ZERO_CELSIUS, si_value

    factor = quantity(element, "q10Factor", "none")
    if factor <= 0:
        raise _problem(element, f"q10Factor must be > 0, found {element.get('q10Factor')!r}")
    try:
        kelvin = si_value(element.get("experimentalTemp"), "temperature")[0]
    except ExpressionError as err:
        raise _problem(element, f"experimentalTemp: {err}") from None
    return factor, kelvin - ZERO_CELSIUS


def _gate(doc, element) -> Gate:
    tag = _local(element.tag)
    kind = _GATE_KINDS.get(element.get("type") if tag == "gate" else tag)
    if kind is None:
        raise _problem(element, f"gate {element.get('id')!r}: type {element.get('type') or tag!r} is not supported "
                                f"(supported: {', '.join(_GATE_KINDS)})")
    name = element.get("id") or ""
    if not IDENTIFIER.match(name):
        raise _problem(element, f"gate id {name!r} is not an identifier (letters, digits, _)")
    try:
        instances = int(element.get("instances", "1"))
    except ValueError:
        instances = -1
    if instances < 1:
        raise _problem(element, f"gate {name}: instances must be a positive integer, found {element.get('instances')!r}")
    rates = {}
    for child in element:
        child_tag = _local(child.tag)
        if child_tag in _ATTRIBUTE:
            if _ATTRIBUTE[child_tag] in rates:
                raise _problem(child, f"gate {name}: more than one <{child_tag}>")
            rates[_ATTRIBUTE[child_tag]] = _rate(doc, child, child_tag)
        elif child_tag not in ("q10Settings", "notes", "annotation", ""):
            raise _problem(child, f"gate {name}: <{child_tag}> is not supported in a gate")
    need = Gate.NEEDS[kind]
    missing = [n for n in need if n not in rates]
    extra = [n for n in rates if n not in need]
    if missing or extra:
        label = [k for k, v in _GATE_KINDS.items() if v == kind][0]
        inverse = {v: k for k, v in _ATTRIBUTE.items()}
        raise _problem(element, f"gate {name} ({label}) needs {', '.join(inverse[n] for n in need)}; "
                                + (f"missing {', '.join(inverse[n] for n in missing)}" if missing else
                                   f"{', '.join(inverse[n] for n in extra)} does not belong to it"))
    fixed, by_temperature = _q10(element)
    if kind == "instantaneous" and (fixed != 1.0 or by_temperature):
        raise _problem(element, f"gate {name}: an instantaneous gate has no time course for q10Settings to scale")
    return Gate(name, kind, instances, q10=fixed, q10_temperature=by_temperature, file=_where(element)[0],
                line=element.sourceline, **rates)


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
    gates, scaling = [], []
    for child in element:
        tag = _local(child.tag)
        if tag in ("gate", *_GATE_KINDS):
            gates.append(_gate(doc, child))
        elif tag.startswith("gate"):
            raise NeuroMLError([(*_where(child), f"<{tag}> is not supported (supported: {', '.join(_GATE_KINDS)})")])
        elif tag == "q10ConductanceScaling":
            scaling.append(_q10_exp_temp(child))
        elif tag.endswith("ConductanceScaling") or tag == "conductanceScaling":
            raise NeuroMLError([(*_where(child), f"<{tag}> is not supported (supported: q10ConductanceScaling)")])
    names = [g.name for g in gates]
    if len(set(names)) != len(names):
        raise NeuroMLError([(*_where(element), f"channel {channel_id}: gate ids repeat ({', '.join(names)})")])
    return Channel(channel_id, element.get("species"), tuple(gates), *_where(element), tuple(scaling))


# -- synapses ---------------------------------------------------------------------------
#: NeuroML plasticity mechanism types -> whether the release probability facilitates
PLASTICITY_TYPES = {"tsodyksMarkramDepMechanism": False, "tsodyksMarkramDepFacMechanism": True}


@dataclass(frozen=True)
class Plasticity:
    """Tsodyks–Markram short-term plasticity of a synapse, as NeuroML2 defines it (the
    ComponentTypes ``tsodyksMarkramDepMechanism`` and ``tsodyksMarkramDepFacMechanism`` of
    NeuroML2CoreTypes/Synapses.xml, and ``blockingPlasticSynapse``'s use of their
    ``plasticityFactor``).

    Every connection has its own state: resources R and release probability u, R = 1 and
    u = ``release`` at the start. Between two events of a connection, Δ ms apart, they relax
    exactly (dR/dt = (1 − R)/τ_rec, du/dt = (U − u)/τ_fac):
    R ← 1 − (1 − R)·e^{−Δ/τ_rec}, u ← U + (u − U)·e^{−Δ/τ_fac} (u = U without facilitation).
    At an event of weight w the synapse adds w·u·R (× the peak normalisation) to its states,
    with R and u as they are when the event arrives; then the mechanism, which receives the
    event after the synapse, depresses R ← R·(1 − u) and, with facilitation, u ← u + U·(1 − u).

    Attributes
    ----------
    mechanism : str
        The NeuroML type: "tsodyksMarkramDepMechanism" or "tsodyksMarkramDepFacMechanism".
    release : float
        ``initReleaseProb`` U, 0 < U <= 1.
    tau_rec : float
        ``tauRec``, ms (> 0): recovery of the resources.
    tau_fac : float
        ``tauFac``, ms (> 0) with facilitation; 0 without.
    """

    mechanism: str
    release: float
    tau_rec: float
    tau_fac: float = 0.0

    @property
    def facilitates(self) -> bool:
        return self.tau_fac > 0


@dataclass(frozen=True)
class Synapse:
    """A conductance synapse: g(t) = weight · s(t), peak s = 1 for a single spike (µS per unit weight).

    ``kind`` is "exp2" (dual exponential; ``tau_rise`` 0 means single exponential) or
    "exp2_block" (dual exponential × Mg²⁺ block B(V) = 1 / (1 + [Mg]/scaling_conc ·
    exp(−V / scaling_volt))). ``plasticity`` (a ``blockingPlasticSynapse``'s
    ``plasticityMechanism``, with or without the block) scales each event's weight by
    Tsodyks–Markram short-term plasticity, state per connection; None: every event has its weight.
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
    plasticity: Plasticity | None = None

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
    """The synapse ``synapse_id`` of NeuroML file ``path``.

    A ``blockingPlasticSynapse`` may hold a ``voltageConcDepBlockMechanism`` block and a
    Tsodyks–Markram ``plasticityMechanism`` (:class:`Plasticity`), each optional; the problems
    of both are reported together.
    """
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
    problems, block, plastic = [], [], []
    for child in element:
        name = _local(child.tag)
        if name in ("blockMechanism", "plasticityMechanism"):
            (block if name == "blockMechanism" else plastic).append(child)
    for kind, found in (("blockMechanism", block), ("plasticityMechanism", plastic)):
        if len(found) > 1:
            problems.append((*_where(found[1]), f"synapse {synapse_id}: {len(found)} <{kind}> elements; livn "
                                                f"supports at most one"))
    extra = {}
    if block:
        if block[0].get("type") != "voltageConcDepBlockMechanism":
            problems.append((*_where(block[0]), f"synapse {synapse_id}: blockMechanism type {block[0].get('type')!r} "
                                                f"is not supported (supported: voltageConcDepBlockMechanism)"))
        else:
            for key, attribute, dimension in (("block_concentration", "blockConcentration", "concentration"),
                                              ("block_scaling_conc", "scalingConc", "concentration"),
                                              ("block_scaling_volt", "scalingVolt", "voltage")):
                try:
                    extra[key] = quantity(block[0], attribute, dimension)
                except NeuroMLError as err:
                    problems += [(f, line, f"synapse {synapse_id}: blockMechanism: {m}") for f, line, m in err.problems]
    if plastic:
        extra["plasticity"] = _plasticity(synapse_id, plastic[0], problems)
    if problems:
        raise NeuroMLError(sorted(problems, key=lambda p: p[1] or 0))
    return Synapse(synapse_id, "exp2_block" if block else "exp2", **common, **extra)


def _plasticity(synapse_id: str, element, problems: list) -> Plasticity | None:
    """The Tsodyks–Markram mechanism of ``element`` (a ``plasticityMechanism``); its problems,
    all of them, are appended to ``problems`` (then it returns None)."""
    kind = element.get("type")
    if kind not in PLASTICITY_TYPES:
        problems.append((*_where(element), f"synapse {synapse_id}: plasticityMechanism type {kind!r} is not "
                                           f"supported (supported: {', '.join(PLASTICITY_TYPES)})"))
        return None
    before = len(problems)
    values = {}
    wanted = [("initReleaseProb", "none"), ("tauRec", "time")]
    if PLASTICITY_TYPES[kind]:
        wanted.append(("tauFac", "time"))
    elif element.get("tauFac") is not None:
        problems.append((*_where(element), f"synapse {synapse_id}: tauFac={element.get('tauFac')!r} has no meaning "
                                           f"for a {kind} (depression only); for facilitation use "
                                           f"tsodyksMarkramDepFacMechanism"))
    for attribute, dimension in wanted:
        try:
            values[attribute] = quantity(element, attribute, dimension)
        except NeuroMLError as err:
            problems += [(f, line, f"synapse {synapse_id}: {kind}: {m}") for f, line, m in err.problems]
    release = values.get("initReleaseProb")
    if release is not None and not 0 < release <= 1:
        problems.append((*_where(element), f"synapse {synapse_id}: initReleaseProb must be in (0, 1] (a release "
                                           f"probability; 0 would never transmit), found {release:g}"))
    for attribute in ("tauRec", "tauFac"):
        if values.get(attribute) is not None and values[attribute] <= 0:
            problems.append((*_where(element), f"synapse {synapse_id}: {attribute} must be a time > 0, found "
                                               f"{element.get(attribute)!r}"))
    if len(problems) > before:
        return None
    return Plasticity(kind, values["initReleaseProb"], values["tauRec"], values.get("tauFac", 0.0))


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
