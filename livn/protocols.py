"""The protocols that define a system's dynamics figures (what tuning aims at).

Spontaneous: no stimulus, noise only. Stimulated: biphasic, cathodic-first pulses
(0.2 ms per phase, 0.05 ms gap) of ``STIMULUS_AMPLITUDE`` µA on every MEA channel at
``STIMULUS_RATE`` Hz. Both are measured after a transient.

The spontaneous run also gives the culture's collective figures:

- branching ratio: multistep regression (Wilting & Priesemann 2018) on the spike count of
  all neurons (unbiased under subsampling, so the full count is simply the best-sampled
  series) in 4 ms bins (``BRANCHING_BIN``): about one synaptic step (axonal delay of up to
  ~2 ms across 400 um at 250 um/ms, synaptic rise, membrane integration), the bin W&P used
  for spike recordings, and comparable with Beggs & Plenz's avalanche bins. m depends on
  the bin; the report adds the autocorrelation time -bin / ln m, which does not as long as
  the activity is a branching process (EI2's is not: at 4 ms its correlation turns negative
  after one bin, inhibition, and m comes out near 0);
- avalanches (Beggs & Plenz 2003) of the MEA channels' events (what an experimenter
  records, overlaps of neighbouring electrodes included), binned at their mean
  inter-event interval as Beggs & Plenz prescribe;
- channel and network bursts of the MEA channels (after Wagenaar, Pine & Potter 2006).

20 µA at 10 Hz (chosen 2026-11-25): ~106 mV at the electrode (52 µm below the cells); each
pulse evokes about one extra spike per cell, so the stimulated mean rate is ~11-14 Hz against
~3 Hz spontaneous. The response over ``RESPONSE_AMPLITUDES`` (2026-12-03, Brian2; NEURON
within 0.25 Hz): EI1 3.8, 4.1, 5.2, 6.7, 9.3, 11.5 Hz; EI2 3.1, 6.9, 9.4, 11.2, 13.6, 14.5 Hz;
EI3 (2026-12-04 defaults) 4.7, 10.0, 13.0, 14.5, 15.1, 14.8 Hz; EI4 (2 s after 2 s, Brian2)
6.2, 10.9, 13.2, 14.0, 14.1, 14.1 Hz (saturated at about one spike per cell and pulse from
25 µA: stronger pulses fire more cells directly and leave fewer for the network to recruit in
the next 20 ms, so the rate at 30 µA is within about 2 % of the one at 25 µA, above or below it
depending on the culture).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .io import pulse_train
from .measures import (BRANCHING_BIN, LIKELIHOOD_P, MIN_FIT, Avalanches, NetworkBursts, PowerLawFit,
                       autocorrelation_time, avalanche_statistics, mean_event_interval, mean_rate,
                       multistep_branching_ratio, network_bursts, phase_locking)

STIMULUS_AMPLITUDE = 20.0  # µA per channel
STIMULUS_RATE = 10.0  # Hz
#: µA per channel of the response curve (``measure(response=...)``, ``livn dynamics --response``):
#: the range ``livn systems sample`` draws its amplitudes from by default
RESPONSE_AMPLITUDES = (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
#: lags of the multistep regression, bins (multistep_branching_ratio's default: 160 ms at 4 ms bins)
BRANCHING_STEPS = 40


@dataclass(frozen=True)
class Dynamics:
    """Measured figures: rates in Hz per population and overall; from the spontaneous run the
    multistep-regression branching ratio (``BRANCHING_BIN`` ms bins; NaN when the measured
    window holds fewer than 2 · ``BRANCHING_STEPS`` bins), avalanches and bursts of the MEA
    channels (None without an MEA or, for avalanches, without two channel events) and, for a
    system whose input drives are theta-modulated, each population's locking to that rhythm
    (population -> (vector strength, preferred phase rad, Rayleigh p)). ``spikes`` keeps the
    spontaneous run's (gids, times ms) for :func:`livn.plot.plot_dynamics`. ``response``, when
    measured, maps amplitudes (µA, the stimulated protocol's among them) to the overall
    stimulated rate (Hz)."""

    spontaneous: dict
    stimulated: dict | None  # None: not run (``measure``'s ``proceed``)
    branching_ratio: float
    duration: float
    transient: float
    theta_frequency: float | None = None
    theta: dict | None = None
    avalanches: Avalanches | None = None
    bursts: NetworkBursts | None = None
    spikes: tuple | None = field(default=None, repr=False, compare=False)
    response: dict | None = None

    def report(self) -> str:
        def rates(d):
            return ", ".join(f"{k} {v:.2f} Hz" for k, v in d.items())
        locking = ""
        if self.theta:
            locking = (f"theta locking:         " + ", ".join(
                f"{k} no spikes" if np.isnan(r) else
                f"{k} {r:.2f} at {np.degrees(phase):.0f} deg" + (" (n.s.)" if not p < 0.01 else "")
                for k, (r, phase, p) in self.theta.items())
                + f"  (vector strength of the spikes at the drives' {self.theta_frequency:g} Hz, spontaneous; "
                f"n.s.: Rayleigh p >= 0.01)\n")
        return (f"spontaneous mean rate: {rates(self.spontaneous)}\n"
                + ("stimulated mean rate:  not measured\n" if self.stimulated is None else
                   f"stimulated mean rate:  {rates(self.stimulated)}  ({STIMULUS_AMPLITUDE:g} uA biphasic pulses "
                   f"on every channel at {STIMULUS_RATE:g} Hz)\n")
                + _response_line(self.response)
                + branching_line(self.branching_ratio)
                + _avalanche_lines(self.avalanches, self.duration - self.transient)
                + _burst_lines(self.bursts)
                + locking +
                f"measured over {self.duration - self.transient:g} ms after a {self.transient:g} ms transient")


def monotonic_until(response: dict) -> float | None:
    """The first amplitude of ``response`` (µA -> Hz) whose rate is below the one before it,
    or None when the rate never falls as the amplitude grows."""
    amplitudes = sorted(response)
    for low, high in zip(amplitudes, amplitudes[1:]):
        if response[high] < response[low]:
            return high
    return None


def _response_line(response: dict | None) -> str:
    if not response:
        return ""
    falls = monotonic_until(response)
    verdict = "monotonic" if falls is None else f"not monotonic: lower at {falls:g} uA than below it"
    return ("stimulus response:     " + ", ".join(f"{a:g} uA {response[a]:.2f} Hz" for a in sorted(response))
            + f"  ({verdict})\n")


def branching_line(m: float) -> str:
    """The report's line for a branching ratio from :func:`spike_branching_ratio`."""
    how = f"multistep regression, spontaneous, {BRANCHING_BIN:g} ms bins"
    if np.isnan(m):
        return (f"branching ratio:       n/a  ({how}: needs {2 * BRANCHING_STEPS * BRANCHING_BIN:g} ms "
                f"after the transient)\n")
    if m == 0:
        return f"branching ratio:       0.00  ({how}: consecutive bins uncorrelated)\n"
    if m < 0.005:
        # r_1 > 0 but r_k ~ 0 or negative beyond: no decay time to speak of (the fit's m -> 0)
        return f"branching ratio:       0.00  ({how}: correlated over one bin only)\n"
    tau = autocorrelation_time(m, BRANCHING_BIN)
    timescale = "infinite" if np.isinf(tau) else f"{tau:.1f} ms"
    return f"branching ratio:       {m:.2f}  ({how}; autocorrelation time {timescale})\n"


def _versus(name: str, r: float, p: float) -> str:
    verdict = "better" if r > 0 and p < LIKELIHOOD_P else "worse" if r < 0 and p < LIKELIHOOD_P else "undecided"
    return f"vs {name} {verdict} (p {p:.2g})"


def _fit_line(label: str, fit: PowerLawFit, unit: str) -> str:
    if not fit.fitted:
        return f"{label:<23}not fitted ({fit.count} avalanches; needs {MIN_FIT} and a spread of values)\n"
    unit = unit if fit.xmin != 1 else unit[:-1]
    verdict = "preferred" if fit.preferred else "not preferred"
    return (f"{label:<23}exponent {fit.exponent:.2f} from {fit.xmin:g} {unit} up ({fit.tail} of {fit.count} "
            f"avalanches); power law {verdict}: "
            f"{_versus('exponential', *fit.vs_exponential)}, {_versus('lognormal', *fit.vs_lognormal)}\n")


def _avalanche_lines(avalanches: Avalanches | None, window: float) -> str:
    if avalanches is None:
        return ""
    return (f"avalanches:            {len(avalanches.sizes)} in {window:g} ms of MEA channel events, "
            f"{avalanches.bin:.2f} ms bins (their mean inter-event interval)\n"
            + _fit_line("avalanche sizes:", avalanches.size_fit, "events")
            + _fit_line("avalanche durations:", avalanches.duration_fit, "bins"))


def _percent(fraction: float) -> str:
    return "n/a" if np.isnan(fraction) else f"{100 * fraction:.0f} %"


def _burst_lines(bursts: NetworkBursts | None) -> str:
    if bursts is None:
        return ""
    window = bursts.window[1] - bursts.window[0]
    lines = (f"network bursts:        {bursts.rate:.2f} Hz  ({bursts.count} in {window:g} ms; "
             f"each >= {bursts.needed} of {bursts.active} active channels)\n")
    if bursts.count == 1:
        interval = "n/a (one network burst)"
    else:
        cv = "n/a (one interval)" if bursts.count == 2 else f"{bursts.interval_cv:.2f}"
        interval = f"{bursts.interval_mean:.2f} s mean, CV {cv}"
    if bursts.count:
        lines += (f"inter-burst interval:  {interval}  (start to start)\n"
                  f"burst duration:        {bursts.duration_mean:.0f} ms mean\n"
                  f"channel participation: {_percent(bursts.participation)} of the active channels per network burst\n")
    return lines + (f"spikes in bursts:      {_percent(bursts.fraction_in_network_bursts)} in network bursts, "
                    f"{_percent(bursts.fraction_in_channel_bursts)} in channel bursts (of the channels' spikes)\n")


def run_with_progress(env, duration: float, stimulus=None, label: str = ""):
    """Run ``env`` for ``duration`` ms in pieces, with a progress bar on a terminal for runs
    of 500 ms or more; return one :class:`livn.result.Result` for the whole run.

    Without a terminal (a log file, a batch job) such a run is one call, and a line on stderr
    says when it starts and how long it took, so that a log of an hour-long measurement shows
    where it is (rank 0 only under MPI)."""
    from tqdm import tqdm

    from .build.parallel import World
    from .result import concatenate

    if duration < 500:
        return env.run(duration, stimulus=stimulus)
    if not sys.stderr.isatty():  # one call, no per-call overhead
        lead = World().rank == 0
        if lead:
            print(f"{label or 'run'}: {duration:g} ms ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        result = env.run(duration, stimulus=stimulus)
        if lead:
            print(f"{label or 'run'}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        return result
    # every call costs a fixed overhead (a gather of the spikes under MPI), so pieces are a 25th
    # of the run, >= 250 ms
    chunk = max(250.0, duration / 25)
    steps = int(round(chunk / env.dt))
    pieces, done, k = [], 0.0, 0
    with tqdm(total=duration, unit="ms", desc=label,
              bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} ms [{elapsed}<{remaining}]") as bar:
        while done < duration - 1e-9:
            step = min(chunk, duration - done)
            piece = None if stimulus is None else stimulus[k * steps:k * steps + int(round(step / env.dt))]
            pieces.append(env.run(step, stimulus=piece))
            done, k = done + step, k + 1
            bar.update(step)
    return concatenate(pieces)


def _rates(env, it, t, start, stop) -> dict:
    system = env.system
    out = {p: mean_rate(it, t, system.gids(p), start, stop) for p in system.populations}
    out["all"] = mean_rate(it, t, system.gids(), start, stop)
    return out


def default_protocol(system) -> tuple[float, float]:
    """(duration, transient) in ms of each protocol for ``system``: 7000 and 2000 (5 s measured
    after the onset: every cell starts at rest with its synapses fully recovered, and the
    depressing EI synapses, recovering with 800 ms, take ~2 s to settle; a shorter transient
    counts the onset's synchronous surge as a network burst), or 1000 and 200 when some cell
    is a tree (more than the EI cells' two compartments, soma and dendrite): CA1 costs about 30 min of one core per simulated second at scale 0.002,
    so 7 s per protocol would take hours; 800 ms still hold six theta cycles."""
    if any(len(cell.compartments) > 2 for cell in system.network.cells):
        return 1000.0, 200.0
    return 7000.0, 2000.0


def _binned(t: np.ndarray, start: float, stop: float, bin: float) -> np.ndarray:
    """Events per whole bin of ``bin`` ms from ``start`` (a last partial bin is dropped)."""
    bins = int((stop - start) // bin)
    if bins < 1:
        return np.zeros(0, dtype=int)
    return np.histogram(t, start + bin * np.arange(bins + 1))[0]


def spike_branching_ratio(t: np.ndarray, start: float, stop: float) -> float:
    """Multistep-regression branching ratio of spike times ``t`` (ms) in [start, stop), with
    ``BRANCHING_BIN`` bins; NaN when the window holds fewer than 2 · ``BRANCHING_STEPS`` bins."""
    counts = _binned(t, start, stop, BRANCHING_BIN)
    if len(counts) < 2 * BRANCHING_STEPS:
        return float("nan")
    return multistep_branching_ratio(counts, BRANCHING_STEPS)[0]


def _avalanches(channels: list, start: float, stop: float) -> Avalanches | None:
    events = np.concatenate(channels) if channels else np.zeros(0)
    bin = mean_event_interval(events, start, stop)
    if np.isnan(bin):
        return None
    return avalanche_statistics(_binned(events, start, stop, bin), bin)


def measure(env, duration: float = 7000.0, transient: float = 2000.0, amplitude: float = STIMULUS_AMPLITUDE,
            rate: float = STIMULUS_RATE, progress: bool = True, response: tuple = (), proceed=None) -> Dynamics:
    """Run both protocols on ``env`` (cleared before each; recording spikes) and measure.

    ``progress`` False: no progress bar even on a terminal (runs inside a tuning loop).
    ``response``: further amplitudes (µA, e.g. ``RESPONSE_AMPLITUDES``) at which the stimulated
    protocol runs again, for the response curve (its overall rate per amplitude).
    ``proceed``: called with the spontaneous protocol's figures (a Dynamics whose ``stimulated``
    is None); when it returns False, that Dynamics is returned and nothing else runs (a tuning
    trial that cannot win any more)."""
    for value in response:
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"response amplitudes must be finite and > 0 uA, found {value!r}")
    if proceed is not None and not callable(proceed):
        raise TypeError(f"proceed must be a function of the spontaneous figures (or None), found {proceed!r}")

    def run(stimulus, label):
        if not progress:
            return env.run(duration, stimulus=stimulus)
        return run_with_progress(env, duration, stimulus, label)

    env.record_spikes()
    env.clear()
    it, t = run(None, "spontaneous")[:2]
    spontaneous = _rates(env, it, t, transient, duration)
    ratio = spike_branching_ratio(t, transient, duration)
    channels = env.channel_spikes(it, t) if env.system.num_channels else []
    avalanches = _avalanches(channels, transient, duration)
    bursts = network_bursts(channels, transient, duration) if channels else None
    frequency = env.system.theta_frequency
    theta = None
    if frequency is not None:
        theta = {p: phase_locking(t[np.isin(it, env.system.gids(p))], frequency, transient, duration)
                 for p in env.system.populations}
    env.clear()
    n = env.system.num_channels
    spikes = (it, t)
    if proceed is not None:
        partial = Dynamics(spontaneous, None, ratio, duration, transient, frequency, theta, avalanches, bursts, spikes)
        if not proceed(partial):
            return partial

    def stimulated_rates(current: float) -> dict:
        it, t = run(pulse_train(duration, range(n), n, current, rate, dt=env.dt), f"stimulated {current:g} uA")[:2]
        env.clear()
        return _rates(env, it, t, transient, duration)

    stimulated = stimulated_rates(amplitude)
    curve = None
    if response:
        curve = {float(amplitude): stimulated["all"]}
        for current in sorted(set(map(float, response)) - {float(amplitude)}):
            curve[current] = stimulated_rates(current)["all"]
    return Dynamics(spontaneous, stimulated, ratio, duration, transient, frequency, theta, avalanches, bursts, spikes,
                    curve)
