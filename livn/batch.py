"""Many independent trials of one system in one simulation: ``Batch(system, copies)``.

A batch simulates ``copies`` copies of a system side by side, each with its own stimulus.
Every copy draws the noise an :class:`~livn.env.Env` of the system draws (the noise is keyed
by the spec's seed, gid and step), so copy b given stimulus S runs what ``Env.run(...,
stimulus=S)`` runs, spike for spike (tested). The copies share each step's fixed cost per
simulation object, which dominates small systems: on EI2, ten copies cost ~5 single runs.

``checkpoint()`` / ``rewind()`` return to a stored state, e.g. after a warm-up that every trial
shares, so the warm-up is simulated once rather than once per trial.

Brian2 only: NEURON runs one network per process (a target without batches is refused).
"""

from __future__ import annotations

import numpy as np

from .env import TargetError, _backend, _positive, assemble_result
from .result import Result
from .system import System
from .targets import get_target


class Batch:
    """``copies`` independent copies of ``system`` in one simulation.

    Parameters
    ----------
    system : System
    copies : int
        Copies simulated at once (1..10000).
    backend : str, optional
        A target that runs batches ("brian2", the default).
    dt : float
        Integration step, ms (0 < dt <= 1).
    **options
        Target options (Brian2: ``codegen``).
    """

    def __init__(self, system: System, copies: int, backend: str | None = "brian2", dt: float = 0.025, **options):
        if not isinstance(system, System):
            raise TypeError(f"system must be a livn System, found {type(system).__name__}")
        if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or not 1 <= copies <= 10000:
            raise ValueError(f"copies must be an integer in 1..10000, found {copies!r}")
        self.system, self.copies = system, int(copies)
        self.backend = _backend(backend)
        self.dt = _positive("dt", dt, 1.0)
        self.model = system.network
        target = get_target(self.backend)
        unknown = sorted(set(options) - set(target.options))
        if unknown:
            raise TypeError(f"unknown option(s) for backend {self.backend!r}: {', '.join(unknown)}; "
                            f"valid: {', '.join(target.options) or 'none'}")
        problems = target.check(self.model, self.dt)
        if problems:
            raise TargetError(self.backend, problems)
        try:
            self.simulation = target.batch(self.model, self.copies, self.dt, **options)
        except NotImplementedError as error:
            raise ValueError(f"{error}; a Batch needs backend 'brian2'") from None
        self.num_cells = int(self.model.num_cells)
        self.t = 0.0
        self._spikes, self._recording, self._checkpoint = False, {}, None

    def _batch_gids(self, gids) -> np.ndarray:
        return np.concatenate([np.asarray(gids) + b * self.num_cells for b in range(self.copies)])

    def record_spikes(self) -> None:
        self.simulation.record_spikes()
        self._spikes = True

    def record_voltage(self, dt: float | None = None) -> None:
        """Record every cell's membrane potential (every compartment) in every copy, every ``dt`` ms."""
        if self.t != 0:
            raise RuntimeError("recordings are set up before the first run (or after clear())")
        every = self.dt if dt is None else _positive("dt", dt)
        if abs(every / self.dt - round(every / self.dt)) > 1e-9:
            raise ValueError(f"the recording dt must be a multiple of the integration step {self.dt:g} ms, found {every:g}")
        cells = self.model.biophysical_gids
        self.simulation.record(self._batch_gids(cells), "v", every)
        self._recording["v"] = (np.asarray(cells), every)

    def _stimulus(self, stimuli, duration: float):
        if stimuli is None:
            return None, [None] * self.copies
        if len(stimuli) != self.copies:
            raise ValueError(f"stimuli must hold one stimulus (or None) per copy: {self.copies}, found {len(stimuli)}")
        checked = []
        for b, stimulus in enumerate(stimuli):
            try:
                checked.append(None if stimulus is None else self.model.check_stimulus(stimulus, duration, self.dt))
            except ValueError as error:
                raise ValueError(f"stimuli[{b}]: {error}") from None
        samples = max((len(s) for s in checked if s is not None), default=0)
        if samples == 0:
            return None, checked
        channels = len(self.model.electrodes)
        combined = np.zeros((samples, self.copies * channels))
        for b, stimulus in enumerate(checked):
            if stimulus is not None:
                combined[:len(stimulus), b * channels:(b + 1) * channels] = stimulus
        return combined, checked

    def run(self, duration: float, stimuli=None) -> list[Result]:
        """Simulate ``duration`` ms more in every copy.

        Parameters
        ----------
        duration : float
            ms, finite and > 0.
        stimuli : sequence, optional
            Per copy, electrode currents in µA of shape (samples, channels) at dt from now, or None.

        Returns
        -------
        list of Result
            One per copy, with the system's own gids.
        """
        duration = _positive("duration", duration)
        if round(duration / self.dt) < 1:
            raise ValueError(f"duration must be at least one step ({self.dt:g} ms), found {duration:g}")
        combined, checked = self._stimulus(stimuli, duration)
        start = self.t
        gids, times, recordings = self.simulation.run(duration, stimulus=combined)
        self.t += duration
        copy = gids // self.num_cells
        results = []
        for b in range(self.copies):
            own = copy == b
            mine = {variable: {gid - b * self.num_cells: values for gid, values in per_gid.items()
                               if gid // self.num_cells == b}
                    for variable, per_gid in recordings.items()}
            result = assemble_result(self.model, self._recording, self._spikes, gids[own] - b * self.num_cells,
                                     times[own], mine, start, duration)
            result.stimulus, result.system, result.dt = checked[b], self.system, self.dt
            results.append(result)
        return results

    def checkpoint(self) -> None:
        """Remember the current state (of every copy) for :meth:`rewind`."""
        self.simulation.checkpoint()
        self._checkpoint = self.t

    def rewind(self) -> None:
        """Back to the last :meth:`checkpoint`."""
        if self._checkpoint is None:
            raise RuntimeError("rewind() needs a checkpoint() first")
        self.simulation.rewind()
        self.t = self._checkpoint

    def clear(self) -> None:
        """Start over at t = 0 (the checkpoint is dropped)."""
        self.simulation.clear()
        self.t, self._checkpoint = 0.0, None

    def close(self) -> None:
        if self.simulation is not None:
            self.simulation.close()
            self.simulation = None
