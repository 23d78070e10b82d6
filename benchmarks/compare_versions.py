"""Compare two livn checkouts on the same machine in one run: build time, Brian2 and NEURON
wall time per simulated second. Repeats alternate between the versions; medians and ratios.

    git worktree add /tmp/livn-before <commit>
    .venv/bin/python benchmarks/compare_versions.py --before /tmp/livn-before [--repeats 3]

Each measurement runs in a fresh process with PYTHONPATH at one checkout (the same venv).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from checkouts import run_at

HERE = Path(__file__).resolve().parents[1]

BUILD = """
import json, sys, time
from livn.build import build_circuit
from livn.resources import spec_path
from livn.spec import load_spec
spec = load_spec(spec_path(sys.argv[1]))
start = time.perf_counter()
build_circuit(spec, sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - start}))
"""

BRIAN2 = """
import json, sys, time
from livn.env import Env
from livn.system import System
env = Env(System(sys.argv[1]))
env.record_spikes()
env.run(100.0)  # code generation and the onset
start = time.perf_counter()
result = env.run(float(sys.argv[2]))
wall = time.perf_counter() - start
print(json.dumps({"seconds": wall * 1000.0 / float(sys.argv[2]), "spikes": int(len(result[0]))}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout of the earlier version")
    parser.add_argument("--after", type=Path, default=HERE, help="checkout of the later version (this one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=1000.0, help="simulated ms per run")
    args = parser.parse_args()
    versions = {"before": args.before.resolve(), "after": args.after.resolve()}
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        circuits = {}
        for key, root in versions.items():
            cache = tmp / f"cache-{key}"
            for name in ("EI3", "EI4"):
                circuits[key, name] = tmp / f"{key}-{name}"
                run_at(root, ["-c", BUILD, name, str(circuits[key, name])], cache)  # warm-up build
            # warm the compiled code (Brian2 Cython, NEURON mechanisms) of each version
            run_at(root, ["-c", BRIAN2, str(circuits[key, "EI3"]), "10"], cache)
            run_at(root, ["-m", "livn.targets.neuron.run", str(circuits[key, "EI3"]), "--duration", "1",
                        "--output", str(tmp / "warm.h5")], cache)
        for repeat in range(args.repeats):
            for key, root in versions.items():
                cache = tmp / f"cache-{key}"
                for name in ("EI3", "EI4"):
                    out = tmp / f"{key}-{name}-{repeat}"
                    figures.setdefault(("build", name, key), []).append(
                        run_at(root, ["-c", BUILD, name, str(out)], cache)["seconds"])
                figures.setdefault(("brian2 EI3", "s/s", key), []).append(
                    run_at(root, ["-c", BRIAN2, str(circuits[key, "EI3"]), str(args.duration)],
                         cache)["seconds"])
                for ranks in (1, 2):
                    result = run_at(root, ["-m", "livn.targets.neuron.run", str(circuits[key, "EI3"]),
                                         "--duration", str(args.duration), "--output", str(tmp / f"{key}.h5")],
                                  cache, mpi=ranks if ranks > 1 else 0)
                    figures.setdefault((f"neuron EI3 {ranks} rank(s)", "s/s", key), []).append(
                        result["run_s"] * 1000.0 / args.duration)
    print(f"medians of {args.repeats} (before: {versions['before']}, after: {versions['after']})")
    for what in dict.fromkeys((a, b) for a, b, _ in figures):
        before = statistics.median(figures[(*what, "before")])
        after = statistics.median(figures[(*what, "after")])
        unit = "s" if what[0] == "build" else "s per simulated s"
        print(f"  {what[0]:<22} {what[1]:<4} before {before:8.3f} {unit:<18} after {after:8.3f}   after/before {after / before:5.2f}")


if __name__ == "__main__":
    main()
