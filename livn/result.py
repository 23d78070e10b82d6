"""What a run returns: spikes, recordings and MEA channel potentials, with units.

A :class:`Result` unpacks as the seed's tuple, ``it, t, iv, v, im, mp = env.run(100)``, and has
the same things under names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

UNITS = {"t": "ms", "v": "mV", "im": "nA", "mp": "uV", "start": "ms", "duration": "ms", "dt_v": "ms", "dt_im": "ms", "dt": "ms", "stimulus": "uA"}


@dataclass
class Result:
    """The outcome of one :meth:`livn.env.Env.run` call.

    Attributes
    ----------
    it : ndarray or None
        Spike gids, sorted by time (None when spikes are not recorded).
    t : ndarray or None
        Spike times, ms (absolute: runs continue).
    iv : ndarray or None
        Gids of the recorded cells (rows of ``v``), ascending.
    v : ndarray or None
        Soma membrane potential, mV, shape (rows, samples), one sample per ``dt_v`` from ``start``.
    im : ndarray or None
        Transmembrane current (outward positive), nA, of every compartment of the cells whose
        currents are recorded: shape (compartments, samples); ``im_index`` says whose.
    mp : ndarray or None
        MEA channel potentials, µV, shape (channels, samples): the point-source sum over the
        recorded compartments, Σ ρ·im / (4π r).
    voltages : dict
        gid -> (compartments, samples) membrane potentials, mV (every compartment).
    im_index : ndarray or None
        (compartments, 2) rows of (gid, compartment index) of ``im``.
    start, duration : float
        ms.
    stimulus : ndarray or None
        The electrode currents the run applied, µA, shape (samples, channels), one sample per ``dt``.
    dt : float or None
        The integration step, ms.
    system : livn.system.System or None
        The system that ran (what :meth:`to_nwb` takes positions and electrodes from).
    """

    it: np.ndarray | None = None
    t: np.ndarray | None = None
    iv: np.ndarray | None = None
    v: np.ndarray | None = None
    im: np.ndarray | None = None
    mp: np.ndarray | None = None
    voltages: dict = field(default_factory=dict)
    im_index: np.ndarray | None = None
    start: float = 0.0
    duration: float = 0.0
    dt_v: float | None = None
    dt_im: float | None = None
    units: dict = field(default_factory=lambda: dict(UNITS))
    stimulus: np.ndarray | None = field(default=None, repr=False)
    dt: float | None = None
    system: object = field(default=None, repr=False, compare=False)

    def __iter__(self):
        return iter((self.it, self.t, self.iv, self.v, self.im, self.mp))

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index):
        return (self.it, self.t, self.iv, self.v, self.im, self.mp)[index]

    def to_nwb(self, path, session_start_time=None):
        """Write this run as a new NWB file (units with positions and populations, MEA channel
        signals, soma potentials, the stimulus): see :mod:`livn.nwb`. Returns the path."""
        from .nwb import write_nwb

        if self.system is None:
            raise ValueError("this Result does not know its system (made outside Env.run): "
                             "use livn.nwb.write_nwb(path, result, system)")
        return write_nwb(path, self, self.system, session_start_time=session_start_time)

    def __repr__(self) -> str:
        spikes = "not recorded" if self.it is None else f"{len(self.it)} spikes"
        rows = "" if self.iv is None else f", v of {len(self.iv)} cells"
        currents = "" if self.im is None else f", im of {len(self.im)} compartments"
        return f"Result({self.start:g}-{self.start + self.duration:g} ms: {spikes}{rows}{currents})"


def concatenate(results: list) -> Result:
    """One Result for consecutive runs (``results`` in order, each starting where the last
    ended, with the same recordings): spikes, traces, channel potentials and stimuli joined."""
    if not results:
        raise ValueError("no results to concatenate")
    first = results[0]
    for before, after in zip(results, results[1:]):
        if abs(before.start + before.duration - after.start) > 1e-6:
            raise ValueError(f"results must follow each other: one ends at {before.start + before.duration:g} ms, "
                             f"the next starts at {after.start:g} ms")

    def joined(name, axis):
        parts = [getattr(r, name) for r in results]
        return None if any(p is None for p in parts) else np.concatenate(parts, axis=axis)

    out = Result(start=first.start, duration=sum(r.duration for r in results), iv=first.iv, im_index=first.im_index,
                 dt_v=first.dt_v, dt_im=first.dt_im, dt=first.dt, system=first.system,
                 it=joined("it", 0), t=joined("t", 0), v=joined("v", 1), im=joined("im", 1), mp=joined("mp", 1))
    out.voltages = {g: np.concatenate([r.voltages[g] for r in results], axis=1) for g in first.voltages}
    if any(r.stimulus is not None for r in results):
        steps = [int(round(r.duration / r.dt)) for r in results]
        out.stimulus = np.concatenate([r.stimulus if r.stimulus is not None else np.zeros((n, _channels(results)))
                                       for r, n in zip(results, steps)])
    return out


def _channels(results) -> int:
    return next(r.stimulus.shape[1] for r in results if r.stimulus is not None)
