"""The in-process environment: make("EI2") -> Env with record/run/set_params."""

from __future__ import annotations

import os

import numpy as np

from .system import System, predefined


def _backend(backend: str | None) -> str:
    backend = backend or os.environ.get("LIVN_BACKEND", "brian2")
    if backend not in ("brian2", "neuron"):
        raise ValueError(f"unknown backend {backend!r}; expected 'brian2' or 'neuron'")
    if backend == "neuron":
        raise NotImplementedError("the NEURON backend is not implemented yet (issue 4); use backend='brian2'")
    return backend


class Env:
    """A simulation of a system that a user drives step by step.

    Parameters
    ----------
    system : System
    backend : str, optional
        "brian2" (default; ``LIVN_BACKEND`` overrides the default).
    dt : float
        Integration step, ms.
    codegen : str
        Brian2 code generation target ("cython": compiled once, cached across processes).
    """

    def __init__(self, system: System, backend: str | None = None, dt: float = 0.025, codegen: str = "cython"):
        self.system = system
        self.backend = _backend(backend)
        self.dt = dt
        from .targets.brian2.runtime import Simulation
        from .targets.brian2.translate import translate

        self.simulation = Simulation(translate(system.spec), system.directory, dt=dt, codegen=codegen)
        self.t = 0.0

    def default_params(self) -> dict[str, float]:
        return self.system.default_params()

    def set_params(self, params: dict) -> None:
        """Set weights / noise by the names of ``system.default_params()``."""
        self.simulation.set_params(params)

    def record_spikes(self) -> None:
        self.simulation.record_spikes()

    def record_voltage(self, gids=None, dt: float | None = None) -> None:
        """Record soma potentials of ``gids`` (all if None) every ``dt`` ms (default: every step)."""
        self.simulation.record_voltage(gids, dt)

    def run(self, duration: float, stimulus=None, inject=None):
        """Simulate ``duration`` ms more.

        Returns
        -------
        it : ndarray or None
            Spike gids, sorted by time.
        t : ndarray or None
            Spike times, ms.
        iv : ndarray or None
            Gids of the voltage rows.
        v : ndarray or None
            Soma membrane potentials, mV, shape (rows, samples).
        im, mp : None
            Membrane currents (not recorded by this backend yet).
        """
        it, t, iv, v = self.simulation.run(duration, stimulus=stimulus, inject=inject)
        self.t += duration
        return it, t, iv, v, None, None

    def clear(self) -> None:
        """Start over at t = 0 with the same parameters."""
        self.simulation.clear()
        self.t = 0.0

    def channel_spikes(self, it, t) -> list[np.ndarray]:
        """Spike times (ms) per MEA channel."""
        from .io import channel_spikes

        return channel_spikes(it, t, self.system.channel_members)


def make(name: str, backend: str | None = None, **kwargs) -> Env:
    """An Env of predefined system ``name`` (built on first use), default parameters applied."""
    return Env(System(predefined(name)), backend=backend, **kwargs)
