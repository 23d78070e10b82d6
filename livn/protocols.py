"""The protocols that define a system's dynamics figures (what tuning aims at).

Spontaneous: no stimulus, noise only. Stimulated: biphasic, cathodic-first pulses
(0.2 ms per phase, 0.05 ms gap) of ``STIMULUS_AMPLITUDE`` µA on every MEA channel at
``STIMULUS_RATE`` Hz. Both are measured after a transient; the branching ratio comes from
the spontaneous run with 4 ms bins.

20 µA at 10 Hz (chosen 2026-11-25 with the tuned EI defaults): ~106 mV at the electrode
(52 µm below the cells); each pulse evokes about one extra spike per cell on average, so the
stimulated mean rate is ~13-14 Hz (EI2 13.5, EI3 14.0) against ~3.8 Hz spontaneous. 15 µA
gives ~10 Hz (EI2); stronger pulses add little (40 µA: EI2 15.9, EI3 9.7 Hz).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from .io import pulse_train
from .measures import BRANCHING_BIN, branching_ratio, mean_rate, phase_locking

STIMULUS_AMPLITUDE = 20.0  # µA per channel
STIMULUS_RATE = 10.0  # Hz


@dataclass(frozen=True)
class Dynamics:
    """Measured figures: rates in Hz per population and overall, branching ratio; for a system
    whose input drives are theta-modulated, each population's locking to that rhythm in the
    spontaneous run (population -> (vector strength, preferred phase rad, Rayleigh p))."""

    spontaneous: dict
    stimulated: dict
    branching_ratio: float
    duration: float
    transient: float
    theta_frequency: float | None = None
    theta: dict | None = None

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
                f"stimulated mean rate:  {rates(self.stimulated)}  ({STIMULUS_AMPLITUDE:g} uA biphasic pulses "
                f"on every channel at {STIMULUS_RATE:g} Hz)\n"
                f"branching ratio:       {self.branching_ratio:.2f}  (spontaneous, {BRANCHING_BIN:g} ms bins)\n"
                + locking +
                f"measured over {self.duration - self.transient:g} ms after a {self.transient:g} ms transient")


def run_with_progress(env, duration: float, stimulus=None, label: str = ""):
    """Run ``env`` for ``duration`` ms in pieces, with a progress bar on a terminal for runs
    of 500 ms or more; return one :class:`livn.result.Result` for the whole run."""
    from tqdm import tqdm

    from .result import concatenate

    if duration < 500 or not sys.stderr.isatty():
        return env.run(duration, stimulus=stimulus)  # nobody watches: one call, no per-call overhead
    # every call costs a fixed overhead (Brian2: ~0.25 s), so pieces are a 25th of the run, >= 250 ms
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
    """(duration, transient) in ms of each protocol for ``system``: 5500 and 500 (the EI tuning's
    figures), or 1000 and 200 when some cell is a tree (more than the EI cells' two compartments,
    soma and dendrite): CA1 costs about 30 min of one core per simulated second at scale 0.002,
    so 5.5 s per protocol would take hours; 800 ms still hold six theta cycles."""
    if any(len(cell.compartments) > 2 for cell in system.network.cells):
        return 1000.0, 200.0
    return 5500.0, 500.0


def measure(env, duration: float = 5500.0, transient: float = 500.0, amplitude: float = STIMULUS_AMPLITUDE,
            rate: float = STIMULUS_RATE) -> Dynamics:
    """Run both protocols on ``env`` (cleared before each; recording spikes) and measure."""
    env.record_spikes()
    env.clear()
    it, t = run_with_progress(env, duration, label="spontaneous")[:2]
    spontaneous = _rates(env, it, t, transient, duration)
    ratio = branching_ratio(t, transient, duration)
    frequency = env.system.theta_frequency
    theta = None
    if frequency is not None:
        theta = {p: phase_locking(t[np.isin(it, env.system.gids(p))], frequency, transient, duration)
                 for p in env.system.populations}
    env.clear()
    n = env.system.num_channels
    it, t = run_with_progress(env, duration, pulse_train(duration, range(n), n, amplitude, rate, dt=env.dt),
                              label="stimulated")[:2]
    stimulated = _rates(env, it, t, transient, duration)
    env.clear()
    return Dynamics(spontaneous, stimulated, ratio, duration, transient, frequency, theta)
