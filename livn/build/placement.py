"""Place cells uniformly at random in the culture, one stream per gid."""

from __future__ import annotations

import numpy as np

from ..spec import SystemSpec
from .streams import Streams


def place(spec: SystemSpec) -> tuple[np.ndarray, np.ndarray]:
    """Soma positions and in-plane orientations, row = gid.

    Returns
    -------
    positions : ndarray
        Shape (num_neurons, 3), µm: x ∈ [0, width], y ∈ [0, height], z ∈ [0, thickness]
        (z = 0 for a flat culture).
    rotation : ndarray
        Rotation about the z axis (radians, uniform in [0, 2π)) of each cell's own frame, in
        which its dendrite points along +y: cells in a flat culture grow in the plane.
    """
    streams = Streams(spec.seed, "placement")
    scale = np.array([spec.size[0], spec.size[1], spec.thickness, 2 * np.pi])
    draws = np.empty((spec.num_neurons, 4))
    for gid in range(spec.num_neurons):
        draws[gid] = streams.uniform(gid, 4) * scale
    return draws[:, :3], draws[:, 3]
