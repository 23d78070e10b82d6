"""The in-process environment: make("EI2") -> Env with record/run/set_params.

Every argument is checked here, where it enters, with a message naming the argument and
what is accepted; the target then runs what is valid.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .result import Result
from .system import System
from .targets import DEFAULT, get_target, target_names


class TargetError(ValueError):
    """A target cannot run a system: ``problems`` lists every reason (file, line, message)."""

    def __init__(self, target: str, problems):
        self.problems = list(problems)
        super().__init__(f"the {target} target cannot run this system:\n" + "\n".join(f"  {p}" for p in self.problems))


def _backend(backend: str | None) -> str:
    backend = backend or os.environ.get("LIVN_BACKEND") or DEFAULT
    if backend not in target_names():
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(target_names())}")
    return backend


def _chosen(backend: str | None) -> bool:
    return bool(backend or os.environ.get("LIVN_BACKEND"))


def _positive(name: str, value, upper: float | None = None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, found {value!r}") from None
    if not math.isfinite(number) or number <= 0 or (upper is not None and number > upper):
        limit = f" and at most {upper:g}" if upper is not None else ""
        raise ValueError(f"{name} must be a finite number > 0{limit}, found {value!r}")
    return number


class Env:
    """A simulation of a system that a user drives step by step.

    Parameters
    ----------
    system : System
    backend : str, optional
        A registered target ("brian2", "neuron"); default ``$LIVN_BACKEND``, else "brian2" —
        or, when Brian2 cannot run the system (CA1's calcium dynamics), the first registered
        target that can (``Env.backend`` says which). A backend named explicitly is used or
        refused, never replaced. Under ``mpiexec`` the NEURON backend distributes the cells over the ranks.
    dt : float
        Integration step, ms (0 < dt <= 1).
    **options
        Target options: Brian2 ``codegen`` ("cython" | "numpy"); NEURON ``field``
        ("currents", the default: equivalent axial currents, exact for a grounded medium | "extracellular":
        NEURON's mechanism) and ``coreneuron`` (bool). See
        ``livn.targets.get_target(name).options``.

    Raises
    ------
    TargetError
        When the target cannot run the system (every reason, with file).
    """

    def __init__(self, system: System, backend: str | None = None, dt: float = 0.025, **options):
        if not isinstance(system, System):
            raise TypeError(f"system must be a livn System, found {type(system).__name__}")
        self.system = system
        self.backend = _backend(backend)
        self.dt = _positive("dt", dt, 1.0)
        model = system.network
        self.target = get_target(self.backend)
        problems = self.target.check(model, self.dt)
        if problems and not _chosen(backend):
            for name in target_names():
                if name != self.backend and not get_target(name).check(model, self.dt):
                    self.backend, self.target, problems = name, get_target(name), []
                    break
        unknown = sorted(set(options) - set(self.target.options))
        if unknown:
            raise TypeError(f"unknown option(s) for backend {self.backend!r}: {', '.join(unknown)}; "
                            f"valid: {', '.join(self.target.options) or 'none'}")
        if problems:
            raise TargetError(self.backend, problems)
        self.model = model
        self.simulation = self.target.simulation(model, self.dt, **options)
        self.t = 0.0
        self._recording = {}
        self._spikes = False

    def default_params(self) -> dict[str, float]:
        return self.system.default_params()

    def set_params(self, params: dict) -> None:
        """Set weights / noise by the names of ``system.default_params()`` (finite, >= 0).

        A weight is in multiples of its unit conductance (a weight whose default is 0 gives each
        edge value × unit); noise g0/sigma in µS. Before the first run, the noise starts at its new mean.
        """
        self.simulation.set_params(self.model.check_params(params))

    def record_spikes(self) -> None:
        self.simulation.record_spikes()
        self._spikes = True

    def _gids(self, gids):
        cells = self.model.biophysical_gids
        if gids is None:
            return cells
        gids = np.atleast_1d(np.asarray(gids))
        if gids.dtype.kind not in "iu" and not (gids.dtype.kind == "f" and np.all(gids == np.round(gids))):
            raise ValueError(f"gids must be integers, found {gids.dtype}")
        gids = gids.astype(np.int64)
        points = gids[np.isin(gids, self.model.point_gids)]
        if len(points):
            raise ValueError(f"gids {points[:10].tolist()} are point-process cells (IntFire1): they have no membrane "
                             f"potential or current to record")
        bad = gids[~np.isin(gids, cells)]
        if len(bad):
            raise ValueError(f"gids {bad[:10].tolist()} are not simulated cells (valid: {cells.min()}..{cells.max()}"
                             f"{', biophysical only' if len(self.model.virtual_gids) else ''})")
        return np.unique(gids)

    def _record(self, variable: str, gids, dt):
        if self.t != 0:
            raise RuntimeError("recordings are set up before the first run (or after clear())")
        every = self.dt if dt is None else _positive("dt", dt)
        if abs(every / self.dt - round(every / self.dt)) > 1e-9:
            raise ValueError(f"the recording dt must be a multiple of the integration step {self.dt:g} ms, found {every:g}")
        gids = self._gids(gids)
        self.simulation.record(gids, variable, every)
        self._recording[variable] = (gids, every)

    def record_voltage(self, gids=None, dt: float | None = None) -> None:
        """Record the membrane potential of every compartment of ``gids`` (all if None) every ``dt`` ms."""
        self._record("v", gids, dt)

    def record_membrane_current(self, gids=None, dt: float | None = None) -> None:
        """Record the transmembrane current of every compartment of ``gids`` (all if None) every
        ``dt`` ms; runs then also return the MEA channel potentials (``mp``)."""
        self._record("i_membrane", gids, dt)

    def run(self, duration: float, stimulus=None, inject=None) -> Result:
        """Simulate ``duration`` ms more.

        Parameters
        ----------
        duration : float
            ms, finite and > 0 (rounded to whole steps).
        stimulus : array, optional
            Electrode currents in µA, shape (samples, channels), one sample per dt from now.
        inject : dict, optional
            gid -> somatic current clamp in nA, held during this call.

        Returns
        -------
        Result
            Unpacks as ``it, t, iv, v, im, mp`` (see :class:`livn.result.Result`).
        """
        duration = _positive("duration", duration)
        if round(duration / self.dt) < 1:
            raise ValueError(f"duration must be at least one step ({self.dt:g} ms), found {duration:g}")
        if stimulus is not None:
            stimulus = self.model.check_stimulus(stimulus, duration, self.dt)
        if inject:
            if not isinstance(inject, dict):
                raise TypeError(f"inject must be a dict gid -> nA, found {type(inject).__name__}")
            self._gids(list(inject))
            for gid, amplitude in inject.items():
                if not isinstance(amplitude, (int, float, np.number)) or not math.isfinite(float(amplitude)):
                    raise ValueError(f"inject[{gid}] must be a finite current in nA, found {amplitude!r}")
        start = self.t
        gids, times, recordings = self.simulation.run(duration, stimulus=stimulus, inject=inject)
        self.t += duration
        result = assemble_result(self.model, self._recording, self._spikes, gids, times, recordings, start, duration)
        result.stimulus, result.system, result.dt = stimulus, self.system, self.dt
        return result

    def clear(self) -> None:
        """Start over at t = 0 with the same parameters and recordings."""
        self.simulation.clear()
        self.t = 0.0

    def close(self) -> None:
        """Free the simulation (NEURON: lets another Env be made in this process)."""
        if self.simulation is not None:
            self.simulation.close()
            self.simulation = None

    def channel_spikes(self, it, t) -> list[np.ndarray]:
        """Spike times (ms) per MEA channel."""
        from .io import channel_spikes

        return channel_spikes(it, t, self.system.channel_members)


def assemble_result(model, recording: dict, spikes: bool, gids, times, recordings, start, duration) -> Result:
    """A :class:`Result` from what a target's run returned (``recording``: variable -> (gids, dt)
    as set up; ``spikes``: whether spikes are recorded)."""
    result = Result(start=start, duration=duration)
    if spikes:
        result.it, result.t = gids, times
    if "v" in recordings:
        wanted, every = recording["v"]
        rows = [g for g in wanted.tolist() if g in recordings["v"]]
        result.voltages = {g: recordings["v"][g] for g in rows}
        result.iv = np.array(rows, dtype=np.int64)
        result.v = np.array([recordings["v"][g][0] for g in rows]) if rows else np.zeros((0, 0))
        result.dt_v = every
    if "i_membrane" in recordings:
        wanted, every = recording["i_membrane"]
        rows = [g for g in wanted.tolist() if g in recordings["i_membrane"]]
        blocks = [recordings["i_membrane"][g] for g in rows]
        result.im = np.concatenate(blocks) if blocks else np.zeros((0, 0))
        result.im_index = np.array([(g, k) for g, b in zip(rows, blocks) for k in range(len(b))], dtype=np.int64)
        result.dt_im = every
        if len(model.electrodes):
            # mV/µA × nA = µV
            result.mp = sum(model.field_transfer(g).T @ b for g, b in zip(rows, blocks)) if blocks else None
    return result


def make(name, backend: str | None = None, scale: float = 1.0, **kwargs) -> Env:
    """An Env of a predefined system ``name`` or of a spec file (``*.yaml``), built on first use
    and cached (``scale``: the fraction of it, see :func:`livn.predefined`), or of a circuit
    directory / ``circuit_config.json`` / ``simulation_config.json``; default parameters applied."""
    from .system import resolve_circuit

    return Env(System(resolve_circuit(name, scale)), backend=backend, **kwargs)
