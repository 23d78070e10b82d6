"""livn's NEURON target against BMTK's bionet on the same circuit (``livn export --to bmtk``), 1
and 2 MPI ranks: wall seconds per simulated second of the run loop (medians over repeats) and the
ratio bionet / livn, and whether the two gave the same spikes.

Both integrate the same mechanisms with the same noise streams; bionet steps with stdrun's
``fadvance`` loop and a Python call after every step (its reports), livn with
``ParallelContext.psolve``. Setup (reading the circuit, making cells and NetCons) is reported
apart: bionet's is the wall time of the whole process minus its run loop.

    .venv/bin/python benchmarks/bmtk_vs_livn.py [--repeats 3] [--duration 500] [EI3]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from livn.system import predefined

BIN = Path(sys.executable).parent


def spikes(path: Path) -> tuple:
    with h5py.File(path, "r") as h5:
        (population,) = list(h5["spikes"])
        gids = h5[f"spikes/{population}/node_ids"][:].astype(np.int64)
        times = h5[f"spikes/{population}/timestamps"][:]
    order = np.lexsort((gids, times))
    return gids[order], times[order]


def run_livn(ranks: int, circuit: Path, duration: float, output: Path) -> dict:
    command = [str(BIN / "mpiexec"), "-n", str(ranks), sys.executable, "-m", "livn.targets.neuron.run", str(circuit),
               "--duration", str(duration), "--output", str(output)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return {"run_s": figures["run_s"], "setup_s": wall - figures["run_s"], "spikes": spikes(output)}


def run_bionet(ranks: int, folder: Path) -> dict:
    output = folder / "output"
    command = [str(BIN / "mpiexec"), "-n", str(ranks), sys.executable, "run_bmtk.py"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"bionet failed:\n{(done.stdout + done.stderr)[-3000:]}")
    log = (output / "log.txt").read_text()
    match = re.search(r"Simulation completed in (?:(\d+) minutes?, )?([\d.]+) seconds", log)
    run_s = float(match.group(1) or 0) * 60 + float(match.group(2))
    return {"run_s": run_s, "setup_s": wall - run_s, "spikes": spikes(output / "spikes.h5")}


def same(a: tuple, b: tuple, dt: float = 0.025) -> bool:
    return len(a[0]) == len(b[0]) and np.array_equal(a[0], b[0]) and bool(np.all(np.abs(a[1] - b[1]) <= dt))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("systems", nargs="*", default=["EI3"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=500.0, help="ms per run")
    args = parser.parse_args()
    print(f"{'system':<7} {'ranks':>5} {'livn (s/sim s)':>15} {'bionet (s/sim s)':>17} {'bionet/livn':>12} "
          f"{'setup livn/bionet (s)':>22} {'spikes':>7} {'identical':>9}")
    for name in args.systems:
        circuit = predefined(name)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "bmtk"
            subprocess.run([str(BIN / "livn"), "export", str(circuit), "--to", "bmtk", "-o", str(folder),
                            "--duration", str(args.duration)], check=True, capture_output=True)
            for ranks in (1, 2):
                ours = [run_livn(ranks, circuit, args.duration, Path(tmp) / f"livn-{ranks}-{i}.h5")
                        for i in range(args.repeats)]
                theirs = [run_bionet(ranks, folder) for _ in range(args.repeats)]
                per_s = 1000.0 / args.duration
                livn_s = statistics.median(r["run_s"] for r in ours) * per_s
                bionet_s = statistics.median(r["run_s"] for r in theirs) * per_s
                setup = (statistics.median(r["setup_s"] for r in ours), statistics.median(r["setup_s"] for r in theirs))
                identical = all(same(ours[0]["spikes"], r["spikes"]) for r in ours + theirs)
                print(f"{name:<7} {ranks:>5} {livn_s:>15.2f} {bionet_s:>17.2f} {bionet_s / livn_s:>12.2f} "
                      f"{setup[0]:>10.1f} / {setup[1]:<9.1f} {len(ours[0]['spikes'][0]):>7} {str(identical):>9}",
                      flush=True)


if __name__ == "__main__":
    main()
