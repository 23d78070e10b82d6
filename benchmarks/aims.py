"""Issue 13's speed aims, each beside the same figure of the version before the speed work,
measured in one run on this machine (``make benchmark`` ends with it).

    .venv/bin/python benchmarks/aims.py [--repeats 3] [--baseline 19e8871] [--sample-baseline d5071b3]

The earlier versions are checked out from this repository's history as temporary git worktrees
(removed afterwards; ``--before PATH`` / ``--sample-before PATH`` take existing checkouts
instead). ``--baseline`` is the commit before the first speed change (the NEURON Env's
equivalent-current default): Env, Brian2 and NEURON figures. ``--sample-baseline`` is the
last commit before the speed work reached ``sample``, the first version that had ``sample``.
Note that the baseline ran the EI models before their revision (issue 12): the cells are
the same, the synapses and the noise were simpler and the rates different.

Every measurement is a fresh process with PYTHONPATH at one checkout (the same venv) and its
own build cache; repeats alternate between the versions; figures are medians. Speed is wall
seconds per simulated second (before/after: the speed-up); sampling is trials per hour
(after/before). Memory: peak resident set of the process, summed over MPI ranks where the
version reports it per rank.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path

from checkouts import run_at
from env_speed import PATTERN as ENV_PATTERN
from sample_throughput import MEASURE as SAMPLE_PATTERN

HERE = Path(__file__).resolve().parents[1]

CIRCUIT = """
import json, sys
from livn.system import predefined
print(json.dumps({"path": str(predefined(sys.argv[1]))}))
"""


@contextmanager
def worktree(commit: str, parent: Path):
    """A detached checkout of ``commit`` under ``parent``, removed afterwards."""
    path = parent / f"livn-{commit}"
    done = subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", str(path), commit],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cannot check out {commit} from {HERE} (a clone with its history is needed, or pass "
                         f"--before/--sample-before an existing checkout):\n{done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(path)], capture_output=True)


class Bench:
    """Fresh-process measurements of one checkout, with its own build cache."""

    def __init__(self, root: Path, cache: Path):
        self.root, self.cache = root, cache
        self._circuits: dict = {}

    def env(self, system: str, backend: str, pattern: str, duration: float) -> dict:
        """Env as a user drives it: ``seconds`` per simulated second, ``peak_mb``."""
        return run_at(self.root, ["-c", ENV_PATTERN, system, backend, pattern, duration], self.cache)

    def neuron_run(self, system: str, ranks: int, duration: float) -> dict:
        """``livn.targets.neuron.run`` (spontaneous): ``seconds`` per simulated second and, where
        the version reports it, ``peak_mb`` summed over ranks."""
        if system not in self._circuits:
            self._circuits[system] = run_at(self.root, ["-c", CIRCUIT, system], self.cache)["path"]
        out = self.cache / "spikes.h5"
        result = run_at(self.root, ["-m", "livn.targets.neuron.run", self._circuits[system], "--duration", duration,
                                    "--output", out], self.cache, mpi=ranks if ranks > 1 else 0)
        peaks = result.get("peak_memory_gib_per_rank")
        return {"seconds": result["run_s"] * 1000.0 / duration,
                "peak_mb": sum(peaks) * 1024 if peaks else None}

    def sample(self, system: str, trials: int, workers: int) -> dict:
        """``sample`` with its defaults: ``rate`` in trials per hour."""
        result = run_at(self.root, ["-c", SAMPLE_PATTERN, system, trials, workers, 10], self.cache)
        return {"rate": trials / result["seconds"] * 3600.0}


def aims(args) -> list[tuple]:
    """(label, which checkouts ("speed" or "sample"), measure(bench) -> figures, aim ratio or None)."""
    d = args.duration
    return [
        ("EI2 Brian2, RL loop (run(10) x 100)", "speed", lambda b: b.env("EI2", "brian2", "rl", 1000.0), 10.0),
        ("EI2 Brian2, one run(1000)", "speed", lambda b: b.env("EI2", "brian2", "long", 1000.0), 5.0),
        ("EI3 Brian2, one run(1000)", "speed", lambda b: b.env("EI3", "brian2", "long", 1000.0), 4.0),
        ("EI3 NEURON 1 rank, spontaneous", "speed", lambda b: b.neuron_run("EI3", 1, 1000.0), 4.0),
        (f"EI3 NEURON Env default, run({d:g})", "speed", lambda b: b.env("EI3", "neuron", "long", d), 10.0),
        (f"EI4 NEURON 1 rank, {d:g} ms", "speed", lambda b: b.neuron_run("EI4", 1, d), None),
        (f"EI4 NEURON 2 ranks, {d:g} ms", "speed", lambda b: b.neuron_run("EI4", 2, d), 2.5),
        (f"EI2 sample, {args.trials} trials, 2 workers", "sample", lambda b: b.sample("EI2", args.trials, 2), 5.0),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", default="19e8871", help="commit before the speed work (default: %(default)s)")
    parser.add_argument("--sample-baseline", default="d5071b3",
                        help="commit before the speed work reached sample (default: %(default)s)")
    parser.add_argument("--before", type=Path, help="an existing checkout to use instead of --baseline")
    parser.add_argument("--sample-before", type=Path, help="an existing checkout instead of --sample-baseline")
    parser.add_argument("--duration", type=float, default=200.0,
                        help="simulated ms of the slow NEURON cases (EI3 Env default, EI4); default %(default)s")
    parser.add_argument("--trials", type=int, default=20, help="trials per sampling measurement")
    parser.add_argument("--only", default="", help="measure only the aims whose label contains this text")
    args = parser.parse_args()
    if args.repeats < 1 or args.trials < 1 or not 10.0 <= args.duration <= 10000.0:
        parser.error("--repeats and --trials must be at least 1 and --duration within 10-10000 ms")
    rows = [row for row in aims(args) if args.only in row[0]]
    if not rows:
        parser.error(f"no aim's label contains {args.only!r}")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="livn-aims-")))
        kinds = {kind for _, kind, _, _ in rows}
        roots = {}
        if "speed" in kinds:
            roots["speed"] = args.before or stack.enter_context(worktree(args.baseline, tmp))
        if "sample" in kinds:
            roots["sample"] = args.sample_before or stack.enter_context(worktree(args.sample_baseline, tmp))
        benches = {(kind, version): Bench(root.resolve(), tmp / f"cache-{kind}-{version}")
                   for kind in roots for version, root in (("before", roots[kind]), ("after", HERE))}
        for label, kind, measure, _ in rows:  # build circuits, compile code: untimed
            for version in ("before", "after"):
                print(f"warming up: {label} ({version})", file=sys.stderr, flush=True)
                measure(benches[kind, version])
        figures: dict = {}
        for repeat in range(args.repeats):
            for label, kind, measure, _ in rows:
                for version in ("before", "after"):
                    figures.setdefault((label, version), []).append(measure(benches[kind, version]))
                    print(f"repeat {repeat + 1}: {label} {version}: {figures[label, version][-1]}", file=sys.stderr,
                          flush=True)
        report(rows, figures, args, roots)
        for path in tmp.glob("cache-*"):
            shutil.rmtree(path, ignore_errors=True)


def _median(values: list, key: str):
    values = [v[key] for v in values if v.get(key) is not None]
    return statistics.median(values) if values else None


def report(rows, figures, args, roots) -> None:
    print(f"Issue 13 aims on this machine ({os.cpu_count()} cores), medians of {args.repeats}; before: "
          f"{args.before or args.baseline} (sampling: {args.sample_before or args.sample_baseline}), after: this checkout")
    print(f"{'':<40} {'before':>12} {'after':>12} {'speed-up':>9} {'aim':>6} {'met':>4} {'peak MB after':>14}")
    seconds = {}
    for label, kind, _, goal in rows:
        key = "rate" if kind == "sample" else "seconds"
        before, after = _median(figures[label, "before"], key), _median(figures[label, "after"], key)
        seconds[label] = (before, after)
        ratio = after / before if kind == "sample" else before / after
        memory = _median(figures[label, "after"], "peak_mb")
        unit = " /h" if kind == "sample" else " s/s"
        print(f"{label:<40} {before:>8.2f}{unit:<4} {after:>8.2f}{unit:<4} {ratio:>8.2f}x "
              f"{'' if goal is None else f'{goal:g}x':>6} {'' if goal is None else ('yes' if ratio >= goal else 'no'):>4} "
              f"{'' if memory is None else f'{memory:.0f}':>14}")
    ei4 = [seconds[label] for label, *_ in rows if label.startswith("EI4 NEURON")]
    if len(ei4) != 2:
        return
    one, two = ei4
    for version, k in (("before", 0), ("after", 1)):
        print(f"EI4 NEURON speed-up from 1 to 2 ranks, {version}: {one[k] / two[k]:.2f}x"
              + (" (aim 1.8x: " + ("met)" if one[k] / two[k] >= 1.8 else "not met)") if version == "after" else ""))
    total = _median(figures[next(label for label, *_ in rows if label.startswith("EI4 NEURON 2")), "after"], "peak_mb")
    if total is not None:
        print(f"EI4 NEURON 2 ranks, peak memory in total: {total / 1024:.2f} GiB (aim 4 GB: "
              f"{'met' if total * 2**20 <= 4e9 else 'not met'})")


if __name__ == "__main__":
    main()
