"""Build time of the standard EI systems, including writing the SONATA circuit.

Prints, per system, the median wall time over repeats (validation excluded, writing
included), the number of edges and edges per second.

    .venv/bin/python benchmarks/build.py [--repeats 5] [EI1 EI2 EI3 EI4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from livn.build import build_circuit
from livn.resources import spec_path
from livn.spec import load_spec
from livn.system import System


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("systems", nargs="*", default=["EI1", "EI2", "EI3", "EI4"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'system':<7} {'neurons':>8} {'edges':>10} {'build (s), median':>18} {'min':>7} {'max':>7} {'edges/s':>12}")
    for name in args.systems:
        spec = load_spec(spec_path(name))
        times = []
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.repeats):
                start = time.perf_counter()
                path = build_circuit(spec, Path(tmp) / f"{name}-{i}")
                times.append(time.perf_counter() - start)
            edges = len(System(path).edges["source"])
        median = statistics.median(times)
        print(f"{name:<7} {spec.num_neurons:>8} {edges:>10} {median:>18.3f} {min(times):>7.3f} {max(times):>7.3f} "
              f"{edges / median:>12,.0f}")


if __name__ == "__main__":
    main()
