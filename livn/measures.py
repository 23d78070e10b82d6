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


def phase_locking(t: np.ndarray, frequency: float, start: float, stop: float) -> tuple[float, float, float]:
    """How strongly spikes lock to a rhythm: (vector strength, preferred phase, Rayleigh p).

    Parameters
    ----------
    t : numpy.ndarray
        Spike times, ms.
    frequency : float
        The rhythm's frequency, Hz (phase 0 at t = 0, as a drive's ``theta.phase`` counts it).
    start, stop : float
        The window, ms.

    Returns
    -------
    tuple
        Vector strength R in [0, 1] (the mean resultant length of the spike phases: 0 for
        spikes indifferent to the rhythm, d/2 for a rate r0 (1 + d cos(2 pi f t - phi))),
        the preferred phase phi in [0, 2 pi) rad, and the Rayleigh test's p-value
        exp(-n R^2) (Fisher 1993, Statistical Analysis of Circular Data, eq. 4.17, first
        order) against no locking. NaN for all three without spikes.
    """
    if not (np.isfinite(frequency) and frequency > 0):
        raise ValueError(f"frequency must be a finite number of Hz > 0, found {frequency!r}")
    if not (np.isfinite(start) and np.isfinite(stop) and start < stop):
        raise ValueError(f"the window must be finite with start < stop (ms), found [{start!r}, {stop!r})")
    t = np.asarray(t, dtype=float)
    if t.ndim != 1:
        raise ValueError(f"t must be a 1-D array of spike times (ms), found shape {t.shape}")
    t = t[(t >= start) & (t < stop)]
    if len(t) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = np.mean(np.exp(2j * np.pi * frequency * t / 1000.0))
    strength = float(abs(mean))
    return strength, float(np.angle(mean) % (2 * np.pi)), float(np.exp(-len(t) * strength ** 2))
