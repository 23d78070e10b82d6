"""What a build will cost, estimated from the spec before anything is allocated.

The connectivity rule p(d) = p_max·exp(−d²/2σ²) with no pair below ``cutoff`` has, for cells
spread uniformly over a culture of area A, on average n_t·n_s·πr²/A candidate pairs within
the cutoff distance r and n_t·n_s·2πσ²(p_max − cutoff)/A edges (both capped at n_t·n_s;
edge effects only lower them). The build holds every candidate pair of a projection at once
(KD-tree query, sort, one uniform each), ~:data:`BYTES_PER_CANDIDATE`, and writes one edge per
(connection, receptor), ~:data:`BYTES_PER_EDGE` on disk.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..spec import SystemSpec

BYTES_PER_CANDIDATE = 96  # i, j, distance; target/source/distance copies; sort order; uniform
BYTES_PER_EDGE = 48  # source, target, type, group index; syn_weight, delay, section id/pos, distance


@dataclass(frozen=True)
class Estimate:
    cells: int
    candidate_pairs: float
    edges: float
    memory_bytes: float
    disk_bytes: float

    def __str__(self) -> str:
        return (f"{self.cells} cells, ~{self.candidate_pairs:.2g} candidate pairs, ~{self.edges:.2g} edges: "
                f"~{_size(self.memory_bytes)} of memory, ~{_size(self.disk_bytes)} on disk")


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} EB"


def estimate(spec: SystemSpec) -> Estimate:
    """The cost of building ``spec`` (expected values)."""
    area = max(spec.size[0] * spec.size[1], 1e-9)
    candidates, edges, peak = 0.0, 0.0, 0.0
    for projection in spec.projections:
        if projection.sites:
            edges += _site_edges(spec, projection) * len(projection.receptors)
            continue
        pairs = float(spec.population(projection.source).count) * float(spec.population(projection.target).count)
        kernel = projection.kernel
        r = kernel.max_distance
        within = min(pairs, pairs * math.pi * r * r / area)
        connected = min(within, pairs * 2 * math.pi * kernel.sigma ** 2 * max(kernel.p_max - kernel.cutoff, 0) / area)
        candidates += within
        edges += connected * len(projection.receptors)
        peak = max(peak, within * BYTES_PER_CANDIDATE)
    memory = peak + edges * BYTES_PER_EDGE * 2  # the projection being drawn, and every edge before writing
    return Estimate(spec.num_neurons, candidates, edges, memory, edges * BYTES_PER_EDGE)


def expected_edges_per_cell(spec: SystemSpec) -> dict[str, float]:
    """Expected edges (all receptors) onto one cell of each simulated population."""
    area = max(spec.size[0] * spec.size[1], 1e-9)
    out: dict[str, float] = {}
    for projection in spec.projections:
        target = spec.population(projection.target)
        if projection.sites:
            total = _site_edges(spec, projection)
        else:
            kernel = projection.kernel
            pairs = float(spec.population(projection.source).count) * float(target.count)
            total = min(pairs, pairs * 2 * math.pi * kernel.sigma ** 2 * max(kernel.p_max - kernel.cutoff, 0) / area)
        out[target.name] = out.get(target.name, 0.0) + total * len(projection.receptors) / max(target.count, 1)
    return out


def _site_edges(spec: SystemSpec, projection) -> float:
    """Expected synapses of a site projection: per target cell, each site's mean times this
    projection's share of the site (proportions normalised over the projections supplying it)."""
    target = spec.population(projection.target)
    kind = "exc" if spec.population(projection.source).role == "excitatory" else "inh"
    total = 0.0
    for group, layer, proportion in projection.sites:
        site = next((s for s in target.synapses if (s.group, s.layer, s.kind) == (group, layer, kind)), None)
        if site is None:
            continue
        shares = sum(p for other in spec.projections if other.target == target.name and other.sites
                     and ("exc" if spec.population(other.source).role == "excitatory" else "inh") == kind
                     for g, l, p in other.sites if (g, l) == (group, layer))
        total += target.count * site.mean * proportion / shares
    return total


def free_disk(output) -> float:
    """Bytes free on the file system where ``output`` would be written."""
    import shutil
    from pathlib import Path

    folder = Path(output).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return float(shutil.disk_usage(folder).free)
    except OSError:
        return float("inf")


def available_memory() -> float:
    """Bytes of memory this machine can give a build (Linux: MemAvailable), else the physical memory."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return float("inf")
