"""Figures of network dynamics: firing rates, branching ratio, avalanches, bursts.

:func:`multistep_branching_ratio` is the multistep regression estimate of Wilting &
Priesemann (2018), unbiased under subsampling (the naive mean of n(t+1)/n(t) livn reported
before is about 1 for independent Poisson neurons at a few Hz).

:func:`avalanches` cuts binned activity into neuronal avalanches (Beggs & Plenz 2003) and
:func:`fit_power_law` fits their size and duration distributions. :func:`channel_bursts` finds
bursts on one MEA channel and :func:`network_bursts` the array-wide bursts of a culture
(after Wagenaar, Pine & Potter 2006). Times in ms unless a name says otherwise.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

#: bin of the branching-ratio estimate, ms
BRANCHING_BIN = 4.0


def mean_rate(it: np.ndarray, t: np.ndarray, gids: np.ndarray, start: float, stop: float) -> float:
    """Mean firing rate (Hz) of ``gids`` over [start, stop) ms."""
    mask = (t >= start) & (t < stop) & np.isin(it, gids)
    return mask.sum() / (len(gids) * (stop - start) / 1000.0)


def multistep_branching_ratio(counts, max_steps: int = 40, significance: float = 3.0) -> tuple[float, float]:
    """Branching parameter m of an activity series by multistep regression (Wilting &
    Priesemann 2018, Nat. Commun. 9:2325).

    For k = 1..``max_steps`` bins, r_k is the slope of the linear regression of A(t+k) on
    A(t); for a branching process, subsampled or not, r_k = b·m^k, fitted here by least
    squares (m in [0, 1.5] to 1e-4, b >= 0). Subsampling only lowers b, so m is unbiased.
    m belongs to the bin width: :func:`autocorrelation_time` converts it to a timescale.

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
    a = np.asarray(counts, dtype=float)
    if a.ndim != 1 or not np.all(np.isfinite(a)):
        raise ValueError(f"counts must be a finite 1-D series, found shape {a.shape}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be an integer >= 1, found {max_steps!r}")
    if not (isinstance(significance, (int, float, np.number)) and math.isfinite(significance) and significance >= 0):
        raise ValueError(f"significance must be a finite number >= 0 (standard errors), found {significance!r}")
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
    return _fit_exponential(steps, r)


def _fit_exponential(steps: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """Least-squares (m, b) of r_k = b m^k, m in [0, 1.5], b >= 0.

    For each m the best b is linear (sum r_k m^k / sum m^2k), so the fit is a search over m
    alone: it cannot fail to converge, as a two-parameter search does (b -> inf, m -> 0)
    when r_k turns negative after the first step, as in inhibition-dominated networks."""
    m = np.linspace(0.0, 1.5, 15001)
    powers = m[:, None] ** steps[None, :]
    b = np.maximum(powers @ r / np.maximum(np.sum(powers**2, axis=1), np.finfo(float).tiny), 0.0)
    residual = np.sum((r[None, :] - b[:, None] * powers) ** 2, axis=1)
    best = int(np.argmin(residual))
    return float(m[best]), float(b[best])


def autocorrelation_time(m: float, bin: float) -> float:
    """The intrinsic timescale tau = -bin / ln m, ms, of a branching parameter ``m`` estimated
    with bins of ``bin`` ms (Wilting & Priesemann 2018: r_k = b m^k = b exp(-k bin / tau)).

    m depends on the bin width and tau does not, so tau compares estimates made with different
    bins. 0 for m = 0, infinite for m >= 1, NaN for a NaN m.
    """
    bin = _positive("bin", bin)
    if math.isnan(m):
        return float("nan")
    if not 0 <= m:
        raise ValueError(f"m must be >= 0, found {m!r}")
    if m == 0:
        return 0.0
    return float("inf") if m >= 1 else -bin / math.log(m)


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


# -- argument checks -------------------------------------------------------------------------


def _positive(name: str, value, allow_none: bool = False):
    """``value`` as a finite float > 0 (or None when allowed), else ValueError."""
    if value is None and allow_none:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0, found {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a finite number > 0, found {value!r}")
    return number


def _window(start, stop) -> tuple[float, float]:
    try:
        first, last = float(start), float(stop)
    except (TypeError, ValueError):
        raise ValueError(f"the window must be two numbers of ms, found [{start!r}, {stop!r})") from None
    if not (math.isfinite(first) and math.isfinite(last) and first < last):
        raise ValueError(f"the window must be finite with start < stop (ms), found [{start!r}, {stop!r})")
    return first, last


def _spike_times(name: str, t) -> np.ndarray:
    """Sorted float copy of a 1-D array of finite spike times."""
    try:
        times = np.asarray(t, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D array of spike times (ms), found {type(t).__name__}") from None
    if times.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of spike times (ms), found shape {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{name} must hold finite spike times (ms), found {np.count_nonzero(~np.isfinite(times))} "
                         f"non-finite")
    return np.sort(times)


def _whole(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, found {value!r}")
    return int(value)


def _fraction(name: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1], found {value!r}") from None
    if not 0 < number <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], found {value!r}")
    return number


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First index and one-past-last index of each run of True in a 1-D boolean array."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


# -- neuronal avalanches ---------------------------------------------------------------------

#: a loglikelihood-ratio comparison is decided when its p-value is below this (Clauset,
#: Shalizi & Newman 2009, SIAM Rev. 51:661, section 5.1: "say p < 0.1")
LIKELIHOOD_P = 0.1
#: fewest observations a power law is fitted to, and fewest in its tail: with fewer, the
#: exponent's standard error (exponent - 1) / sqrt(n) exceeds ~0.07 at exponent 1.5
MIN_FIT = 50


def mean_event_interval(t, start: float, stop: float) -> float:
    """Mean interval (ms) between consecutive events in [start, stop): the avalanche bin of
    Beggs & Plenz (2003, J. Neurosci. 23:11167), who found the size exponent 1.5 at this bin
    and saw it change with the bin width. NaN with fewer than two events.

    Events at the same time (one spike seen by two electrodes) count as separate events,
    as they would in a recording.
    """
    start, stop = _window(start, stop)
    t = _spike_times("t", t)
    t = t[(t >= start) & (t < stop)]
    return float((t[-1] - t[0]) / (len(t) - 1)) if len(t) > 1 else float("nan")


def _whole_numbers(name: str, values, minimum: int, series: str = "series") -> np.ndarray:
    """``values`` as a 1-D float array of whole numbers >= ``minimum``, or ValueError."""
    try:
        a = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D {series} of whole numbers >= {minimum}, "
                         f"found {type(values).__name__}") from None
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D {series} of whole numbers >= {minimum}, found shape {a.shape}")
    bad = ~np.isfinite(a) | (a < minimum) | (a != np.round(a))
    if bad.any():
        first = np.flatnonzero(bad)[0]
        where = f" at bin {first}" if name == "counts" else ""
        raise ValueError(f"{name} must be whole numbers >= {minimum}, found {float(a[first])!r}{where}")
    return a


def _counts(counts) -> np.ndarray:
    return _whole_numbers("counts", counts, 0).astype(np.int64)


def avalanches(counts) -> tuple[np.ndarray, np.ndarray]:
    """Neuronal avalanches (Beggs & Plenz 2003) of a binned event count: each run of
    non-empty bins bounded by empty bins on both sides.

    Runs touching the first or the last bin are left out: their true extent is unknown.

    Parameters
    ----------
    counts : array
        Events per bin (whole numbers >= 0), 1-D.

    Returns
    -------
    sizes : numpy.ndarray
        Events per avalanche (int).
    durations : numpy.ndarray
        Bins per avalanche (int).
    """
    c = _counts(counts)
    first, end = _runs(c > 0)
    whole = (first > 0) & (end < len(c))
    first, end = first[whole], end[whole]
    total = np.concatenate(([0], np.cumsum(c)))
    return total[end] - total[first], end - first


@dataclass(frozen=True)
class PowerLawFit:
    """A discrete power law p(x) ∝ x^-exponent for x >= xmin, fitted by maximum likelihood,
    xmin minimising the Kolmogorov-Smirnov distance between data and fit (Clauset, Shalizi &
    Newman 2009; the ``powerlaw`` package, Alstott et al. 2014).

    Attributes
    ----------
    exponent : float
        NaN when there was too little to fit (see :attr:`fitted`).
    xmin : float
        Smallest value of the fitted tail, in the data's units.
    tail : int
        Observations >= xmin.
    count : int
        Observations in all.
    vs_exponential, vs_lognormal : tuple of float
        (R, p): Vuong's normalised loglikelihood ratio of the power law against that
        alternative on the same tail (R > 0 favours the power law) and the p-value of R's sign.
    """

    exponent: float
    xmin: float
    tail: int
    count: int
    vs_exponential: tuple[float, float] = (float("nan"), float("nan"))
    vs_lognormal: tuple[float, float] = (float("nan"), float("nan"))

    @property
    def fitted(self) -> bool:
        return math.isfinite(self.exponent)

    @property
    def preferred(self) -> bool:
        """Whether the power law is the better description: significantly better than an
        exponential (R > 0, p < :data:`LIKELIHOOD_P`) and not significantly worse than a
        lognormal. A significant win over the lognormal is not asked for: at a few hundred
        observations the two are usually indistinguishable even for a true power law
        (Clauset et al. 2009, section 5; a simulated critical branching process gives p ~ 0.5)."""
        (r_exp, p_exp), (r_log, p_log) = self.vs_exponential, self.vs_lognormal
        return bool(self.fitted and r_exp > 0 and p_exp < LIKELIHOOD_P and not (r_log < 0 and p_log < LIKELIHOOD_P))


def fit_power_law(values, min_count: int = MIN_FIT) -> PowerLawFit:
    """Fit a discrete power law to the tail of ``values`` (see :class:`PowerLawFit`).

    xmin is searched among the values that leave at least ``min_count`` observations in the
    tail (the Kolmogorov-Smirnov minimum alone may keep a handful of the largest values); when
    only the smallest value does, it is xmin.

    Parameters
    ----------
    values : array
        Whole numbers >= 1, 1-D (avalanche sizes or durations).
    min_count : int
        Fewest observations, overall and in the tail; with fewer, or a single distinct value,
        the fit is not attempted and the exponent is NaN.
    """
    min_count = _whole("min_count", min_count, 2)
    x = np.sort(_whole_numbers("values", values, 1, "array"))
    nothing = PowerLawFit(float("nan"), float("nan"), 0, len(x))
    if len(x) < min_count or x[0] == x[-1]:
        return nothing
    candidates = np.unique(x[:len(x) - min_count + 1])  # each leaves >= min_count in the tail
    if len(candidates) == 1:
        xmin = candidates[0]
    else:
        # powerlaw never tries the largest value of an xmin range: end the range one value further
        above = x[x > candidates[-1]]
        xmin = (candidates[0], (above[0] if len(above) else candidates[-1]) + 0.5)
    with warnings.catch_warnings():
        import powerlaw  # ~0.7 s, only when something is fitted

        # powerlaw 2.0 warns on its own deprecated attributes (DeprecationWarning), on fits at
        # the edge of its parameter ranges and on lognormal tails it cannot evaluate
        # (UserWarning, RuntimeWarning); the result says what matters (NaN, R and p)
        for category in (DeprecationWarning, RuntimeWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        with np.errstate(all="ignore"):
            fit = powerlaw.Fit(x, discrete=True, xmin=xmin, verbose=False)
            if not math.isfinite(fit.xmin) or getattr(fit, "noise_flag", False):
                return nothing
            exponent = float(fit.power_law.alpha)
            compare = [tuple(float(v) for v in fit.distribution_compare("power_law", other, nested=False,
                                                                         normalized_ratio=True))
                       for other in ("exponential", "lognormal")]
    return PowerLawFit(exponent, float(fit.xmin), int(fit.n), len(x), *compare)


@dataclass(frozen=True, eq=False)  # compared by identity: == on arrays has no single truth value
class Avalanches:
    """Avalanches of one binned activity series, with power laws fitted to their sizes and
    durations (Beggs & Plenz 2003 found exponents 1.5 and 2 in cortical cultures and slices,
    those of a critical branching process).

    Attributes
    ----------
    sizes : numpy.ndarray
        Events per avalanche.
    durations : numpy.ndarray
        Bins per avalanche.
    bin : float
        Bin width, ms.
    size_fit, duration_fit : PowerLawFit
        Exponent tau of the sizes (events) and alpha of the durations (bins).
    """

    sizes: np.ndarray
    durations: np.ndarray
    bin: float
    size_fit: PowerLawFit
    duration_fit: PowerLawFit


def avalanche_statistics(counts, bin: float, min_count: int = MIN_FIT) -> Avalanches:
    """:func:`avalanches` of ``counts`` (events per bin of ``bin`` ms) and
    :func:`fit_power_law` of their sizes and durations."""
    bin = _positive("bin", bin)
    sizes, durations = avalanches(counts)
    return Avalanches(sizes, durations, bin, fit_power_law(sizes, min_count), fit_power_law(durations, min_count))


# -- bursts ----------------------------------------------------------------------------------

#: spikes a channel burst needs at least (Wagenaar, Pine & Potter 2006, BMC Neurosci. 7:11:
#: "burstlets" of at least four spikes)
BURST_MIN_SPIKES = 4
#: longest interval inside a channel burst, ms, unless the channel's own rate sets a shorter
#: one (Wagenaar et al. 2006: a quarter of the channel's mean inter-spike interval, at most 100 ms)
BURST_MAX_ISI = 100.0
#: fraction of the active channels a network burst involves at least (livn's choice: one
#: neuron seen by two neighbouring electrodes, 100 um apart with 60 um recording radii, must not
#: make a network burst on a 4 x 4 array)
NETWORK_MIN_FRACTION = 0.25
#: channels firing below this rate (Hz) are inactive: no bursts detected, not counted in
#: participation (0.1 Hz, a common "active electrode" criterion in MEA studies)
ACTIVE_RATE = 0.1


def _isi_threshold(count: int, start: float, stop: float, max_isi: float | None) -> float:
    if max_isi is not None:
        return max_isi
    rate = count / ((stop - start) / 1000.0)
    return min(BURST_MAX_ISI, 1000.0 / (4 * rate)) if rate > 0 else 0.0


def _bursts_of(t: np.ndarray, min_spikes: int, max_isi: float) -> np.ndarray:
    """(k, 2) first and last spike (ms) of each run of >= min_spikes spikes with every
    interval <= max_isi; ``t`` sorted."""
    first, end = _runs(np.diff(t) <= max_isi)  # interval i joins spikes i and i + 1
    keep = end - first >= min_spikes - 1
    return np.column_stack((t[first[keep]], t[end[keep]])) if len(t) else np.zeros((0, 2))


def channel_bursts(t, start: float, stop: float, min_spikes: int = BURST_MIN_SPIKES,
                   max_isi: float | None = None) -> np.ndarray:
    """Bursts of one channel's spikes in [start, stop): at least ``min_spikes`` spikes, each
    within ``max_isi`` ms of the previous (the burstlets of Wagenaar et al. 2006).

    Parameters
    ----------
    t : array
        Spike times, ms (any order).
    start, stop : float
        The window, ms.
    min_spikes : int
        At least 2; default :data:`BURST_MIN_SPIKES`.
    max_isi : float, optional
        Longest interval inside a burst, ms. Default: a quarter of the channel's mean
        inter-spike interval in the window, at most :data:`BURST_MAX_ISI` (Wagenaar et al. 2006),
        so that a threshold follows each channel's own rate.

    Returns
    -------
    numpy.ndarray
        Shape (bursts, 2): first and last spike of each burst, ms.
    """
    start, stop = _window(start, stop)
    min_spikes = _whole("min_spikes", min_spikes, 2)
    max_isi = _positive("max_isi", max_isi, allow_none=True)
    t = _spike_times("t", t)
    t = t[(t >= start) & (t < stop)]
    return _bursts_of(t, min_spikes, _isi_threshold(len(t), start, stop, max_isi))


def _within(t: np.ndarray, intervals: np.ndarray) -> int:
    """Spikes of sorted ``t`` inside any of the disjoint, sorted closed ``intervals``."""
    if not len(intervals):
        return 0
    return int(np.sum(np.searchsorted(t, intervals[:, 1], "right") - np.searchsorted(t, intervals[:, 0], "left")))


@dataclass(frozen=True, eq=False)  # compared by identity: == on arrays has no single truth value
class NetworkBursts:
    """Bursts of an MEA recording: per channel and array-wide.

    A network burst is a cluster of channel bursts that overlap in time, one after the other,
    involving at least ``needed`` channels; it lasts from the first spike of its earliest
    channel burst to the last spike of its latest.

    Attributes
    ----------
    start, end : numpy.ndarray
        Each network burst's first and last spike, ms.
    channels : numpy.ndarray
        Channels bursting in each network burst (int).
    channel : tuple of numpy.ndarray
        Each channel's bursts, shape (k, 2), ms (none on inactive channels).
    active : int
        Channels firing at least the ``active_rate`` of :func:`network_bursts`.
    needed : int
        Channels a network burst involves at least.
    window : tuple of float
        (start, stop), ms.
    spikes, in_channel_bursts, in_network_bursts : int
        Spikes on all channels in the window; of those, spikes inside their own channel's
        bursts; and spikes inside a network burst.
    """

    start: np.ndarray
    end: np.ndarray
    channels: np.ndarray
    channel: tuple
    active: int
    needed: int
    window: tuple[float, float]
    spikes: int
    in_channel_bursts: int
    in_network_bursts: int

    @property
    def count(self) -> int:
        return len(self.start)

    @property
    def rate(self) -> float:
        """Network bursts per second, Hz."""
        return self.count / ((self.window[1] - self.window[0]) / 1000.0)

    @property
    def intervals(self) -> np.ndarray:
        """Inter-burst intervals, start to next start, s."""
        return np.diff(self.start) / 1000.0

    @property
    def interval_mean(self) -> float:
        """Mean inter-burst interval, s; NaN with fewer than two network bursts."""
        return float(np.mean(self.intervals)) if self.count > 1 else float("nan")

    @property
    def interval_cv(self) -> float:
        """Coefficient of variation of the inter-burst intervals (0: periodic, ~1: Poisson);
        NaN with fewer than two intervals."""
        ibi = self.intervals
        return float(np.std(ibi) / np.mean(ibi)) if len(ibi) > 1 else float("nan")

    @property
    def duration_mean(self) -> float:
        """Mean network-burst duration, ms; NaN without network bursts."""
        return float(np.mean(self.end - self.start)) if self.count else float("nan")

    @property
    def participation(self) -> float:
        """Mean fraction of the active channels bursting in a network burst; NaN without any."""
        return float(np.mean(self.channels) / self.active) if self.count else float("nan")

    @property
    def fraction_in_channel_bursts(self) -> float:
        """Fraction of all channel spikes inside their channel's bursts; NaN without spikes."""
        return self.in_channel_bursts / self.spikes if self.spikes else float("nan")

    @property
    def fraction_in_network_bursts(self) -> float:
        """Fraction of all channel spikes inside network bursts; NaN without spikes."""
        return self.in_network_bursts / self.spikes if self.spikes else float("nan")

    def summary(self) -> dict:
        """The figures by name, units in the names."""
        return {"network_bursts": self.count, "rate_hz": self.rate, "interval_mean_s": self.interval_mean,
                "interval_cv": self.interval_cv, "duration_mean_ms": self.duration_mean,
                "fraction_in_channel_bursts": self.fraction_in_channel_bursts,
                "fraction_in_network_bursts": self.fraction_in_network_bursts,
                "participation": self.participation, "active_channels": self.active}


def network_bursts(channels, start: float, stop: float, min_spikes: int = BURST_MIN_SPIKES,
                   max_isi: float | None = None, min_fraction: float = NETWORK_MIN_FRACTION,
                   active_rate: float = ACTIVE_RATE) -> NetworkBursts:
    """Channel bursts (:func:`channel_bursts`) and the network bursts they make (after
    Wagenaar et al. 2006, who merged burstlets overlapping across channels).

    Parameters
    ----------
    channels : sequence of array
        Spike times seen by each channel, ms (:func:`livn.io.channel_spikes`).
    start, stop : float
        The window, ms.
    min_spikes, max_isi
        Channel bursts, as in :func:`channel_bursts` (``max_isi`` None: per channel).
    min_fraction : float
        In (0, 1]: a network burst involves at least this fraction of the active channels,
        and at least two (one on an array with a single active channel).
    active_rate : float
        Hz, > 0: channels firing less are ignored.

    Returns
    -------
    NetworkBursts
    """
    start, stop = _window(start, stop)
    min_spikes = _whole("min_spikes", min_spikes, 2)
    max_isi = _positive("max_isi", max_isi, allow_none=True)
    min_fraction = _fraction("min_fraction", min_fraction)
    active_rate = _positive("active_rate", active_rate)
    if isinstance(channels, np.ndarray) and channels.dtype != object:
        raise ValueError(f"channels must be a sequence of spike-time arrays, one per channel, "
                         f"found a numeric array of shape {channels.shape}")
    try:
        trains = [_spike_times(f"channel {i}", c) for i, c in enumerate(channels)]
    except TypeError:
        raise ValueError(f"channels must be a sequence of spike-time arrays, found {type(channels).__name__}") from None
    if not trains:
        raise ValueError("channels must hold at least one channel, found none")
    trains = [c[(c >= start) & (c < stop)] for c in trains]
    seconds = (stop - start) / 1000.0
    active = [len(c) > 0 and len(c) >= active_rate * seconds for c in trains]
    per_channel = tuple(_bursts_of(c, min_spikes, _isi_threshold(len(c), start, stop, max_isi)) if on
                        else np.zeros((0, 2)) for c, on in zip(trains, active))
    needed = min(sum(active), max(2, math.ceil(min_fraction * sum(active))))
    first = np.concatenate([b[:, 0] for b in per_channel])
    last = np.concatenate([b[:, 1] for b in per_channel])
    channel = np.concatenate([np.full(len(b), i, dtype=int) for i, b in enumerate(per_channel)])
    starts, ends, counts = _merge(first, last, channel, needed)
    spikes = sum(len(c) for c in trains)
    in_channel = sum(_within(c, b) for c, b in zip(trains, per_channel))
    in_network = sum(_within(c, np.column_stack((starts, ends))) for c in trains)
    return NetworkBursts(starts, ends, counts, per_channel, int(sum(active)), int(needed), (start, stop),
                         int(spikes), int(in_channel), int(in_network))


def _merge(first: np.ndarray, last: np.ndarray, channel: np.ndarray, needed: int):
    """Clusters of overlapping intervals [first, last] with at least ``needed`` distinct
    channels: (starts, ends, channels per cluster)."""
    if not len(first) or needed < 1:
        return np.zeros(0), np.zeros(0), np.zeros(0, int)
    order = np.argsort(first, kind="stable")
    first, last, channel = first[order], last[order], channel[order]
    reach = np.maximum.accumulate(last)
    # a burst opens a new cluster when it starts after every earlier burst has ended
    cluster = np.concatenate(([0], np.cumsum(first[1:] > reach[:-1])))
    n = cluster[-1] + 1
    starts = first[np.searchsorted(cluster, np.arange(n))]
    ends = np.maximum.reduceat(last, np.searchsorted(cluster, np.arange(n)))
    pairs = np.unique(np.column_stack((cluster, channel)), axis=0)
    counts = np.bincount(pairs[:, 0], minlength=n)
    keep = counts >= needed
    return starts[keep], ends[keep], counts[keep]
