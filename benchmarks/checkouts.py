"""Run a snippet against one livn checkout (PYTHONPATH at it, its own build cache) in a fresh
process: what the benchmarks comparing two versions in one run share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run_at(root: Path, args, cache: Path, mpi: int = 0) -> dict:
    """The JSON object that ``python *args`` (e.g. ``["-c", code, ...]``) prints last, run at
    checkout ``root`` (under ``mpiexec -n mpi`` when mpi > 0); exits with its error output when
    it fails."""
    env = {**os.environ, "PYTHONPATH": str(root), "LIVN_CACHE": str(cache)}
    command = [sys.executable, *map(str, args)]
    if mpi:
        command = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(mpi)] + command
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root)
    if done.returncode != 0:
        raise SystemExit(f"{root}: {' '.join(command[1:3])} {' '.join(command[4:])} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
