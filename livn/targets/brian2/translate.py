"""Translate a system's NeuroML models into Brian2 equations (a JSON model description).

The description is data: the Brian2 runtime (``runtime.py``, which does not import livn)
turns it into NeuronGroups and Synapses. Every parameter that a user may change between
runs (weights, noise) is a variable, not a constant, so changing it never recompiles.
"""

from __future__ import annotations

from ...spec import SystemSpec
from ..dynamics import Cell, Synapse, read_cell, read_synapse

#: where "onto" in a spec puts things on livn's two-compartment cells
ONTO = {"soma": "soma_group", "dendrite": "dendrite_group"}

#: RK4 is stable for a relaxation rate r while r·dt < 2.78. A gate's rate stays below 33/ms
#: from −90 to +60 mV (Na_RS m; 0.8 per step of 0.025 ms), but a strong MEA pulse swings a
#: compartment to −200 mV, where Na_RS h relaxes at ~1000/ms and RK4 diverged (11 EXC cells
#: of EI3 within the first 20 µA pulse). Gates whose rate exceeds RATE_LIMIT/LIMIT_DT
#: somewhere in LIMIT_RANGE therefore relax at most at RATE_LIMIT/dt: nothing changes at
#: physiological potentials, and where the limit acts the gate reaches its steady state within
#: a step anyway. Only those gates pay for it (the limit costs ~10 % of EI3's time when
#: applied to every gate). At a dt above LIMIT_DT other gates may reach RK4's limit: the
#: runtime stops with an error if anything diverges.
RATE_LIMIT = 2.5
LIMIT_DT = 0.025  # ms
LIMIT_RANGE = (-250.0, 150.0)  # mV


def _needs_limit(gate) -> bool:
    import numpy as np

    v = np.linspace(*LIMIT_RANGE, 4001)
    return bool(np.nanmax(gate.relaxation_rate(v)) * LIMIT_DT > RATE_LIMIT)


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
            if gate.kind == "rates":
                alpha, beta = gate.forward.expression(v), gate.reverse.expression(v)
                limit = (f"*clip({RATE_LIMIT!r}*ms/({gate.q10!r}*(({alpha}) + ({beta}))*dt), 0, 1)"
                         if _needs_limit(gate) else "")
                lines.append(f"d{name}/dt = {gate.q10!r}*(({alpha})*(1 - {name}) - ({beta})*{name})/ms{limit} : 1")
                initial[name] = float(gate.steady(cell.v_init))
            elif gate.kind == "tauInf":
                inf, tau = gate.steady_state.expression(v), gate.time_course.expression(v)
                rate = f"{gate.q10!r}/(({tau})*ms)"
                if _needs_limit(gate):
                    rate = f"clip({rate}, 0/ms, {RATE_LIMIT!r}/dt)"
                lines.append(f"d{name}/dt = (({inf}) - {name})*{rate} : 1")
                initial[name] = float(gate.steady(cell.v_init))
            else:
                lines.append(f"{name} = {gate.steady_state.expression(v)} : 1")
            factors.append(name if gate.instances == 1 else f"{name}**{gate.instances}")
        conductance = f"{density.gmax * 10.0 * comp.area * 1e-12!r}*siemens"  # mS/cm² = 10 S/m²; µm² = 1e-12 m²
        open_fraction = "*".join(factors) if factors else "1"
        currents.append(f"{conductance}*{open_fraction}*({density.erev!r}*mV - v_{c})")
    return lines, currents, initial


def population_model(cell: Cell, receptors: dict, noise: dict) -> dict:
    """Brian2 equations of one population.

    Parameters
    ----------
    cell : Cell
    receptors : dict
        receptor name -> (Synapse, segment group it acts on) for every receptor onto this population.
    noise : dict
        "excitatory"/"inhibitory" -> (segment group, erev mV) of the OU conductances (empty: none).
    """
    lines, initial = [], {}
    names = [c.name for c in cell.compartments]
    if len(names) != 2:
        raise ValueError(f"cell {cell.id}: the Brian2 target handles two-compartment cells, found {len(names)}")
    g_axial = cell.coupling_conductance(0, 1)
    currents = {c: [] for c in names}
    for index, name in enumerate(names):
        gate_lines, channel_currents, gate_initial = _gate_terms(cell, index)
        lines += gate_lines
        currents[name] += channel_currents
        initial.update(gate_initial)
        initial[f"v_{name}"] = cell.v_init
    soma, dend = names
    # intracellular potential = membrane potential + extracellular potential (Ve) of the compartment
    currents[soma].append(f"{g_axial!r}*usiemens*((v_{dend} + Ve_{dend}) - (v_{soma} + Ve_{soma}))")
    currents[dend].append(f"{g_axial!r}*usiemens*((v_{soma} + Ve_{soma}) - (v_{dend} + Ve_{dend}))")
    for rname, (syn, group) in receptors.items():
        comp = cell.compartments[cell.compartment(group)].name
        lines.append(f"dA_{rname}/dt = -A_{rname}/({max(syn.tau_rise, 1e-9)!r}*ms) : siemens")
        lines.append(f"dB_{rname}/dt = -B_{rname}/({syn.tau_decay!r}*ms) : siemens")
        gating = f"(B_{rname} - A_{rname})" if syn.tau_rise > 0 else f"B_{rname}"
        if syn.kind == "exp2_block":
            gating += (f"/(1 + {syn.block_concentration / syn.block_scaling_conc!r}"
                       f"*exp(-(v_{comp}/mV)/{syn.block_scaling_volt!r}))")
        lines.append(f"I_{rname} = {gating}*({syn.erev!r}*mV - v_{comp}) : amp")
        currents[comp].append(f"I_{rname}")
        initial[f"A_{rname}"] = initial[f"B_{rname}"] = 0.0
    for kind, (group, erev) in noise.items():
        comp = cell.compartments[cell.compartment(group)].name
        lines.append(f"g_noise_{kind} : siemens")
        lines.append(f"I_noise_{kind} = g_noise_{kind}*({erev!r}*mV - v_{comp}) : amp")
        currents[comp].append(f"I_noise_{kind}")
    currents[soma].append("I_inject")
    lines.append("I_inject : amp  # current clamp on the soma")
    for index, name in enumerate(names):
        capacitance = cell.cm * 1e-2 * cell.compartments[index].area * 1e-12  # µF/cm² = 1e-2 F/m²
        lines.insert(0, f"dv_{name}/dt = ({' + '.join(currents[name])})/({capacitance!r}*farad) : volt")
        lines.append(f"Ve_{name} : volt  # extracellular potential at the compartment")
    return {
        "cell": cell.id,
        "compartments": names,
        "equations": "\n".join(lines),
        "threshold": f"v_{soma} > {cell.threshold!r}*mV",
        "refractory": f"v_{soma} > {cell.threshold!r}*mV",
        "initial": initial,
        "centres_um": [list(c.centre) for c in cell.compartments],
    }


def translate(spec: SystemSpec) -> dict:
    """The Brian2 model description of ``spec``: one entry per population, receptor and noise."""
    synapses = {r.name: read_synapse(r.model, r.component_id) for r in spec.receptors}
    populations = {}
    for pop in spec.populations:
        cell = read_cell(pop.cell, pop.cell_id)
        onto = {}
        for proj in spec.projections:
            if proj.target == pop.name:
                for r in proj.receptors:
                    group = ONTO[proj.onto]
                    if r in onto and onto[r][1] != group:
                        raise ValueError(f"receptor {r} reaches {pop.name} on two compartments; "
                                         "the Brian2 target sums a receptor per compartment")
                    onto[r] = (synapses[r], group)
        noise = {}
        if spec.noise is not None:
            for kind in ("excitatory", "inhibitory"):
                ou = getattr(spec.noise, kind)
                noise[kind] = (ONTO[ou.onto], ou.erev)
        model = population_model(cell, onto, noise)
        model.update(name=pop.name, count=pop.count, first_gid=pop.first_gid)
        populations[pop.name] = model
    return {
        "format": "livn-brian2/1",
        "system": spec.name,
        "seed": spec.seed,
        "populations": populations,
        "receptors": {name: {"peak_factor": s.peak_factor, "tau_rise": s.tau_rise} for name, s in synapses.items()},
        "noise": None if spec.noise is None else {
            kind: {"tau_ms": getattr(spec.noise, kind).tau} for kind in ("excitatory", "inhibitory")},
        "defaults": spec.default_params(),
        "weights": {name: {"unit_conductance_uS": spec.receptor(name.split(".")[1]).unit_conductance}
                    for name in spec.weight_names},
        "mea": {"resistivity_ohm_m": spec.mea.resistivity},
    }
