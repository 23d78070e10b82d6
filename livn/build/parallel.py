"""The processes a build runs on: one, or the ranks of ``mpiexec -n N livn build ...``.

mpi4py is imported only under an MPI launcher, so a plain build never initialises MPI.
"""

from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager


def launcher_size() -> int:
    """Number of processes the MPI launcher started (1 when not under mpiexec)."""
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS"):
        if name in os.environ:
            return int(os.environ[name])
    return 1


class World:
    """Rank, size and the few collectives a build needs (no-ops on one process)."""

    def __init__(self):
        self.comm = None
        self.rank, self.size = 0, 1
        if launcher_size() > 1:
            from mpi4py import MPI

            self.comm = MPI.COMM_WORLD
            self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def bcast(self, value):
        return value if self.comm is None else self.comm.bcast(value, root=0)

    def barrier(self) -> None:
        if self.comm is not None:
            self.comm.Barrier()

    @contextmanager
    def failing_together(self):
        """On several ranks, an error on one aborts all (the others would wait forever at the
        next barrier); on one process, errors propagate as usual."""
        if self.comm is None:
            yield
            return
        try:
            yield
        except BaseException:
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            self.comm.Abort(1)
