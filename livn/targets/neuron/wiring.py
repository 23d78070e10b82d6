"""Connections as NEURON NetCons, made and reweighted in hoc loops over Vectors.

A Python loop costs ~60 µs per connection (a NetCon, its point-process lookup, the
attribute writes); CA1 at scale 0.001 has 1.3·10⁷. Here the point processes are found once
per distinct (cell, synapse type, compartment) — events onto one point process add linearly,
and a block depends only on its segment's potential — and the NetCons are made by a hoc
procedure from Vectors (source gid, point process, delay, weight) and kept in a hoc List, in
the order of the connections, so weights are set by one more hoc loop.
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


def connect(h, pc, cells: dict, conn, synapse_names: list, mechanisms, weights: np.ndarray):
    """NetCons for every connection of ``conn`` (targets on this rank), in its order.

    ``cells``: gid -> :class:`~livn.targets.neuron.cell.NeuronCell`; ``weights``: µS per
    connection. Returns the hoc List of NetCons and the point processes they drive.
    """
    _define(h)
    targets = np.asarray(conn.target, dtype=np.int64)
    compartment = np.zeros(len(targets), dtype=np.int64)
    for gid in np.unique(targets).tolist():
        mine = targets == gid
        compartment[mine] = compartments(cells[gid].ir, conn.section[mine], conn.x[mine])
    keys = np.stack([targets, np.asarray(conn.synapse, dtype=np.int64), compartment], axis=1)
    unique, index = np.unique(keys, axis=0, return_inverse=True) if len(keys) else (np.zeros((0, 3), int), np.zeros(0, int))
    points = h.List()
    for gid, synapse, comp in unique.tolist():
        name = synapse_names[synapse]
        points.append(cells[gid].synapse_at(name, mechanisms.synapse(name), comp))
    netcons = h.List()
    if len(targets):
        h.livn_connect_(pc, points, h.Vector(np.asarray(conn.source, dtype=float)),
                        h.Vector(np.asarray(index, dtype=float).ravel()), h.Vector(np.asarray(conn.delay, dtype=float)),
                        h.Vector(np.asarray(weights, dtype=float)), netcons)
    return netcons, points


def reweight(h, netcons, weights: np.ndarray) -> None:
    """Set every NetCon's weight (µS), in the order :func:`connect` made them."""
    _define(h)
    if netcons.count():
        h.livn_reweight_(netcons, h.Vector(np.asarray(weights, dtype=float)))
