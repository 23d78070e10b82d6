"""Connections as NEURON NetCons, made and reweighted in hoc loops over Vectors.

A Python loop costs ~60 µs per connection (a NetCon, its point-process lookup, the
attribute writes); CA1 at scale 0.001 has 1.3·10⁷. Here the point processes are found once
per distinct (cell, synapse type, compartment) — events onto one point process add linearly,
and a block depends only on its segment's potential — and the NetCons are made by a hoc
procedure from Vectors (source gid, point process, delay, weight) and kept in a hoc List.

Connections from one source onto one point process with the same delay and weight group are
one NetCon carrying the sum of their weights: the synapses add their events linearly, so the
network computes the same thing with fewer NetCons and fewer events (CA1 at scale 0.0003:
3.9·10⁶ connections, 8.3·10⁵ NetCons), and a weight group scales all of its members together.
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
    """The NetCons of every connection of ``conn`` (targets on this rank).

    Parameters
    ----------
    h, pc : NEURON's hoc interpreter and ParallelContext
    cells : dict
        gid -> :class:`~livn.targets.neuron.cell.NeuronCell` of this rank.
    conn : livn.network.model.Connections
    synapse_names : list of str
        Synapse type of each ``conn.synapse`` index.
    mechanisms
        The compiled mechanisms (``mechanisms.synapse(name)``).

    Attributes
    ----------
    netcons : hoc List
        One NetCon per distinct (source, point process, delay, weight group).
    merged : numpy.ndarray
        For each connection, the index of its NetCon.
    points : hoc List
        The point processes, one per distinct (cell, synapse type, compartment).
    """

    def __init__(self, h, pc, cells: dict, conn, synapse_names: list, mechanisms):
        _define(h)
        self.h = h
        targets = np.asarray(conn.target, dtype=np.int64)
        compartment = np.zeros(len(targets), dtype=np.int64)
        by_target = np.argsort(targets, kind="stable")
        gids, starts = np.unique(targets[by_target], return_index=True)
        for gid, members in zip(gids.tolist(), np.split(by_target, starts[1:])):
            compartment[members] = compartments(cells[gid].ir, conn.section[members], conn.x[members])
        keys = np.stack([targets, np.asarray(conn.synapse, dtype=np.int64), compartment], axis=1)
        points, point = _unique_rows(keys)
        self.points = h.List()
        for gid, synapse, comp in points.tolist():
            name = synapse_names[synapse]
            self.points.append(cells[gid].synapse_at(name, mechanisms.synapse(name), comp))
        delays, delay = np.unique(np.asarray(conn.delay, dtype=float), return_inverse=True)
        netcon_keys = np.stack([point, np.asarray(conn.source, dtype=np.int64), delay.ravel(),
                                np.asarray(conn.group, dtype=np.int64)], axis=1)
        unique, self.merged = _unique_rows(netcon_keys)
        self.netcons = h.List()
        if len(unique):
            h.livn_connect_(pc, self.points, h.Vector(unique[:, 1].astype(float)), h.Vector(unique[:, 0].astype(float)),
                            h.Vector(delays[unique[:, 2]]), h.Vector(np.zeros(len(unique))), self.netcons)

    def reweight(self, weights: np.ndarray) -> None:
        """Set the weights, µS per connection (in the order of ``conn``); a NetCon carries the
        sum of its connections'."""
        if self.netcons.count():
            summed = np.bincount(self.merged, weights=np.asarray(weights, dtype=float), minlength=self.netcons.count())
            self.h.livn_reweight_(self.netcons, self.h.Vector(summed))


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
