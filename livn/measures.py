"""Figures of network dynamics: firing rates and branching ratio.

:func:`branching_ratio` is the naive mean of n(t+1)/n(t), which is biased (about 1 for
independent Poisson neurons at a few Hz); :func:`multistep_branching_ratio` is the multistep
regression estimate of Wilting & Priesemann (2018), unbiased under subsampling.
"""

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


def multistep_branching_ratio(counts, max_steps: int = 40, significance: float = 3.0) -> tuple[float, float]:
    """Branching parameter m of an activity series by multistep regression (Wilting &
    Priesemann 2018, Nat. Commun. 9:2325).

    For k = 1..``max_steps`` bins, r_k is the slope of the linear regression of A(t+k) on
    A(t); for a branching process, subsampled or not, r_k = b·m^k, fitted here by least
    squares (m in [0, 1.5]). Subsampling only lowers b, so m is unbiased.

    When activity does not propagate (m = 0, e.g. independent Poisson neurons), r_k is noise
    around 0 and any m fits it; the estimate is then 0. That is the case when r_1 is not
    ``significance`` standard errors (1/√N for N bins) above 0.

    Parameters
    ----------
    counts : array
        Events per bin, at least 2 · ``max_steps`` bins.

    Returns
    -------
    m : float
        Branching parameter (1: critical; < 1 subcritical).
    b : float
        Fitted amplitude (0 when m is 0 for lack of correlation).
    """
    from scipy.optimize import curve_fit

    a = np.asarray(counts, dtype=float)
    if a.ndim != 1 or not np.all(np.isfinite(a)):
        raise ValueError(f"counts must be a finite 1-D series, found shape {a.shape}")
    if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be an integer >= 1, found {max_steps!r}")
    if len(a) < 2 * max_steps:
        raise ValueError(f"need at least {2 * max_steps} bins for {max_steps} steps, found {len(a)}")
    steps = np.arange(1, max_steps + 1)
    r = np.empty(max_steps)
    for i, k in enumerate(steps):
        x, y = a[:-k], a[k:]
        variance = x.var()
        r[i] = 0.0 if variance == 0 else np.mean((x - x.mean()) * (y - y.mean())) / variance
    if r[0] < significance / np.sqrt(len(a)):
        return 0.0, 0.0
    (b, m), _ = curve_fit(lambda k, b, m: b * m**k, steps, r, p0=(r[0], 0.5), bounds=([0.0, 0.0], [np.inf, 1.5]))
    return float(m), float(b)


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
