"""Tune CA1's default weights toward per-type firing rates, open loop (docs/CA1-plan.md Step 12).

Closed-loop tuning of all twelve types at once does not converge at the scales this machine can
run (most interneuron types are one cell; the types drive and inhibit each other, so every
factor moves every rate). This script tunes **open loop**, the usual way to set a network at a
chosen operating point: if every population fires at its target rate, each cell sees Poisson-like
input at those rates, so each type can be tuned on its own against that input.

The script writes a tuning circuit from ``specs/CA1.yaml``:

* every simulated type P becomes a virtual population ``P_in`` placed like P, firing Poisson
  trains at P's target rate (``TARGETS``); the inputs CA3, CA2, EC keep their theta drives. These
  sources are ``--sources`` times denser than P, so that a cell's thousands of synapses come from
  many independent trains (as at full scale), not from the few cells of a small scale;
* every simulated type T appears in ``--levels`` copies ``T_0, T_1, ...`` of ``--cells`` cells
  each, receiving every projection of the spec from the ``_in`` sources, with its excitatory
  weights (from PYR, CA3, CA2, EC) multiplied by that copy's factor (log-spaced).

One simulation then gives every type's rate as a function of its excitatory factor. The factor
where that curve first rises through the target (log-linear interpolation) is the type's tuned
factor; ``--write`` multiplies the excitatory weights in specs/CA1.yaml by it (comments kept).
``livn dynamics CA1 --scale S`` then checks the closed loop.

    .venv/bin/python specs/tune_ca1.py [--scale 0.0003] [--duration 600] [--levels 8]
                                       [--low 0.0625] [--high 8] [--write]

Synapses per cell do not depend on ``scale``; the target cells' count only sets how well a rate
is measured, so the circuit is small (levels x types x cells). ``--closed-loop`` then corrects
the factors in the real network (damped, keeping the iteration closest to the bands).
``--in-network`` puts the copies inside the real network at ``--scale`` as probes: they receive
its projections from its own populations (the correlated input of a small scale, where a cell's
thousands of synapses come from few cells) and project nowhere, so one run gives the network's
rates and each type's rate curve around the current weights (factors --low..--high on them).

Status (2026-12-02, docs/CA1-plan.md): open loop, every type but SCA has a crossing on the
reference weights. The closed loop with the reference inhibition is bistable (IVY and IS1 silence
each other with 11-20 nS unitary IPSCs: PYR-active or IVY-only). With IS1->IVY and BS->IVY x0.1,
IVY->PYR and PVBC->AAC x0.25 (``--projection``) the closed loop at scale 0.001 reached 11 of 12
types in band (AAC 90 Hz) in 4 iterations; those weights are in specs/CA1.yaml. In-network
probes then found sets with all 12 types in band at 0.001 (AAC x0.354, PYR x0.8), or 11 at
0.002, but neither held at the other scale, and the second put the plain 0.002 network into the
IVY state (docs/CA1-plan.md, session 7).
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

SPEC = Path(__file__).with_name("CA1.yaml")
EXCITATORY = {"PYR", "CA3", "CA2", "EC"}

#: target rate and accepted band (Hz) per type under theta-modulated input: in-vivo rates
#: during theta (Klausberger & Somogyi 2008, Science 321:53; Lapray et al. 2012, Nat Neurosci
#: 15:1265; Varga et al. 2012, PNAS 109:E2726), rounded, and the issue's bounds (PYR 0.1-5 Hz,
#: interneurons faster, none silent or saturated)
TARGETS = {
    "PYR": (1.5, 0.3, 4.0),
    "PVBC": (25.0, 10.0, 60.0), "AAC": (20.0, 8.0, 50.0), "BS": (20.0, 8.0, 50.0),
    "CCKBC": (10.0, 4.0, 30.0), "IVY": (5.0, 2.0, 20.0), "NGFC": (8.0, 3.0, 25.0),
    "OLM": (8.0, 3.0, 25.0), "SCA": (8.0, 3.0, 25.0),
    "IS1": (8.0, 3.0, 25.0), "IS2": (8.0, 3.0, 25.0), "IS3": (8.0, 3.0, 25.0),
}


def _projection(name: str) -> tuple[str, str]:
    source, rest = name.split("->")
    return source.strip(), rest.split(".")[0].strip()


def open_loop_spec(spec: dict, levels: dict[str, list[float]], cells: dict[str, int], scale: float,
                   sources: float, projections: dict | None = None, in_network: bool = False) -> dict:
    """The tuning spec (see the module docstring) as a dict, paths made absolute; ``projections``
    maps (source, target) to a fixed factor on every weight of that projection. With
    ``in_network`` the copies are probes in the real network instead: it keeps every population,
    projection and weight of ``spec``, and the copies receive from its populations (and project
    nowhere), so each copy sees the closed loop's own, correlated input."""
    fixed = projections or {}
    base = SPEC.parent
    populations = spec["populations"]
    simulated = [p for p, d in populations.items() if "cell" in d and not in_network]
    out = {k: v for k, v in spec.items() if k not in ("populations", "connectivity", "defaults", "receptors")}
    out["name"] = "CA1_in_network" if in_network else "CA1_open_loop"
    out["receptors"] = {name: {**r, "model": str((base / r["model"]).resolve())}
                        for name, r in spec["receptors"].items()}
    pops = {}
    for p, d in populations.items():
        if in_network:
            pops[p] = {**d, "cell": str((base / d["cell"]).resolve())} if "cell" in d else d
            continue
        source = {"layers": {layer: int(round(n * sources)) for layer, n in d["layers"].items()},
                  "role": d["role"], "axon_extent": d["axon_extent"]}
        if "depth" in d:
            source["depth"] = d["depth"]
        if p in simulated:
            source["drive"] = {"poisson": {"rate": f"{TARGETS[p][0]} Hz"}}
            pops[f"{p}_in"] = source
        else:
            source["drive"] = d["drive"]
            pops[p] = source
    for t in levels:
        d = populations[t]
        layer = max(d["layers"], key=d["layers"].get)
        for k in range(len(levels[t])):
            copy = {key: value for key, value in d.items() if key not in ("layers", "depth")}
            copy["cell"] = str((base / d["cell"]).resolve())
            copy["layers"] = {layer: int(round(cells.get(t, 1) / scale))}
            if layer in d.get("depth", {}):
                copy["depth"] = {layer: d["depth"][layer]}
            pops[f"{t}_{k}"] = copy
    out["populations"] = pops

    def source_name(s):
        return f"{s}_in" if s in simulated else s

    projections = dict(spec["connectivity"]["projections"]) if in_network else {}
    for name, projection in spec["connectivity"]["projections"].items():
        s, t = (x.strip() for x in name.split("->"))
        for k in range(len(levels.get(t, []))):
            projections[f"{source_name(s)} -> {t}_{k}"] = projection
    out["connectivity"] = {**spec["connectivity"], "projections": projections}
    weights = {}
    for name, value in spec["defaults"]["weights"].items():
        s, t = _projection(name)
        receptor = name.split(".", 1)[1]
        if in_network:
            weights[name] = float(value * fixed.get((s, t), 1.0))
        for k, level in enumerate(levels.get(t, [])):
            weights[f"{source_name(s)} -> {t}_{k}.{receptor}"] = float(
                value * (level if s in EXCITATORY else 1.0) * fixed.get((s, t), 1.0))
    out["defaults"] = {**spec["defaults"], "weights": weights}
    return out


def crossing(levels, rates, target: float) -> float | None:
    """The factor where the rate first rises through ``target``: the rising part of the curve
    (up to its maximum; beyond it the cells go into depolarisation block) made monotone by
    isotonic regression (single cells are noisy), then interpolated in log(factor). None if the
    curve never reaches ``target`` or is above it at every level."""
    from scipy.optimize import isotonic_regression

    order = np.argsort(levels)
    levels, rates = np.asarray(levels, float)[order], np.asarray(rates, float)[order]
    peak = int(np.argmax(rates))
    fitted = isotonic_regression(rates[:peak + 1]).x
    for k in range(1, len(fitted)):
        if fitted[k - 1] < target <= fitted[k]:
            a, b = np.log(levels[k - 1]), np.log(levels[k])
            w = (target - fitted[k - 1]) / (fitted[k] - fitted[k - 1])
            return float(np.exp(a + w * (b - a)))
    return None


def write(factors: dict[str, float], path: Path = SPEC, projections: dict | None = None) -> int:
    """Multiply the excitatory weights onto each tuned type in the spec at ``path`` by its factor,
    and every weight of a projection in ``projections`` ((source, target) -> factor) by that
    factor, comments and layout kept; the number of weights changed."""
    projections = projections or {}
    text = path.read_text()
    changed = 0

    def scale_value(match):
        nonlocal changed
        source, target = match.group(2), match.group(3)
        factor = (factors.get(target, 1.0) if source in EXCITATORY else 1.0) * projections.get((source, target), 1.0)
        if factor == 1.0:
            return match.group(0)
        changed += 1
        return match.group(1) + f"{float(match.group(4)) * factor:.4g}"

    text = re.sub(r"^(\s*(\w+) -> (\w+)\.\w+:\s*)([-+0-9.eE]+)", scale_value, text, flags=re.M)
    path.write_text(text)
    return changed


def sweep(spec: dict, levels: dict[str, np.ndarray], cells: dict[str, int], args) -> dict[str, float]:
    """Build and simulate the open-loop circuit for ``levels`` (factors per type); print each
    type's rate (Hz) and mean somatic potential (mV) per factor; the crossing factor per type."""
    from livn.build.circuit import build_circuit
    from livn.env import Env
    from livn.measures import mean_rate
    from livn.spec import load_spec
    from livn.system import System

    tuning = open_loop_spec(spec, {t: list(v) for t, v in levels.items()}, cells, args.scale, args.sources,
                            args.projections, args.in_network)
    with tempfile.TemporaryDirectory(prefix="livn-tune-ca1-") as folder:
        path = Path(folder) / "CA1_open_loop.yaml"
        path.write_text(yaml.safe_dump(tuning, sort_keys=False))
        start = time.perf_counter()
        circuit = build_circuit(load_spec(path, args.scale), Path(folder) / "circuit")
        print(f"built the open-loop circuit in {time.perf_counter() - start:.0f} s", flush=True)
        env = Env(System(circuit), backend="neuron")
        system = env.system
        env.set_params(env.default_params())
        env.record_spikes()
        first = {(t, k): int(system.gids(f"{t}_{k}")[0]) for t in levels for k in range(len(levels[t]))}
        env.record_voltage(list(first.values()))
        start = time.perf_counter()
        result = env.run(args.duration)
        print(f"simulated {args.duration:g} ms in {time.perf_counter() - start:.0f} s", flush=True)
        skip = int(args.transient / env.dt)
        if args.in_network:
            rates = {t: mean_rate(result.it, result.t, system.gids(t), args.transient, args.duration)
                     for t in TARGETS}
            print(f"network (distance {band_distance(rates):.2f}): "
                  + ", ".join(f"{t} {r:.1f}" for t, r in rates.items()), flush=True)
        factors = {}
        for t, factor_levels in levels.items():
            target = TARGETS[t][0]
            rates = np.array([mean_rate(result.it, result.t, system.gids(f"{t}_{k}"), args.transient,
                                        args.duration) for k in range(len(factor_levels))])
            soma = [float(np.mean(result.voltages[first[t, k]][0][skip:])) for k in range(len(factor_levels))]
            factor = crossing(factor_levels, rates, target)
            print(f"{t} (target {target:g} Hz): " + (f"factor {factor:.3g}" if factor else "no crossing"))
            print("  factor  " + " ".join(f"{x:7.3g}" for x in factor_levels))
            print("  Hz      " + " ".join(f"{r:7.1f}" for r in rates))
            print("  soma mV " + " ".join(f"{v:7.1f}" for v in soma), flush=True)
            if factor is not None:
                factors[t] = factor
        env.close()
    return factors


def band_distance(rates: dict[str, float]) -> float:
    """Sum over types of the squared log-distance of the rate (at least 0.1 Hz) to its band."""
    total = 0.0
    for t, (target, low, high) in TARGETS.items():
        rate = max(rates[t], 0.1)
        total += np.log(low / rate) ** 2 if rate < low else np.log(rate / high) ** 2 if rate > high else 0.0
    return float(total)


def closed_loop(args, factors: dict[str, float]) -> dict[str, float]:
    """Correct the open-loop factors in the closed loop (``specs/CA1.yaml`` at ``args.scale``,
    its excitatory weights times ``factors``): each iteration runs the network under its default
    drives and multiplies each out-of-band type's factor by (target / rate) ** gain, clipped to
    [1/step, step]. The rate curves are steep (a factor of 1.7 takes PVBC from 0 to 130 Hz open
    loop), hence a small gain. Returns the factors of the iteration closest to the bands
    (:func:`band_distance`): the loop does not always settle."""
    from livn.env import make
    from livn.measures import mean_rate

    env = make("CA1", backend="neuron", scale=args.scale)
    env.record_spikes()
    defaults = env.default_params()
    factors = {t: factors.get(t, 1.0) for t in TARGETS}
    best = (np.inf, dict(factors))
    for iteration in range(args.iterations + 1):
        params = {}
        for name, value in defaults.items():
            if "->" in name:
                source, target = _projection(name)
                factor = (factors[target] if source in EXCITATORY else 1.0) * args.projections.get((source, target), 1.0)
                if factor != 1.0:
                    params[name] = value * factor
        env.set_params(params)
        env.clear()
        start = time.perf_counter()
        result = env.run(args.duration)
        rates = {t: mean_rate(result.it, result.t, env.system.gids(t), args.transient, args.duration)
                 for t in TARGETS}
        inside = {t: TARGETS[t][1] <= rates[t] <= TARGETS[t][2] for t in TARGETS}
        distance = band_distance(rates)
        print(f"iteration {iteration} ({time.perf_counter() - start:.0f} s, distance {distance:.2f}): "
              + ", ".join(f"{t} {rates[t]:.1f}{'' if inside[t] else '*'} (x{factors[t]:.3g})" for t in TARGETS),
              flush=True)
        if distance < best[0]:
            best = (distance, dict(factors))
        if all(inside.values()) or iteration == args.iterations:
            break
        for t, (target, low, high) in TARGETS.items():
            if not inside[t]:
                change = (target / max(rates[t], 0.5)) ** args.gain
                factors[t] *= float(np.clip(change, 1 / args.step, args.step))
    env.close()
    print(f"closest to the bands: distance {best[0]:.2f}")
    return best[1]


def parse_factors(text: str, arrow: str | None = None) -> dict[str, float]:
    """'NAME=factor,...' as {NAME: factor}; with ``arrow``, NAME is 'SOURCE->TARGET' (spaces
    dropped). ValueError naming the item unless every factor is finite and > 0."""
    factors = {}
    for item in filter(None, (i.strip() for i in text.split(","))):
        name, _, value = item.partition("=")
        name = name.replace(" ", "")
        try:
            factor = float(value)
        except ValueError:
            factor = float("nan")
        well_named = name and (arrow is None or (name.count(arrow) == 1 and all(name.split(arrow))))
        if not well_named or not np.isfinite(factor) or factor <= 0:
            form = f"SOURCE{arrow}TARGET=factor" if arrow else "TYPE=factor"
            raise ValueError(f"{item!r}: expected {form} with a finite factor > 0")
        factors[name] = factor
    return factors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--closed-loop", action="store_true",
                        help="correct the weights in specs/CA1.yaml in the closed loop instead")
    parser.add_argument("--iterations", type=int, default=8, help="closed loop: iterations at most")
    parser.add_argument("--gain", type=float, default=0.15, help="closed loop: exponent of target / rate")
    parser.add_argument("--step", type=float, default=1.25, help="closed loop: largest change per iteration")
    parser.add_argument("--scale", type=float, default=0.0003, help="scale of the circuit built")
    parser.add_argument("--sources", type=float, default=10.0, help="source density relative to the spec")
    parser.add_argument("--duration", type=float, default=600.0, help="ms simulated per sweep")
    parser.add_argument("--transient", type=float, default=100.0, help="ms left out of the rates")
    parser.add_argument("--levels", type=int, default=10, help="factor levels per type and sweep")
    parser.add_argument("--low", type=float, default=1 / 64, help="smallest excitatory factor (coarse sweep)")
    parser.add_argument("--high", type=float, default=8.0, help="largest excitatory factor (coarse sweep)")
    parser.add_argument("--refine", type=float, default=1.6,
                        help="the fine sweep spans [f / refine, f * refine] around each coarse crossing f")
    parser.add_argument("--start", default="", help="factors to start from: 'PYR=1.2,PVBC=0.07,...' (open loop: skips the coarse sweep)")
    parser.add_argument("--projection", default="",
                        help="fixed factors on whole projections: 'IS1->IVY=0.25,IVY->PYR=0.5'")
    parser.add_argument("--cells", type=int, default=1, help="cells per level (PYR: 3 times as many)")
    parser.add_argument("--in-network", action="store_true",
                        help="one sweep of probe copies (factors --low..--high on the current weights) "
                             "inside the real network at --scale, instead of the open loop")
    parser.add_argument("--types", default="", help="tune only these types: 'AAC,PVBC' (default: all)")
    parser.add_argument("--write", action="store_true", help="scale the weights in specs/CA1.yaml")
    args = parser.parse_args()
    try:
        args.projections = {tuple(k.split("->")): v for k, v in parse_factors(args.projection, "->").items()}
        start = parse_factors(args.start)
    except ValueError as err:
        parser.error(str(err))
    if args.closed_loop:
        factors = closed_loop(args, start)
        print("factors: " + ", ".join(f"{p}={f:.3g}" for p, f in factors.items()))
        if args.write:
            print(f"scaled {write(factors, projections=args.projections)} weights in {SPEC}")
        return
    spec = yaml.safe_load(SPEC.read_text())
    cells = {t: args.cells for t in TARGETS}
    cells["PYR"] = 3 * args.cells
    types = [t.strip() for t in args.types.split(",") if t.strip()] or list(TARGETS)
    unknown = sorted(set(types) - set(TARGETS))
    if unknown:
        parser.error(f"--types: unknown {', '.join(unknown)}; expected some of {', '.join(TARGETS)}")
    if args.in_network:
        factors = sweep(spec, {t: np.geomspace(args.low, args.high, args.levels) for t in types}, cells, args)
        print("factors: " + ", ".join(f"{p}={f:.3g}" for p, f in factors.items()))
        if args.write:
            print(f"scaled {write(factors, projections=args.projections)} weights in {SPEC}")
        return
    if start:
        coarse = start
    else:
        print("coarse sweep")
        coarse = sweep(spec, {t: np.geomspace(args.low, args.high, args.levels) for t in types}, cells, args)
    print("fine sweep")
    factors = sweep(spec, {t: np.geomspace(f / args.refine, f * args.refine, args.levels) for t, f in coarse.items() if t in types},
                    cells, args)
    print("factors: " + ", ".join(f"{p}={f:.3g}" for p, f in factors.items()))
    if args.write:
        print(f"scaled {write(factors, projections=args.projections)} weights in {SPEC}")


if __name__ == "__main__":
    main()
