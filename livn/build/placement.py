"""Place cells uniformly at random in the culture, one stream per gid."""

from __future__ import annotations

import numpy as np

from ..spec import SystemSpec
from .streams import Streams


def place(spec: SystemSpec) -> np.ndarray:
    """Soma positions (µm), shape (num_neurons, 3), row = gid.

    x ∈ [0, width], y ∈ [0, height], z ∈ [0, thickness] (z = 0 for a flat culture).
    """
    streams = Streams(spec.seed, "placement")
    scale = np.array([spec.size[0], spec.size[1], spec.thickness])
    positions = np.empty((spec.num_neurons, 3))
    for gid in range(spec.num_neurons):
        positions[gid] = streams.uniform(gid, 3) * scale
    return positions
