"""The tuned defaults reproduce the target dynamics (short runs, looser bounds than the spec's
5 s measurements; `livn dynamics EI2` prints the full figures)."""

import math

import numpy as np
import pytest

from livn import make
from livn.measures import Avalanches, PowerLawFit, network_bursts
from livn.protocols import Dynamics, measure

REPORT_LINES = ("spontaneous mean rate:", "stimulated mean rate:", "branching ratio:", "avalanches:",
                "avalanche sizes:", "avalanche durations:", "network bursts:", "spikes in bursts:")


@pytest.mark.slow
def test_ei2_defaults_give_the_target_dynamics():
    """Rates within the tuning's bounds and near-critical collective activity (m ~ 1 by
    multistep regression; EI2's spontaneous activity moves in slow waves and brief network
    bursts), from 2 s after the 2 s onset."""
    dynamics = measure(make("EI2"), duration=4000.0, transient=2000.0, response=(10.0, 30.0))
    spontaneous, stimulated = dynamics.spontaneous, dynamics.stimulated
    report = dynamics.report()
    assert 1.0 <= spontaneous["all"] <= 6.0, report
    assert spontaneous["EXC"] > 0.5 and spontaneous["INH"] > spontaneous["EXC"], "both active, INH the faster"
    assert 6.0 <= stimulated["all"] <= 20.0, report
    assert stimulated["all"] > 2 * spontaneous["all"]
    # the response grows over sample's amplitude range (20 uA: 11.1 Hz over 10 s)
    assert dynamics.response[10.0] < stimulated["all"] < dynamics.response[30.0], report
    assert 0.8 <= dynamics.branching_ratio <= 1.05, report  # tuned: 0.98 over 10 s on both targets
    assert len(dynamics.avalanches.sizes) > 50, report  # ~70 per second of MEA events
    assert dynamics.bursts.active == 16 and 0 <= dynamics.bursts.fraction_in_channel_bursts < 1, report
    it, t = dynamics.spikes
    assert len(it) == len(t) and t.max() < 4000.0
    for line in REPORT_LINES:
        assert line in report, report


def test_dynamics_command_prints_the_figures_and_draws_them(tmp_path):
    from conftest import run_livn
    picture = tmp_path / "dynamics.png"
    result = run_livn("dynamics", "EI1", "--duration", "600", "--transient", "100", "--plot", picture)
    assert result.returncode == 0, result.stderr[-2000:]
    for words in (*REPORT_LINES, "EXC", "INH", "4 ms bins", "multistep regression", f"picture: {picture}"):
        assert words in result.stdout, result.stdout
    assert picture.read_bytes()[:4] == b"\x89PNG"
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    # without a terminal (a log file) each protocol says when it starts and how long it took
    for label in ("spontaneous", "stimulated 20 uA"):
        assert f"{label}: 600 ms ..." in result.stderr and f"{label}: done in " in result.stderr, result.stderr


def test_the_report_gives_theta_locking_when_the_drives_have_theta():
    """A significant lock prints strength and phase, a weak one is marked n.s., a silent
    population says so; without theta drives there is no such line."""
    theta = {"PYR": (0.73, math.radians(45), 1e-9), "OLM": (0.9, 0.1, 0.2), "IVY": (math.nan,) * 3}
    report = Dynamics({"PYR": 0.4}, {"PYR": 0.4}, 1.0, 400.0, 100.0, 8.0, theta).report()
    assert "PYR 0.73 at 45 deg," in report and "OLM 0.90 at 6 deg (n.s.)" in report
    assert "IVY no spikes" in report and "8 Hz" in report
    assert "theta locking" not in Dynamics({"A": 1.0}, {"A": 2.0}, 1.0, 400.0, 100.0).report()


@pytest.mark.parametrize("m, words", [
    (0.9, "0.90  (multistep regression, spontaneous, 4 ms bins; autocorrelation time 38.0 ms)"),
    (0.0, "0.00  (multistep regression, spontaneous, 4 ms bins: consecutive bins uncorrelated)"),
    (1e-4, "0.00  (multistep regression, spontaneous, 4 ms bins: correlated over one bin only)"),
    (1.2, "1.20  (multistep regression, spontaneous, 4 ms bins; autocorrelation time infinite)"),
    (float("nan"), "n/a  (multistep regression, spontaneous, 4 ms bins: needs 320 ms after the transient)"),
])
def test_the_report_gives_the_branching_ratio_with_its_bin_and_timescale(m, words):
    assert f"branching ratio:       {words}\n" in Dynamics({"A": 1.0}, {"A": 2.0}, m, 5500.0, 500.0).report()


def test_the_report_gives_avalanche_and_burst_figures_one_per_line():
    burst = 1000 + 5.0 * np.arange(6)
    channels = [np.concatenate([burst + onset for onset in (0.0, 1500.0, 2500.0)]) for _ in range(4)] + [[]]
    bursts = network_bursts(channels, 500.0, 5500.0)
    sizes = PowerLawFit(1.52, 3.0, 812, 1500, (5.1, 1e-4), (-0.3, 0.7))
    durations = PowerLawFit(2.31, 1.0, 1500, 1500, (-3.0, 0.001), (-4.0, 1e-5))
    avalanches = Avalanches(np.ones(1500, int), np.ones(1500, int), 2.29, sizes, durations)
    report = Dynamics({"A": 1.0}, {"A": 2.0}, 0.5, 5500.0, 500.0, avalanches=avalanches, bursts=bursts).report()
    expected = [
        "avalanches:            1500 in 5000 ms of MEA channel events, 2.29 ms bins (their mean inter-event interval)",
        "avalanche sizes:       exponent 1.52 from 3 events up (812 of 1500 avalanches); power law preferred: "
        "vs exponential better (p 0.0001), vs lognormal undecided (p 0.7)",
        "avalanche durations:   exponent 2.31 from 1 bin up (1500 of 1500 avalanches); power law not preferred: "
        "vs exponential worse (p 0.001), vs lognormal worse (p 1e-05)",
        "network bursts:        0.60 Hz  (3 in 5000 ms; each >= 2 of 4 active channels)",
        "inter-burst interval:  1.25 s mean, CV 0.20  (start to start)",
        "burst duration:        25 ms mean",
        "channel participation: 100 % of the active channels per network burst",
        "spikes in bursts:      100 % in network bursts, 100 % in channel bursts (of the channels' spikes)",
    ]
    lines = report.splitlines()
    for line in expected:
        assert line in lines, report


def test_the_report_leaves_out_what_was_not_measured():
    """Too few avalanches to fit and no network burst are said so; no MEA, no such lines."""
    few = PowerLawFit(float("nan"), float("nan"), 0, 12)
    avalanches = Avalanches(np.ones(12, int), np.ones(12, int), 30.0, few, few)
    bursts = network_bursts([[1.0, 50.0], [2.0]], 0.0, 500.0)
    report = Dynamics({"A": 1.0}, {"A": 2.0}, 0.5, 600.0, 100.0, avalanches=avalanches, bursts=bursts).report()
    assert "avalanche sizes:       not fitted (12 avalanches; needs 50 and a spread of values)" in report
    assert "network bursts:        0.00 Hz  (0 in 500 ms" in report and "inter-burst interval" not in report
    bare = Dynamics({"A": 1.0}, {"A": 2.0}, 0.5, 600.0, 100.0).report()
    assert "avalanche" not in bare and "bursts" not in bare


def test_the_picture_needs_the_spikes_of_a_measurement():
    from livn.plot import plot_dynamics

    with pytest.raises(ValueError, match="found spikes=None"):
        plot_dynamics(None, Dynamics({"A": 1.0}, {"A": 2.0}, 0.5, 600.0, 100.0), "unused.png")


class _BurstingEnv:
    """An Env stand-in: 40 cells on 8 channels (5 each) that fire together every 500 ms
    (20 ms bursts) and sparsely between; the stimulated run doubles every spike."""

    dt = 0.025

    class system:
        populations = ("EXC",)
        num_channels = 8
        theta_frequency = None
        channel_members = [np.arange(5 * c, 5 * c + 5) for c in range(8)]

        @staticmethod
        def gids(population=None):
            return np.arange(40)

    def __init__(self):
        rng = np.random.default_rng(3)
        t = [rng.uniform(0, 3000.0, 300)] + [onset + rng.uniform(0, 20.0, 200) for onset in range(250, 3000, 500)]
        self.t = np.concatenate(t)
        self.it = rng.integers(0, 40, len(self.t))
        self.calls = []

    def record_spikes(self):
        pass

    def clear(self):
        pass

    def run(self, duration, stimulus=None):
        self.calls.append(duration)
        if stimulus is None:
            return self.it, self.t
        return np.concatenate([self.it, self.it]), np.concatenate([self.t, self.t + 1.0])

    def channel_spikes(self, it, t):
        from livn.io import channel_spikes
        return channel_spikes(it, t, self.system.channel_members)


def test_measure_takes_the_collective_figures_from_the_spontaneous_run():
    env = _BurstingEnv()
    dynamics = measure(env, duration=3000.0, transient=200.0, progress=False)
    assert env.calls == [3000.0, 3000.0]
    assert dynamics.stimulated["all"] == pytest.approx(2 * dynamics.spontaneous["all"], rel=0.02)
    bursts = dynamics.bursts
    assert bursts.count == 6 and bursts.participation == 1.0
    assert np.allclose(bursts.start, np.arange(250, 3000, 500), atol=5.0)
    assert bursts.interval_mean == pytest.approx(0.5, abs=0.01)
    assert 0 < dynamics.branching_ratio <= 1.5 and len(dynamics.avalanches.sizes) > 50
    assert dynamics.spikes[1] is env.t


class _SaturatingEnv(_BurstingEnv):
    """A stimulated run keeps the spikes of a whole number of copies that grows with the pulses'
    amplitude up to 20 µA and falls beyond it (depolarisation block, say)."""

    COPIES = {5.0: 1, 10.0: 2, 20.0: 4, 30.0: 3}

    def run(self, duration, stimulus=None):
        self.calls.append(None if stimulus is None else float(np.abs(stimulus).max()))
        copies = 1 if stimulus is None else self.COPIES[round(float(np.abs(stimulus).max()))]
        return np.tile(self.it, copies), np.concatenate([self.t + k for k in range(copies)])


def test_the_response_curve_runs_each_amplitude_once_and_says_where_it_falls():
    env = _SaturatingEnv()
    dynamics = measure(env, duration=3000.0, transient=200.0, progress=False, response=(10.0, 30.0, 5.0, 20.0))
    assert env.calls == [None, 20.0, 5.0, 10.0, 30.0]  # the stimulated protocol's amplitude is not run twice
    rates = dynamics.response
    assert list(rates) == [20.0, 5.0, 10.0, 30.0] and rates[20.0] == dynamics.stimulated["all"]
    assert rates[10.0] == pytest.approx(2 * rates[5.0], rel=0.01) and rates[30.0] < rates[20.0]
    assert "(not monotonic: lower at 30 uA than below it)" in dynamics.report()
    rising = Dynamics({"A": 1.0}, {"A": 2.0}, 0.5, 600.0, 100.0, response={20.0: 2.0, 5.0: 1.0, 30.0: 2.0}).report()
    assert "stimulus response:     5 uA 1.00 Hz, 20 uA 2.00 Hz, 30 uA 2.00 Hz  (monotonic)\n" in rising
    assert "stimulus response" not in Dynamics({"A": 1.0}, {"A": 2.0}, 0.5, 600.0, 100.0).report()
    with pytest.raises(ValueError, match="finite and > 0 uA, found nan"):
        measure(env, duration=3000.0, transient=200.0, progress=False, response=(float("nan"),))


def test_measure_refuses_a_proceed_that_is_not_a_function():
    with pytest.raises(TypeError, match="proceed must be a function"):
        measure(make("EI1"), 400.0, 100.0, proceed=True)
