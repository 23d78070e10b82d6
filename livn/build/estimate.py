"""What a build will cost, estimated from the spec before anything is allocated.

The connectivity rule p(d) = p_max·exp(−d²/2σ²) with no pair below ``cutoff`` has, for cells
spread uniformly over a culture of area A, on average n_t·n_s·πr²/A candidate pairs within
the cutoff distance r and n_t·n_s·2πσ²(p_max − cutoff)/A edges (both capped at n_t·n_s;
edge effects only lower them). A block holds the candidate pairs of its targets
(KD-tree query, sort, one uniform each), ~:data:`BYTES_PER_CANDIDATE`, and writes one edge per
(connection, receptor), ~:data:`BYTES_PER_EDGE` on disk. Synapses by site: per target cell,
each site's mean times the projection's share of it. The builder streams (:mod:`.edges`): a
process holds the node positions and one block of edges, whatever the circuit's size.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..spec import SystemSpec

BYTES_PER_CANDIDATE = 96  # i, j, distance; target/source/distance copies; sort order; uniform
BYTES_PER_EDGE = 89  # on disk: source, target, type, group id/index, syn_weight, delay, section id/pos,
                     # distance, conductance, tau1, tau2, erev (80 B) and the source_to_target index
                     # (measured on EI3, 2026-12-02)
BYTES_PER_EDGE_DRAWN = 300  # a block's edges while drawn, split by receptor, sorted and saved (measured)
BASE_MEMORY = 100e6  # the interpreter with numpy, h5py, lxml and the cells (measured: EI1 93 MB)
BYTES_PER_INDEXED_EDGE = 40  # the source_to_target index: source ids, their order, runs
BYTES_PER_NODE = 120  # positions, rotation, layer and their copies, on every rank
BYTES_PER_INPUT_SPIKE = 16  # SONATA spike input: node id, time
#: edges per block: a rank holds one block's edges at a time
BLOCK_EDGES = 250_000
#: above this many edges the source_to_target index is not written (SONATA allows it; afferent
#: reads need only target_to_source, written block by block): it needs every source id in memory
INDEX_LIMIT = 100_000_000
#: measured build cost per edge of one process (this project's 2-core machine, 2026-12-01:
#: CA1 at scale 0.001, 1.3e7 edges by site in 12.9 s; with ~100x fewer synapses per cell, as in
#: tests/data/ca1_layers, per-cell overheads make it ~5 us)
SECONDS_PER_EDGE = 1.0e-6


@dataclass(frozen=True)
class Estimate:
    """Expected cost of a build. ``memory_bytes`` is per process (each MPI rank holds the node
    positions and one block of edges); ``seconds`` is for one process (divide by the ranks)."""

    cells: int
    inputs: int
    candidate_pairs: float
    edges: float
    memory_bytes: float
    disk_bytes: float
    seconds: float = 0.0

    def __str__(self) -> str:
        inputs = f" + {self.inputs} input" if self.inputs else ""
        return (f"{self.cells}{inputs} cells, ~{self.edges:.3g} edges: ~{size_text(self.memory_bytes)} of memory "
                f"per process, ~{size_text(self.disk_bytes)} on disk, ~{_duration(self.seconds)} on one core")


def size_text(n: float) -> str:
    """Bytes as text: '4.5 GB'."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} EB"


def _duration(seconds: float) -> str:
    for unit, length in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.3g} {unit}"
    return f"{seconds:.2g} s"


def estimate(spec: SystemSpec) -> Estimate:
    """The cost of building ``spec`` (expected values)."""
    area = max(spec.size[0] * spec.size[1], 1e-9)
    per_cell = expected_edges_per_cell(spec)
    candidates, edges, peak = 0.0, 0.0, 0.0
    for projection in spec.projections:
        if projection.sites:
            edges += _site_edges(spec, projection) * len(projection.receptors)
            continue
        target = spec.population(projection.target)
        pairs = float(spec.population(projection.source).count) * float(target.count)
        kernel = projection.kernel
        r = kernel.max_distance
        within = min(pairs, pairs * math.pi * r * r / area)
        connected = min(within, pairs * 2 * math.pi * kernel.sigma ** 2 * max(kernel.p_max - kernel.cutoff, 0) / area)
        candidates += within
        edges += connected * len(projection.receptors)
        # a block draws the candidates of its targets only
        targets_per_block = min(target.count, max(1.0, BLOCK_EDGES / max(per_cell.get(target.name, 1.0), 1.0)))
        peak = max(peak, within / max(target.count, 1) * targets_per_block * BYTES_PER_CANDIDATE)
    nodes = sum(p.count for p in spec.populations)
    block = min(edges, BLOCK_EDGES + max(per_cell.values(), default=0.0))
    memory = (BASE_MEMORY + nodes * BYTES_PER_NODE + peak + block * BYTES_PER_EDGE_DRAWN
              + min(edges, INDEX_LIMIT) * BYTES_PER_INDEXED_EDGE)
    spikes = sum(p.count * p.drive.rate * p.drive.duration / 1e3 for p in spec.virtual)
    disk = edges * BYTES_PER_EDGE + nodes * BYTES_PER_NODE + spikes * BYTES_PER_INPUT_SPIKE
    return Estimate(spec.num_neurons, nodes - spec.num_neurons, candidates, edges, memory, disk,
                    edges * SECONDS_PER_EDGE)


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
