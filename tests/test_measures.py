"""Figures of network dynamics (livn/measures.py)."""

from __future__ import annotations

import numpy as np
import pytest

from livn.measures import (autocorrelation_time, avalanche_statistics, avalanches,
                           channel_bursts, fit_power_law, mean_event_interval, multistep_branching_ratio,
                           network_bursts, phase_locking)


def _modulated_poisson(rate: float, depth: float, frequency: float, phase: float, duration: float, seed: int):
    """Spike times (ms) of rate (1 + depth cos(2 pi f t - phase)) Hz, by thinning."""
    rng = np.random.default_rng(seed)
    peak = rate * (1 + depth)
    t = np.sort(rng.uniform(0, duration, rng.poisson(peak * duration / 1000.0)))
    r = rate * (1 + depth * np.cos(2 * np.pi * frequency * t / 1000.0 - phase))
    return t[rng.uniform(0, peak, len(t)) < r]


@pytest.mark.parametrize("phase", [0.0, np.pi / 2, np.pi])
def test_a_theta_modulated_train_locks_with_half_its_depth_at_its_phase(phase):
    t = _modulated_poisson(50.0, 0.5, 8.0, phase, 200_000.0, seed=1)
    strength, preferred, p = phase_locking(t, 8.0, 0.0, 200_000.0)
    assert strength == pytest.approx(0.25, abs=0.02)
    assert abs(np.angle(np.exp(1j * (preferred - phase)))) < 0.1
    assert p < 1e-6


def test_an_unmodulated_train_does_not_lock():
    t = _modulated_poisson(50.0, 0.0, 8.0, 0.0, 200_000.0, seed=2)
    strength, _, p = phase_locking(t, 8.0, 0.0, 200_000.0)
    assert strength < 0.02 and p > 0.001


def test_no_spikes_in_the_window_gives_nan():
    assert all(np.isnan(phase_locking(np.array([5.0]), 8.0, 10.0, 20.0)))


@pytest.mark.parametrize("args, message", [
    ((np.array([1.0]), 0.0, 0.0, 10.0), "frequency"),
    ((np.array([1.0]), float("nan"), 0.0, 10.0), "frequency"),
    ((np.array([1.0]), 8.0, 10.0, 10.0), "window"),
    ((np.array([1.0]), 8.0, 0.0, float("inf")), "window"),
    ((np.ones((2, 2)), 8.0, 0.0, 10.0), "1-D"),
])
def test_phase_locking_refuses_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        phase_locking(*args)


# -- multistep regression branching ratio --------------------------------------------------


def _branching_process(m: float, drive: float, bins: int, seed: int) -> np.ndarray:
    """A(t+1) ~ Poisson(m·A(t) + drive): a driven branching process with branching parameter m."""
    rng = np.random.default_rng(seed)
    a = np.zeros(bins)
    a[0] = drive / (1 - m)
    for k in range(1, bins):
        a[k] = rng.poisson(m * a[k - 1] + drive)
    return a


@pytest.mark.parametrize("m", [0.5, 0.9, 0.98])
def test_multistep_regression_recovers_a_known_branching_parameter(m):
    estimate, amplitude = multistep_branching_ratio(_branching_process(m, 10.0, 20000, seed=1))
    assert abs(estimate - m) < 0.05, estimate
    assert amplitude > 0


def test_multistep_regression_is_unbiased_under_subsampling():
    """Seeing 10 % of the events lowers the amplitude, not m (the naive ratio is pulled to 1)."""
    full = _branching_process(0.95, 100.0, 20000, seed=2)
    seen = np.random.default_rng(3).binomial(full.astype(int), 0.1)
    estimate, amplitude = multistep_branching_ratio(seen)
    assert abs(estimate - 0.95) < 0.05, estimate
    assert amplitude < multistep_branching_ratio(full)[1]


def test_poisson_activity_gives_zero_where_the_naive_ratio_gives_one():
    """Independent Poisson spiking: no propagation, m = 0 (the naive mean of n(t+1)/n(t) gave 0.87)."""
    rng = np.random.default_rng(4)
    t = np.sort(rng.uniform(0, 100_000.0, 100 * 3 * 100))  # 100 neurons at 3 Hz for 100 s
    counts = np.histogram(t, bins=np.arange(0, 100_000.0 + 2, 4.0))[0]
    assert multistep_branching_ratio(counts) == (0.0, 0.0)


@pytest.mark.parametrize("counts, steps, message", [
    (np.ones((3, 100)), 40, "1-D"), ([1.0, np.nan] * 100, 40, "finite"), (np.ones(50), 40, "at least 80 bins"),
    (np.ones(100), 0, "max_steps"), (np.ones(100), True, "max_steps")])
def test_multistep_regression_refuses_bad_input(counts, steps, message):
    with pytest.raises(ValueError, match=message):
        multistep_branching_ratio(counts, max_steps=steps)


def test_multistep_regression_refuses_a_bad_significance():
    with pytest.raises(ValueError, match="significance must be a finite number >= 0"):
        multistep_branching_ratio(np.ones(100), significance=float("nan"))


def test_multistep_regression_fits_a_correlation_that_turns_negative():
    """Inhibition makes r_k negative after one step (EI2 at 4 ms bins): the fit gives m near 0
    instead of failing to converge, as a two-parameter search did (b -> inf, m -> 0)."""
    rng = np.random.default_rng(7)
    drive = rng.poisson(4.0, 20002).astype(float)
    counts = drive[2:] + 0.6 * drive[1:-1] - 0.5 * drive[:-2] + 2  # r_1 > 0, r_2 < 0
    m, amplitude = multistep_branching_ratio(np.clip(np.round(counts), 0, None))
    assert 0 <= m < 0.1 and amplitude >= 0


def test_autocorrelation_time_converts_m_to_a_timescale_independent_of_the_bin():
    for bin in (1.0, 4.0, 8.0):
        assert autocorrelation_time(np.exp(-bin / 50.0), bin) == pytest.approx(50.0)
    assert autocorrelation_time(0.0, 4.0) == 0 and np.isinf(autocorrelation_time(1.0, 4.0))
    assert np.isnan(autocorrelation_time(float("nan"), 4.0))
    with pytest.raises(ValueError, match="bin must be a finite number > 0, found 0.0"):
        autocorrelation_time(0.5, 0.0)
    with pytest.raises(ValueError, match="m must be >= 0, found -0.5"):
        autocorrelation_time(-0.5, 4.0)


# -- avalanches ------------------------------------------------------------------------------


def test_avalanches_are_runs_of_active_bins_between_empty_ones():
    """A run touching either end of the series has an unknown extent and is left out."""
    sizes, durations = avalanches([3, 0, 1, 2, 0, 0, 4, 0, 5])
    assert sizes.tolist() == [3, 4] and durations.tolist() == [2, 1]
    assert [len(a) for a in avalanches(np.zeros(10))] == [0, 0]


def _branching_avalanches(m: float, count: int, seed: int):
    """``count`` avalanches of a branching process (one ancestor, Poisson(m) offspring each),
    one empty bin apart: (events per bin, sizes, durations)."""
    rng = np.random.default_rng(seed)
    pieces, sizes, durations = [[0]], [], []
    for _ in range(count):
        active, run = 1, []
        while active:
            run.append(active)
            active = rng.poisson(m * active)
        pieces.append(run + [0])
        sizes.append(sum(run))
        durations.append(len(run))
    return np.concatenate(pieces), sizes, durations


def test_a_critical_branching_process_gives_the_mean_field_exponents(recwarn, capsys):
    """m = 1: sizes ~ s^-1.5, durations ~ T^-2 (the exponents Beggs & Plenz 2003 found).
    5000 avalanches: the size exponent within 0.05 of 1.5, the duration exponent within 0.15
    of 2 (its tail converges slowly: seeds 1-6 give 1.88-2.00). Nothing is printed and no
    warning of powerlaw's escapes."""
    counts, sizes, durations = _branching_avalanches(1.0, 5000, seed=1)
    found = avalanche_statistics(counts, 4.0)
    assert found.sizes.tolist() == sizes and found.durations.tolist() == durations and found.bin == 4.0
    assert found.size_fit.exponent == pytest.approx(1.5, abs=0.05), found.size_fit
    assert found.duration_fit.exponent == pytest.approx(2.0, abs=0.15), found.duration_fit
    assert found.size_fit.preferred and found.duration_fit.preferred
    assert found.size_fit.tail >= 50 and found.size_fit.count == 5000
    assert len(recwarn) == 0 and capsys.readouterr() == ("", "")


def test_a_subcritical_process_is_not_taken_for_a_power_law():
    """m = 0.8: exponential cut-offs; the power law loses to the lognormal (sizes) or the
    exponential (durations)."""
    found = avalanche_statistics(_branching_avalanches(0.8, 5000, seed=1)[0], 4.0)
    assert found.size_fit.fitted and not found.size_fit.preferred and not found.duration_fit.preferred


def test_too_few_avalanches_are_not_fitted():
    fit = fit_power_law([1, 2, 3, 5, 8] * 5)
    assert not fit.fitted and not fit.preferred and fit.count == 25
    assert not fit_power_law([2] * 100).fitted  # one value: no tail to choose


def test_the_avalanche_bin_is_the_mean_inter_event_interval():
    """Coincident events (one spike on two electrodes) count twice; the window applies."""
    assert mean_event_interval([5.0, 1.0, 3.0, 3.0, 100.0], 0.0, 10.0) == pytest.approx(4 / 3)
    assert np.isnan(mean_event_interval([1.0], 0.0, 10.0))


@pytest.mark.parametrize("call, message", [
    (lambda: avalanches(np.ones((2, 2))), "1-D series of whole numbers >= 0, found shape (2, 2)"),
    (lambda: avalanches([1, -1, 0]), "whole numbers >= 0, found -1.0 at bin 1"),
    (lambda: avalanches([0, 1.5]), "whole numbers >= 0, found 1.5 at bin 1"),
    (lambda: avalanches([np.nan]), "whole numbers >= 0, found nan at bin 0"),
    (lambda: fit_power_law([0, 1, 2]), "whole numbers >= 1, found 0.0"),
    (lambda: fit_power_law([[1, 2]]), "found shape (1, 2)"),
    (lambda: fit_power_law([1, 2], min_count=1), "min_count must be an integer >= 2, found 1"),
    (lambda: avalanche_statistics([0, 1, 0], 0.0), "bin must be a finite number > 0, found 0.0"),
    (lambda: avalanche_statistics([0, 1, 0], float("inf")), "bin must be a finite number > 0, found inf"),
    (lambda: mean_event_interval([1.0], 5.0, 5.0), "start < stop (ms), found [5.0, 5.0)"),
])
def test_avalanche_functions_refuse_bad_arguments(call, message):
    with pytest.raises(ValueError) as refused:
        call()
    assert message in str(refused.value)


# -- bursts ----------------------------------------------------------------------------------


def _bursting_culture(seed: int, quiet: float | None = None, channels: int = 16, duration: float = 30_000.0):
    """16 channels of 1 Hz Poisson background, and network bursts 0.8-2.5 s apart in which 12
    random channels fire 20 spikes 5 +- 1 ms apart. ``quiet`` (ms) drops background spikes
    that close to a burst, so that its edges are exactly known.

    Returns (trains, first spike, last spike of each network burst), ms."""
    rng = np.random.default_rng(seed)
    onsets = np.cumsum(rng.uniform(800, 2500, 40))
    onsets = onsets[onsets < duration - 500]
    background = [rng.uniform(0, duration, rng.poisson(duration / 1000)) for _ in range(channels)]
    bursts = [[] for _ in range(channels)]
    firsts, lasts = [], []
    for onset in onsets:
        trains = [onset + rng.uniform(0, 5) + np.arange(0, 100, 5.0) + rng.uniform(-1, 1, 20) for _ in range(12)]
        for c, spikes in zip(rng.choice(channels, 12, replace=False), trains):
            bursts[c].append(spikes)
        firsts.append(min(s.min() for s in trains))
        lasts.append(max(s.max() for s in trains))
    firsts, lasts = np.array(firsts), np.array(lasts)
    if quiet is not None:
        near = lambda t: np.any((t[:, None] > firsts - quiet) & (t[:, None] < lasts + quiet), axis=1)
        background = [t[~near(t)] for t in background]
    return [np.concatenate([t, *b]) for t, b in zip(background, bursts)], firsts, lasts


def test_network_bursts_are_found_where_they_were_put():
    trains, firsts, lasts = _bursting_culture(seed=1, quiet=50.0)
    found = network_bursts(trains, 0.0, 30_000.0)
    assert found.count == len(firsts) == 18
    assert np.abs(found.start - firsts).max() < 2.0 and np.abs(found.end - lasts).max() < 2.0
    assert np.all(found.channels == 12) and found.participation == pytest.approx(0.75)
    assert found.active == 16 and found.needed == 4
    assert found.rate == pytest.approx(18 / 30.0)
    assert found.interval_mean == pytest.approx(np.mean(np.diff(firsts)) / 1000, rel=1e-3)
    assert found.interval_cv == pytest.approx(np.std(np.diff(firsts)) / np.mean(np.diff(firsts)), rel=0.01)
    assert found.duration_mean == pytest.approx(np.mean(lasts - firsts), abs=2.0)
    spikes = sum(len(t) for t in trains)
    assert found.spikes == spikes and found.in_network_bursts == 18 * 12 * 20
    assert found.in_channel_bursts == 18 * 12 * 20  # the quiet margin keeps background out
    assert set(found.summary()) >= {"rate_hz", "interval_mean_s", "interval_cv", "duration_mean_ms",
                                    "fraction_in_network_bursts", "participation"}


def test_background_spikes_stretch_a_burst_by_at_most_the_isi_threshold():
    """With background spikes next to bursts the count stays right; an edge moves by no more
    than the channels' interval threshold, a quarter of their mean interval (~25 ms here)."""
    trains, firsts, lasts = _bursting_culture(seed=1)
    found = network_bursts(trains, 0.0, 30_000.0)
    threshold = min(1000.0 / (4 * len(t) / 30.0) for t in trains)
    assert found.count == len(firsts)
    assert np.all(found.start <= firsts + 2) and np.all(found.start >= firsts - 2 * threshold)
    assert np.all(found.end >= lasts - 2) and np.all(found.end <= lasts + 2 * threshold)
    assert 0.8 < found.fraction_in_network_bursts < 1


def test_poisson_channels_at_3_hz_make_no_network_bursts():
    """16 and 60 channels, 100 s of independent Poisson spikes at 3 Hz: a few chance channel
    bursts (4 spikes within 83 ms of each other), never 25 % of the array at once."""
    rng = np.random.default_rng(5)
    for channels in (16, 60):
        trains = [rng.uniform(0, 100_000.0, rng.poisson(300)) for _ in range(channels)]
        found = network_bursts(trains, 0.0, 100_000.0)
        assert found.count == 0 and np.isnan(found.interval_mean) and np.isnan(found.duration_mean)
        assert found.fraction_in_channel_bursts < 0.05 and found.fraction_in_network_bursts == 0


def test_channel_bursts_are_runs_of_short_intervals():
    """At least 4 spikes, each within max_isi of the previous; the window clips. By default
    max_isi is a quarter of the channel's mean interval (26 spikes in 5 s: 48 ms)."""
    t = np.concatenate([[100.0, 400.0], 1000 + 5.0 * np.arange(8), [1500.0, 1530.0, 1560.0, 1590.0],
                        3000 + 5.0 * np.arange(8), [3500.0, 3510.0, 3520.0], [4000.0]])[::-1]  # any order
    assert channel_bursts(t, 0.0, 5000.0, max_isi=20.0).tolist() == [[1000, 1035], [3000, 3035]]
    assert channel_bursts(t, 0.0, 5000.0, min_spikes=3, max_isi=20.0).tolist() == [[1000, 1035], [3000, 3035],
                                                                                     [3500, 3520]]
    assert channel_bursts(t, 0.0, 3020.0, max_isi=20.0).tolist() == [[1000, 1035], [3000, 3015]]
    assert channel_bursts(t, 0.0, 5000.0).tolist() == [[1000, 1035], [1500, 1590], [3000, 3035]]
    assert channel_bursts([], 0.0, 10.0).shape == (0, 2)


def test_an_array_with_one_active_channel_takes_its_bursts_as_network_bursts():
    t = 1000 + 5.0 * np.arange(8)
    found = network_bursts([t, [], [2.0]], 0.0, 5000.0, active_rate=0.5)
    assert found.active == 1 and found.needed == 1 and found.count == 1 and found.participation == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"channels": np.ones((4, 10))}, "one per channel, found a numeric array of shape (4, 10)"),
    ({"channels": []}, "at least one channel, found none"),
    ({"channels": 5}, "sequence of spike-time arrays, found int"),
    ({"channels": [[1.0], [np.nan]]}, "channel 1 must hold finite spike times (ms), found 1 non-finite"),
    ({"channels": [[[1.0]]]}, "channel 0 must be a 1-D array of spike times (ms), found shape (1, 1)"),
    ({"start": 10.0, "stop": 10.0}, "start < stop (ms), found [10.0, 10.0)"),
    ({"stop": float("inf")}, "start < stop"),
    ({"min_spikes": 1}, "min_spikes must be an integer >= 2, found 1"),
    ({"min_spikes": 4.0}, "min_spikes must be an integer >= 2, found 4.0"),
    ({"max_isi": 0.0}, "max_isi must be a finite number > 0, found 0.0"),
    ({"max_isi": float("nan")}, "max_isi must be a finite number > 0, found nan"),
    ({"min_fraction": 0.0}, "min_fraction must be a number in (0, 1], found 0.0"),
    ({"min_fraction": 1.5}, "min_fraction must be a number in (0, 1], found 1.5"),
    ({"active_rate": -1.0}, "active_rate must be a finite number > 0, found -1.0"),
])
def test_burst_detection_refuses_bad_arguments(kwargs, message):
    arguments = {"channels": [[1.0, 2.0]], "start": 0.0, "stop": 100.0, **kwargs}
    with pytest.raises(ValueError) as refused:
        network_bursts(**arguments)
    assert message in str(refused.value)
    if "channels" not in kwargs and "fraction" not in message and "rate" not in message:
        with pytest.raises(ValueError) as refused:
            channel_bursts(arguments["channels"][0], arguments["start"], arguments["stop"],
                           **{k: v for k, v in kwargs.items() if k in ("min_spikes", "max_isi")})
        assert message in str(refused.value)
