"""``livn systems sample`` throughput: trials per hour on 1 and 2 worker processes.

For each worker count, a fresh dataset of ``--trials`` trials (the default configuration:
200 ms warm-up + 500 ms stimulated, Brian2; files of ``--chunk`` trials, the workers' unit
of work) is written into a temporary run directory;
the wall time includes starting the workers and building their simulations, as a user
pays it. Medians over ``--repeats``; the ratio compares the two worker counts.

    .venv/bin/python benchmarks/sample_throughput.py [EI2] [--trials 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from livn.tools.sample import SampleConfig, sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", nargs="?", default="EI2")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--chunk", type=int, default=2, help="trials per file: a worker's unit of work")
    args = parser.parse_args()
    config = SampleConfig(chunk=args.chunk)
    sample(args.system, 1, config, root=tempfile.mkdtemp(), progress=False)  # build + compile once, untimed
    rates = {}
    print(f"{args.system}: {args.trials} trials of {config.warmup:g} + {config.duration:g} ms, {config.backend}, "
          f"{config.chunk} per file")
    print(f"{'workers':>8} {'wall s (median)':>16} {'min':>7} {'max':>7} {'trials/hour':>12}")
    for workers in args.workers:
        walls = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as root:
                start = time.perf_counter()
                sample(args.system, args.trials, config, workers=workers, root=root, progress=False)
                walls.append(time.perf_counter() - start)
        median = statistics.median(walls)
        rates[workers] = args.trials / median * 3600
        print(f"{workers:>8} {median:>16.1f} {min(walls):>7.1f} {max(walls):>7.1f} {rates[workers]:>12.0f}")
    if len(rates) > 1:
        first, *rest = rates
        for workers in rest:
            print(f"speed-up {workers} vs {first} worker(s): {rates[workers] / rates[first]:.2f}x")


if __name__ == "__main__":
    main()
