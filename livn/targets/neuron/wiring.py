"""Connections as NEURON NetCons, made and reweighted in hoc loops over Vectors.

A Python loop costs ~60 µs per connection (a NetCon, its point-process lookup, the
attribute writes); CA1 at scale 0.001 has 1.3·10⁷. Here the point processes are found once
per distinct (cell, synapse type, compartment) — events onto one point process add linearly,
and a block depends only on its segment's potential — and the NetCons are made by a hoc
procedure from Vectors (source gid, point process, delay, weight) and kept in a hoc List,
block of target cells by block.

Connections from one source onto one point process with the same delay and weight group are
one NetCon carrying the sum of their weights: the synapses add their events linearly, so the
network computes the same thing with fewer NetCons and fewer events (CA1 at scale 0.0003:
3.9·10⁶ connections, 8.3·10⁵ NetCons), and a weight group scales all of its members together.
Tsodyks–Markram plasticity, whose state lives in each NetCon, stays exact under this merge: a
connection's state depends only on when its events arrive and on its synapse type's
parameters, which the merged connections share, so the sum of their events is the merged
NetCon's event.
"""

from __future__ import annotations

import numpy as np

_DEFINED: list = []

_HOC = """
proc livn_connect_() { local i  localobj nc
    // $o1 ParallelContext, $o2 List of point processes, $o3 source gids, $o4 point-process
    // index, $o5 delays (ms), $o6 weights (uS), $o7 List receiving the NetCons in order
    for i = 0, $o3.size() - 1 {
        nc = $o1.gid_connect($o3.x[i], $o2.o($o4.x[i]))
        nc.delay = $o5.x[i]
        nc.weight[0] = $o6.x[i]
        $o7.append(nc)
    }
}
proc livn_reweight_() { local i
    // $o1 List of NetCons, $o2 their weights (uS)
    for i = 0, $o1.count() - 1 {
        $o1.o(i).weight[0] = $o2.x[i]
    }
}
"""


def _define(h) -> None:
    if not _DEFINED:
        h(_HOC)
        _DEFINED.append(True)


def compartments(cell, section: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Compartment index of each (section, x) of ``cell`` (a :class:`livn.neuroml.Cell`), as
    NEURON's ``sec(x)`` picks the segment: x = 0 and 1 belong to the end segments."""
    nseg = np.array([s.nseg for s in cell.sections])
    first = np.concatenate(([0], np.cumsum(nseg)[:-1]))
    k = np.clip(np.floor(np.asarray(x, dtype=float) * nseg[section]).astype(np.int64), 0, nseg[section] - 1)
    return first[section] + k


class Wiring:
    """The NetCons onto the cells of this rank, added a block of connections at a time.

    Parameters
    ----------
    h, pc : NEURON's hoc interpreter and ParallelContext
    cells : dict
        gid -> :class:`~livn.targets.neuron.cell.NeuronCell` of this rank.
    artificial : dict, optional
        gid -> artificial cell (``IntFire1``) of this rank: connections onto it are NetCons onto
        the cell itself (weight = the increment of its state).
    synapse_names : list of str
        Synapse type of each ``Connections.synapse`` index.
    mechanisms
        The compiled mechanisms (``mechanisms.synapse(name)``).

    Attributes
    ----------
    netcons : hoc List
        One NetCon per distinct (source, point process, delay, weight group).
    source, group, relative, point : numpy.ndarray
        Per NetCon: source gid, weight group, the sum of its connections' relative weights, and
        the index of its point process.
    points : hoc List
        The point processes, one per distinct (cell, synapse type, compartment);
        ``point_keys`` holds (gid, synapse, compartment) of each.

    Only these per-NetCon arrays are kept, not the connections: memory grows with the NetCons
    and one block of connections (see :meth:`add`), not with all connections of the rank.
    """

    def __init__(self, h, pc, cells: dict, synapse_names: list, mechanisms, artificial: dict | None = None):
        _define(h)
        self.h, self.pc, self.cells = h, pc, cells
        self.artificial = artificial or {}
        self.synapse_names, self.mechanisms = synapse_names, mechanisms
        self.netcons, self.points = h.List(), h.List()
        self.point_keys = np.zeros((0, 3), dtype=np.int64)
        self.source = self.group = self.point = np.zeros(0, dtype=np.int64)
        self.relative = np.zeros(0)

    def add(self, conn) -> None:
        """NetCons (weight 0 until :meth:`reweight`) for the connections onto a block of cells
        that no earlier block contained."""
        targets = np.asarray(conn.target, dtype=np.int64)
        if not len(targets):
            return
        compartment = np.zeros(len(targets), dtype=np.int64)
        by_target = np.argsort(targets, kind="stable")
        gids, starts = np.unique(targets[by_target], return_index=True)
        for gid, members in zip(gids.tolist(), np.split(by_target, starts[1:])):
            if gid in self.cells:  # an artificial (point-process) cell has no compartments
                compartment[members] = compartments(self.cells[gid].ir, conn.section[members], conn.x[members])
        # synapse -1 (onto an artificial cell) becomes 0 in the key: those targets have no other synapse
        keys = np.stack([targets, np.maximum(np.asarray(conn.synapse, dtype=np.int64), 0), compartment], axis=1)
        points, point = _unique_rows(keys)
        first = self.points.count()
        for gid, synapse, comp in points.tolist():
            if gid in self.artificial:  # events go straight onto the artificial cell
                self.points.append(self.artificial[gid])
                continue
            name = self.synapse_names[synapse]
            self.points.append(self.cells[gid].synapse_at(name, self.mechanisms.synapse(name), comp))
        delays, delay = np.unique(np.asarray(conn.delay, dtype=float), return_inverse=True)
        netcon_keys = np.stack([point, np.asarray(conn.source, dtype=np.int64), delay.ravel(),
                                np.asarray(conn.group, dtype=np.int64)], axis=1)
        unique, merged = _unique_rows(netcon_keys)
        self.h.livn_connect_(self.pc, self.points, self.h.Vector(unique[:, 1].astype(float)),
                             self.h.Vector((unique[:, 0] + first).astype(float)), self.h.Vector(delays[unique[:, 2]]),
                             self.h.Vector(np.zeros(len(unique))), self.netcons)
        self.point_keys = np.concatenate([self.point_keys, points])
        self.point = np.concatenate([self.point, unique[:, 0] + first])
        self.source = np.concatenate([self.source, unique[:, 1]])
        self.group = np.concatenate([self.group, unique[:, 3]])
        self.relative = np.concatenate([self.relative, np.bincount(merged, weights=np.asarray(conn.relative, dtype=float),
                                                                   minlength=len(unique))])

    @property
    def target(self) -> np.ndarray:
        """Target gid of each NetCon."""
        return self.point_keys[self.point, 0]

    def reweight(self, scale: np.ndarray) -> None:
        """Set every NetCon's weight: ``scale`` (µS per unit relative weight, one per weight
        group) times its summed relative weight."""
        if self.netcons.count():
            self.h.livn_reweight_(self.netcons, self.h.Vector(np.asarray(scale, dtype=float)[self.group] * self.relative))


def _unique_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a non-negative integer array (in lexicographic order) and the index of
    each row among them.

    The columns are packed into one int64 in mixed radix (renumbered whenever the next column
    would overflow it), so the work is one sort of one column: ``np.unique(axis=0)`` sorts rows
    as bytes, ~10 times slower on millions of rows.
    """
    rows = len(keys)
    if not rows:
        return np.zeros((0, keys.shape[1]), dtype=np.int64), np.zeros(0, dtype=np.int64)
    packed, span = np.zeros(rows, dtype=np.int64), 1
    for column in keys.T:
        radix = int(column.max()) + 1
        if span * radix >= 2**62:
            _, packed = np.unique(packed, return_inverse=True)
            packed, span = packed.ravel(), int(packed.max()) + 1
        packed, span = packed * radix + column, span * radix
    _, first, index = np.unique(packed, return_index=True, return_inverse=True)
    return keys[first], index.ravel()
