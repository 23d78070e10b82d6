"""Multi-compartment cells as Brian2 ``SpatialNeuron``\\ s (implicit cable solver).

The explicit form of ``translate.py`` (one NeuronGroup, one ``v`` per compartment, axial
currents integrated with RK4) is unstable once compartments are small and strongly coupled
(axial rate Σg/C · dt ≫ 1). Brian2's SpatialNeuron solves the cable implicitly in every
step (backward Euler in ``v``, exact linear solve over the tree), after the gates have been
advanced by ``method`` with ``v`` held at its value at the start of the step.

Integration (``cable="cn"``, the default): Crank–Nicolson in v as NEURON's
``secondorder = 2`` (Brian2's backward-Euler step made a half step by doubling ``Cm``, then
``v = 2*v - v_start``), gates by exponential Euler at the step's starting v, i.e. staggered
half a step: second order. At dt = 0.025 ms, against jNeuroML's NEURON export under CVODE:
BallStick (23 compartments) within 0.27 ms over 500 ms, EXC within 0.56 ms over 1 s (120
spikes); 4x smaller at dt = 0.0125 ms. Brian2's plain backward Euler (``cable="be"``)
drifts by 3-10 ms and loses spikes; RK2/RK4 gates change nothing that matters.

A population is best one SpatialNeuron (:func:`build_spatial_population`: its cells hang
on one tree by cut links): Brian2 compiles Cython code per SpatialNeuron *name*, so
separate neurons (:func:`build_spatial_cells`) cost ~20 s of compilation each on first use.

Topology: the cable circuit of a :class:`~livn.neuroml.cell.Cell` (NEURON's: a node at the
centre of every compartment, zero-area nodes at the section ends, and a child attached
inside its parent, 0 < parent_x < 1, joined straight to the centre of the parent compartment
holding parent_x) is rebuilt as a Brian2 tree, whose sections always hang on the *end* of
their parent:

* a section attached at its parent's 1 end is a Brian2 child, as it is;
* one attached at the parent's 0 end (jNeuroML's fractionAlong 0, e.g. an axon on the soma's
  proximal end) is reached by rooting the Brian2 tree at the leaf compartment nearest to the
  soma (graph hops), not necessarily at the soma: sections on the far side of the soma are
  then traversed from their distal tip (their Brian2 compartment order is reversed);
* one attached inside its parent (SWC cells: dendrites and axons leave the soma at 0.5) is
  joined to that parent compartment's centre: when the compartment has at most two
  neighbours, by a direct compartment-to-compartment link inside one Brian2 section; else
  through a *hub*, a Brian2 branch point at the compartment's centre (a link of resistance
  :data:`HUB_RESISTANCE` × the smallest axial resistance of the cell, the role Brian2's
  own ``Soma`` plays). A compartment that would need a hub *and* has junction nodes on both
  its ends (a one-compartment section with children at 0, 1 and inside) cannot be
  represented and is refused with a ValueError.

Brian2's sections therefore need not be livn's sections (they are unbranched runs of the
rebuilt tree), and Brian2's flat compartment order differs from livn's:
:func:`compartment_index` maps livn's compartment k to Brian2's index.

Geometry: Brian2 describes a compartment as one frustum; NEURON's (and livn's) compartment
integrates the frusta between the 3-D points it spans. :func:`spatial_morphology` builds
frusta between the points at the compartment boundaries (right for straight, linearly
tapering compartments) and :func:`build_spatial_cells` then overwrites each compartment's
``area``, ``r_length_1``/``r_length_2`` (axial conductance × Ri; per-section resistivity is
folded in, Brian2 has one Ri per neuron), ``Cm`` and ``x``/``y``/``z`` (centre) with livn's
exact values (:func:`spatial_geometry`), so the Brian2 circuit is livn's
(:attr:`Cell.couplings`) exactly, or to ~1e-7 where there are hubs, whatever the morphology. ``length`` and ``distance`` stay
Brian2's (chord lengths of the boundary frusta); nothing in the dynamics uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...neuroml.cell import Cell
from .translate import gate_equation

#: A hub's link to its compartment's centre, relative to the cell's smallest axial
#: resistance between a compartment centre and a neighbouring node.
HUB_RESISTANCE = 1e-7

#: RK-type gate methods get the translator's rate limit of fast gates (its guard against strong
#: MEA pulses); exponential Euler is exact for a gate at fixed v and needs none.
EXPLICIT_METHODS = {"euler", "rk2", "rk4", "heun", "milstein"}

#: the gate integration used by default (see current_clamp's notes for the measurements)
DEFAULT_METHOD = "exponential_euler"
DEFAULT_CABLE = "cn"


# -- topology -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SpatialLayout:
    """A cell's circuit as a Brian2 tree.

    Attributes
    ----------
    sections : tuple
        Brian2 sections in flattening order: (name, parent position in this tuple or -1,
        livn compartment indices in Brian2 order, forward flags).
    order : ndarray
        Brian2 flat index → livn compartment index.
    index : ndarray
        livn compartment index → Brian2 flat index.
    r1, r2 : ndarray
        Resistance (Ω) from each Brian2 compartment's centre to its upstream / downstream
        neighbour node (a branch point, or halfway to the neighbouring compartment).
    ri : float
        The neuron's Ri, Ω·cm.
    """

    sections: tuple
    order: np.ndarray
    index: np.ndarray
    r1: np.ndarray
    r2: np.ndarray
    ri: float
    soma: int  # Brian2 index of the soma compartment at x = 0.5 (threshold, current clamp)


_LAYOUTS: dict = {}


def _circuit(cell: Cell):
    """livn's cable circuit: (compartment links, junctions, anchored children).

    links: {(a, b): (Ra, Rb)} compartment–compartment, resistance from each centre to the midpoint.
    junctions: list of lists [(compartment, resistance from its centre)] per branch point.
    """
    comps = cell.compartments
    first = {}
    for c in comps:
        first.setdefault(c.section, c.index)
    lo = np.array([cell.sections[c.section].resistance(c.x0, c.x) for c in comps])
    hi = np.array([cell.sections[c.section].resistance(c.x, c.x1) for c in comps])
    links = {}
    parent_of = {}  # union-find over section ends (section, 0|1)

    def find(key):
        while parent_of.setdefault(key, key) != key:
            parent_of[key] = parent_of[parent_of[key]]
            key = parent_of[key]
        return key

    anchored: dict = {}  # parent compartment -> [section whose 0 end is joined to its centre]
    for sec in cell.sections:
        base, n = first[sec.index], sec.nseg
        for k in range(n - 1):
            links[(base + k, base + k + 1)] = (hi[base + k], lo[base + k + 1])
        find((sec.index, 0)), find((sec.index, 1))
        if sec.parent >= 0:
            px = sec.parent_x
            if px >= 1.0:
                parent_of[find((sec.index, 0))] = find((sec.parent, 1))
            elif px <= 0.0:
                parent_of[find((sec.index, 0))] = find((sec.parent, 0))
            else:
                anchored.setdefault(cell.compartment_at(sec.parent, px), []).append(sec.index)
    members: dict = {}
    for sec in cell.sections:
        base, n = first[sec.index], sec.nseg
        members.setdefault(find((sec.index, 0)), []).append((base, lo[base]))
        members.setdefault(find((sec.index, 1)), []).append((base + n - 1, hi[base + n - 1]))
    # a section's 0 end anchored inside its parent: its branch point is joined to the parent
    # compartment's centre with no resistance
    anchors = {}
    for pc, secs in anchored.items():
        for s in secs:
            anchors[find((s, 0))] = pc
    junctions = []
    for key, mem in members.items():
        pc = anchors.get(key)
        junctions.append((mem, pc))
    return links, junctions, lo, hi


def spatial_layout(cell: Cell) -> SpatialLayout:
    """The Brian2 tree of ``cell`` (cached per cell)."""
    cached = _LAYOUTS.get(cell)
    if cached is not None:
        return cached
    links, junctions, lo, hi = _circuit(cell)
    ncomp = len(cell.compartments)
    positive = [r for r in np.concatenate([lo, hi]) if r > 0]
    r_hub = HUB_RESISTANCE * (min(positive) if positive else 1.0)
    # graph: compartment nodes ("c", k) and junction nodes ("j", i); edge (u, v) -> resistance on each side
    adj: dict = {("c", k): {} for k in range(ncomp)}

    def connect(u, v, ru, rv):
        adj.setdefault(u, {})[v] = ru
        adj.setdefault(v, {})[u] = rv

    for (a, b), (ra, rb) in links.items():
        connect(("c", a), ("c", b), ra, rb)
    hubs: dict = {}  # compartment -> junction members [(compartment, resistance)]
    for i, (mem, pc) in enumerate(junctions):
        mem = list({m: (m, r) for m, r in mem}.values())
        if pc is not None:
            hubs.setdefault(pc, []).extend(mem)
            continue
        if len(mem) < 2:
            continue  # a sealed end
        for m, r in mem:
            connect(("c", m), ("j", i), r, 0.0)
    nj = len(junctions)
    for pc, mem in hubs.items():
        mem = list({m: (m, r) for m, r in mem}.values())
        if len(mem) == 1:  # one child on the centre: a direct link
            m, r = mem[0]
            connect(("c", pc), ("c", m), 0.0, r)
        else:
            hub = ("j", nj)
            nj += 1
            connect(("c", pc), hub, r_hub, 0.0)
            for m, r in mem:
                connect(("c", m), hub, r, 0.0)
    # every compartment may have at most two neighbours (upstream and downstream in a Brian2
    # section); the excess of a crowded compartment moves to a hub at its centre
    for k in range(ncomp):
        node = ("c", k)
        nbrs = adj[node]
        if len(nbrs) <= 2:
            continue
        js = [u for u in nbrs if u[0] == "j"]
        if len(js) >= 2:
            name = cell.compartments[k].name
            raise ValueError(f"cell {cell.id}: compartment {name} has branch points at both ends and "
                             f"sections attached inside it; Brian2's SpatialNeuron cannot represent this "
                             f"(give the section nseg >= 3, or attach the children at an end)")
        keep = js[0] if js else next(u for u in nbrs if u[0] == "c")
        hub = ("j", nj)
        nj += 1
        for u in [u for u in nbrs if u != keep]:
            ru, rv = nbrs.pop(u), adj[u].pop(node)
            connect(u, hub, rv + ru, 0.0)
        connect(node, hub, r_hub, 0.0)
    # root: the leaf compartment nearest to the soma's compartment (the soma itself when it is a leaf)
    dist = {("c", 0): 0}
    queue = [("c", 0)]
    for u in queue:
        for w in adj[u]:
            if w not in dist:
                dist[w] = dist[u] + 1
                queue.append(w)
    if len(dist) != len(adj):
        raise ValueError(f"cell {cell.id}: the sections do not form one tree")
    leaves = [k for k in range(ncomp) if len(adj[("c", k)]) <= 1]
    root = min(leaves, key=lambda k: (dist[("c", k)], k))
    # walk: Brian2 sections are maximal runs of compartments between branch points
    sections, order, r1, r2 = [], [], [], []
    stack = [(("c", root), None, -1)]  # (first compartment, upstream node, parent section)
    comp_section = {c.index: c.section for c in cell.compartments}
    while stack:
        node, upstream, parent = stack.pop()
        run, prev = [], upstream
        ups, downs = [], []
        while True:
            k = node[1]
            run.append(k)
            ups.append(adj[node][prev] if prev is not None else lo[k])
            nxt = [u for u in adj[node] if u != prev]
            if len(nxt) == 0:
                downs.append(hi[k] if hi[k] > 0 else lo[k])
                junction = None
                break
            (u,) = nxt
            downs.append(adj[node][u])
            if u[0] == "j":
                junction = u
                break
            prev, node = node, u
        # resistances of compartment–compartment links are split at will: keep both halves positive
        for i in range(len(run) - 1):
            total = downs[i] + ups[i + 1]
            if downs[i] <= 0 or ups[i + 1] <= 0:
                downs[i] = ups[i + 1] = total / 2
        if ups[0] <= 0:
            ups[0] = r_hub
        index = len(sections)
        forward = []  # geometry only: whether the run enters a compartment from its 0 side
        for i, a in enumerate(run):
            same = comp_section[a]
            if i + 1 < len(run) and comp_section[run[i + 1]] == same:
                forward.append(run[i + 1] > a)
            elif i > 0 and comp_section[run[i - 1]] == same:
                forward.append(a > run[i - 1])
            else:
                forward.append(True)
        secs = sorted({comp_section[k] for k in run})
        name = "_".join(cell.sections[s].name for s in secs)
        sections.append((name, parent, tuple(run), tuple(forward)))
        order += run
        r1 += ups
        r2 += downs
        if junction is not None:
            last = ("c", run[-1])
            children = [u for u in adj[junction] if u != last]
            for child in reversed(sorted(children, key=lambda u: u[1])):
                stack.append((child, junction, index))
    # Brian2 flattens depth-first in the order children were added; the walk above pushes
    # children so that they pop in ascending order, and a section's subtree is completed
    # before its next sibling: the same order.
    order = np.array(order, dtype=int)
    index = np.empty(ncomp, dtype=int)
    index[order] = np.arange(ncomp)
    names, seen = [], {}
    for name, parent, run, forward in sections:  # unique Brian2 child names
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name}_{seen[name] - 1}")
    sections = tuple((n, *rest) for n, (_, *rest) in zip(names, sections))
    layout = SpatialLayout(sections, order, index, np.array(r1), np.array(r2), float(cell.soma.ra),
                           int(index[cell.compartment_at(0, 0.5)]))
    _LAYOUTS[cell] = layout
    return layout


def compartment_index(cell: Cell) -> np.ndarray:
    """Brian2 flat compartment index of each livn compartment (``cell.compartments`` order)."""
    return spatial_layout(cell).index.copy()


def spatial_geometry(cell: Cell) -> dict:
    """livn's exact per-compartment values in Brian2's flat order (plain SI floats):
    area (m²), r_length_1 / r_length_2 (m; axial conductance × Ri), Cm (F/m²), x/y/z (m),
    and Ri (Ω·m)."""
    layout = spatial_layout(cell)
    comps = [cell.compartments[k] for k in layout.order]
    ri = layout.ri * 1e-2  # Ω·cm → Ω·m
    centres = np.array([c.centre for c in comps]) * 1e-6
    return {
        "area": np.array([c.area for c in comps]) * 1e-12,
        "r_length_1": ri / layout.r1,
        "r_length_2": ri / layout.r2,
        "Cm": np.array([c.cm for c in comps]) * 1e-2,
        "x": centres[:, 0], "y": centres[:, 1], "z": centres[:, 2],
        "Ri": ri,
    }


def spatial_morphology(cell: Cell, copies: int = 1):
    """The Brian2 Morphology of ``cell`` (sections of :func:`spatial_layout`, one frustum per
    compartment between the 3-D points at its boundaries, µm).

    ``copies`` > 1: that many copies of the cell in one tree, copy k's root section hung on
    the end of copy 0's root section (after copy 0's own children), so copy k occupies Brian2
    indices k·n … (k+1)·n − 1 in the order of a single copy (n = compartments per cell).
    :func:`build_spatial_population` cuts these links (r_length_1 ≈ 0 on each copy's first
    compartment), which makes the copies independent cells.
    """
    import brian2 as b2

    roots = [_one_morphology(cell, b2) for _ in range(max(1, int(copies)))]
    for k, root in enumerate(roots[1:], 1):
        roots[0].children.add(f"cell{k}", root)
    return roots[0]


def _one_morphology(cell: Cell, b2):
    layout = spatial_layout(cell)
    comps = cell.compartments
    built, ends = [], []
    for name, parent, run, forward in layout.sections:
        pts = []
        for k, fw in zip(run, forward):
            c = comps[k]
            sec = cell.sections[c.section]
            a, b = (c.x0, c.x1) if fw else (c.x1, c.x0)
            if not pts:
                pts.append(sec.point_at(a))
            pts.append(sec.point_at(b))
        pts = np.array(pts)
        origin = ends[parent] if parent >= 0 else np.zeros(3)
        rel = pts[:, :3] - origin
        diam = np.maximum(pts[:, 3], 1e-3)
        section = b2.Section(diameter=diam * b2.um, n=len(run), x=rel[:, 0] * b2.um, y=rel[:, 1] * b2.um,
                             z=rel[:, 2] * b2.um, type=cell.sections[comps[run[0]].section].name)
        ends.append(pts[-1, :3])
        built.append(section)
        if parent >= 0:
            built[parent].children.add(name, section)
    return built[0]


# -- equations ----------------------------------------------------------------------------
def _channels(cell: Cell) -> dict:
    """channel id -> Channel, over all sections (first seen first)."""
    out = {}
    for sec in cell.sections:
        for d in sec.densities:
            out.setdefault(d.channel.id, d.channel)
    return out


def _noise_erev(value) -> float:
    if isinstance(value, (tuple, list)):
        value = value[0]
    return float(getattr(value, "erev", value))


def spatial_equations(cell: Cell, receptors=None, noise_kinds=None, method: str = DEFAULT_METHOD):
    """Brian2 SpatialNeuron equations of ``cell``.

    Parameters
    ----------
    receptors : dict
        name -> Synapse (or (Synapse, anything), the old translator's form). Every compartment
        gets ``A_<name>``, ``B_<name>`` (siemens) and the point current ``I_<name>``; an event
        adds ``w*peak_factor`` (siemens) to both A and B of its target compartment.
    noise_kinds : dict
        kind -> erev (mV) (or (erev, livn compartment), or an object with ``erev``): a
        parameter ``g_noise_<kind>`` (siemens, set from outside) acting through
        ``I_noise_<kind> = mask_noise_<kind>*max(g_noise_<kind>, 0)*(erev - v)``; the mask (1 on the
        chosen compartment, 0 elsewhere) is in the parameters.
    method : str
        The gate method; explicit methods get the rate limit of fast gates.

    Returns
    -------
    equations : str
    parameters : dict
        name -> per-compartment values in Brian2 order (Quantity arrays): ``gmax_<channel>``,
        ``erev_<channel>``, ``mask_noise_<kind>``.
    initial : dict
        name -> initial value (Quantity or float, or per-compartment array): v and the gates at
        steady state at ``cell.v_init``, synaptic states 0.
    """
    import brian2 as b2

    receptors = dict(receptors or {})
    noise_kinds = dict(noise_kinds or {})
    layout = spatial_layout(cell)
    comps = [cell.compartments[k] for k in layout.order]
    limit_ok = method in EXPLICIT_METHODS
    lines, currents, params, initial = [], [], {}, {"v": cell.v_init * b2.mV}
    v = "(v/mV)"
    for cid, ch in _channels(cell).items():
        gmax, erev = np.zeros(len(comps)), np.zeros(len(comps))
        for i, c in enumerate(comps):
            own = [d for d in c.densities if d.channel.id == cid]
            g = sum(d.gmax for d in own)
            gmax[i] = g
            # several densities of one channel share its gates: Σ g_i (E_i − v) = (Σ g_i)(Ē − v)
            erev[i] = sum(d.gmax * d.erev for d in own) / g if g > 0 else (own[0].erev if own else 0.0)
        params[f"gmax_{cid}"] = gmax * 10.0 * b2.siemens / b2.meter ** 2  # mS/cm² = 10 S/m²
        params[f"erev_{cid}"] = erev * b2.mV
        lines.append(f"gmax_{cid} : siemens/meter**2 (constant)")
        lines.append(f"erev_{cid} : volt (constant)")
        factors = []
        for gate in ch.gates:
            name = f"{gate.name}_{cid}"
            line, steady = gate_equation(gate, name, v, cell.v_init, limit=limit_ok)
            lines.append(line)
            if steady is not None:
                initial[name] = steady
            factors.append(name if gate.instances == 1 else f"{name}**{gate.instances}")
        currents.append(f"gmax_{cid}*{'*'.join(factors) or '1'}*(erev_{cid} - v)")
    lines.insert(0, f"Im = {' + '.join(currents) or '0*amp/meter**2'} : amp/meter**2")
    for rname, syn in receptors.items():
        if isinstance(syn, (tuple, list)):
            syn = syn[0]
        if syn.tau_rise > 0:
            lines.append(f"dA_{rname}/dt = -A_{rname}/({syn.tau_rise!r}*ms) : siemens")
            gating = f"(B_{rname} - A_{rname})"
        else:  # single exponential: A stays 0 (events may still add to it)
            lines.append(f"A_{rname} : siemens")
            gating = f"B_{rname}"
        lines.append(f"dB_{rname}/dt = -B_{rname}/({syn.tau_decay!r}*ms) : siemens")
        if syn.kind == "exp2_block":
            gating += (f"/(1 + {syn.block_concentration / syn.block_scaling_conc!r}"
                       f"*exp(-{v}/{syn.block_scaling_volt!r}))")
        lines.append(f"I_{rname} = {gating}*({syn.erev!r}*mV - v) : amp (point current)")
        initial[f"A_{rname}"] = initial[f"B_{rname}"] = 0 * b2.siemens
    for kind, value in noise_kinds.items():
        erev = _noise_erev(value)
        where = value[1] if isinstance(value, (tuple, list)) and len(value) > 1 else cell.compartment_at(0, 0.5)
        mask = np.zeros(len(comps))
        mask[layout.index[where]] = 1.0
        lines.append(f"g_noise_{kind} : siemens")
        lines.append(f"mask_noise_{kind} : 1 (constant)")
        # max(g, 0) as arithmetic: SpatialNeuron's symbolic split of the current into g·v terms
        # simplifies clip(g, 0*siemens, ...) into a dimensionless 0
        lines.append(f"I_noise_{kind} = mask_noise_{kind}*0.5*(g_noise_{kind} + abs(g_noise_{kind}))"
                     f"*({erev!r}*mV - v) : amp (point current)")
        params[f"mask_noise_{kind}"] = mask
        initial[f"g_noise_{kind}"] = 0 * b2.siemens
    lines.append("I_inject : amp (point current)  # current clamp (set it on the soma compartment)")
    lines.append("I_field : amp (point current)  # the MEA's axial current, L @ Ve")
    return "\n".join(lines), params, initial


# -- neurons ------------------------------------------------------------------------------
def build_spatial_cells(cell: Cell, count: int, dt: float = 0.025, method: str = DEFAULT_METHOD,
                        receptors=None, noise_kinds=None, namespace=None, name: str | None = None,
                        morphology=None, cable: str = DEFAULT_CABLE) -> list:
    """``count`` SpatialNeurons of ``cell`` (one morphology shared by all), at rest.

    The threshold (``v > cell.threshold``) is checked on the soma compartment
    (``spatial_layout(cell).soma``), refractory while above it. ``dt`` in ms.

    ``cable`` "cn": Crank–Nicolson in v, as NEURON's ``secondorder = 2``: Brian2's implicit
    step is made a backward-Euler half step (``Cm`` holds twice the specific capacitance)
    and ``v = 2*v - v_start`` follows it (a ``run_regularly`` in the "groups" slot, order
    10; ``v_start`` is copied before the groups); with the gates advanced by ``method`` at
    the potential of the step's start, the gates are staggered half a step (NEURON's
    scheme) and the whole is second order. "be": Brian2's own backward Euler (first order).
    """
    if cable not in ("cn", "be"):
        raise ValueError(f"cable must be 'cn' or 'be', not {cable!r}")
    import brian2 as b2

    layout = spatial_layout(cell)
    morphology = morphology if morphology is not None else spatial_morphology(cell)
    equations, params, initial = spatial_equations(cell, receptors, noise_kinds, method)
    if cable == "cn":
        equations += "\nv_start : volt  # v at the start of the step (Crank–Nicolson)"
    geometry = spatial_geometry(cell)
    condition = f"v > {cell.threshold!r}*mV"
    out = []
    for i in range(count):
        neuron = b2.SpatialNeuron(morphology=morphology, model=equations, method=method, threshold=condition,
                                  threshold_location=layout.soma, refractory=condition,
                                  Cm=1 * b2.uF / b2.cm ** 2, Ri=geometry["Ri"] * b2.ohm * b2.meter,
                                  dt=dt * b2.ms, namespace=dict(namespace or {}),
                                  name=f"{name or 'spatial_' + cell.id}_{i}*")
        neuron.area_ = geometry["area"]
        neuron.r_length_1_ = geometry["r_length_1"]
        neuron.r_length_2_ = geometry["r_length_2"]
        neuron.Cm_ = geometry["Cm"] * (2.0 if cable == "cn" else 1.0)
        for axis in "xyz":
            setattr(neuron, f"{axis}_", geometry[axis])
        for key, value in params.items():
            setattr(neuron, key, value)
        for key, value in initial.items():
            setattr(neuron, key, value)
        if cable == "cn":
            neuron.run_regularly("v_start = v", when="before_groups", name=f"{neuron.name}_cn_start")
            neuron.run_regularly("v = 2*v - v_start", when="groups", order=10, name=f"{neuron.name}_cn_end")
        out.append(neuron)
    return out


#: r_length_1 (m) of the first compartment of every copy but the first in a population: an
#: axial conductance of ~1e-30 S, nothing next to a cell's ~1e-8 S
CUT_R_LENGTH = 1e-30


def build_spatial_population(cell: Cell, count: int, dt: float = 0.025, method: str = DEFAULT_METHOD,
                             receptors=None, noise_kinds=None, namespace=None, name: str | None = None,
                             cable: str = DEFAULT_CABLE, extra_equations: str = "", clock=None):
    """All ``count`` cells of a population in ONE SpatialNeuron (see :func:`spatial_morphology`
    with ``copies``): one set of code objects, compiled once whatever the count (separate
    SpatialNeurons compile their Cython code once per neuron *name*, ~20 s each).

    Cell k's livn compartment c is Brian2 index ``k*n + compartment_index(cell)[c]``
    (:func:`population_index`); a spike's index i belongs to cell ``i // n``. The threshold
    is checked on every cell's soma compartment (``i % n == soma``). Equations, parameters
    and the Crank–Nicolson step are those of :func:`build_spatial_cells`.
    """
    import brian2 as b2

    if cable not in ("cn", "be"):
        raise ValueError(f"cable must be 'cn' or 'be', not {cable!r}")
    layout = spatial_layout(cell)
    n = len(layout.order)
    morphology = spatial_morphology(cell, count)
    equations, params, initial = spatial_equations(cell, receptors, noise_kinds, method)
    if cable == "cn":
        equations += "\nv_start : volt  # v at the start of the step (Crank–Nicolson)"
    if extra_equations:
        equations += "\n" + extra_equations
    geometry = spatial_geometry(cell)
    condition = f"v > {cell.threshold!r}*mV"
    timing = {"clock": clock} if clock is not None else {"dt": dt * b2.ms}
    neuron = b2.SpatialNeuron(morphology=morphology, model=equations, method=method,
                              threshold=f"({condition}) and (i % {n} == {layout.soma})", refractory=condition,
                              Cm=1 * b2.uF / b2.cm ** 2, Ri=geometry["Ri"] * b2.ohm * b2.meter,
                              **timing, namespace=dict(namespace or {}),
                              name=f"{name or 'spatial_' + cell.id}*")
    r1 = np.tile(geometry["r_length_1"], count)
    r1[n::n] = CUT_R_LENGTH
    neuron.area_ = np.tile(geometry["area"], count)
    neuron.r_length_1_ = r1
    neuron.r_length_2_ = np.tile(geometry["r_length_2"], count)
    neuron.Cm_ = np.tile(geometry["Cm"], count) * (2.0 if cable == "cn" else 1.0)
    for axis in "xyz":
        setattr(neuron, f"{axis}_", np.tile(geometry[axis], count))
    for key, value in params.items():
        tiled = np.tile(np.asarray(value), count)
        setattr(neuron, key, b2.Quantity(tiled, dim=value.dim) if isinstance(value, b2.Quantity) else tiled)
    for key, value in initial.items():
        setattr(neuron, key, value)
    if cable == "cn":
        neuron.run_regularly("v_start = v", when="before_groups", name=f"{neuron.name}_cn_start")
        neuron.run_regularly("v = 2*v - v_start", when="groups", order=10, name=f"{neuron.name}_cn_end")
    return neuron


def population_index(cell: Cell, k, compartment=None):
    """Brian2 index in a :func:`build_spatial_population` neuron of cell ``k``'s livn
    ``compartment`` (default: the soma compartment at x = 0.5); ``k`` may be an array."""
    layout = spatial_layout(cell)
    local = layout.soma if compartment is None else layout.index[compartment]
    return np.asarray(k) * len(layout.order) + local


def current_clamp(cell: Cell, amplitude: float, delay: float, duration: float, tstop: float,
                  dt: float = 0.025, codegen: str = "numpy", method: str = DEFAULT_METHOD,
                  cable: str = DEFAULT_CABLE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inject ``amplitude`` nA into the soma from ``delay`` for ``duration`` ms; run to ``tstop`` ms.

    ``method`` integrates the gates (the cable is implicit in any case).

    Returns
    -------
    t : ndarray
        Sample times, ms.
    v : ndarray
        Soma membrane potential, mV.
    spikes : ndarray
        Upward crossings of the cell's spike threshold at the soma, ms.
    """
    import brian2 as b2

    b2.prefs.codegen.target = codegen
    (neuron,) = build_spatial_cells(cell, 1, dt=dt, method=method, cable=cable)
    soma = spatial_layout(cell).soma
    spikes = b2.SpikeMonitor(neuron, name=f"{neuron.name}_spikes")
    trace = b2.StateMonitor(neuron, "v", record=soma, dt=dt * b2.ms, name=f"{neuron.name}_soma")
    network = b2.Network(neuron, spikes, trace)
    network.run(delay * b2.ms, namespace={})
    neuron.I_inject[soma] = amplitude * b2.nA
    network.run(duration * b2.ms, namespace={})
    neuron.I_inject[soma] = 0 * b2.nA
    if tstop > delay + duration:
        network.run((tstop - delay - duration) * b2.ms, namespace={})
    return np.asarray(trace.t / b2.ms), np.asarray(trace.v[0] / b2.mV), np.asarray(spikes.t / b2.ms)
