"""The target interface: what a simulator package provides so that livn can check, run and
compile a network model with it.

A target is one package under ``livn/targets/`` and one entry in :data:`livn.targets.REGISTRY`.
The contract tests (``tests/test_targets.py``) run against every registered target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ..spec.problems import Problem


class Simulation(Protocol):
    """An in-process simulation (what :class:`livn.env.Env` drives). Arguments arrive checked."""

    def set_params(self, params: dict) -> None: ...

    def record_spikes(self) -> None: ...

    def record(self, gids, variable: str, dt: float | None = None) -> None:
        """``variable`` is "v" (mV) or "i_membrane" (nA), every compartment of ``gids``."""

    def run(self, duration: float, stimulus=None, inject=None) -> tuple:
        """Advance; return (gids, times, {variable: {gid: (compartments, samples)}})."""

    def clear(self) -> None: ...

    def close(self) -> None: ...


class Target:
    """Base class of a simulator target.

    Attributes
    ----------
    name : str
        Registry name ("neuron", "brian2").
    parallel : bool
        Whether runs distribute over MPI ranks (and must give identical spikes on any count).
    batches : bool
        Whether :meth:`batch` runs copies of a network side by side.
    options : dict
        Option name -> description of the target-specific keyword arguments of
        :meth:`simulation` (``make(name, backend=..., **options)``).
    """

    name = ""
    description = ""
    parallel = False
    batches = False
    options: dict = {}

    def check(self, model, dt: float = 0.025) -> list[Problem]:
        """Every problem that stops this target from running ``model``, as Problems (file, line)."""
        return []

    def simulation(self, model, dt: float = 0.025, **options) -> Simulation:
        raise NotImplementedError

    def compile(self, model, output: Path, duration: float = 1000.0, dt: float = 0.025) -> Path:
        raise NotImplementedError

    def batch(self, model, copies: int, dt: float = 0.025, **options) -> Simulation:
        """A simulation of ``copies`` independent copies of ``model`` side by side (copy b: gids
        ``gid + b * num_cells``, stimulus columns of block b), with ``checkpoint()`` and
        ``rewind()``. Targets that cannot raise NotImplementedError."""
        raise NotImplementedError(f"the {self.name} target does not run batches of copies")


def problems_from(entries, severity: str = "error") -> list[Problem]:
    """(file, line, message) triples as Problems."""
    return [Problem(str(f), line, "", message, severity) for f, line, message in entries]
