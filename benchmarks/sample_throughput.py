"""``livn systems sample`` throughput: trials per hour by workers and batch, and against an
earlier checkout in the same run.

Each measurement is a fresh process that writes a fresh dataset of ``--trials`` trials (the
default configuration: 200 ms warm-up + 500 ms stimulated, Brian2, 10 trials per file) into a
temporary run directory; the wall time includes starting the workers and building their
simulations, as a user pays it (the circuit is built and compiled once beforehand, untimed).
Medians over ``--repeats``, alternating between checkouts; ratios against the first row.

    git worktree add /tmp/livn-before <commit>
    .venv/bin/python benchmarks/sample_throughput.py [EI2] [--trials 20] [--before /tmp/livn-before]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from checkouts import run_at

HERE = Path(__file__).resolve().parents[1]

MEASURE = """
import inspect, json, sys, tempfile, time
from livn.tools.sample import SampleConfig, sample
system, trials, workers, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
keywords = {"batch": batch} if "batch" in inspect.signature(sample).parameters else {}
with tempfile.TemporaryDirectory() as root:
    start = time.perf_counter()
    sample(system, trials, SampleConfig(), workers=workers, root=root, progress=False, **keywords)
    print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def _measure(root: Path, cache: Path, system: str, trials: int, workers: int, batch: int) -> float:
    return run_at(root, ["-c", MEASURE, system, trials, workers, batch], cache)["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", nargs="?", default="EI2")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 10], help="trials simulated at once")
    parser.add_argument("--before", type=Path, help="an earlier checkout, measured one trial at a time")
    args = parser.parse_args()
    cases = [(args.before, w, 1) for w in args.workers] if args.before else []
    cases += [(HERE, w, b) for w in args.workers for b in args.batch]
    caches = {}
    for root, workers, batch in cases:  # build + compile once per checkout, untimed
        if root not in caches:
            caches[root] = Path(tempfile.mkdtemp(prefix="livn-bench-"))
            _measure(root, caches[root], args.system, 1, 1, 1)
    walls = {case: [] for case in cases}
    for _ in range(args.repeats):
        for case in cases:
            root, workers, batch = case
            walls[case].append(_measure(root, caches[root], args.system, args.trials, workers, batch))
    print(f"{args.system}: {args.trials} trials of 200 + 500 ms (brian2, 10 per file), medians of {args.repeats}, "
          f"{os.cpu_count()} cores")
    print(f"{'checkout':>10} {'workers':>8} {'batch':>6} {'wall s':>8} {'trials/hour':>12} {'ratio':>6}")
    first = None
    for case in cases:
        root, workers, batch = case
        rate = args.trials / statistics.median(walls[case]) * 3600
        first = first or rate
        label = "before" if root == args.before and root != HERE else "this"
        print(f"{label:>10} {workers:>8} {batch:>6} {statistics.median(walls[case]):>8.1f} {rate:>12.0f} "
              f"{rate / first:>6.2f}")


if __name__ == "__main__":
    main()
