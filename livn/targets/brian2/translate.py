"""Translate a network model into a Brian2 description: equations per cell group, and arrays.

The description is data: the Brian2 runtime (``runtime.py``, which does not import livn)
turns it into NeuronGroups, SpikeGeneratorGroups and Synapses. Every parameter a user may
change between runs (weights, noise) is a variable, not a constant, so changing it never
recompiles.

Cells of one shape (one :class:`~livn.neuroml.cell.Cell` in one node population) form a
group. A cell whose compartments are coupled weakly enough for RK4 at the step (every
compartment's axial rate Σg/C below :data:`AXIAL_LIMIT`/dt) is a NeuronGroup with one
potential per compartment and explicit axial currents (livn's two-compartment EI cells: the
fast path); any other cell is a SpatialNeuron (``spatial.py``: implicit cable), built
in-process from ``builders`` — a compiled, livn-free directory holds explicit groups only.

Synapse types carry their Tsodyks–Markram plasticity (``synapses.<name>.plasticity``: U, τ_rec,
τ_fac in ms, or None); the runtime keeps its state per synapse (see ``runtime.py``).
"""

from __future__ import annotations

import numpy as np

from ...neuroml.cell import Cell
from ...network.model import NetworkModel

#: RK4 is stable for a relaxation rate r while r·dt < 2.78. A gate's rate stays below 33/ms
#: from −90 to +60 mV (Na_RS m; 0.8 per step of 0.025 ms), but a strong MEA pulse swings a
#: compartment to −200 mV, where Na_RS h relaxes at ~1000/ms and RK4 diverged (11 EXC cells
#: of EI3 within the first 20 µA pulse). Gates whose rate exceeds RATE_LIMIT/LIMIT_DT
#: somewhere in LIMIT_RANGE therefore relax at most at RATE_LIMIT/dt: nothing changes at
#: physiological potentials, and where the limit acts the gate reaches its steady state within
#: a step anyway. Only those gates pay for it (the limit costs ~10 % of EI3's time when
#: applied to every gate). Outside LIMIT_RANGE the rates are those at its nearer bound: the
#: 1,024 electrodes of EI4, pulsed together at 20 µA, swing some somata to −310 mV, where the
#: Kd n gate's rate grows as exp(−v/40) to ~350/ms and RK4 diverged in the first pulse (9 EXC
#: cells); at such potentials every gate is at its limit value anyway, so only its speed of
#: getting there changes (NEURON integrates gates implicitly and needs no bound). At a dt above
#: LIMIT_DT other gates may reach RK4's limit: the runtime stops with an error if anything
#: diverges.
RATE_LIMIT = 2.5
LIMIT_DT = 0.025  # ms
LIMIT_RANGE = (-250.0, 150.0)  # mV

#: largest axial relaxation rate × dt of a compartment for the explicit (NeuronGroup) form
AXIAL_LIMIT = 1.0

FORMAT = "livn-brian2/2"


def _needs_limit(gate) -> bool:
    v = np.linspace(*LIMIT_RANGE, 4001)
    return bool(np.nanmax(gate.relaxation_rate(v)) * LIMIT_DT > RATE_LIMIT)


def explicit_ok(cell: Cell, dt: float) -> tuple[bool, float]:
    """(whether RK4 can integrate the cell's axial coupling explicitly at ``dt`` ms, the largest rate × dt)."""
    total = np.zeros(len(cell.compartments))
    for a, b, g in cell.couplings:
        total[a] += g
        total[b] += g
    capacitance = np.array([c.capacitance for c in cell.compartments])  # pF
    worst = float(np.max(total * 1e-6 / (capacitance * 1e-12) * 1e-3 * dt)) if len(total) else 0.0  # µS/pF → 1/ms
    return worst < AXIAL_LIMIT, worst


def gate_equation(gate, name: str, v: str, v_init: float, limit: bool = True) -> tuple[str, float | None]:
    """The Brian2 equation of HH gate ``gate`` as state ``name`` in potential expression ``v``
    (mV, a number), and its initial value (steady state at ``v_init``; None if instantaneous).
    With ``limit`` (RK-type methods), the rates are evaluated at ``v`` clipped to LIMIT_RANGE and
    gates that can relax faster than RATE_LIMIT/dt within it are rate-limited."""
    if limit and gate.kind in ("rates", "tauInf"):
        v = f"clip({v}, {LIMIT_RANGE[0]!r}, {LIMIT_RANGE[1]!r})"
    if gate.kind == "rates":
        alpha, beta = gate.forward.expression(v), gate.reverse.expression(v)
        clip = (f"*clip({RATE_LIMIT!r}*ms/({gate.q10!r}*(({alpha}) + ({beta}))*dt), 0, 1)"
                if limit and _needs_limit(gate) else "")
        return (f"d{name}/dt = {gate.q10!r}*(({alpha})*(1 - {name}) - ({beta})*{name})/ms{clip} : 1",
                float(gate.steady(v_init)))
    if gate.kind == "tauInf":
        inf, tau = gate.steady_state.expression(v), gate.time_course.expression(v)
        rate = f"{gate.q10!r}/(({tau})*ms)"
        if limit and _needs_limit(gate):
            rate = f"clip({rate}, 0/ms, {RATE_LIMIT!r}/dt)"
        return f"d{name}/dt = (({inf}) - {name})*{rate} : 1", float(gate.steady(v_init))
    return f"{name} = {gate.steady_state.expression(v)} : 1", None


def _gate_terms(cell: Cell, index: int) -> tuple[list[str], list[str], dict]:
    """Equations of the channels of compartment ``index``: (equations, current terms, initial values)."""
    comp = cell.compartments[index]
    c = comp.name
    lines, currents, initial = [], [], {}
    v = f"v_{c}/mV"
    for density in comp.densities:
        ch = density.channel
        factors = []
        for gate in ch.gates:
            name = f"{gate.name}_{ch.id}_{c}"
            line, steady = gate_equation(gate, name, v, cell.v_init)
            lines.append(line)
            if steady is not None:
                initial[name] = steady
            factors.append(name if gate.instances == 1 else f"{name}**{gate.instances}")
        conductance = f"{density.gmax * 10.0 * comp.area * 1e-12!r}*siemens"  # mS/cm² = 10 S/m²; µm² = 1e-12 m²
        open_fraction = "*".join(factors) if factors else "1"
        currents.append(f"{conductance}*{open_fraction}*({density.erev!r}*mV - v_{c})")
    return lines, currents, initial


def cell_equations(cell: Cell, receptors: dict, noise: dict) -> dict:
    """Brian2 equations of one cell shape.

    Parameters
    ----------
    cell : Cell
    receptors : dict
        (synapse name, compartment index) -> Synapse, for every synapse type that reaches a
        compartment of this cell.
    noise : dict
        kind -> (compartment index, erev mV) of the OU conductances (empty: none).
    """
    lines, initial = [], {}
    names = [c.name for c in cell.compartments]
    currents = {c: [] for c in names}
    for index, name in enumerate(names):
        gate_lines, channel_currents, gate_initial = _gate_terms(cell, index)
        lines += gate_lines
        currents[name] += channel_currents
        initial.update(gate_initial)
        initial[f"v_{name}"] = cell.v_init
    axial = {c: [] for c in names}
    for a, b, g in cell.couplings:
        # intracellular potential = membrane potential + extracellular potential (Ve) of the compartment
        ca, cb = names[a], names[b]
        axial[ca].append(f"{g!r}*usiemens*((v_{cb} + Ve_{cb}) - (v_{ca} + Ve_{ca}))")
        axial[cb].append(f"{g!r}*usiemens*((v_{ca} + Ve_{ca}) - (v_{cb} + Ve_{cb}))")
    for (sname, index), syn in sorted(receptors.items()):
        comp = names[index]
        r = f"{sname}_{comp}"
        lines.append(f"dA_{r}/dt = -A_{r}/({max(syn.tau_rise, 1e-9)!r}*ms) : siemens")
        lines.append(f"dB_{r}/dt = -B_{r}/({syn.tau_decay!r}*ms) : siemens")
        gating = f"(B_{r} - A_{r})" if syn.tau_rise > 0 else f"B_{r}"
        if syn.kind == "exp2_block":
            gating += (f"/(1 + {syn.block_concentration / syn.block_scaling_conc!r}"
                       f"*exp(-(v_{comp}/mV)/{syn.block_scaling_volt!r}))")
        lines.append(f"I_{r} = {gating}*({syn.erev!r}*mV - v_{comp}) : amp")
        currents[comp].append(f"I_{r}")
        initial[f"A_{r}"] = initial[f"B_{r}"] = 0.0
    for kind, (index, erev) in noise.items():
        comp = names[index]
        lines.append(f"g_noise_{kind} : siemens")
        # the current takes the OU conductance's positive part (specs/noise/point_conductance.nml)
        lines.append(f"I_noise_{kind} = 0.5*(g_noise_{kind} + abs(g_noise_{kind}))*({erev!r}*mV - v_{comp}) : amp")
        currents[comp].append(f"I_noise_{kind}")
    soma = names[0]
    lines.append("I_inject : amp  # current clamp on the soma")
    for index, name in enumerate(names):
        capacitance = cell.compartments[index].capacitance * 1e-12  # pF → F
        inflow = " + ".join(axial[name]) or "0*amp"
        lines.append(f"I_axial_{name} = {inflow} : amp")
        extra = " + I_inject" if name == soma else ""
        # transmembrane current (outward): what the axial currents and the clamp bring in
        lines.append(f"im_{name} = I_axial_{name}{extra} : amp")
        lines.insert(0, f"dv_{name}/dt = ({' + '.join(currents[name] + [f'I_axial_{name}'])}{extra})"
                        f"/({capacitance!r}*farad) : volt")
        lines.append(f"Ve_{name} : volt  # extracellular potential at the compartment")
    lines.append("gid : integer (constant)")
    return {
        "cell": cell.id,
        "compartments": names,
        "equations": "\n".join(lines),
        "threshold": f"v_{soma} > {cell.threshold!r}*mV",
        "refractory": f"v_{soma} > {cell.threshold!r}*mV",
        "initial": initial,
    }


def _fail(cell: Cell, where: str, worst: float, dt: float) -> str:
    return (f"{where}: cell {cell.id} ({len(cell.compartments)} compartments in {len(cell.sections)} sections) "
            f"couples its compartments too strongly for the Brian2 target's explicit integration at dt = {dt:g} ms "
            f"(axial rate × dt = {worst:.3g}, needs < {AXIAL_LIMIT:g}); supported on Brian2: cells whose "
            f"compartments pass this test (e.g. livn's two-compartment cells). Use the NEURON target")


def _beyond_hh(model) -> list[tuple]:
    """(file, line, message) of the NeuroML constructs beyond HH channels with fixed reversal
    potentials and fixed q10 (calcium species and pools, Nernst and GHK2 currents, custom
    ComponentTypes, temperature-dependent q10, the newer gate kinds): the Brian2 target refuses
    them rather than translate them partly. Each channel is reported once, at its use."""
    out, seen = [], set()
    for cell in model.cells:
        for file, line, construct in cell.beyond_hh():
            if construct in seen:  # a channel's constructs once, whichever cells use it
                continue
            seen.add(construct)
            out.append((file, line, f"{construct}: not translated by the Brian2 target (it runs HH channels with "
                                    f"fixed reversal potentials and fixed q10); use --target neuron"))
    return out


def check(model, dt: float = 0.025, compiled: bool = False) -> list[tuple]:
    """(file, line, message) of everything in ``model`` the Brian2 target cannot run
    (``compiled``: in a compiled, livn-free directory, which holds explicit groups only)."""
    from .spatial import spatial_layout

    problems = _beyond_hh(model)
    for cell in model.cells:
        ok, worst = explicit_ok(cell, dt)
        if ok:
            continue
        if compiled:
            problems.append((cell.source.split(" + ")[0], cell.line, _fail(cell, "A compiled Brian2 directory", worst, dt)
                             .replace("Use the NEURON target", "Run it in-process (make/Env) or on NEURON")))
            continue
        try:
            spatial_layout(cell)
        except ValueError as err:
            problems.append((cell.source.split(" + ")[0], cell.line, f"cell {cell.id}: the Brian2 target cannot "
                                                                     f"represent its tree as a SpatialNeuron: {err}"))
    return problems


def translate(model: NetworkModel, dt: float = 0.025, builders: dict | None = None) -> tuple[dict, dict]:
    """The Brian2 description of ``model``: (JSON-able description, numpy arrays).

    ``builders``: a dict that receives, for each SpatialNeuron group, a function
    (count, clock, namespace) -> SpatialNeuron; without it, such groups are refused.
    Raises ValueError listing what the Brian2 target cannot run (see :func:`check`).
    """
    problems = check(model, dt, compiled=builders is None)
    if problems:
        raise ValueError("\n".join(f"{f}: {m}" for f, _, m in problems))
    arrays: dict = {}
    conn = model.afferent(model.simulated_gids)
    # group = (population, cell): its gids in order
    groups, group_of_gid, index_in_group = {}, np.full(model.num_cells, -1), np.zeros(model.num_cells, dtype=np.int64)
    for pop in model.populations.values():
        if pop.kind == "virtual":
            key = f"virtual_{pop.name}"
            groups[key] = {"kind": "virtual", "population": pop.name, "gids": pop.gids}
        elif pop.kind == "point":
            groups[f"point_{pop.name}"] = {"kind": "point", "population": pop.name, "gids": pop.gids,
                                           "tau": pop.point["tau"], "refrac": pop.point["refrac"]}
        else:
            for c in np.unique(pop.cell_index):
                gids = pop.gids[pop.cell_index == c]
                cell = model.cells[int(c)]
                groups[f"{pop.name}_{cell.id}" if len(model.populations) > 1 else cell.id] = {
                    "kind": "cells", "population": pop.name, "cell": int(c), "gids": gids}
    names = list(groups)
    for g, key in enumerate(names):
        gids = groups[key]["gids"]
        group_of_gid[gids] = g
        index_in_group[gids] = np.arange(len(gids))
    # compartment of each connection on its target cell
    compartment = np.array([0 if syn < 0 else model.cell_of(t).compartment_at(s, x) for t, s, x, syn in
                            zip(conn.target.tolist(), conn.section.tolist(), conn.x.tolist(), conn.synapse.tolist())],
                           dtype=np.int64)  # synapse -1: an event onto a point cell
    description = {"format": FORMAT, "name": model.name, "seed": model.seed, "groups": {},
                   "synapses": {name: {"peak_factor": s.peak_factor, "tau_rise": s.tau_rise,
                                       "plasticity": _plasticity(s)}
                                for name, s in ((n, model.synapses[n]) for n in model.synapse_names)},
                   "synapse_names": model.synapse_names,
                   "weights": {"names": model.weight_names, "units": [model.weights[n].unit for n in model.weight_names]},
                   "defaults": model.default_params(),
                   "noise": {s.kind: {"tau_ms": s.tau, "stream": s.stream} for s in model.noise},
                   "channels": int(len(model.electrodes)), "num_cells": int(model.num_cells)}
    inputs = model.spike_inputs
    for g, key in enumerate(names):
        info = groups[key]
        arrays[f"gids/{key}"] = np.asarray(info["gids"], dtype=np.int64)
        if info["kind"] == "virtual":
            # a SpikeGeneratorGroup emits at most one spike per node and step: a node whose train
            # has several spikes in one step gets that many copies, each taking one of them
            indices, times = [], []
            for k, gid in enumerate(info["gids"].tolist()):
                spikes = inputs.get(gid, np.zeros(0))
                indices.append(np.full(len(spikes), k))
                times.append(spikes)
            index = np.concatenate(indices).astype(np.int64) if indices else np.zeros(0, np.int64)
            at = np.concatenate(times).astype(float) if times else np.zeros(0)
            step = np.round(at / dt).astype(np.int64)
            order = np.lexsort((at, step, index))
            index, at, step = index[order], at[order], step[order]
            copy = np.zeros(len(index), dtype=np.int64)
            for k in range(1, len(index)):
                if index[k] == index[k - 1] and step[k] == step[k - 1]:
                    copy[k] = copy[k - 1] + 1
            copies = int(copy.max()) + 1 if len(copy) else 1
            if copies > 1:
                _warn_plastic_copies(model, conn, group_of_gid, g, info["population"], int(np.count_nonzero(copy)))
            arrays[f"input_index/{key}"] = index * copies + copy
            arrays[f"input_time/{key}"] = step * dt  # on the grid: NEURON delivers at the next step too
            description["groups"][key] = {"kind": "virtual", "population": info["population"], "copies": copies}
            continue
        if info["kind"] == "point":
            # NEURON's IntFire1: m decays with tau, an event adds its weight unless refractory,
            # m > 1 fires, then m = 0 for refrac ms (IntFire1 fires at the event; here at the step)
            arrays[f"tau/{key}"], arrays[f"refrac/{key}"] = info["tau"], info["refrac"]
            description["groups"][key] = {"kind": "point", "population": info["population"]}
            continue
        cell = model.cells[info["cell"]]
        mask = group_of_gid[conn.target] == g
        receptors = {(model.synapse_names[s], int(c)): model.synapses[model.synapse_names[s]]
                     for s, c in set(zip(conn.synapse[mask].tolist(), compartment[mask].tolist()))}
        noise = {}
        if model.noise and info["population"] in model.noise_populations:
            for s in model.noise:
                noise[s.kind] = (cell.compartment_at(cell.sections_in(s.group)[0], 0.5), s.erev)
        if explicit_ok(cell, dt)[0]:
            entry = cell_equations(cell, receptors, noise)
            entry.update(kind="cells", population=info["population"], noise=sorted(noise))
        else:
            entry = _spatial_entry(cell, receptors, noise, dt, builders, key)
            entry.update(population=info["population"])
        # µS per unit of the noise parameters on this group's cell (1, or its area for noise per area)
        entry["noise_scale"] = {s.kind: model.noise_scale(cell, s) for s in model.noise if s.kind in noise}
        description["groups"][key] = entry
        if len(model.electrodes):
            arrays[f"field/{key}"] = np.stack([model.field_transfer(gid) for gid in info["gids"].tolist()])
    arrays["conn/source_group"] = group_of_gid[conn.source]
    arrays["conn/source_index"] = index_in_group[conn.source]
    arrays["conn/target_group"] = group_of_gid[conn.target]
    arrays["conn/target_index"] = index_in_group[conn.target]
    arrays["conn/compartment"] = compartment
    arrays["conn/synapse"] = conn.synapse
    arrays["conn/weight_group"] = conn.group
    arrays["conn/relative"] = conn.relative
    arrays["conn/delay"] = conn.delay
    description["group_names"] = names
    return description, arrays


def _plasticity(synapse) -> dict | None:
    """The Tsodyks–Markram parameters the runtime needs (U, τ_rec ms, τ_fac ms; 0: no
    facilitation), or None for a synapse without plasticity."""
    p = synapse.plasticity
    return None if p is None else {"release": p.release, "tau_rec": p.tau_rec, "tau_fac": p.tau_fac}


def _warn_plastic_copies(model, conn, group_of_gid, group: int, population: str, extra: int) -> None:
    """Warn where copies of a virtual node (several of its spikes in one step) feed plastic synapses.

    Each copy's synapses keep their own Tsodyks–Markram state, so a spike that shares its step
    with an earlier spike of its node acts on undepleted resources (NEURON delivers both on one
    connection, the second after the first depressed it)."""
    plastic = [k for k, n in enumerate(model.synapse_names) if model.synapses[n].plasticity is not None]
    if not plastic or not np.isin(conn.synapse[group_of_gid[conn.source] == group], plastic).any():
        return
    import warnings

    warnings.warn(f"{extra} spike(s) of virtual population {population} share a step of dt with an earlier spike of "
                  f"their node: the Brian2 target replays them from copies of the node, whose Tsodyks–Markram "
                  f"synapses keep their own state (such a spike acts on undepleted resources). The NEURON target "
                  f"is exact here; a smaller dt makes such spikes rarer", RuntimeWarning, stacklevel=3)


def _spatial_entry(cell: Cell, receptors: dict, noise: dict, dt: float, builders: dict, key: str) -> dict:
    """The description of a SpatialNeuron group, and its builder in ``builders``."""
    from .spatial import build_spatial_population, spatial_layout

    layout = spatial_layout(cell)
    synapses = {name: syn for (name, _), syn in receptors.items()}
    noise_kinds = {kind: (erev, index) for kind, (index, erev) in noise.items()}

    extra = ["gid : integer (constant)"]
    for kind in sorted(noise):
        extra += [f"g0_noise_{kind} : siemens (shared)", f"sigma_noise_{kind} : siemens (shared)"]

    def build(count: int, clock, namespace):
        return build_spatial_population(cell, count, dt=dt, receptors=synapses, noise_kinds=noise_kinds,
                                        namespace=namespace, name=f"population_{key}",
                                        extra_equations="\n".join(extra), clock=clock)

    builders[key] = build
    return {"kind": "spatial", "cell": cell.id, "n": len(layout.order), "soma": int(layout.soma),
            "index": [int(i) for i in layout.index], "compartments": [c.name for c in cell.compartments],
            "noise": sorted(noise), "laplacian": cell.field_laplacian().tolist(), "threshold": cell.threshold}
