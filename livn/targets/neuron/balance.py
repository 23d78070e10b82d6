"""Which MPI rank simulates which cell: longest processing time first, by compartment count.

A rank's time per step grows with the compartments it integrates (and their channels and
synapses, which grow with them); a CA1 pyramidal cell has 69, an interneuron up to ~80, an EI
cell 1. Dealing cells round-robin by gid leaves one rank with the heavy cells; LPT (Graham
1969: heaviest cell first, each to the least loaded rank) keeps the heaviest rank within 4/3 of
the optimum. Every rank computes the same assignment from the same numbers, so no
communication is needed, and since a cell's result does not depend on its rank the spikes do
not change with the assignment.
"""

from __future__ import annotations

import heapq

import numpy as np


def assign(costs: np.ndarray, ranks: int) -> np.ndarray:
    """The rank of each cell.

    Parameters
    ----------
    costs : numpy.ndarray
        Cost of each cell (compartments), in gid order.
    ranks : int
        Number of MPI ranks.

    Returns
    -------
    numpy.ndarray
        Rank of each cell: heaviest first (ties: lower index first), each to the least loaded
        rank (ties: lower rank). Equal costs give round-robin.
    """
    costs = np.asarray(costs, dtype=float)
    owner = np.zeros(len(costs), dtype=np.int64)
    loads = [(0.0, rank) for rank in range(ranks)]
    for index in np.lexsort((np.arange(len(costs)), -costs)).tolist():
        load, rank = heapq.heappop(loads)
        owner[index] = rank
        heapq.heappush(loads, (load + costs[index], rank))
    return owner


def loads(costs: np.ndarray, owner: np.ndarray, ranks: int) -> np.ndarray:
    """Total cost per rank."""
    return np.bincount(owner, weights=np.asarray(costs, dtype=float), minlength=ranks)
