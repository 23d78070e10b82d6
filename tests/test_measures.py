"""Figures of network dynamics (livn/measures.py)."""

from __future__ import annotations

import numpy as np
import pytest

from livn.measures import phase_locking


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
