"""NEURON target: model build time, wall time per simulated second on 1 and 2 MPI ranks, speed-up,
and the same on 2 ranks with CoreNEURON.

Spontaneous activity with the default parameters, without the extracellular mechanism
(as ``livn run --backend neuron`` does when nothing is stimulated). Each figure is the
median over repeats of a run of --duration ms, scaled to one simulated second; "spikes" lists
the distinct spike counts of all runs (one number: every run, NEURON or CoreNEURON, agreed).

    .venv/bin/python benchmarks/simulate_neuron.py [--repeats 3] [--duration 1000] [EI2 EI3 EI4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from livn.system import predefined


def run(ranks: int, circuit: Path, duration: float, output: Path, coreneuron: bool = False) -> dict:
    command = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks), sys.executable, "-m",
               "livn.targets.neuron.run", str(circuit), "--duration", str(duration), "--output", str(output)]
    command += ["--coreneuron"] if coreneuron else []
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("systems", nargs="*", default=["EI2", "EI3", "EI4"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=1000.0, help="ms per run")
    args = parser.parse_args()
    print(f"{'system':<7} {'build 1 rank (s)':>17} {'wall/sim s, 1 rank':>19} {'wall/sim s, 2 ranks':>20} "
          f"{'speed-up':>9} {'CoreNEURON 2 ranks':>19} {'spikes':>8}")
    for name in args.systems:
        circuit = predefined(name)
        with tempfile.TemporaryDirectory() as tmp:
            run(2, circuit, 1.0, Path(tmp) / "warm.h5", coreneuron=True)  # compiles the mechanisms once
            results = {key: [run(ranks, circuit, args.duration, Path(tmp) / f"{key}-{i}.h5", core)
                             for i in range(args.repeats)]
                       for key, ranks, core in ((1, 1, False), (2, 2, False), ("core", 2, True))}
        per_second = {key: statistics.median(x["run_s"] for x in runs) * 1000.0 / args.duration
                      for key, runs in results.items()}
        build = statistics.median(x["build_s"] for x in results[1])
        spikes = {x["spikes"] for runs in results.values() for x in runs}
        print(f"{name:<7} {build:>17.2f} {per_second[1]:>19.2f} {per_second[2]:>20.2f} "
              f"{per_second[1] / per_second[2]:>8.2f}x {per_second['core']:>19.2f} "
              f"{'/'.join(map(str, sorted(spikes))):>8}", flush=True)


if __name__ == "__main__":
    main()
