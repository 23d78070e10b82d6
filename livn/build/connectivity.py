"""Distance-dependent connectivity: cost grows with the number of candidate pairs within the
kernel's cutoff distance (KD-tree), not with the square of the number of cells."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..spec import Projection, SystemSpec
from .streams import Streams


@dataclass(frozen=True)
class Connections:
    """The connections of one projection, sorted by (target, source).

    Attributes
    ----------
    projection : Projection
    source, target : ndarray of int64
        Gids.
    distance : ndarray of float
        Soma-to-soma distance in µm.
    """

    projection: Projection
    source: np.ndarray
    target: np.ndarray
    distance: np.ndarray


def connect(spec: SystemSpec, positions: np.ndarray, projection: Projection, targets: range | None = None) -> Connections:
    """Draw the connections of ``projection`` (onto the gids in ``targets`` only, if given).

    Each target gid draws one uniform per candidate source (sources within the kernel's
    cutoff distance, in increasing gid order) from its own stream keyed by
    (seed, projection, target gid); the pair connects when the uniform is below p(d).
    """
    source_pop, target_pop = spec.population(projection.source), spec.population(projection.target)
    source_gids = np.arange(source_pop.first_gid, source_pop.first_gid + source_pop.count)
    target_gids = np.arange(target_pop.first_gid, target_pop.first_gid + target_pop.count)
    if targets is not None:
        target_gids = target_gids[(target_gids >= targets.start) & (target_gids < targets.stop)]
    if len(target_gids) == 0 or len(source_gids) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Connections(projection, empty, empty, np.zeros(0))
    # imported here, as in mea.py: scipy.spatial would double `livn validate`'s start-up
    from scipy.spatial import cKDTree

    kernel = projection.kernel
    pairs = cKDTree(positions[target_gids]).sparse_distance_matrix(
        cKDTree(positions[source_gids]), kernel.max_distance, output_type="ndarray")
    target = target_gids[pairs["i"]]
    source = source_gids[pairs["j"]]
    distance = pairs["v"]
    keep = source != target
    target, source, distance = target[keep], source[keep], distance[keep]
    order = np.lexsort((source, target))
    target, source, distance = target[order], source[order], distance[order]

    streams = Streams(spec.seed, f"connectivity:{projection.name}")
    uniforms = np.empty(len(target))
    boundaries = np.flatnonzero(np.diff(target)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(target)]))
    for start, end in zip(starts, ends):
        if end > start:
            uniforms[start:end] = streams.uniform(int(target[start]), end - start)
    connected = uniforms < kernel.probability(distance)
    return Connections(projection, source[connected], target[connected], distance[connected])
