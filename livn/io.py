"""The multi-electrode array as a device: stimulus waveforms in, channel data out.

Currents in µA, times in ms. A stimulus is an array of shape (samples, channels), one
sample per integration step ``dt``, applied from the start of the next ``run``.
"""

from __future__ import annotations

import numpy as np


def biphasic_pulse(amplitude: float, phase: float = 0.2, gap: float = 0.05, dt: float = 0.025) -> np.ndarray:
    """One biphasic, cathodic-first pulse: −amplitude for ``phase`` ms, 0 for ``gap`` ms,
    +amplitude for ``phase`` ms (µA, one sample per ``dt`` ms)."""
    n_phase, n_gap = int(round(phase / dt)), int(round(gap / dt))
    return np.concatenate([np.full(n_phase, -amplitude), np.zeros(n_gap), np.full(n_phase, amplitude)])


def pulse_train(duration: float, channels, num_channels: int, amplitude: float, rate: float = 10.0,
                start: float = 0.0, dt: float = 0.025, **pulse) -> np.ndarray:
    """Biphasic pulses at ``rate`` Hz from ``start`` ms on the given ``channels``.

    Returns
    -------
    ndarray
        Shape (duration / dt, num_channels), µA.
    """
    steps = int(round(duration / dt))
    stimulus = np.zeros((steps, num_channels))
    shape = biphasic_pulse(amplitude, dt=dt, **pulse)
    period = 1000.0 / rate
    for onset in np.arange(start, duration, period):
        k = int(round(onset / dt))
        n = min(len(shape), steps - k)
        if n > 0:
            stimulus[k:k + n, list(channels)] += shape[:n, None]
    return stimulus


def channel_spikes(it: np.ndarray, t: np.ndarray, channel_members: list) -> list[np.ndarray]:
    """Spike times (ms) seen by each channel: every spike of every cell within its radius."""
    out = []
    for members in channel_members:
        mask = np.isin(it, members)
        out.append(np.sort(t[mask]))
    return out
