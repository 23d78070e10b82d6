"""Run a livn circuit in NEURON, serial or under mpiexec; write a SONATA spike report.

    mpiexec -n 2 python -m livn.targets.neuron.run CIRCUIT --duration 1000 --output spikes.h5

Rank 0 writes the report (sorted by time) once; every rank prints nothing but rank 0.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


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
    if args.mechanisms is not None:
        import neuron

        if not neuron.load_mechanisms(str(args.mechanisms), warn_if_already_loaded=False):
            raise SystemExit(f"no compiled mechanisms in {args.mechanisms} (run nrnivmodl there)")

    from ...system import System
    from ..circuit import write_spike_report
    from .network import Network

    system = System(args.circuit)
    start = time.perf_counter()
    network = Network(system.spec, system.directory, dt=args.dt, extracellular=False,  # no stimulation here
                      coreneuron=args.coreneuron)
    if args.params:
        network.set_params(json.loads(args.params))
    built = time.perf_counter() - start
    start = time.perf_counter()
    it, t, _ = network.run(args.duration)
    wall = time.perf_counter() - start
    if network.rank == 0:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_spike_report(args.output, system.name, it, t)
        print(json.dumps({"system": system.name, "ranks": network.ranks, "coreneuron": args.coreneuron,
                          "duration_ms": args.duration,
                          "build_s": round(built, 3), "run_s": round(wall, 3), "spikes": int(len(it)),
                          "output": str(args.output)}))
    pc.barrier()
    # every rank finalises MPI inside NEURON and exits together: if one rank left Python first,
    # mpiexec would kill the others (exit status 9)
    from neuron import h

    h.quit()


if __name__ == "__main__":
    main()
