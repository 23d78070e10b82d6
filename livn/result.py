"""What a run returns: spikes, recordings and MEA channel potentials, with units.

A :class:`Result` unpacks as the seed's tuple, ``it, t, iv, v, im, mp = env.run(100)``, and has
the same things under names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

UNITS = {"t": "ms", "v": "mV", "im": "nA", "mp": "uV", "start": "ms", "duration": "ms", "dt_v": "ms", "dt_im": "ms"}


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

    def __iter__(self):
        return iter((self.it, self.t, self.iv, self.v, self.im, self.mp))

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index):
        return (self.it, self.t, self.iv, self.v, self.im, self.mp)[index]

    def __repr__(self) -> str:
        spikes = "not recorded" if self.it is None else f"{len(self.it)} spikes"
        rows = "" if self.iv is None else f", v of {len(self.iv)} cells"
        currents = "" if self.im is None else f", im of {len(self.im)} compartments"
        return f"Result({self.start:g}-{self.start + self.duration:g} ms: {spikes}{rows}{currents})"
