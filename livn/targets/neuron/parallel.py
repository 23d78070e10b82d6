"""MPI for NEURON from the PyPI wheels (``neuron`` + ``mpich``), and the check that it is real.

NEURON's wheel finds MPICH's library only through ``MPI_LIB_NRN_PATH`` (the venv's
``libmpi.so`` is a linker script NEURON cannot load); without it every rank silently runs
the whole model alone. :func:`init` sets it, initialises MPI inside NEURON, and raises if
``mpiexec`` started several processes but NEURON sees one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from livn.build.parallel import launcher_size


class SerialFallbackError(RuntimeError):
    """Started under mpiexec with several processes, but NEURON runs each one alone."""


def mpi_library() -> Path | None:
    """The MPICH library of this environment (from the ``mpich`` wheel), if any."""
    candidate = Path(sys.prefix) / "lib" / "libmpi.so.12"
    return candidate if candidate.exists() else None


_FINALIZER: list = []


def _finalize(pc) -> None:
    """At exit under mpiexec, every rank waits for the others and finalises MPI before leaving:
    a rank leaving without MPI_Finalize made mpiexec kill the others (exit status 9). NEURON
    finalises only through h.quit(), which cannot run inside Python's exit; mpi4py (the same
    MPI library) can."""
    from mpi4py import MPI

    if MPI.Is_initialized() and not MPI.Is_finalized():  # h.quit() (run.py) has finalised already
        pc.barrier()
        MPI.Finalize()


def exit_together() -> None:
    """(Re-)register the exit barrier as the last exit handler, so that it runs before NEURON's
    own (which finalises MPI); call after NEURON has set up a network."""
    if _FINALIZER:
        import atexit

        atexit.unregister(_finalize)
        atexit.register(_finalize, _FINALIZER[0])


def init():
    """Initialise MPI in NEURON when launched by mpiexec; return the ParallelContext.

    Raises
    ------
    SerialFallbackError
        If the launcher started n > 1 processes but NEURON reports fewer ranks.
    """
    expected = launcher_size()
    if expected > 1:
        library = mpi_library()
        if library is not None:
            os.environ.setdefault("MPI_LIB_NRN_PATH", str(library))
    from neuron import h

    if expected > 1:
        h.nrnmpi_init()
    pc = h.ParallelContext()
    if expected > 1 and not _FINALIZER:
        import atexit

        atexit.register(_finalize, pc)
        _FINALIZER.append(pc)
    if int(pc.nhost()) != expected:
        raise SerialFallbackError(
            f"mpiexec started {expected} processes but NEURON sees {int(pc.nhost())} rank(s): each would run the "
            f"whole model alone. Is MPI_LIB_NRN_PATH ({os.environ.get('MPI_LIB_NRN_PATH', 'unset')}) the MPI library "
            f"that mpiexec belongs to?")
    return pc
