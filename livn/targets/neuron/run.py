"""Run a livn circuit in NEURON, serial or under mpiexec; write a SONATA spike report.

    mpiexec -n 2 python -m livn.targets.neuron.run CIRCUIT --duration 1000 --output spikes.h5

Rank 0 writes the report (sorted by time) once; every rank prints nothing but rank 0.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def spikes_by_population(model, gids, times) -> dict:
    """{node population: (node ids, times)} of spikes given by gid."""
    out = {}
    for pop in model.populations.values():
        mask = (gids >= pop.offset) & (gids < pop.offset + pop.size)
        if pop.kind != "virtual":
            out[pop.name] = (gids[mask] - pop.offset, times[mask])
    return out


def main(argv=None) -> None:
    from .parallel import init

    pc = init()  # before anything else touches NEURON
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("circuit", type=Path)
    parser.add_argument("--duration", type=float, default=1000.0, help="ms")
    parser.add_argument("--output", type=Path, default=Path("spikes.h5"))
    parser.add_argument("--params", type=str, default=None, help="JSON object of parameters to set")
    parser.add_argument("--dt", type=float, default=0.025)
    parser.add_argument("--coreneuron", action="store_true", help="integrate with CoreNEURON (same spikes)")
    parser.add_argument("--mechanisms", type=Path, default=None,
                        help="a folder compiled with nrnivmodl to load first (else livn compiles into its cache)")
    args = parser.parse_args(argv)
    import math
    import resource

    for name, value in (("--duration", args.duration), ("--dt", args.dt)):
        if not (math.isfinite(value) and value > 0):
            parser.error(f"{name} must be a finite number > 0, found {value}")
    if args.dt > 1.0:
        parser.error(f"--dt must be at most 1 ms, found {args.dt}")
    if args.mechanisms is not None:
        import neuron

        if not neuron.load_mechanisms(str(args.mechanisms), warn_if_already_loaded=False):
            raise SystemExit(f"no compiled mechanisms in {args.mechanisms} (run nrnivmodl there)")

    from ...network.model import NetworkModel
    from ...sonata import write_spike_report
    from .network import Network

    from ...network.model import NetworkError
    from ...neuroml.reader import NeuroMLError
    from ...sonata import CircuitError

    try:
        model = NetworkModel(args.circuit)
    except (CircuitError, NetworkError, NeuroMLError) as err:
        raise SystemExit(f"error: {err}") from None
    start = time.perf_counter()
    network = Network(model, dt=args.dt, extracellular=False,  # no stimulation here
                      coreneuron=args.coreneuron)
    if args.params:
        network.set_params(json.loads(args.params))
    built = time.perf_counter() - start
    start = time.perf_counter()
    it, t, _ = network.run(args.duration)
    wall = time.perf_counter() - start
    # peak resident memory of each rank (Linux reports KiB), for the benchmarks' memory figures
    peaks = network.pc.py_allgather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    if network.rank == 0:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_spike_report(args.output, spikes_by_population(model, it, t))
        print(json.dumps({"system": model.name, "ranks": network.ranks, "coreneuron": args.coreneuron,
                          "duration_ms": args.duration,
                          "build_s": round(built, 3), "run_s": round(wall, 3), "spikes": int(len(it)),
                          "compartments_per_rank": network.loads.tolist(),
                          "peak_memory_gib_per_rank": [round(float(m), 3) for m in peaks],
                          "output": str(args.output)}))
    pc.barrier()
    # every rank finalises MPI inside NEURON and exits together: if one rank left Python first,
    # mpiexec would kill the others (exit status 9)
    from neuron import h

    h.quit()


if __name__ == "__main__":
    main()
