"""Synapses by site: each target cell draws its synapses per site, a position on its
morphology, a projection and a source cell (reference sheet §4.1, the MiV-Simulator rule).

Per target gid, from its own stream keyed by (seed, "synapses", gid), in this order:

1. for each site of the target's population (a segment group, optionally within a layer, for
   excitatory or inhibitory inputs): N ~ Poisson(mean) synapses;
2. each synapse a compartment of that group whose midpoint lies in the layer (the cell's soma
   depth plus the compartment's height in the cell's frame), chosen with probability
   proportional to its length, and a position uniform within it. Where no compartment of the
   group lies in the layer (a cell placed at a depth its dendrites do not reach from), the
   compartments of the group nearest the layer take the synapses, so every cell keeps the
   synapse counts of its site table; such synapses are counted in the build report;
3. each synapse a projection among those supplying the site, by their normalised proportions;
4. each synapse a source cell of that projection's population within the source's axon
   extent, |Δx| < w_x/2 and |Δy| < w_y/2, with probability ∝ N(Δx; σ_x)·N(Δy; σ_y),
   σ = w/6 (with replacement, no self-connection). A synapse with no source in the window is
   dropped (counted).

What a target draws depends only on the seed, its gid and the positions: the same on any
number of processes and whatever other cells exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..spec import SystemSpec
from .streams import Streams


@dataclass(frozen=True)
class SiteSynapses:
    """Synapses of the site projections, one row per synapse, sorted by target gid.

    Attributes
    ----------
    source, target : ndarray of int64
        Gids.
    projection : ndarray of int64
        Index into ``spec.projections``.
    section : ndarray of uint32
        Section of the target cell.
    position : ndarray of float32
        Fraction along that section.
    distance : ndarray of float
        Soma-to-soma distance, µm.
    relocated : int
        Synapses placed on the group's compartments nearest their layer (none in it).
    dropped : int
        Synapses without a source within the axon window.
    """

    source: np.ndarray
    target: np.ndarray
    projection: np.ndarray
    section: np.ndarray
    position: np.ndarray
    distance: np.ndarray
    relocated: int
    dropped: int


@dataclass
class _Site:
    mean: float
    sections: np.ndarray  # candidate compartments: section, x0, x1, height (µm), length (µm)
    x0: np.ndarray
    x1: np.ndarray
    height: np.ndarray
    length: np.ndarray
    z_range: tuple | None
    projections: list  # (projection index, proportion)


def _compartment_table(cell) -> list:
    """(section, x0, x1, height µm, length µm, groups) per compartment; heights relative to the
    soma's compartment, where the network model puts the node's position."""
    base = cell.compartments[0].centre[2]
    return [(c.section, c.x0, c.x1, c.centre[2] - base, cell.sections[c.section].length / cell.sections[c.section].nseg,
             cell.sections[c.section].groups) for c in cell.compartments]


def synapses_by_site(spec: SystemSpec, positions: np.ndarray, cells: dict, targets: range | None = None) -> SiteSynapses:
    """Draw the synapses of every site projection of ``spec`` (onto the gids in ``targets``
    only, if given).

    ``positions``: (cells, 3) soma positions of every gid (virtual too), µm; ``cells``:
    population name -> :class:`livn.neuroml.Cell`.
    """
    projections = [(i, p) for i, p in enumerate(spec.projections) if p.sites]
    columns = {k: [] for k in ("source", "target", "projection", "section", "position")}
    relocated = dropped = 0
    for target_name in dict.fromkeys(p.target for _, p in projections):
        target = spec.population(target_name)
        mine = target.gids if targets is None else range(max(target.gids.start, targets.start),
                                                          min(target.gids.stop, targets.stop))
        if len(mine) == 0:
            continue
        rows = _compartment_table(cells[target_name])
        sites = []
        for site in target.synapses:
            feeding = [(i, prop) for i, p in projections if p.target == target_name
                       and _kind(spec, p) == site.kind for g, l, prop in p.sites if (g, l) == (site.group, site.layer)]
            members = [r for r in rows if site.group in r[5]]
            if not feeding or not members or site.mean <= 0:
                continue
            z_range = (spec.layer(site.layer).z0, spec.layer(site.layer).z1) if site.layer else None
            sites.append(_Site(site.mean, *(np.array([r[k] for r in members]) for k in range(5)), z_range, feeding))
        sources, by_population = {}, {}
        for i, p in projections:
            if p.target == target_name:
                source = spec.population(p.source)
                if source.name not in by_population:
                    # sorted by x, so a window is found by bisection rather than a scan
                    gids = np.arange(source.first_gid, source.first_gid + source.count)
                    order = np.lexsort((gids, positions[gids, 0]))
                    by_population[source.name] = (gids[order], positions[gids[order], :2])
                sigma = np.array(source.axon_extent) / 6.0
                sources[i] = (*by_population[source.name], np.array(source.axon_extent) / 2.0, sigma)
        streams = Streams(spec.seed, "synapses")
        for gid in mine:
            rng = streams.generator(gid)
            soma = positions[gid]
            chosen_projection, section, position = [], [], []
            for site in sites:
                n = int(rng.poisson(site.mean))
                if n == 0:
                    continue
                weight = site.length.copy()
                if site.z_range is not None:
                    z = soma[2] + site.height
                    inside = (z >= site.z_range[0]) & (z < site.z_range[1])
                    if not inside.any():
                        gap = np.maximum(site.z_range[0] - z, z - site.z_range[1])
                        inside = gap <= gap.min() + 1e-9
                        relocated += n
                    weight = np.where(inside, weight, 0.0)
                k = rng.choice(len(weight), size=n, p=weight / weight.sum())
                u = rng.random(n)
                section.append(site.sections[k].astype(np.uint32))
                position.append(site.x0[k] + u * (site.x1[k] - site.x0[k]))
                index = np.array([i for i, _ in site.projections])
                share = np.array([p for _, p in site.projections])
                chosen_projection.append(index[rng.choice(len(index), size=n, p=share / share.sum())]
                                         if len(index) > 1 else np.full(n, index[0]))
            if not section:
                continue
            chosen_projection = np.concatenate(chosen_projection)
            section, position = np.concatenate(section), np.concatenate(position)
            source = np.full(len(section), -1, dtype=np.int64)
            for i in np.unique(chosen_projection):
                mine = np.flatnonzero(chosen_projection == i)
                source[mine] = choose_sources(rng, *sources[i], soma[:2], gid, len(mine))
            keep = source >= 0
            dropped += int((~keep).sum())
            columns["source"].append(source[keep])
            columns["target"].append(np.full(int(keep.sum()), gid, dtype=np.int64))
            columns["projection"].append(chosen_projection[keep])
            columns["section"].append(section[keep])
            columns["position"].append(position[keep].astype(np.float32))
    arrays = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in columns.items()}
    source, target = arrays["source"].astype(np.int64), arrays["target"].astype(np.int64)
    distance = np.linalg.norm(positions[source] - positions[target], axis=1) if len(source) else np.zeros(0)
    return SiteSynapses(source, target, arrays["projection"].astype(np.int64), arrays["section"].astype(np.uint32),
                        arrays["position"].astype(np.float32), distance, relocated, dropped)


def choose_sources(rng, gids, xy, half, sigma, centre, exclude: int, n: int) -> np.ndarray:
    """``n`` source gids drawn with replacement among ``gids`` (positions ``xy``, µm, sorted by
    x) within the window |Δ| < ``half`` of ``centre``, with probability ∝ exp(−Σ Δ²/2σ²);
    ``exclude`` is never drawn. All −1 when the window holds no source."""
    lo, hi = np.searchsorted(xy[:, 0], [centre[0] - half[0], centre[0] + half[0]])
    d = xy[lo:hi] - centre
    window = (np.abs(d[:, 0]) < half[0]) & (np.abs(d[:, 1]) < half[1]) & (gids[lo:hi] != exclude)
    if not window.any():
        return np.full(n, -1, dtype=np.int64)
    d = d[window]
    cdf = np.cumsum(np.exp(-0.5 * ((d[:, 0] / sigma[0]) ** 2 + (d[:, 1] / sigma[1]) ** 2)))
    # inverse-CDF draws: what rng.choice(p=w/Σw) does, without its checks on every call
    pick = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), len(cdf) - 1)
    return gids[lo:hi][window][pick]


def _kind(spec: SystemSpec, projection) -> str:
    return "exc" if spec.population(projection.source).role == "excitatory" else "inh"
