"""Place cells uniformly at random in the culture (or in their layer), one stream per gid."""

from __future__ import annotations

import numpy as np

from ..spec import SystemSpec
from .streams import Streams


def place(spec: SystemSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soma positions, in-plane orientations and layers, row = gid (virtual cells too).

    Returns
    -------
    positions : ndarray
        Shape (cells, 3), µm: x ∈ [0, width], y ∈ [0, height]; z ∈ [0, thickness] (z = 0
        for a flat culture), or within the cell's layer (its depth range where given).
    rotation : ndarray
        Rotation about the z axis (radians, uniform in [0, 2π)) of each cell's own frame, in
        which its dendrite points along +y (flat culture) or +z (layered culture).
    layer : ndarray
        Index into ``spec.layers`` of each cell's layer (-1 for an unlayered culture).
    """
    count = sum(p.count for p in spec.populations)
    z0, z1 = np.zeros(count), np.full(count, spec.thickness)
    layer = np.full(count, -1, dtype=np.int16)
    index = {item.name: i for i, item in enumerate(spec.layers)}
    for population in spec.populations:
        first = population.first_gid
        depth = {name: (low, high) for name, low, high in population.depth}
        for name, n in population.layers:
            low, high = depth.get(name, (spec.layer(name).z0, spec.layer(name).z1))
            z0[first:first + n], z1[first:first + n], layer[first:first + n] = low, high, index[name]
            first += n
    streams = Streams(spec.seed, "placement")
    draws = np.empty((count, 4))
    for gid in range(count):
        draws[gid] = streams.uniform(gid, 4)
    positions = np.column_stack([draws[:, 0] * spec.size[0], draws[:, 1] * spec.size[1],
                                 z0 + draws[:, 2] * (z1 - z0)])
    return positions, draws[:, 3] * 2 * np.pi, layer
