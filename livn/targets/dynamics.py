"""NeuroML2 dynamics as a simulator-neutral model that the targets translate.

Read with libNeuroML; values converted with pyNeuroML. Units inside this module:
mV, ms, 1/ms, µm, µm², µF/cm², Ω·cm, mS/cm², µS, nA.

Supported NeuroML2 subset (what livn's specs use; anything else is a clear error):
``ionChannelHH`` / ``ionChannelPassive`` with gates ``gateHHrates``, ``gateHHtauInf``,
``gateHHInstantaneous``; rates/variables ``HHExpRate``, ``HHSigmoidRate``,
``HHExpLinearRate``, ``HHSigmoidVariable``, ``HHExpVariable``; ``q10Fixed``;
``expTwoSynapse``, ``expOneSynapse``, ``blockingPlasticSynapse`` with a
``voltageConcDepBlockMechanism``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

logging.getLogger("numexpr").setLevel(logging.WARNING)  # pyNeuroML's import logs numexpr's thread count

from neuroml.loaders import read_neuroml2_file  # noqa: E402
from pyneuroml.pynml import get_value_in_si  # noqa: E402


class UnsupportedNeuroML(ValueError):
    """A NeuroML construct outside the subset livn translates."""


def si(value: str) -> float:
    """A NeuroML quantity in SI units, rounded to 12 significant digits (drops conversion noise)."""
    return float(f"{float(get_value_in_si(value)):.12g}")


def _round(x: float) -> float:
    return float(f"{x:.12g}")


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
        if self.kind == "HHExpLinearRate":
            return f"{r}/{exprel}(-{x})"
        raise UnsupportedNeuroML(f"rate type {self.kind!r} is not supported")

    def value(self, v):
        """The rate at ``v`` (mV, number or array)."""
        import numpy as np

        x = (np.asarray(v, dtype=float) - self.midpoint) / self.scale
        if self.kind in ("HHExpRate", "HHExpVariable"):
            return self.rate * np.exp(x)
        if self.kind in ("HHSigmoidRate", "HHSigmoidVariable"):
            return self.rate / (1 + np.exp(-x))
        if self.kind == "HHExpLinearRate":
            safe = np.where(np.abs(x) < 1e-9, 1e-9, x)
            return self.rate * np.where(np.abs(x) < 1e-9, 1 + x / 2, safe / (1 - np.exp(-safe)))
        raise UnsupportedNeuroML(f"rate type {self.kind!r} is not supported")


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
    id: str
    species: str | None
    gates: tuple


@dataclass(frozen=True)
class ChannelDensity:
    """``channel`` on ``segment_group`` at ``gmax`` (mS/cm²) with reversal ``erev`` (mV)."""

    channel: Channel
    segment_group: str
    gmax: float
    erev: float


@dataclass(frozen=True)
class Compartment:
    """One section of a cell, one compartment: a cylinder (µm) with its channels."""

    name: str
    segment_group: str
    length: float
    diameter: float
    proximal: tuple  # (x, y, z) µm in the cell's own frame
    distal: tuple
    densities: tuple

    @property
    def area(self) -> float:
        """Lateral membrane area, µm²."""
        return math.pi * self.diameter * self.length

    @property
    def centre(self) -> tuple:
        return tuple((a + b) / 2 for a, b in zip(self.proximal, self.distal))


@dataclass(frozen=True)
class Cell:
    """A cell as compartments in section order (soma first).

    Attributes
    ----------
    cm : float
        Specific capacitance, µF/cm².
    ra : float
        Axial resistivity, Ω·cm.
    v_init : float
        Initial membrane potential, mV.
    threshold : float
        Spike threshold on the soma, mV.
    """

    id: str
    compartments: tuple
    cm: float
    ra: float
    v_init: float
    threshold: float

    def compartment(self, segment_group: str) -> int:
        """Index of the compartment of ``segment_group`` ("soma_group", "dendrite_group")."""
        return next(i for i, c in enumerate(self.compartments) if c.segment_group == segment_group)

    def coupling_conductance(self, a: int = 0, b: int = 1) -> float:
        """Axial conductance (µS) between the centres of two adjacent compartments
        (NEURON's one-segment sections: half of each cylinder in series)."""
        def half(c):
            return self.ra * 1e4 * (c.length / 2) / (math.pi * (c.diameter / 2) ** 2)  # Ω·µm / µm² -> Ω
        return 1e6 / (half(self.compartments[a]) + half(self.compartments[b]))


@dataclass(frozen=True)
class Synapse:
    """A conductance synapse: g(t) = gbase · weight · s(t), peak s = 1 for a single spike.

    ``kind`` is "exp2" (dual exponential; ``tau_rise`` 0 means single exponential) or
    "exp2_block" (dual exponential × Mg²⁺ block B(V) = 1 / (1 + [Mg]/scaling_conc ·
    exp(−V / scaling_volt))).
    """

    id: str
    kind: str
    tau_rise: float
    tau_decay: float
    erev: float
    gbase: float  # µS
    block_concentration: float = 0.0  # mM
    block_scaling_conc: float = 1.0  # mM
    block_scaling_volt: float = 1.0  # mV

    @property
    def peak_factor(self) -> float:
        """Normalisation so that a dual exponential peaks at 1 (NeuroML expTwoSynapse)."""
        if self.tau_rise <= 0:
            return 1.0
        t_peak = self.tau_rise * self.tau_decay / (self.tau_decay - self.tau_rise) * math.log(self.tau_decay / self.tau_rise)
        return 1.0 / (math.exp(-t_peak / self.tau_decay) - math.exp(-t_peak / self.tau_rise))


def _rate(element, variable: bool = False) -> Rate | None:
    if element is None:
        return None
    rate = float(element.rate) if variable else si(element.rate) * 1e-3  # 1/s -> 1/ms
    return Rate(element.type, _round(rate), _round(si(element.midpoint) * 1e3), _round(si(element.scale) * 1e3))


def _gate(g, kind: str | None = None) -> Gate:
    kind = kind or g.type
    kind = {"gateHHrates": "rates", "gateHHtauInf": "tauInf", "gateHHInstantaneous": "instantaneous"}.get(kind)
    if kind is None:
        raise UnsupportedNeuroML(f"gate {g.id!r}: type {g.type!r} is not supported")
    q10 = 1.0
    if g.q10_settings is not None:
        if g.q10_settings.type != "q10Fixed":
            raise UnsupportedNeuroML(f"gate {g.id!r}: q10Settings {g.q10_settings.type!r} is not supported (use q10Fixed)")
        q10 = float(g.q10_settings.fixed_q10)
    return Gate(g.id, kind, int(g.instances), _rate(getattr(g, "forward_rate", None)),
                _rate(getattr(g, "reverse_rate", None)), _rate(getattr(g, "steady_state", None), variable=True),
                _rate(getattr(g, "time_course", None)), q10)


@lru_cache(maxsize=None)
def _document(path: str):
    return read_neuroml2_file(path, include_includes=True, already_included=[])


def read_channel(doc, channel_id: str) -> Channel:
    for ch in doc.ion_channel_hhs + doc.ion_channel:
        if ch.id == channel_id:
            gates = [_gate(g) for g in ch.gates]
            gates += [_gate(g, "gateHHrates") for g in ch.gate_hh_rates]
            gates += [_gate(g, "gateHHtauInf") for g in ch.gate_hh_tau_infs]
            gates += [_gate(g, "gateHHInstantaneous") for g in ch.gate_hh_instantaneouses]
            if ch.gate_fractionals or ch.gate_h_hrates_taus or ch.gate_h_hrates_infs or ch.gate_h_hrates_tau_infs:
                raise UnsupportedNeuroML(f"channel {channel_id!r}: only gateHHrates/gateHHtauInf/gateHHInstantaneous")
            return Channel(ch.id, ch.species, tuple(gates))
    for ch in doc.ion_channel_passive:
        if ch.id == channel_id:
            return Channel(ch.id, None, ())
    raise UnsupportedNeuroML(f"channel {channel_id!r} not found")


def read_cell(path: Path, cell_id: str) -> Cell:
    """The cell ``cell_id`` of NeuroML file ``path`` (includes followed)."""
    doc = _document(str(Path(path).resolve()))
    cell = next(c for c in doc.cells if c.id == cell_id)
    segments = {s.id: s for s in cell.morphology.segments}
    bio = cell.biophysical_properties
    membrane = bio.membrane_properties
    densities = []
    for d in membrane.channel_densities:
        erev = si(d.erev) * 1e3
        gmax = si(d.cond_density) * 0.1  # S/m² -> mS/cm²
        densities.append(ChannelDensity(read_channel(doc, d.ion_channel), d.segment_groups, gmax, erev))
    if membrane.channel_density_nernsts or membrane.channel_density_ghks or membrane.channel_density_non_uniforms:
        raise UnsupportedNeuroML(f"cell {cell_id!r}: only channelDensity with a fixed erev is supported")
    compartments = []
    for group in ("soma_group", "dendrite_group"):
        members = cell.get_all_segments_in_group(group) if group in {g.id for g in cell.morphology.segment_groups} else []
        if len(members) != 1:
            raise UnsupportedNeuroML(f"cell {cell_id!r}: segment group {group!r} must hold exactly one segment, found {len(members)}")
        seg = segments[members[0]]
        proximal = seg.proximal or segments[seg.parent.segments].distal
        distal = seg.distal
        p, q = (proximal.x, proximal.y, proximal.z), (distal.x, distal.y, distal.z)
        length = math.dist(p, q)
        diameter = (proximal.diameter + distal.diameter) / 2
        compartments.append(Compartment(seg.name or group, group, length, diameter, p, q,
                                        tuple(d for d in densities if d.segment_group in (group, "all"))))
    unknown = {d.segment_group for d in densities} - {"soma_group", "dendrite_group", "all"}
    if unknown:
        raise UnsupportedNeuroML(f"cell {cell_id!r}: channel densities on segment groups {sorted(unknown)} are not supported")
    cm = si(membrane.specific_capacitances[0].value) * 100  # F/m² -> µF/cm²
    ra = si(bio.intracellular_properties.resistivities[0].value) * 100  # Ω·m -> Ω·cm
    return Cell(cell_id, tuple(compartments), cm, ra, si(membrane.init_memb_potentials[0].value) * 1e3,
                si(membrane.spike_threshes[0].value) * 1e3)


def read_synapse(path: Path, synapse_id: str) -> Synapse:
    """The synapse ``synapse_id`` of NeuroML file ``path``."""
    doc = _document(str(Path(path).resolve()))
    for s in doc.exp_two_synapses:
        if s.id == synapse_id:
            return Synapse(s.id, "exp2", si(s.tau_rise) * 1e3, si(s.tau_decay) * 1e3, si(s.erev) * 1e3, si(s.gbase) * 1e6)
    for s in doc.exp_one_synapses:
        if s.id == synapse_id:
            return Synapse(s.id, "exp2", 0.0, si(s.tau_decay) * 1e3, si(s.erev) * 1e3, si(s.gbase) * 1e6)
    for s in doc.blocking_plastic_synapses:
        if s.id == synapse_id:
            block = s.block_mechanism
            if block is None or block.type != "voltageConcDepBlockMechanism":
                raise UnsupportedNeuroML(f"synapse {synapse_id!r}: only a voltageConcDepBlockMechanism block is supported")
            if s.plasticity_mechanism is not None and s.plasticity_mechanism.type not in (None, ""):
                plastic = s.plasticity_mechanism
                if float(getattr(plastic, "init_release_prob", 1) or 1) != 1:
                    raise UnsupportedNeuroML(f"synapse {synapse_id!r}: plasticity is not supported")
            return Synapse(s.id, "exp2_block", si(s.tau_rise) * 1e3, si(s.tau_decay) * 1e3, si(s.erev) * 1e3,
                           si(s.gbase) * 1e6, si(block.block_concentration) * 1e0,
                           si(block.scaling_conc) * 1e0, si(block.scaling_volt) * 1e3)
    raise UnsupportedNeuroML(f"synapse {synapse_id!r} not found in {path}")
