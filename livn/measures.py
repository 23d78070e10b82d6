"""Figures of network dynamics: firing rates and branching ratio."""

from __future__ import annotations

import numpy as np

#: bin of the branching-ratio estimate, ms
BRANCHING_BIN = 4.0


def mean_rate(it: np.ndarray, t: np.ndarray, gids: np.ndarray, start: float, stop: float) -> float:
    """Mean firing rate (Hz) of ``gids`` over [start, stop) ms."""
    mask = (t >= start) & (t < stop) & np.isin(it, gids)
    return mask.sum() / (len(gids) * (stop - start) / 1000.0)


def branching_ratio(t: np.ndarray, start: float, stop: float, bin: float = BRANCHING_BIN) -> float:
    """Mean over bins with activity of (spikes in the next bin) / (spikes in this bin).

    Spike times in ms; ``bin`` in ms. NaN if no bin has a spike.
    """
    counts = np.histogram(t, bins=np.arange(start, stop + bin / 2, bin))[0]
    now, later = counts[:-1], counts[1:]
    active = now > 0
    if not active.any():
        return float("nan")
    return float(np.mean(later[active] / now[active]))
