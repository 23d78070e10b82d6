"""Brian2 target: code-generation (compile) time and wall time per simulated second.

For each system: construct the Env with an empty Cython cache (compile time, measured
once), then with the warm cache, and time ``run(1000)`` (1 s of biology with the default,
spontaneous dynamics) over repeats; print medians.

    .venv/bin/python benchmarks/simulate_brian2.py [--repeats 3] [EI1 EI2 EI3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

from livn.system import System, predefined

PROBE = textwrap.dedent("""
    import time, sys
    import brian2
    brian2.prefs.codegen.runtime.cython.cache_dir = sys.argv[2]
    from livn.env import Env
    from livn.system import System
    start = time.perf_counter()
    env = Env(System(sys.argv[1]))
    env.record_spikes()
    env.run(1.0)
    print(time.perf_counter() - start)
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("systems", nargs="*", default=["EI1", "EI2", "EI3"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=1000.0, help="ms per timed run")
    args = parser.parse_args()
    from livn.env import Env

    print(f"{'system':<7} {'neurons':>8} {'compile+setup (s)':>18} {'setup warm (s)':>15} "
          f"{'wall / sim. s (median)':>23} {'min':>6} {'max':>6} {'spikes/run':>11}")
    for name in args.systems:
        path = predefined(name)
        with tempfile.TemporaryDirectory() as cache:
            cold = float(subprocess.run([sys.executable, "-c", PROBE, str(path), cache], check=True,
                                        capture_output=True, text=True).stdout.split()[-1])
        start = time.perf_counter()
        env = Env(System(path))
        setup = time.perf_counter() - start
        env.record_spikes()
        walls, spikes = [], []
        for _ in range(args.repeats):
            env.clear()
            start = time.perf_counter()
            it, *_ = env.run(args.duration)
            walls.append((time.perf_counter() - start) / (args.duration / 1000.0))
            spikes.append(len(it))
        print(f"{name:<7} {env.system.num_neurons:>8} {cold:>18.1f} {setup:>15.2f} {statistics.median(walls):>23.2f} "
              f"{min(walls):>6.2f} {max(walls):>6.2f} {int(statistics.median(spikes)):>11}")


if __name__ == "__main__":
    main()
