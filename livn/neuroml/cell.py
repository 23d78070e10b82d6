"""Cells as section trees: morphology (NeuroML or SWC), biophysics per section, compartments.

A :class:`Cell` is what every target builds: unbranched sections (each a list of 3-D points
with diameters, in the cell's own frame, µm), the segment groups each belongs to, the
channel densities, capacitance and axial resistivity per section, and a discretisation
(``nseg`` per section). :meth:`Cell.compartments` and :meth:`Cell.couplings` give the
compartmental circuit that the MEA field and the Brian2 target use; NEURON builds the same
sections with the same ``nseg``.

Sections and their order (SONATA ``afferent_section_id``):
- NeuroML morphology: the segment groups marked as sections (neuroLexId ``sao864921383``,
  jNeuroML's convention), else each unbranched run of segments; ordered by their first
  segment in the file (the soma first).
- SWC: unbranched runs of points of one type, soma first, in file order.

Discretisation: a section group's NeuroML property ``numberInternalDivisions``, else 1 (what
jNeuroML's NEURON export does); for SWC morphologies the d_lambda rule (0.1 of the length
constant at 100 Hz, odd, NEURON's usual).

Geometry follows NEURON's Import3d and jNeuroML: sections are 3-D points (frusta), a child
starts at its parent's point; from SWC, a child of a non-soma section starts with the parent
point's diameter (a taper), a child of the soma with its own, attached at the soma end
nearest to it.

Segment groups: every NeuroML group a section lies wholly in, and "all"; SWC types map to
``soma_group``/``somatic`` (1), ``axon_group``/``axonal`` (2), ``dendrite_group``/``basal``
(3) and ``dendrite_group``/``apical`` (4) — the NeuroML and the BMTK names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from .reader import Channel, NeuroMLError, _local, _where, document, quantity, read_channel

SECTION_NEUROLEX = "sao864921383"
SWC_GROUPS = {1: ("soma_group", "somatic"), 2: ("axon_group", "axonal"), 3: ("dendrite_group", "basal"),
              4: ("dendrite_group", "apical")}


@dataclass(frozen=True)
class ChannelDensity:
    """``channel`` on ``segment_group`` at ``gmax`` (mS/cm²).

    ``kind`` is how the current is computed (NeuroML's density elements):

    - "ohmic" (``channelDensity``): g·(v − ``erev``), ``erev`` in mV;
    - "nernst" (``channelDensityNernst``): g·(v − E_Ca), E_Ca the Nernst potential of the
      section's calcium species at the network temperature (``erev`` None);
    - "ghk2" (``channelDensityGHK2``): g·ghk2(v, cai, cao), NeuroML's modified
      Goldman–Hodgkin–Katz driving term (Jaffe et al. 1994; ``erev`` None).

    ``ion`` is the density's ``ion`` attribute: a current of ion "ca" feeds the section's
    calcium concentration model.
    """

    channel: Channel
    segment_group: str
    gmax: float
    erev: float | None
    kind: str = "ohmic"
    ion: str | None = None
    file: str = field(default="", compare=False)
    line: int | None = field(default=None, compare=False)

    @property
    def reads_calcium(self) -> bool:
        """Whether the current or the gates read the calcium concentrations (cai, cao)."""
        return self.kind in ("nernst", "ghk2") or "caConc" in self.channel.inputs

    @property
    def writes_calcium(self) -> bool:
        """Whether the current is a calcium current (feeds the concentration model)."""
        return self.kind in ("nernst", "ghk2") or self.ion == "ca"


@dataclass(frozen=True)
class ConcentrationModel:
    """A NeuroML calcium concentration model (mM, ms), both relaxing to ``resting`` with ``decay``:

    - "decayingPool" (``decayingPoolConcentrationModel``): dC/dt = I_Ca/(2·F·V_shell) −
      (C − resting)/decay, V_shell the shell of ``shell_thickness`` (µm) under a sphere of the
      segment's area (NeuroML's definition, π written 3.14159 as NeuroML does, F = 96485.3 C/mol);
    - "fixedFactor" (``fixedFactorConcentrationModel``): dC/dt = I_Ca/area·``rho`` −
      (C − resting)/decay, ``rho`` in mol/(m·A·s) (SI); rho = 0 holds C at its initial value
      when that is the resting value (a fixed concentration).

    I_Ca is the inward calcium current of the segment.
    """

    id: str
    kind: str
    ion: str
    resting: float
    decay: float
    shell_thickness: float = 0.0
    rho: float = 0.0
    file: str = field(default="", compare=False)
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Species:
    """An ion's concentrations on ``segment_group``: its model, the initial intracellular and
    extracellular concentrations (mM). NeuroML ``<species>``."""

    id: str
    ion: str
    model: ConcentrationModel
    initial: float
    initial_ext: float
    segment_group: str
    file: str = field(default="", compare=False)
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Section:
    """An unbranched cable: points (n ≥ 2, rows x, y, z, diameter in µm), attached at
    ``parent_x`` of section ``parent`` (-1: the root)."""

    index: int
    name: str
    parent: int
    parent_x: float
    points: tuple
    groups: frozenset
    nseg: int = 1
    cm: float = 1.0  # µF/cm²
    ra: float = 100.0  # Ω·cm
    densities: tuple = ()
    species: tuple = ()

    @property
    def xyzd(self) -> np.ndarray:
        return np.asarray(self.points, dtype=float)

    @property
    def length(self) -> float:
        p = self.xyzd
        return float(np.sum(np.linalg.norm(np.diff(p[:, :3], axis=0), axis=1)))

    @property
    def area(self) -> float:
        """Lateral membrane area, µm² (frusta; NEURON's convention)."""
        return sum(a for a, _ in self._pieces(0.0, 1.0))

    @property
    def diameter(self) -> float:
        """Mean diameter along the section, µm."""
        p = self.xyzd
        lengths = np.linalg.norm(np.diff(p[:, :3], axis=0), axis=1)
        if lengths.sum() == 0:
            return float(p[:, 3].mean())
        return float(np.sum(lengths * (p[:-1, 3] + p[1:, 3]) / 2) / lengths.sum())

    def _arc(self):
        p = self.xyzd
        lengths = np.linalg.norm(np.diff(p[:, :3], axis=0), axis=1)
        return p, np.concatenate([[0.0], np.cumsum(lengths)])

    def point_at(self, x: float) -> np.ndarray:
        """(x, y, z, diameter) at fraction ``x`` of the length."""
        p, s = self._arc()
        if s[-1] == 0:
            return p[0]
        return np.array([np.interp(x * s[-1], s, p[:, k]) for k in range(4)])

    def _pieces(self, x0: float, x1: float):
        """(area µm², axial resistance Ω) of the cable between fractions x0 < x1."""
        p, s = self._arc()
        total = s[-1]
        if total == 0:
            return []
        a, b = x0 * total, x1 * total
        cuts = np.unique(np.concatenate([[a, b], s[(s > a) & (s < b)]]))
        out = []
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            d0, d1 = np.interp(lo, s, p[:, 3]), np.interp(hi, s, p[:, 3])
            h = hi - lo
            area = math.pi * (d0 + d1) / 2 * math.sqrt(h * h + ((d1 - d0) / 2) ** 2)
            resistance = self.ra * 1e4 * 4 * h / (math.pi * d0 * d1)  # Ω·cm → Ω·µm; µm/µm² → Ω
            out.append((float(area), float(resistance)))
        return out

    def resistance(self, x0: float, x1: float) -> float:
        """Axial resistance (Ω) between fractions x0 and x1."""
        lo, hi = min(x0, x1), max(x0, x1)
        return sum(r for _, r in self._pieces(lo, hi)) if hi > lo else 0.0


@dataclass(frozen=True)
class Compartment:
    """One compartment: section ``section`` between fractions ``x0`` and ``x1``."""

    index: int
    section: int
    name: str
    x0: float
    x1: float
    centre: tuple
    area: float
    cm: float
    densities: tuple

    @property
    def x(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def capacitance(self) -> float:
        """pF."""
        return self.cm * 1e-2 * self.area  # µF/cm² = 1e-8 µF/µm² → pF: ×1e-8×1e6


@dataclass(frozen=True)
class Cell:
    """A cell as sections (soma first).

    Attributes
    ----------
    v_init : float
        Initial membrane potential, mV.
    threshold : float
        Spike threshold on the soma (section 0, x = 0.5), mV.
    source : str
        The NeuroML file (and SWC file) it was read from.
    """

    id: str
    sections: tuple
    v_init: float
    threshold: float
    source: str = ""
    line: int | None = None

    def __hash__(self):
        return hash((self.id, self.source))

    @property
    def soma(self) -> Section:
        return self.sections[0]

    def sections_in(self, group: str) -> list[int]:
        """Indices of the sections in segment group ``group``."""
        return [s.index for s in self.sections if group in s.groups]

    @property
    def groups(self) -> set[str]:
        return set().union(*(s.groups for s in self.sections))

    @property
    def densities(self) -> tuple:
        """Every distinct channel density of the cell, in section order."""
        return tuple(dict.fromkeys(d for s in self.sections for d in s.densities))

    @property
    def species(self) -> tuple:
        """Every distinct species of the cell, in section order."""
        return tuple(dict.fromkeys(p for s in self.sections for p in s.species))

    def beyond_hh(self) -> list[tuple]:
        """(file, line, construct) of everything the cell uses beyond HH channels with fixed
        reversal potentials and fixed q10 (what a target without LEMS support refuses)."""
        out = []
        for sp in self.species:
            model = {"decayingPool": "decayingPoolConcentrationModel (calcium pool)",
                     "fixedFactor": "fixedFactorConcentrationModel (calcium concentration)"}[sp.model.kind]
            out.append((sp.file, sp.line, f"cell {self.id}: <species> {sp.id} with a {model} {sp.model.id}"))
        channels = {}
        for d in self.densities:
            if d.kind != "ohmic":
                label = {"nernst": "channelDensityNernst", "ghk2": "channelDensityGHK2"}[d.kind]
                out.append((d.file, d.line, f"cell {self.id}: {label} of {d.channel.id}"))
            channels.setdefault(d.channel.id, d.channel)
        for channel in channels.values():
            out += channel.beyond_hh()
        return list(dict.fromkeys(out))

    def temperature_uses(self) -> list[tuple]:
        """(file, line, what) of the cell's kinetics that depend on the temperature."""
        out = []
        for d in self.densities:
            if d.kind != "ohmic":
                out.append((d.file, d.line, f"{d.kind} current of {d.channel.id}"))
            if "temperature" in d.channel.inputs:
                out.append((d.channel.file, d.channel.line, f"channel {d.channel.id}"))
        return list(dict.fromkeys(out))

    @cached_property
    def compartments(self) -> tuple:
        out = []
        for sec in self.sections:
            for k in range(sec.nseg):
                x0, x1 = k / sec.nseg, (k + 1) / sec.nseg
                area = sum(a for a, _ in sec._pieces(x0, x1))
                name = sec.name if sec.nseg == 1 else f"{sec.name}_{k}"
                out.append(Compartment(len(out), sec.index, name, x0, x1,
                                       tuple(float(v) for v in sec.point_at((x0 + x1) / 2)[:3]),
                                       float(area), sec.cm, sec.densities))
        return tuple(out)

    def compartment_at(self, section: int, x: float) -> int:
        """Index of the compartment holding fraction ``x`` of ``section`` (NEURON's ``sec(x)``)."""
        sec = self.sections[section]
        k = min(int(x * sec.nseg), sec.nseg - 1) if 0 < x < 1 else (0 if x <= 0 else sec.nseg - 1)
        first = next(c.index for c in self.compartments if c.section == section)
        return first + k

    @cached_property
    def couplings(self) -> tuple:
        """(a, b, g µS) between compartment centres: the cable with its zero-area junction
        nodes eliminated (a junction shared by n compartments gives each pair
        g_i·g_j/Σg, the star–mesh transform), so the circuit is exact for any tree."""
        comps = self.compartments
        first = {}
        for c in comps:
            first.setdefault(c.section, c.index)
        junctions: dict = {}  # (section, x) → [(compartment, resistance to it)]

        def attach(section: int, x: float, compartment: int, resistance: float):
            junctions.setdefault((section, round(x, 12)), []).append((compartment, resistance))

        out = []
        for sec in self.sections:
            n, base = sec.nseg, first[sec.index]
            for k in range(n - 1):  # neighbours inside a section
                a, b = base + k, base + k + 1
                r = sec.resistance((k + 0.5) / n, (k + 1.5) / n)
                out.append((a, b, float(1e6 / r)))
            # the section's ends: its 0 end joins the parent at parent_x, its 1 end is a junction
            attach(sec.index, 1.0, base + n - 1, sec.resistance((n - 0.5) / n, 1.0))
            if sec.parent >= 0:
                parent = self.sections[sec.parent]
                px = sec.parent_x
                node = (sec.parent, 1.0) if px >= 1.0 else (sec.parent, 0.0) if px <= 0.0 else None
                own = (base, sec.resistance(0.0, 0.5 / n))
                if node is None:
                    # attached inside the parent: to the parent compartment holding px (NEURON
                    # connects to that segment's centre node)
                    pc = self.compartment_at(sec.parent, px)
                    out.append((pc, own[0], float(1e6 / own[1])) if own[1] > 0 else (pc, own[0], 1e12))
                else:
                    if node[1] == 0.0:
                        attach(sec.parent, 0.0, first[sec.parent],
                               parent.resistance(0.0, 0.5 / parent.nseg))
                    attach(*node, *own)
        for members in junctions.values():
            members = list({m[0]: m for m in members}.values())
            if len(members) < 2:
                continue
            g = [1e6 / max(r, 1e-9) for _, r in members]
            total = sum(g)
            for i in range(len(members)):
                for j in range(i + 1, len(members)):
                    out.append((members[i][0], members[j][0], float(g[i] * g[j] / total)))
        return tuple(out)

    def coupling_conductance(self, a: int = 0, b: int = 1) -> float:
        """Axial conductance (µS) between the centres of compartments a and b (0 if not adjacent)."""
        return sum(g for i, j, g in self.couplings if {i, j} == {a, b})

    def field_laplacian(self) -> np.ndarray:
        """L (µS) with (L @ Ve)[k] the axial current (nA) that extracellular potentials Ve (mV)
        at the compartment centres drive into compartment k: the exact equivalent of NEURON's
        ``extracellular`` for a grounded medium."""
        n = len(self.compartments)
        lap = np.zeros((n, n))
        for a, b, g in self.couplings:
            lap[a, b] += g
            lap[b, a] += g
            lap[a, a] -= g
            lap[b, b] -= g
        return lap


# -- reading ----------------------------------------------------------------------------
def _part(doc, cell_element, tag: str):
    """The cell's ``<morphology>`` or ``<biophysicalProperties>``: its own child, else the
    element its attribute of that name references (e.g. ``<cell morphology="PVBC_morphology">``
    with the morphology in an included file); None if it has neither."""
    own = next((e for e in cell_element if _local(e.tag) == tag), None)
    if own is not None:
        return own
    reference = cell_element.get(tag)
    if reference is None:
        return None
    found = doc.find(reference, {tag})
    if found is None:
        raise NeuroMLError([(*_where(cell_element), f"cell {cell_element.get('id')}: {tag}={reference!r} names no "
                                                    f"<{tag}> in the file or the files it includes")])
    return found


def _segment_groups(morphology):
    """(segments {id: element}, groups {id: set of segment ids}, section-group ids, nseg per group)."""
    segments = {_segment_id(s): s for s in morphology if _local(s.tag) == "segment"}
    raw = {g.get("id"): g for g in morphology if _local(g.tag) == "segmentGroup"}
    cache: dict = {}

    def members(group_id: str, trail=()) -> set:
        if group_id in cache:
            return cache[group_id]
        element = raw.get(group_id)
        if element is None or group_id in trail:
            return set()
        out = set()
        for child in element:
            tag = _local(child.tag)
            if tag == "member":
                out.add(_segment_id(child))
            elif tag == "include":
                out |= members(child.get("segmentGroup"), trail + (group_id,))
        cache[group_id] = out
        return out

    groups = {g: members(g) for g in raw}
    sections = [g for g, e in raw.items() if e.get("neuroLexId") == SECTION_NEUROLEX]
    divisions = {}
    for g, element in raw.items():
        for prop in element:
            if _local(prop.tag) == "property" and prop.get("tag") == "numberInternalDivisions":
                divisions[g] = int(prop.get("value"))
    return segments, groups, sections, divisions


def _point(element) -> tuple:
    """(x, y, z, diameter) µm of a <proximal>/<distal> point: finite numbers, diameter > 0."""
    values = []
    for k in ("x", "y", "z", "diameter"):
        text = element.get(k)
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise NeuroMLError([(*_where(element), f"<{_local(element.tag)}> {k}={text!r}: expected a number "
                                                   f"(µm)")]) from None
        if not math.isfinite(value) or (k == "diameter" and value <= 0):
            raise NeuroMLError([(*_where(element), f"<{_local(element.tag)}> {k}={text!r}: expected a finite "
                                                   f"number{' > 0' if k == 'diameter' else ''} (µm)")])
        values.append(value)
    return tuple(values)


def _segment_id(element) -> int:
    text = element.get("id") if _local(element.tag) == "segment" else element.get("segment")
    try:
        return int(text)
    except (TypeError, ValueError):
        raise NeuroMLError([(*_where(element), f"<{_local(element.tag)}> segment id {text!r}: expected a "
                                               f"non-negative integer")]) from None


def _neuroml_sections(morphology, path: str):
    """Sections (without biophysics) from a NeuroML morphology."""
    segments, groups, section_groups, divisions = _segment_groups(morphology)
    parent_of, fraction_of, distal, proximal = {}, {}, {}, {}
    for sid, seg in segments.items():
        children = {_local(c.tag): c for c in seg}
        if "parent" in children:
            parent_of[sid] = _segment_id(children["parent"])
            if parent_of[sid] not in segments:
                raise NeuroMLError([(*_where(children["parent"]), f"segment {sid}: parent segment "
                                                                  f"{parent_of[sid]} does not exist")])
            fraction_of[sid] = float(children["parent"].get("fractionAlong", "1"))
        if "distal" not in children:
            raise NeuroMLError([(*_where(seg), f"segment {sid} has no <distal> point")])
        distal[sid] = _point(children["distal"])
        if "proximal" in children:
            proximal[sid] = _point(children["proximal"])
        elif sid in parent_of:
            proximal[sid] = distal[parent_of[sid]]
        else:
            raise NeuroMLError([(*_where(seg), f"segment {sid} has neither a parent nor a proximal point")])
    order = list(segments)
    if section_groups:
        runs = [sorted(groups[g], key=order.index) for g in section_groups if groups[g]]
        names = [g for g in section_groups if groups[g]]
        covered = set().union(*map(set, runs))
        for sid in order:  # segments outside any section group become their own sections
            if sid not in covered:
                runs.append([sid])
                names.append(segments[sid].get("name") or f"seg{sid}")
    else:
        children: dict = {}
        for sid, p in parent_of.items():
            children.setdefault(p, []).append(sid)
        runs, names, seen = [], [], set()
        for sid in order:
            if sid in seen:
                continue
            run = [sid]
            seen.add(sid)
            while len(children.get(run[-1], [])) == 1 and fraction_of[children[run[-1]][0]] == 1.0:
                nxt = children[run[-1]][0]
                run.append(nxt)
                seen.add(nxt)
            runs.append(run)
            names.append(segments[sid].get("name") or f"seg{sid}")
    runs_names = sorted(zip(runs, names), key=lambda rn: order.index(rn[0][0]))
    section_of = {sid: i for i, (run, _) in enumerate(runs_names) for sid in run}
    out = []
    for i, (run, name) in enumerate(runs_names):
        head = run[0]
        parent, parent_x = -1, 1.0
        if head in parent_of:
            psid = parent_of[head]
            parent = section_of[psid]
            prun = runs_names[parent][0]
            # fraction along the parent section: its segments count by length
            lengths = [math.dist(proximal[s][:3], distal[s][:3]) for s in prun]
            before = sum(lengths[:prun.index(psid)])
            total = sum(lengths) or 1.0
            parent_x = (before + fraction_of[head] * lengths[prun.index(psid)]) / total
        points = [proximal[run[0]]] + [distal[s] for s in run]
        in_groups = frozenset(g for g, m in groups.items() if set(run) <= m) | {"all"}
        nseg = next((divisions[g] for g in in_groups if g in divisions and g in section_groups), None)
        out.append(dict(index=i, name=name, parent=parent, parent_x=round(parent_x, 9), points=tuple(points),
                        groups=in_groups, nseg=nseg if nseg is not None else 1))
    return out


def read_swc(path) -> list[dict]:
    """Sections (without biophysics) from an SWC file (µm; radius column → diameter)."""
    path = Path(path)
    rows = []
    try:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            text = line.split("#", 1)[0].strip()
            if text:
                fields = text.split()
                if len(fields) < 7:
                    raise NeuroMLError([(str(path), number, f"an SWC line needs 7 fields, found {len(fields)}")])
                rows.append((int(fields[0]), int(fields[1]), *map(float, fields[2:6]), int(fields[6])))
    except OSError as err:
        raise NeuroMLError([(str(path), None, f"cannot read the morphology: {err}")]) from None
    except ValueError as err:
        raise NeuroMLError([(str(path), None, f"not an SWC file: {err}")]) from None
    if not rows:
        raise NeuroMLError([(str(path), None, "the SWC file has no points")])
    point = {r[0]: r for r in rows}
    children: dict = {}
    for r in rows:
        children.setdefault(r[6], []).append(r[0])
    root = rows[0][0]
    # unbranched runs of one type; a run starts at the root, at a branch point's child, or at a type change
    runs = []

    def walk(start: int, parent_run: int, parent_end: int):
        stack = [(start, parent_run, parent_end)]
        while stack:
            node, prun, pend = stack.pop()
            run = [node]
            kind = point[node][1]
            while True:
                same = [c for c in children.get(run[-1], []) if point[c][1] == kind]
                if len(same) != 1:
                    break
                run.append(same[0])
            runs.append((run, prun, pend))
            index = len(runs) - 1
            branches = sorted((c, p) for p in run for c in children.get(p, []) if c not in run)
            for child, at in reversed(branches):
                stack.append((child, index, at))

    walk(root, -1, -1)
    out = []
    for i, (run, prun, pend) in enumerate(runs):
        kind = point[run[0]][1]
        pts = [point[n][2:6] for n in run]
        pts = [(x, y, z, 2 * r) for x, y, z, r in pts]
        parent_x = 1.0
        if prun >= 0:
            parent_point = point[pend][2:6]
            from_soma = point[runs[prun][0][0]][1] == 1
            # the cable starts where its parent ends (Import3d): with the parent's diameter, except on the soma
            pts = [(*parent_point[:3], pts[0][3] if from_soma else 2 * parent_point[3])] + pts
            # attached where its parent point lies along the parent run (the soma's ends: 0 or 1)
            prun_points = runs[prun][0]
            parent_x = prun_points.index(pend) / (len(prun_points) - 1) if len(prun_points) > 1 else 1.0
            if parent_x not in (0.0, 1.0) and prun_points[-1] != pend:
                parent_x = 1.0 if not from_soma else parent_x
        if len(pts) == 1:  # a one-point soma: a cylinder of length = diameter (NEURON's convention)
            x, y, z, d = pts[0]
            pts = [(x - d / 2, y, z, d), (x + d / 2, y, z, d)]
        groups = frozenset(SWC_GROUPS.get(kind, ("dendrite_group", "basal"))) | {"all"}
        out.append(dict(index=i, name=f"{groups_name(kind)}{i}", parent=prun, parent_x=parent_x,
                        points=tuple(pts), groups=groups, nseg=None))
    return out


def groups_name(kind: int) -> str:
    return {1: "soma", 2: "axon", 3: "dend", 4: "apic"}.get(kind, "dend")


def d_lambda_nseg(section: Section, d_lambda: float = 0.1, frequency: float = 100.0) -> int:
    """NEURON's d_lambda rule: odd nseg with segments shorter than d_lambda · λ(f)."""
    diameter = max(section.diameter, 1e-9)
    lam = 1e5 * math.sqrt(diameter / (4 * math.pi * frequency * section.ra * section.cm))
    return int((section.length / (d_lambda * lam) + 0.9) / 2) * 2 + 1


def read_cell(path, cell_id: str | None = None, morphology: str | Path | None = None) -> Cell:
    """The cell ``cell_id`` (default: the only cell) of NeuroML file ``path``.

    ``morphology`` (an SWC file) is used when the NeuroML cell has no morphology of its own.
    """
    doc = document(path)
    ids = doc.cells()
    if cell_id is None:
        if len(ids) != 1:
            raise NeuroMLError([(str(doc.path), None, f"expected one <cell> in the file (or a cell id), found "
                                                      f"{len(ids)}: {', '.join(ids) or 'none'}")])
        cell_id = ids[0]
    element = doc.find(cell_id, {"cell"})
    if element is None:
        raise NeuroMLError([(str(doc.path), None, f"cell {cell_id!r} not found (cells in the file: "
                                                  f"{', '.join(ids) or 'none'})")])
    source = str(doc.path)
    morphology_element = _part(doc, element, "morphology")
    if morphology_element is not None:
        raw = _neuroml_sections(morphology_element, source)
        from_swc = False
    elif morphology is not None:
        raw = read_swc(morphology)
        source += f" + {morphology}"
        from_swc = True
    else:
        raise NeuroMLError([(*_where(element), f"cell {cell_id} has no morphology, and the circuit gives no SWC "
                                               f"morphology for it")])
    return _biophysics(doc, element, cell_id, raw, from_swc, source)


#: NeuroML density element -> ChannelDensity kind
DENSITY_KINDS = {"channelDensity": "ohmic", "channelDensityNernst": "nernst", "channelDensityGHK2": "ghk2"}
#: concentration model element -> ConcentrationModel kind
CONCENTRATION_MODELS = {"decayingPoolConcentrationModel": "decayingPool",
                        "fixedFactorConcentrationModel": "fixedFactor"}


def _density(doc, child, all_groups: set) -> ChannelDensity:
    """A channelDensity, channelDensityNernst or channelDensityGHK2 element."""
    tag = _local(child.tag)
    kind = DENSITY_KINDS[tag]
    where = _where(child)
    group = child.get("segmentGroup", "all")
    if group not in all_groups:
        raise NeuroMLError([(*where, f"{tag} {child.get('id')}: segment group {group!r} is not in the morphology "
                                     f"(groups: {', '.join(sorted(all_groups))})")])
    if child.get("segment") is not None:
        raise NeuroMLError([(*where, f"{tag} on a single segment is not supported; use a segmentGroup")])
    channel = read_channel(doc, child.get("ionChannel", ""), where)
    gmax = quantity(child, "condDensity", "conductance_density")
    if gmax < 0:
        raise NeuroMLError([(*where, f"{tag} {child.get('id')}: condDensity must be >= 0, found "
                                     f"{child.get('condDensity')!r}")])
    ion = child.get("ion") or channel.species
    if kind == "ohmic":
        return ChannelDensity(channel, group, gmax, quantity(child, "erev", "voltage"), "ohmic", ion, *where)
    if ion != "ca":
        raise NeuroMLError([(*where, f"{tag} {child.get('id')}: ion {ion!r} is not supported (livn computes "
                                     f"Nernst and GHK currents of calcium, ion=\"ca\", from its concentrations)")])
    if child.get("erev") is not None:
        raise NeuroMLError([(*where, f"{tag} {child.get('id')}: erev is computed from the concentrations; "
                                     f"remove erev={child.get('erev')!r}")])
    return ChannelDensity(channel, group, gmax, None, kind, ion, *where)


def _concentration_model(doc, model_id: str, species) -> ConcentrationModel:
    """The concentration model ``model_id`` that ``species`` (element) names."""
    element = doc.find(model_id or "")
    if element is None or _local(element.tag) not in CONCENTRATION_MODELS:
        found = f" (<{_local(element.tag)}>)" if element is not None else ""
        raise NeuroMLError([(*_where(species), f"species {species.get('id')}: concentrationModel {model_id!r}{found} "
                                               f"is not a {' or '.join(CONCENTRATION_MODELS)} in the file or its "
                                               f"includes")])
    kind = CONCENTRATION_MODELS[_local(element.tag)]
    resting = quantity(element, "restingConc", "concentration")
    decay = quantity(element, "decayConstant", "time")
    problems = []
    if resting < 0:
        problems.append((*_where(element), f"{model_id}: restingConc must be >= 0"))
    if decay <= 0:
        problems.append((*_where(element), f"{model_id}: decayConstant must be > 0 ms"))
    extra = {}
    if kind == "decayingPool":
        extra["shell_thickness"] = quantity(element, "shellThickness", "length")
        if extra["shell_thickness"] <= 0:
            problems.append((*_where(element), f"{model_id}: shellThickness must be > 0 um"))
    else:
        from .lems import ExpressionError, si_value

        try:
            extra["rho"] = si_value(element.get("rho"), "rho_factor")[0]
        except ExpressionError as err:
            problems.append((*_where(element), f"{model_id}: rho: {err}"))
        else:
            if extra["rho"] < 0:
                problems.append((*_where(element), f"{model_id}: rho must be >= 0"))
    if problems:
        raise NeuroMLError(problems)
    return ConcentrationModel(model_id, kind, element.get("ion", ""), resting, decay, **extra,
                              file=_where(element)[0], line=element.sourceline)


def _species(doc, child, all_groups: set) -> Species:
    """A <species> of intracellularProperties (calcium only)."""
    where = _where(child)
    ion, group = child.get("ion"), child.get("segmentGroup", "all")
    if ion != "ca":
        raise NeuroMLError([(*where, f"species {child.get('id')}: ion {ion!r} is not supported (livn models "
                                     f"calcium, ion=\"ca\")")])
    if group not in all_groups:
        raise NeuroMLError([(*where, f"species {child.get('id')}: segment group {group!r} is not in the morphology")])
    model = _concentration_model(doc, child.get("concentrationModel"), child)
    if model.ion != ion:
        raise NeuroMLError([(*where, f"species {child.get('id')} (ion {ion}) uses {model.id}, a model of ion "
                                     f"{model.ion!r}")])
    initial = quantity(child, "initialConcentration", "concentration")
    initial_ext = quantity(child, "initialExtConcentration", "concentration")
    if initial < 0 or initial_ext <= 0:
        raise NeuroMLError([(*where, f"species {child.get('id')}: need initialConcentration >= 0 and "
                                     f"initialExtConcentration > 0 mM")])
    return Species(child.get("id", ion), ion, model, initial, initial_ext, group, *where)


def _calcium_problems(cell_id: str, raw: list, densities: list, species: list) -> list:
    """Every calcium-reading density must lie where the cell has a calcium species, and species
    must not overlap (NeuroML would read a concentration of 0 there; jNeuroML's NEURON export
    NEURON's defaults: refused rather than guessed)."""
    problems = []
    for k, sp in enumerate(species):
        for other in species[k + 1:]:
            if any({sp.segment_group, other.segment_group} <= r["groups"] for r in raw):
                problems.append((other.file, other.line, f"cell {cell_id}: species {other.id} overlaps species "
                                                         f"{sp.id} (line {sp.line}) on some segments"))
    covered = [r for r in raw if any(sp.segment_group in r["groups"] for sp in species)]
    for d in densities:
        if not d.reads_calcium:
            continue
        bare = [r["name"] for r in raw if d.segment_group in r["groups"] and r not in covered]
        if bare:
            what = f"{d.kind} current" if d.kind != "ohmic" else "calcium-dependent gates"
            problems.append((d.file, d.line, f"cell {cell_id}: {d.channel.id} ({what}) reads the calcium "
                                             f"concentration, but sections {', '.join(bare[:5])}"
                                             f"{' ...' if len(bare) > 5 else ''} have no <species ion=\"ca\"> "
                                             f"(add one to intracellularProperties)"))
    return problems


def _biophysics(doc, element, cell_id: str, raw: list, from_swc: bool, source: str) -> Cell:
    bio = _part(doc, element, "biophysicalProperties")
    if bio is None:
        raise NeuroMLError([(*_where(element), f"cell {cell_id} has no biophysicalProperties")])
    membrane = next((e for e in bio if _local(e.tag) == "membraneProperties"), None)
    intra = next((e for e in bio if _local(e.tag) == "intracellularProperties"), None)
    if membrane is None or intra is None:
        raise NeuroMLError([(*_where(bio), f"cell {cell_id}: biophysicalProperties need membraneProperties "
                                           f"and intracellularProperties")])
    all_groups = set().union(*(r["groups"] for r in raw))
    problems, densities, species = [], [], []
    cm_by_group, ra_by_group, v_init, threshold = {}, {}, None, None
    for child in membrane:
        tag = _local(child.tag)
        try:
            if tag in DENSITY_KINDS:
                densities.append(_density(doc, child, all_groups))
            elif tag == "specificCapacitance":
                cm_by_group[child.get("segmentGroup", "all")] = quantity(child, "value", "capacitance_density")
            elif tag == "initMembPotential":
                v_init = quantity(child, "value", "voltage")
            elif tag == "spikeThresh":
                threshold = quantity(child, "value", "voltage")
            elif tag.startswith("channelDensity") or tag in ("channelPopulation",):
                problems.append((*_where(child), f"<{tag}> is not supported (supported: "
                                                 f"{', '.join(DENSITY_KINDS)})"))
        except NeuroMLError as err:
            problems += err.problems
    for child in intra:
        try:
            if _local(child.tag) == "resistivity":
                ra_by_group[child.get("segmentGroup", "all")] = quantity(child, "value", "resistivity")
            elif _local(child.tag) == "species":
                species.append(_species(doc, child, all_groups))
        except NeuroMLError as err:
            problems += err.problems
    problems += _calcium_problems(cell_id, raw, densities, species)
    for what, value in (("initMembPotential", v_init), ("spikeThresh", threshold)):
        if value is None:
            problems.append((*_where(membrane), f"cell {cell_id}: no {what}"))
    if not cm_by_group:
        problems.append((*_where(membrane), f"cell {cell_id}: no specificCapacitance"))
    if not ra_by_group:
        problems.append((*_where(intra), f"cell {cell_id}: no resistivity"))
    for label, values in (("specificCapacitance", cm_by_group), ("resistivity", ra_by_group)):
        for v in values.values():
            if v <= 0:
                problems.append((*_where(membrane), f"cell {cell_id}: {label} must be positive"))
    if problems:
        raise NeuroMLError(problems)

    def by_group(values: dict, groups) -> float:
        hits = [v for g, v in values.items() if g in groups and g != "all"]
        return hits[-1] if hits else values.get("all", next(iter(values.values())))

    sections = []
    for r in raw:
        cm, ra = by_group(cm_by_group, r["groups"]), by_group(ra_by_group, r["groups"])
        own = tuple(d for d in densities if d.segment_group in r["groups"])
        own_species = tuple(sp for sp in species if sp.segment_group in r["groups"])
        sec = Section(r["index"], r["name"], r["parent"], r["parent_x"], r["points"], r["groups"], 1, cm, ra, own)
        nseg = r["nseg"] if r["nseg"] is not None else d_lambda_nseg(sec)
        sections.append(Section(sec.index, sec.name, sec.parent, sec.parent_x, sec.points, sec.groups, nseg, cm, ra, own,
                                own_species))
    if not sections or "soma_group" not in sections[0].groups and "somatic" not in sections[0].groups:
        if sections and not any("soma" in g for g in sections[0].groups):
            raise NeuroMLError([(*_where(element), f"cell {cell_id}: the first section must be the soma "
                                                   f"(in segment group soma_group)")])
    return Cell(cell_id, tuple(sections), v_init, threshold, source, element.sourceline)
