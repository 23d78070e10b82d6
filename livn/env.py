"""The in-process environment: make("EI2") -> Env with record/run/set_params."""

from __future__ import annotations

import os

import numpy as np

from .system import System, predefined


def _backend(backend: str | None) -> str:
    backend = backend or os.environ.get("LIVN_BACKEND", "brian2")
    if backend not in ("brian2", "neuron"):
        raise ValueError(f"unknown backend {backend!r}; expected 'brian2' or 'neuron'")
    return backend


class _NeuronSimulation:
    """The NEURON network behind the same interface as the Brian2 runtime's Simulation."""

    def __init__(self, system: System, dt: float, field: str, coreneuron: bool = False):
        from .targets.neuron.network import Network
        from .targets.neuron.parallel import init

        init()
        self.network = Network(system.spec, system.directory, dt=dt, field=field,
                               extracellular=not coreneuron, coreneuron=coreneuron)
        self.recording_spikes = False
        self.voltage_gids = None

    def set_params(self, params):
        self.network.set_params(params)

    def record_spikes(self):
        self.recording_spikes = True

    def record_voltage(self, gids=None, dt=None):
        self.network.record_voltage(gids, dt)
        self.voltage_gids = gids

    def run(self, duration, stimulus=None, inject=None):
        it, t, voltages = self.network.run(duration, stimulus=stimulus, inject=inject)
        if not self.recording_spikes:
            it = t = None
        iv = v = None
        self.sections = {}
        if voltages:
            iv = np.array(sorted(voltages))
            names = list(next(iter(voltages.values())))
            self.sections = {name: np.array([voltages[g][name] for g in iv]) for name in names}
            v = self.sections[names[0]]
        return it, t, iv, v

    def clear(self):
        self.network.clear()


class Env:
    """A simulation of a system that a user drives step by step.

    Parameters
    ----------
    system : System
    backend : str, optional
        "brian2" or "neuron"; default ``$LIVN_BACKEND``, else "brian2". Under ``mpiexec`` the
        NEURON backend distributes the cells over the ranks.
    dt : float
        Integration step, ms.
    codegen : str
        Brian2 code generation target ("cython": compiled once, cached across processes).
    field : str
        NEURON only: how the MEA field reaches the cells, "extracellular" (NEURON's
        extracellular mechanism, backward Euler) or "currents" (the equivalent axial
        currents, as in Brian2; Crank–Nicolson, closest to Brian2).
    coreneuron : bool
        NEURON only: integrate with CoreNEURON (the same spikes as ``field="currents"``,
        faster on large systems); runs without stimulus or current injection.
    """

    def __init__(self, system: System, backend: str | None = None, dt: float = 0.025, codegen: str = "cython",
                 field: str = "extracellular", coreneuron: bool = False):
        self.system = system
        self.backend = _backend(backend)
        self.dt = dt
        if coreneuron and self.backend != "neuron":
            raise ValueError(f"coreneuron=True needs the NEURON backend, not {self.backend!r}")
        if self.backend == "neuron":
            self.simulation = _NeuronSimulation(system, dt, field, coreneuron)
        else:
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
