"""The Env as a user drives it, in two livn checkouts on the same machine in one run: wall seconds
per simulated second for one long run and for an RL loop of short runs, and peak memory.

    git worktree add /tmp/livn-before <commit>
    .venv/bin/python benchmarks/env_speed.py --before /tmp/livn-before [--repeats 3]

Each measurement is a fresh process (``make(name, backend=...)``, ``record_spikes()``, a 200 ms
warm-up, then 1000 simulated ms timed: one ``run(1000)``, or ``run(10)`` 100 times; the
snippet takes another duration as a fourth argument), with
PYTHONPATH at one checkout and the same venv; repeats alternate between the checkouts. Prints
medians and after/before ratios (issue 13's patterns: "long" and "rl").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from checkouts import run_at

HERE = Path(__file__).resolve().parents[1]

PATTERN = """
import json, resource, sys, time
from livn.env import make
name, backend, pattern = sys.argv[1:4]
duration = float(sys.argv[4]) if len(sys.argv) > 4 else 1000.0  # simulated ms timed
env = make(name, backend=backend)
env.record_spikes()
env.run(200.0)
start = time.perf_counter()
if pattern == "long":
    env.run(duration)
else:
    for _ in range(int(duration // 10)):
        env.run(10.0)
wall = time.perf_counter() - start
print(json.dumps({"seconds": wall * 1000.0 / duration,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CASES = [("EI2", "brian2", "long"), ("EI2", "brian2", "rl"), ("EI2", "neuron", "long"), ("EI2", "neuron", "rl"),
         ("EI3", "brian2", "long"), ("EI3", "brian2", "rl"), ("EI3", "neuron", "long"), ("EI3", "neuron", "rl")]


def _measure(root: Path, cache: Path, case: tuple) -> dict:
    return run_at(root, ["-c", PATTERN, *case], cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout of the earlier version")
    parser.add_argument("--after", type=Path, default=HERE, help="checkout of the later version (this one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--systems", default="EI2,EI3", help="comma-separated systems to measure")
    parser.add_argument("--backends", default="brian2,neuron", help="comma-separated targets to measure")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, not {args.repeats}")
    systems, backends = args.systems.split(","), args.backends.split(",")
    cases = [c for c in CASES if c[0] in systems and c[1] in backends]
    versions = {"before": args.before.resolve(), "after": args.after.resolve()}
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for key, root in versions.items():  # build the circuits and compile the code of each version
            for name in systems:
                for backend in backends:
                    _measure(root, Path(tmp) / key, (name, backend, "rl"))
        for repeat in range(args.repeats):
            for case in cases:
                for key, root in versions.items():
                    figures.setdefault((case, key), []).append(_measure(root, Path(tmp) / key, case))
                    print(f"repeat {repeat + 1}: {' '.join(case)} {key}: {figures[case, key][-1]}", file=sys.stderr)
    print(f"wall s per simulated s, medians of {args.repeats} (before: {versions['before']}, after: {versions['after']})")
    for case in cases:
        before, after = (statistics.median(x["seconds"] for x in figures[case, k]) for k in ("before", "after"))
        memory = statistics.median(x["peak_mb"] for x in figures[case, "after"])
        print(f"  {' '.join(case):<16} before {before:7.2f}  after {after:7.2f}  before/after {before / after:5.1f}x"
              f"  peak {memory:6.0f} MB")


if __name__ == "__main__":
    main()
