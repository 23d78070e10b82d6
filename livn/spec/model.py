"""The typed, immutable model of a validated spec. All quantities in canonical units.

Lengths in µm, times in ms, velocities in µm/ms, conductances in µS, voltages in mV,
resistivity in Ω·m.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Layer:
    """A slab of the culture along z (depth): ``z0`` ≤ z < ``z1`` µm."""

    name: str
    z0: float
    z1: float


@dataclass(frozen=True)
class ThetaModulation:
    """Rate modulation r(t) = rate·(1 + depth·cos(2π·frequency·t − phase)); Hz, rad."""

    frequency: float
    depth: float
    phase: float


@dataclass(frozen=True)
class PoissonDrive:
    """Spike trains of a virtual population: (inhomogeneous) Poisson.

    Attributes
    ----------
    rate : float
        Mean rate (Hz).
    theta : ThetaModulation or None
    duration : float
        Length (ms) of the trains the build writes as SONATA spike inputs.
    """

    rate: float
    theta: ThetaModulation | None
    duration: float


@dataclass(frozen=True)
class SynapseSite:
    """Where a cell receives synapses: a segment group, optionally only within a layer, for
    excitatory ("exc") or inhibitory ("inh") inputs; ``mean`` synapses per cell."""

    group: str
    layer: str | None
    kind: str
    mean: float

    @property
    def name(self) -> str:
        return "/".join(part for part in (self.group, self.layer, self.kind) if part)


@dataclass(frozen=True)
class Population:
    """A population of identical cells, or of virtual spike sources (``drive`` instead of ``cell``).

    Attributes
    ----------
    name : str
    count : int
        Number of cells.
    cell : Path or None
        NeuroML2 file defining the cell (None for a virtual population).
    cell_id : str or None
        Id of the ``<cell>`` in that file.
    role : str
        "excitatory" or "inhibitory".
    first_gid : int
        Gids of the population are ``first_gid, ..., first_gid + count - 1``; simulated
        populations come first (spec order), then virtual ones.
    layers : tuple of (str, int)
        Cells per layer, in the culture's layer order (empty for an unlayered culture).
    depth : tuple of (str, float, float)
        Per layer, the z range (µm) the somata are confined to, where narrower than the layer.
    drive : PoissonDrive or None
        The spike trains of a virtual population.
    axon_extent : tuple of float or None
        (width x, width y) of the axonal arbor, µm.
    synapses : tuple of SynapseSite
        Mean synapses per cell by site (projections by sites fill them).
    """

    name: str
    count: int
    cell: Path | None
    cell_id: str | None
    role: str
    first_gid: int
    layers: tuple = ()
    depth: tuple = ()
    drive: PoissonDrive | None = None
    axon_extent: tuple | None = None
    synapses: tuple = ()

    @property
    def gids(self) -> range:
        return range(self.first_gid, self.first_gid + self.count)

    @property
    def virtual(self) -> bool:
        return self.drive is not None


@dataclass(frozen=True)
class Receptor:
    """A synaptic receptor: its NeuroML2 model and the conductance (µS) of weight 1.

    ``kinetics`` holds (tau_rise ms, tau_decay ms, erev mV) read from the NeuroML element,
    for tools that want them without a NeuroML reader (BMTK's edge dynamics_params).
    """

    name: str
    model: Path
    component_id: str
    unit_conductance: float
    kinetics: tuple = ()


@dataclass(frozen=True)
class GaussianKernel:
    """Connection probability p(d) = p_max · exp(−d² / (2σ²)); no edge where p < cutoff.

    Attributes
    ----------
    sigma : float
        Width σ in µm.
    p_max : float
        Probability at distance 0.
    cutoff : float
        Pairs whose probability is below this are never connected.
    """

    sigma: float
    p_max: float
    cutoff: float

    @property
    def max_distance(self) -> float:
        """Distance (µm) beyond which p(d) < cutoff."""
        if self.cutoff >= self.p_max:
            return 0.0
        return self.sigma * math.sqrt(2.0 * math.log(self.p_max / self.cutoff))

    def probability(self, distance: np.ndarray) -> np.ndarray:
        """p(d) for distances in µm, zero beyond ``max_distance``."""
        d = np.asarray(distance, dtype=float)
        p = self.p_max * np.exp(-(d * d) / (2.0 * self.sigma * self.sigma))
        return np.where(d <= self.max_distance, p, 0.0)


@dataclass(frozen=True)
class Projection:
    """Connections from one population onto another.

    Attributes
    ----------
    source, target : str
        Population names.
    receptors : tuple of str
        Receptor names; every connection carries one synapse of each.
    onto : str or None
        "soma" or "dendrite": where on the target cell the synapses sit (kernel projections).
    kernel : GaussianKernel or None
        Distance-dependent pair probability (kernel projections).
    sites : tuple of (group, layer or None, proportion)
        Site projections: the target's synapse sites this projection supplies, with the
        proportion of each site's synapses it takes; sources are drawn within the source
        population's axon extent (a windowed Gaussian).
    unit_conductances : tuple of (receptor, µS)
        This projection's conductance of weight 1 per receptor, where it is not the
        receptor's own.
    """

    source: str
    target: str
    receptors: tuple
    onto: str | None
    kernel: GaussianKernel | None
    sites: tuple = ()
    unit_conductances: tuple = ()

    def unit_conductance(self, receptor: "Receptor") -> float:
        return dict(self.unit_conductances).get(receptor.name, receptor.unit_conductance)

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"


@dataclass(frozen=True)
class Delay:
    """Delay of a connection = ``synaptic`` (ms: release and receptor latency) + distance /
    velocity (µm/ms: axonal conduction), at least ``minimum`` (ms)."""

    velocity: float
    minimum: float
    synaptic: float = 0.0

    def of(self, distance: np.ndarray) -> np.ndarray:
        return np.maximum(self.synaptic + np.asarray(distance, dtype=float) / self.velocity, self.minimum)


@dataclass(frozen=True)
class OUConductance:
    """Ornstein–Uhlenbeck conductance: mean g0, std sigma (µS on each cell; or, with the
    noise's ``per_area``, mS/cm² of the membrane it goes onto), tau (ms), erev (mV)."""

    onto: str
    g0: float
    sigma: float
    tau: float
    erev: float


@dataclass(frozen=True)
class Noise:
    """Point-conductance background noise (Destexhe et al. 2001). ``per_area``: g0 and sigma
    are densities (mS/cm²), each cell's conductance being that times the membrane area of
    the segment group the noise goes onto."""

    model: Path
    excitatory: OUConductance
    inhibitory: OUConductance
    per_area: bool = False


@dataclass(frozen=True)
class MEA:
    """A square grid of electrodes under the culture (lengths in µm, resistivity Ω·m)."""

    pitch: float
    grid: tuple  # (rows, columns), resolved from 'fit'
    electrode_radius: float
    offset: float
    recording_radius: float
    resistivity: float


@dataclass(frozen=True)
class SystemSpec:
    """A validated system: everything needed to build its circuit.

    Attributes
    ----------
    path : Path
        The spec file.
    size : tuple of float
        Culture (width, height) in µm; cells are placed in [0, width] × [0, height].
    thickness : float
        Cells are placed uniformly in z ∈ [0, thickness] (µm); for a layered culture, the
        depth of the layer stack.
    layers : tuple of Layer
        The culture's layers along z, in order (empty: one slab of ``thickness``).
    scale : float
        The fraction of the spec's system this is (area and cell counts; densities and
        synapses per cell kept).
    temperature : float or None
        °C, for temperature-dependent kinetics (None: not given).
    weights : tuple of (str, float)
        Default weight per "SOURCE->TARGET.RECEPTOR", in multiples of the unit conductance.
    files : tuple of Path
        Every file the spec references, transitively (NeuroML includes too), resolved.
    """

    path: Path
    name: str
    description: str
    seed: int
    size: tuple
    thickness: float
    populations: tuple
    receptors: tuple
    projections: tuple
    delay: Delay
    noise: Noise | None
    mea: MEA
    weights: tuple
    files: tuple
    layers: tuple = ()
    scale: float = 1.0
    temperature: float | None = None

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def base_directory(self) -> Path:
        """The deepest folder holding the spec and every file it references."""
        return Path(os.path.commonpath([p.parent for p in self.files]))

    @property
    def num_neurons(self) -> int:
        """Simulated cells (virtual spike sources not counted)."""
        return sum(p.count for p in self.populations if not p.virtual)

    @property
    def simulated(self) -> tuple:
        return tuple(p for p in self.populations if not p.virtual)

    @property
    def virtual(self) -> tuple:
        return tuple(p for p in self.populations if p.virtual)

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)

    def population(self, name: str) -> Population:
        return next(p for p in self.populations if p.name == name)

    def receptor(self, name: str) -> Receptor:
        return next(r for r in self.receptors if r.name == name)

    @property
    def weight_names(self) -> list[str]:
        return [name for name, _ in self.weights]

    @property
    def noise_names(self) -> list[str]:
        if self.noise is None:
            return []
        return [f"noise.{kind}.{field}" for kind in ("excitatory", "inhibitory") for field in ("g0", "sigma")]

    def default_params(self) -> dict[str, float]:
        """Tunable parameters and their defaults: weights (× unit conductance), noise g0/sigma (µS)."""
        params = dict(self.weights)
        for name in self.noise_names:
            _, kind, field = name.split(".")
            params[name] = getattr(getattr(self.noise, kind), field)
        return params
