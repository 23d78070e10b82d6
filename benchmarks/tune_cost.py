"""``livn systems tune``: the wall time of a study and the best loss it reaches, against an
earlier checkout in the same run.

Each measurement is a fresh process running a fresh study of ``--trials`` trials (default
protocols: 5 s each, 2 s transient; Brian2; one worker; sampler seed 0) in a temporary run
directory, timed as a user pays it (the circuit is built beforehand, untimed). The two
versions propose the same first trials; once one prunes a trial (stops it after the
spontaneous protocol because it cannot beat the best), the sampler sees something else, so
the studies part: compare the wall time per trial and the best loss, not trial by trial.

    git worktree add /tmp/livn-before <commit>
    .venv/bin/python benchmarks/tune_cost.py [EI2] [--trials 20] --before /tmp/livn-before
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from checkouts import run_at

HERE = Path(__file__).resolve().parents[1]

BUILD = """
import json, sys
from livn.system import predefined
print(json.dumps({"path": str(predefined(sys.argv[1]))}))
"""

MEASURE = """
import json, sys, tempfile, time
from livn.tools.tune import TuneConfig, tune
system, trials, duration, transient = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
with tempfile.TemporaryDirectory() as root:
    start = time.perf_counter()
    path = tune(system, trials, TuneConfig(duration=duration, transient=transient), root=root, progress=False)
    seconds = time.perf_counter() - start
    result = json.loads((path / "result.json").read_text())
print(json.dumps({"seconds": seconds, "loss": result["loss"], "trials": result["trials"],
                  "pruned": result.get("pruned", 0)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", nargs="?", default="EI2")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--duration", type=float, default=5000.0)
    parser.add_argument("--transient", type=float, default=2000.0)
    parser.add_argument("--before", type=Path, required=True, help="checkout of the earlier version")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for label, root in (("before", args.before), ("now", HERE)):
            cache = Path(scratch) / label
            run_at(root, ["-c", BUILD, args.system], cache)
            found = run_at(root, ["-c", MEASURE, args.system, args.trials, args.duration, args.transient], cache)
            rows.append((label, found))
            print(f"{label:>6}: {found['trials']} trials ({found['pruned']} pruned) in {found['seconds'] / 60:.1f} min, "
                  f"{found['seconds'] / found['trials']:.1f} s per trial, best loss {found['loss']:.3g}", flush=True)
    (_, before), (_, now) = rows
    print(f"time per trial: {before['seconds'] / before['trials'] / (now['seconds'] / now['trials']):.2f}x faster now")


if __name__ == "__main__":
    main()
