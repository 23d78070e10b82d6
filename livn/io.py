"""The multi-electrode array as a device: stimulus waveforms in, channel data out.

Currents in µA, times in ms. A stimulus is an array of shape (samples, channels), one
sample per integration step ``dt``, applied from the start of the next ``run``.
"""

from __future__ import annotations

import math

import numpy as np


def _number(name: str, value, minimum: float = 0.0, strict: bool = True) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, found {value!r}") from None
    if not math.isfinite(number) or (number <= minimum if strict else number < minimum):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum:g}, found {value!r}")
    return number


def biphasic_pulse(amplitude: float, phase: float = 0.2, gap: float = 0.05, dt: float = 0.025) -> np.ndarray:
    """One biphasic, cathodic-first pulse: −amplitude for ``phase`` ms, 0 for ``gap`` ms,
    +amplitude for ``phase`` ms (µA, one sample per ``dt`` ms)."""
    amplitude = _number("amplitude", amplitude, strict=False)
    dt, phase, gap = _number("dt", dt), _number("phase", phase), _number("gap", gap, strict=False)
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
    duration, dt, rate = _number("duration", duration), _number("dt", dt), _number("rate", rate)
    start = _number("start", start, strict=False)
    if isinstance(num_channels, bool) or not isinstance(num_channels, (int, np.integer)) or num_channels < 1:
        raise ValueError(f"num_channels must be a positive integer, found {num_channels!r}")
    channels = list(channels)
    bad = [c for c in channels if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < num_channels]
    if bad:
        raise ValueError(f"channels must be integers in 0..{num_channels - 1}, found {bad[:5]}")
    steps = int(round(duration / dt))
    stimulus = np.zeros((steps, num_channels))
    shape = biphasic_pulse(amplitude, dt=dt, **pulse)
    period = 1000.0 / rate
    for onset in np.arange(start, duration, period):
        k = int(round(onset / dt))
        n = min(len(shape), steps - k)
        if n > 0:
            stimulus[k:k + n, channels] += shape[:n, None]
    return stimulus


def channel_spikes(it: np.ndarray, t: np.ndarray, channel_members: list) -> list[np.ndarray]:
    """Spike times (ms) seen by each channel: every spike of every cell within its radius."""
    out = []
    for members in channel_members:
        mask = np.isin(it, members)
        out.append(np.sort(t[mask]))
    return out
