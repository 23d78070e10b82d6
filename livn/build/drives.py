"""Spike trains of virtual populations: Poisson, optionally theta-modulated.

A train is generated in chunks of :data:`CHUNK` ms, each from its own stream keyed by
(seed, population, chunk, gid): a train is a pure function of the gid and the time, so a
longer train extends a shorter one without changing its beginning, and which other cells
exist, or which process draws them, makes no difference.

The rate λ(t) = rate·(1 + depth·cos(2π·f·t − phase)) is sampled by thinning (Lewis &
Shedler 1979): candidate times from a homogeneous process at rate·(1 + depth), each kept
with probability λ(t)/(rate·(1 + depth)).
"""

from __future__ import annotations

import math

import numpy as np

from ..spec.model import PoissonDrive
from .streams import Streams

#: chunk length (ms)
CHUNK = 1000.0


def chunk(seed: int, population: str, drive: PoissonDrive, k: int, gids) -> tuple[np.ndarray, np.ndarray]:
    """Spikes of ``gids`` in [k·CHUNK, (k + 1)·CHUNK) ms: (gids, times ms), by gid then time."""
    depth = drive.theta.depth if drive.theta else 0.0
    peak = drive.rate * (1.0 + depth) / 1e3  # per ms
    streams = Streams(seed, f"drive:{population}:{k}")
    t0 = k * CHUNK
    out_gids, out_times = [], []
    for gid in gids:
        rng = streams.generator(int(gid))
        n = rng.poisson(peak * CHUNK)
        times = np.sort(t0 + rng.random(n) * CHUNK)
        if drive.theta is not None and n:
            keep = rng.random(n) * (1.0 + depth) < 1.0 + depth * np.cos(
                2 * math.pi * drive.theta.frequency / 1e3 * times - drive.theta.phase)
            times = times[keep]
        out_gids.append(np.full(len(times), gid, dtype=np.int64))
        out_times.append(times)
    if not out_gids:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(out_gids), np.concatenate(out_times)


def trains(seed: int, population: str, drive: PoissonDrive, gids, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Spikes of ``gids`` in [0, duration) ms: (gids, times ms), by gid then time."""
    parts = [chunk(seed, population, drive, k, gids) for k in range(int(math.ceil(duration / CHUNK)))]
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    g = np.concatenate([p[0] for p in parts])
    t = np.concatenate([p[1] for p in parts])
    keep = t < duration
    g, t = g[keep], t[keep]
    order = np.lexsort((t, g))
    return g[order], t[order]
