"""CA1 on NEURON at several scales: network build time, wall time per simulated second on 1
and 2 MPI ranks, speed-up, and the load balance across ranks.

Each run is a fresh ``mpiexec -n R python -m livn.targets.neuron.run`` process on the circuit
``predefined("CA1", scale=S)`` (built first, not timed), with the default input drives and
without the extracellular mechanism. Figures are medians over repeats; "wall/sim s" is the
wall time of the run scaled to one simulated second. Load balance: compartments per rank
(max / mean, what the LPT assignment evens out; NEURON's per-rank step and wait timers read 0
in this build, so the time per rank is not measured). "spikes" lists the distinct spike
counts of all runs: one number when 1 and 2 ranks agree, as they must. "memory" is the peak
resident memory summed over the ranks (GiB, largest over the repeats); the NEURON network holds
~0.75 kB per NetCon, ~8k NetCons per cell, so memory grows with the cells simulated.

A scale whose network would not fit in this machine's memory is skipped with the estimate
(~270 B per edge in total over the ranks: 5.6 GiB for 2.6e7 edges at 0.002 on one rank,
13.6 GiB for 5.2e7 at 0.004 on two, measured 2026-12-02), instead of being killed by the
kernel part way.

    .venv/bin/python benchmarks/simulate_ca1.py [--scales 0.002 0.004 0.01] [--duration 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from simulate_neuron import run

from livn.build.estimate import estimate
from livn.resources import spec_path
from livn.spec import load_spec
from livn.system import System, predefined

#: NEURON's memory per CA1 edge, summed over the ranks (NetCons, synapses, cells), bytes
BYTES_PER_EDGE = 270.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="*", default=[0.002, 0.004, 0.01])
    parser.add_argument("--ranks", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--duration", type=float, default=200.0, help="ms per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'scale':>7} {'cells':>6} {'edges':>9} {'ranks':>5} {'build (s)':>9} {'wall/sim s':>11} "
          f"{'speed-up':>8} {'compartments max/mean':>22} {'memory GiB':>10} {'spikes':>8}", flush=True)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    for scale in args.scales:
        expected = estimate(load_spec(spec_path("CA1"), scale))  # before building it
        needed = expected.edges * BYTES_PER_EDGE / 2**30
        if needed > 0.9 * physical:
            print(f"{scale:>7g} {expected.cells:>6} {expected.edges:>9.3g}  skipped: the network needs "
                  f"~{needed:.0f} GiB, this machine has {physical:.0f} GiB", flush=True)
            continue
        circuit = predefined("CA1", scale=scale)
        system = System(circuit)
        base = None
        for ranks in args.ranks:
            with tempfile.TemporaryDirectory() as tmp:
                runs = [run(ranks, circuit, args.duration, Path(tmp) / f"{k}.h5") for k in range(args.repeats)]
            per_second = statistics.median(r["run_s"] for r in runs) * 1000.0 / args.duration
            base = base or per_second
            loads = runs[0]["compartments_per_rank"]
            print(f"{scale:>7g} {system.num_neurons:>6} {system.num_edges:>9.3g} {ranks:>5} "
                  f"{statistics.median(r['build_s'] for r in runs):>9.1f} {per_second:>11.0f} "
                  f"{base / per_second:>7.2f}x {max(loads) / statistics.mean(loads):>22.3f} "
                  f"{max(sum(r['peak_memory_gib_per_rank']) for r in runs):>10.2f} "
                  f"{'/'.join(map(str, sorted({r['spikes'] for r in runs}))):>8}", flush=True)


if __name__ == "__main__":
    main()
