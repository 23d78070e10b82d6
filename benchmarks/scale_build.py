"""Building a layered system (CA1) at several scales, on 1 and 2 MPI ranks, and what full
scale would take.

Per (scale, ranks): wall time (median over repeats, each a fresh `livn build` process, so
imports and the interpreter count, as a user sees it), peak resident memory per rank,
circuit size on disk, edges and edges per second; then the estimate of the build's cost
at the largest scale measured against what it measured, and the estimate at full scale
(time on N cores, disk, memory per rank). Figures are for this machine; compare as ratios.

    .venv/bin/python benchmarks/scale_build.py [--spec CA1] [--scales 0.001 0.003 0.01] [--ranks 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def measure(spec: str, scale: float, ranks: int, out: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS MB of the largest rank) of one `livn build`."""
    command = [str(BIN / "livn"), "build", spec, "--scale", str(scale), "-o", str(out)]
    if ranks > 1:
        command = [str(BIN / "mpiexec"), "-n", str(ranks)] + command
    # GNU time reports the peak RSS of the process it ran; under mpiexec each rank is wrapped
    timed = ["/usr/bin/time", "-f", "RSS %M"]
    if ranks > 1:
        command = command[:3] + timed + command[3:]
    else:
        command = timed + command
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ))
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    rss = max(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("RSS "))
    return wall, rss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="CA1", help="a predefined system or a spec file")
    parser.add_argument("--scales", type=float, nargs="*", default=[0.001, 0.003, 0.01])
    parser.add_argument("--ranks", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from livn.build.estimate import estimate, size_text
    from livn.spec import load_spec
    from livn.system import resolve_spec

    path = resolve_spec(args.spec)
    print(f"{'scale':>6} {'ranks':>5} {'cells':>8} {'inputs':>8} {'edges':>11} {'build s':>8} {'edges/s':>10} "
          f"{'peak MB/rank':>12} {'disk MB':>8} {'est. edges':>11} {'est. MB':>8}")
    measured = {}
    for scale in args.scales:
        spec = load_spec(path, scale)
        cost = estimate(spec)
        for ranks in args.ranks:
            walls, peaks = [], []
            with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
                for i in range(args.repeats):
                    out = Path(tmp) / f"c{i}"
                    wall, peak = measure(str(path), scale, ranks, out)
                    walls.append(wall)
                    peaks.append(peak)
                config = json.loads((out / "circuit_config.json").read_text())
                import h5py

                edges = 0
                for entry in config["networks"]["edges"]:
                    with h5py.File(out / entry["edges_file"].replace("$NETWORK_DIR", "network")) as h5:
                        edges += sum(len(h5[f"edges/{name}/source_node_id"]) for name in h5["edges"])
                disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
            wall = statistics.median(walls)
            measured[(scale, ranks)] = wall
            print(f"{scale:>6g} {ranks:>5} {spec.num_neurons:>8} {sum(p.count for p in spec.virtual):>8} {edges:>11,} "
                  f"{wall:>8.1f} {edges / wall:>10,.0f} {max(peaks):>12.0f} {disk:>8.1f} {cost.edges:>11,.0f} "
                  f"{cost.disk_bytes / 1e6:>8.1f}", flush=True)
    largest = max(args.scales)
    if (largest, 1) in measured and (largest, 2) in measured:
        print(f"\nspeed-up 1 -> 2 ranks at scale {largest:g}: {measured[(largest, 1)] / measured[(largest, 2)]:.2f}x")
    full = estimate(load_spec(path, 1.0))
    print(f"\nfull scale (estimate, {path.name}): {full}")
    for cores in (64, 512):
        print(f"  on {cores} cores: ~{full.seconds / cores / 3600:.2g} h, {size_text(full.memory_bytes)} per rank "
              f"(rank 0 also writes {size_text(full.disk_bytes)})")


if __name__ == "__main__":
    main()
