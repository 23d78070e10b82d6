"""Morphologies of the 12 simulated CA1 cell types, from the published geometry.

Run from the repository root::

    python specs/morphologies/generate.py

It writes, next to itself, for each type T of ``TYPES``:

* ``T.swc``: standard 7-column SWC (id, type, x, y, z, radius, parent; µm). Types: 1 soma,
  2 axon, 3 basal, 4 apical.
* ``T.morph.nml``: a NeuroML2 document holding ``<morphology id="T_morphology">`` with the same
  points as segments, one segment group per unbranched section (neuroLexId sao864921383, with
  ``numberInternalDivisions``), and the named groups listed below.

The output depends on nothing but this file (numpy is not even needed: the geometry is a few
straight lines), so running it again rewrites the same bytes; tests/test_ca1_morphology.py
checks that, and the properties below.

"§x" is a section of shared/reference/ca1.md; "plan" is docs/CA1-plan.md (Step 5 and its
decision rows "§2.1, §1.5", "geometry", "§7.5", "§7.6").

Frame
-----
Coordinates are the cell's own frame, µm, with the soma centre at the origin. **+z is the
layer (depth) axis** of the CA1 slab (§1.1: SO 0–100, SP 100–150, SR 150–350, SLM 350–450):
a cell whose soma sits at depth z0 has its points at z0 + z. Apical dendrites point to +z
(towards SLM), basal dendrites and axons to −z (towards SO, the face that touches the MEA;
plan, row "geometry"). Every cell lies in the x–z plane except the axons, which run in the
y–z plane so that no axon overlies a dendrite in a drawing; the circuit adds a random rotation
about z.

Why the original coordinates are not used (plan, row "§2.1, §1.5")
------------------------------------------------------------------
The published SWCs (§2.1) are planar cells whose dendrites span up to 887 µm, twice the 450-µm
stack, and whose layer labels are assigned by hand rather than derived from coordinates. Here
a compartment's layer is geometric (soma depth + offset), so each cell must *fit the stack* at
a reference soma depth. The lengths, diameters and topology of §2.1/§2.3 are kept; only the
directions are chosen, per type, in ``INTERNEURONS`` and ``PYR_SECTIONS`` below.

Reference depth and angles (the "reach" rule)
---------------------------------------------
A type's reference depth is the centre of its most populated layer (§1.2), or the centre of
its depth limit (§1.3) where that limit holds all of its cells (PYR: SP 100–150; SCA: SR
330–350). At that depth each dendrite group must put a compartment midpoint into every layer in
which §4.3 lists synapses for that group, and no point may leave 0–450 µm. Within that, each
straight dendrite is tilted so that its tip ends 5 µm inside the far face of the farthest
layer it must reach: this gives the most length in that outermost layer (where the synapse
counts are largest for most types) without adding length in layers where the group has no
synapses. The 5 µm keeps tips clear of a layer face or of the stack's surface after rounding.
Exceptions are commented in the table (IS2's descending apical branch; OLM).

Limit: one morphology per type serves cells placed anywhere in their layers (§1.2), and the
reach holds at the reference depth only. A cell far from it can miss a layer (an NGFC in SR
has no dendrite in SLM; a CCKBC in SO no apical in SLM), and parts of it can lie outside
0–450 µm. The synapse builder drops, and counts, synapses of a site that a cell lacks.

Interneurons (§2.1 stylised cells; plan Step 5)
-----------------------------------------------
* Soma: a cylinder of radius 5 µm along z, 20 µm long (10 µm for SCA and IS1–3), centred at
  the origin. Apical dendrites hang from its +z end (soma(1)), basal ones from its −z end
  (soma(0)), as in the SWCs (apical from the soma's top, basal from its bottom).
* Two straight apical branches of 600 µm and two basal of 300 µm, with the stepwise radii of
  §2.1: PVBC-type table for PVBC, AAC, BS, IVY, NGFC; CCKBC-type table for CCKBC, SCA, IS1–3
  (including its 2.0 → 1.75 µm taper over the first ~50 µm of one apical branch, taken here as
  50 µm on the first branch, and the 1.0 → 0.75 µm basal taper over 50 µm on both).
* OLM: two dendrites (SWC type 3, "basal" in §2.1) of 391.7 µm, radius 1.5 µm, towards +z, and
  an axon of 150 µm, radius 0.75 µm, towards −z.
* Sections: each dendrite is cut at 100 µm path distance from the soma (150 µm for IS1–3)
  into ``<name>_prox`` and ``<name>_dist``. The §2.2 templates meant some channels to apply
  only there (CCKBC, SCA, IVY, NGFC < 100 µm; ISCell ≤ 150 µm; §7.5) but assigned them
  section-wide; separate sections let the cells of Step 7 say so with plain channelDensity
  on a group (plan row "§7.5"). The distance is measured along the dendrite from its origin
  on the soma surface. (The CCKBC hoc measured from soma(0), which counted the soma's 20 µm
  on the apical side only: an artefact of the origin, not an intent.) The PVBC-type radius
  step at 100 µm therefore coincides with the cut. OLM has no distance rule and is not cut.
* nseg (``numberInternalDivisions``): NEURON's d_lambda rule, odd nseg with pieces shorter
  than 0.1 λ at 100 Hz, evaluated like NEURON's ``lambda_f`` over the 3-D points, with the
  cells' *final* Ra and dendritic cm of §2.2 (plan row "§7.6"; the hoc evaluated it with the
  defaults 35.4 Ω·cm and 1 µF/cm², §2.2 "Segmentation").

PYR (§2.3 runtime cell, the one that ran; plan Decisions)
---------------------------------------------------------
The 31 sections of §2.3 with their L, diameter and nseg (69 compartments), and its topology.
Tapered sections (hillock 3.5 → 1, radTprox 3 → 2.5) are flattened to the mean diameter, as
the runtime did. Directions (``PYR_SECTIONS``), with the soma at z0 = 125 (centre of SP):

* soma: 10 µm along z (diameter 20), 120–130;
* trunk (radTprox, radTmed, radTdist1–3; 300 µm) straight up: ends at z = 430 in SLM;
* obliques leave radTmed(1) at z = 280: thick and medium sections at 75° from +z, the thin
  pair ±10° about that; the highest tip is at 337.6, so the obliques stay in SR (150–350);
* tufts leave radTdist3(1) at z = 430 and run near-horizontal (80–120° from +z), so that all
  of their 175/225 µm path stays within 375–430, inside SLM (350–450). (The plan's "tufts
  ≤ 75°" cannot hold: a 175-µm branch at ≤ 75° from +z would rise ≥ 45 µm from z = 430.)
* basals leave soma(0) at z = 120: oriprox at 45° from −z, oridist a/b at 35° and 55° from
  −z; the deepest tip is at z = 5.5, so the basals reach SO and stay inside the stack;
* hillock → AIS → axon leave soma(0) pointing −z. Hillock and AIS are tilted 60° from −z so
  that the AIS (z 110–105) lies wholly in SP, where §4.3 puts its 34 AAC synapses; the axon
  then runs at 48.2° from −z and ends at z = 5.

Groups: each section is a group named as in §2.3 (so ``ais`` and ``radTprox`` are
addressable); ``soma_group``, ``axon_group`` (hillock, ais, axon), ``dendrite_group``;
``apical`` (trunk + oblique + tuft), ``trunk``, ``oblique``, ``tuft``, ``basal`` (the §2.3
biophysics groups); ``all``.

Interneuron groups: ``soma_group``, ``dendrite_group``, ``apical``, ``basal``, ``apical_prox``,
``apical_dist``, ``basal_prox``, ``basal_dist``, ``dendrite_prox``, ``dendrite_dist`` (not
for OLM), ``axon_group`` (OLM only: the other §2.1 cells have no axon), ``all``.

Named groups are written with ``<include>`` of the section groups, never ``<member>``:
jNeuroML's NEURON exporter leaves member-only groups empty when section groups exist
(specs/cells/EXC.cell.nml notes the same). NeuroLex ids follow libNeuroML: sao864921383
section, GO:0043025 soma, GO:0030424 axon, GO:0030425 dendrite.

Diameter steps
--------------
SWC cannot state a step in diameter, and a child section read from SWC starts with its
parent's end diameter (NEURON's Import3d; livn's ``read_swc``). A step is therefore written as
a short linear taper, the same in both files, so that both give the same frusta. The taper
lies inside the *wider* of the two pieces (at the end of a parent, or at the start of a wider
child) and is as long as keeps that piece's lateral area exactly π·d·L: a frustum from radius
r_w to r over length t has the area 2π·r_w·t of the cylinder it replaces when
t = (r_w + r)·(r_w − r) / sqrt(4·r_w² − (r_w + r)²), 0.17–0.9 µm here. So every §2.1 piece and
every §2.3 section keeps its nominal area (a plain short taper would add the annulus
π·(r_w² − r²): +3.2 µm², 10 %, on the PYR AIS). A parent whose children differ (radTmed →
2.0/1.9/1.9 µm, radTdist3 → 0.95/0.75 µm) tapers to its widest child; the narrower siblings
start with a 0.01-µm step that adds their annulus (< 0.31 µm² each, 0.02 % of the apical
area). Dendrites leave the soma with their own diameter (as SWC readers attach them).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

TYPES = ("PYR", "PVBC", "AAC", "BS", "CCKBC", "IVY", "NGFC", "OLM", "SCA", "IS1", "IS2", "IS3")

LAYERS = (("SO", 0.0, 100.0), ("SP", 100.0, 150.0), ("SR", 150.0, 350.0), ("SLM", 350.0, 450.0))

STEP = 0.01  # µm: a step no wider piece can absorb ("Diameter steps")
DECIMALS = 4  # written coordinates: 0.1 nm, far below any length that matters

# Stepwise diameters (µm, 2 × the radii of §2.1) along a dendrite: (from, to, d_from, d_to),
# path distance in µm from the soma surface.
PV_APICAL = ((0, 100, 4.0, 4.0), (100, 200, 3.0, 3.0), (200, 400, 2.0, 2.0), (400, 500, 1.5, 1.5),
             (500, 600, 1.0, 1.0))
PV_BASAL = ((0, 100, 2.0, 2.0), (100, 200, 1.5, 1.5), (200, 300, 1.0, 1.0))
CCK_APICAL = ((0, 100, 3.5, 3.5), (100, 200, 2.5, 2.5), (200, 400, 1.5, 1.5), (400, 500, 1.2, 1.2),
              (500, 600, 1.0, 1.0))
CCK_APICAL_TAPERED = ((0, 50, 4.0, 3.5),) + ((50, 100, 3.5, 3.5),) + CCK_APICAL[1:]
CCK_BASAL = ((0, 50, 2.0, 1.5), (50, 100, 1.5, 1.5), (100, 200, 1.2, 1.2), (200, 300, 1.0, 1.0))

# Final Ra (Ω·cm) and dendritic cm (µF/cm²) of §2.2, for d_lambda (plan row "§7.6").
PASSIVE = {"PV": (100.0, 1.4), "CCK": (150.0, 1.0), "NGF": (14.0, 1.8), "OLM": (150.0, 1.3), "IS": (100.0, 1.1)}


@dataclass(frozen=True)
class Interneuron:
    shape: str  # "PV" or "CCK": which §2.1 radius table
    passive: str  # key of PASSIVE
    depth: float  # reference soma depth, µm
    soma_length: float
    cut: float  # prox/dist cut, µm path distance
    apical: tuple  # polar angle from +z of each apical branch, degrees; sign = side (+x / −x)
    basal: tuple  # the same for the basal branches (> 90°: pointing down)


# Reference depth and branch angles per type. Tip depths are at the reference depth; the
# sites named are §4.3's (group/layer with synapses > 0).
INTERNEURONS = {
    # SP 125. Sites apical SR+SLM, basal SO (BS also apical SP, which the apical's first
    # compartment, z ≈ 144, gives). Apical tips at 444.9 (5 µm under the surface), basal at 5.1.
    "PVBC": Interneuron("PV", "PV", 125.0, 20.0, 100.0, (58.9, -58.9), (111.5, -111.5)),
    "AAC": Interneuron("PV", "PV", 125.0, 20.0, 100.0, (58.9, -58.9), (111.5, -111.5)),
    "BS": Interneuron("PV", "PV", 125.0, 20.0, 100.0, (58.9, -58.9), (111.5, -111.5)),
    # SR 250 (1,170 of 3,600). Apical SR+SLM: tips 444.4; basal must cross SP into SO: tips 5.2.
    "CCKBC": Interneuron("CCK", "CCK", 250.0, 20.0, 100.0, (72.1, -72.1), (141.5, -141.5)),
    # SP 125. Apical SR only: tips at 344.1, 5 µm short of SLM, where IVY has no apical
    # synapses; basal SP+SO: tips 5.1 as PVBC.
    "IVY": Interneuron("PV", "NGF", 125.0, 20.0, 100.0, (69.6, -69.6), (111.5, -111.5)),
    # SLM 400 (2,970 of 3,580). Both groups only in SLM: apical tips at 444.5, basal tips at
    # 355.0; the dendrites run nearly flat in SLM (plan: "NGFC apicals nearly horizontal").
    "NGFC": Interneuron("PV", "NGF", 400.0, 20.0, 100.0, (86.7, -86.7), (96.7, -96.7)),
    # SR, depth limit 330–350 (§1.3): 340. Apical SLM (+ 62 SR synapses: its first
    # compartment, z ≈ 348), tips 444.0; basal SR only: tips 155.3, 5 µm above SP.
    "SCA": Interneuron("CCK", "CCK", 340.0, 10.0, 100.0, (80.5, -80.5), (126.8, -126.8)),
    # SP 125. Apical SR only: tips 344.0; basal SO: tips 5.2.
    "IS1": Interneuron("CCK", "IS", 125.0, 10.0, 150.0, (69.1, -69.1), (112.5, -112.5)),
    # SLM 400 (890 of 1,820). Apical SLM *and* SR: a branch that rises from SLM cannot reach
    # SR, so the second apical branch descends 10° below horizontal; it enters SR 317 µm
    # from the soma and ends at z = 300.8 (SR holds 80 of IS2's 1,440 apical synapses, so a
    # shallow dip suffices). The first rises to 444.8. Basal SR only: tips 155.1.
    "IS2": Interneuron("CCK", "IS", 400.0, 10.0, 150.0, (86.2, -100.0), (143.1, -143.1)),
    # SP 125. Apical SR+SLM: tips 444.4; basal SO: tips 5.2.
    "IS3": Interneuron("CCK", "IS", 125.0, 10.0, 150.0, (58.4, -58.4), (112.5, -112.5)),
}

# OLM (§2.1): SO 50 (all 1,640 cells). Its only dendritic sites are basal/SO (§4.3). The SWC's
# ±45° would leave SO 57 µm from the soma and miss it entirely for somata above z ≈ 90, so
# the dendrites run nearly flat (84.9° from +z, tips at 94.8, 5 µm under SP), as OLM
# dendrites do in stratum oriens. The axon keeps its −z direction, tilted 76.6° from −z so
# that it ends at z = 5.2 instead of leaving the stack at −110.
OLM = dict(depth=50.0, soma_length=20.0, dendrites=(84.9, -84.9), axon=180.0 - 76.6,
           dendrite_length=391.7, dendrite_diameter=3.0, axon_length=150.0, axon_diameter=1.5)

PYR_DEPTH = 125.0  # centre of SP; §1.3's PYR limit is the whole of SP

# §2.3 runtime PYR: (name, parent, end of parent, L µm, diam µm, nseg, polar angle from +z in
# degrees (sign = side), plane of the angle, SWC type, groups). Angles: see the docstring.
PYR_SECTIONS = (
    ("soma", None, None, 10.0, 20.0, 1, 0.0, "xz", 1, ()),
    ("hillock", "soma", 0.0, 20.0, 2.25, 1, 120.0, "yz", 2, ()),
    ("ais", "hillock", 1.0, 10.0, 1.0, 1, 120.0, "yz", 2, ()),
    ("axon", "ais", 1.0, 150.0, 0.5, 5, 131.8, "yz", 2, ()),
    ("radTprox", "soma", 1.0, 80.0, 2.75, 1, 0.0, "xz", 4, ("trunk",)),
    ("radTmed", "radTprox", 1.0, 70.0, 2.5, 1, 0.0, "xz", 4, ("trunk",)),
    ("radTdist1", "radTmed", 1.0, 50.0, 2.0, 1, 0.0, "xz", 4, ("trunk",)),
    ("radTdist2", "radTdist1", 1.0, 50.0, 1.75, 1, 0.0, "xz", 4, ("trunk",)),
    ("radTdist3", "radTdist2", 1.0, 50.0, 1.5, 1, 0.0, "xz", 4, ("trunk",)),
    ("rad_thick1", "radTmed", 1.0, 50.0, 1.9, 1, 75.0, "xz", 4, ("oblique",)),
    ("rad_medium1", "rad_thick1", 1.0, 50.0, 1.5, 1, 75.0, "xz", 4, ("oblique",)),
    ("rad_thin1a", "rad_medium1", 1.0, 75.0, 0.95, 3, 65.0, "xz", 4, ("oblique",)),
    ("rad_thin1b", "rad_medium1", 1.0, 75.0, 0.95, 3, 85.0, "xz", 4, ("oblique",)),
    ("rad_thick2", "radTmed", 1.0, 50.0, 1.9, 1, -75.0, "xz", 4, ("oblique",)),
    ("rad_medium2", "rad_thick2", 1.0, 50.0, 1.5, 1, -75.0, "xz", 4, ("oblique",)),
    ("rad_thin2a", "rad_medium2", 1.0, 75.0, 0.95, 3, -65.0, "xz", 4, ("oblique",)),
    ("rad_thin2b", "rad_medium2", 1.0, 75.0, 0.95, 3, -85.0, "xz", 4, ("oblique",)),
    ("lm_thick1", "radTdist3", 1.0, 50.0, 0.95, 1, 95.0, "xz", 4, ("tuft",)),
    ("lm_medium1", "lm_thick1", 1.0, 50.0, 0.9, 3, 100.0, "xz", 4, ("tuft",)),
    ("lm_thin1a", "lm_medium1", 1.0, 75.0, 0.6, 3, 80.0, "xz", 4, ("tuft",)),
    ("lm_thin1b", "lm_medium1", 1.0, 75.0, 0.6, 3, 120.0, "xz", 4, ("tuft",)),
    ("lm_thick2", "radTdist3", 1.0, 100.0, 0.75, 3, -95.0, "xz", 4, ("tuft",)),
    ("lm_medium2", "lm_thick2", 1.0, 50.0, 0.9, 3, -100.0, "xz", 4, ("tuft",)),
    ("lm_thin2a", "lm_medium2", 1.0, 75.0, 0.6, 3, -80.0, "xz", 4, ("tuft",)),
    ("lm_thin2b", "lm_medium2", 1.0, 75.0, 0.6, 3, -120.0, "xz", 4, ("tuft",)),
    ("oriprox1", "soma", 0.0, 75.0, 1.6, 3, 135.0, "xz", 3, ()),
    ("oridist1a", "oriprox1", 1.0, 75.0, 1.1, 3, 145.0, "xz", 3, ()),
    ("oridist1b", "oriprox1", 1.0, 75.0, 1.1, 3, 125.0, "xz", 3, ()),
    ("oriprox2", "soma", 0.0, 75.0, 1.6, 3, -135.0, "xz", 3, ()),
    ("oridist2a", "oriprox2", 1.0, 75.0, 1.1, 3, -145.0, "xz", 3, ()),
    ("oridist2b", "oriprox2", 1.0, 75.0, 1.1, 3, -125.0, "xz", 3, ()),
)

NEUROLEX = {"section": "sao864921383", "soma": "GO:0043025", "axon": "GO:0030424", "dendrite": "GO:0030425"}
SWC_TYPE_NAMES = {1: "soma", 2: "axon", 3: "basal", 4: "apical"}


@dataclass
class Section:
    name: str
    swc: int
    parent: str | None
    end: float | None  # where on the parent it starts: 0 or 1
    points: list  # (x, y, z, diameter); points[0] lies on the parent
    nseg: int
    groups: tuple  # named groups besides its own


# -- geometry --------------------------------------------------------------------------------
def _r(v: float) -> float:
    v = round(v, DECIMALS)
    return 0.0 if v == 0 else v  # no "-0"


def _direction(angle: float, plane: str) -> tuple:
    a = math.radians(angle)
    s, c = math.sin(a), math.cos(a)
    return (s, 0.0, c) if plane == "xz" else (0.0, s, c)


def _transition(wide: float, narrow: float) -> float:
    """Length (µm) of a taper from diameter ``wide`` to ``narrow`` whose lateral area equals
    that of a cylinder of diameter ``wide`` over the same length (see "Diameter steps")."""
    rw, r = wide / 2, narrow / 2
    return (rw + r) * (rw - r) / math.sqrt(4 * rw * rw - (rw + r) ** 2)


def _knots(profile, d_in: float | None = None, d_out: float | None = None) -> list:
    """(path distance, diameter) knots of a cable made of ``profile`` pieces (start, stop,
    d_start, d_stop), linear between knots. ``d_in``: the diameter it must start with (its
    parent's end, off the soma); ``d_out``: the diameter it must end with (its widest child's).
    Steps become tapers inside the wider piece ("Diameter steps")."""
    knots = [(0.0, profile[0][2] if d_in is None else d_in)]
    if d_in is None and profile[0][2] != profile[0][3]:
        # off the soma, an SWC reader gives the first frustum the diameter of the cable's
        # first point: a point just off the soma keeps a taper that starts at the soma
        knots.append((STEP, profile[0][2]))
    for i, (start, stop, d0, d1) in enumerate(profile):
        current = knots[-1][1]
        if d0 > current:  # widening: inside this piece
            knots.append((start + _transition(d0, current), d0))
        elif d0 < current:  # narrowing not taken by the parent (a wider sibling): a plain step
            knots.append((start + STEP, d0))
        following = profile[i + 1][2] if i + 1 < len(profile) else d_out
        if following is not None and following < d1:  # narrowing: inside this piece
            knots += [(stop - _transition(d1, following), d1), (float(stop), following)]
        else:
            knots.append((float(stop), d1))
    return knots


def _cut(knots, at: float):
    """Split knots at path distance ``at`` (a knot is added there if needed)."""
    if not any(abs(s - at) < 1e-9 for s, _ in knots):
        for (s0, d0), (s1, d1) in zip(knots, knots[1:]):
            if s0 < at < s1:
                knots = knots + [(at, d0 + (d1 - d0) * (at - s0) / (s1 - s0))]
        knots = sorted(knots)
    return [k for k in knots if k[0] <= at + 1e-9], [k for k in knots if k[0] >= at - 1e-9]


def _place(origin, direction, knots) -> list:
    return [tuple(_r(o + s * u) for o, u in zip(origin, direction)) + (d,) for s, d in knots]


def _soma(length: float, diameter: float) -> Section:
    return Section("soma", 1, None, None, [(0.0, 0.0, _r(-length / 2), diameter),
                                           (0.0, 0.0, _r(length / 2), diameter)], 1, ())


def electrotonic_length(points, ra: float, cm: float, frequency: float = 100.0) -> float:
    """Length in units of λ at ``frequency``, summed over the frusta like NEURON's lambda_f."""
    k = 1e-5 * math.sqrt(4 * math.pi * frequency * ra * cm)
    return sum(math.dist(p[:3], q[:3]) * k / math.sqrt((p[3] + q[3]) / 2) for p, q in zip(points, points[1:]))


def d_lambda(points, ra: float, cm: float, fraction: float = 0.1) -> int:
    """NEURON's d_lambda rule: odd nseg, each piece shorter than ``fraction`` λ(100 Hz)."""
    return int((electrotonic_length(points, ra, cm) / fraction + 0.9) / 2) * 2 + 1


def pyramidal() -> list:
    widest_child = {}
    for row in PYR_SECTIONS:
        if row[1] not in (None, "soma"):
            widest_child[row[1]] = max(widest_child.get(row[1], 0.0), row[4])
    sections = []
    for name, parent, end, length, diameter, nseg, angle, plane, swc, groups in PYR_SECTIONS:
        if parent is None:
            sections.append(_soma(length, diameter))
            continue
        p = next(s for s in sections if s.name == parent)
        origin = p.points[-1 if end == 1.0 else 0][:3]
        d_in = None if p.swc == 1 else p.points[-1][3]
        knots = _knots(((0.0, length, diameter, diameter),), d_in, widest_child.get(name))
        sections.append(Section(name, swc, parent, end, _place(origin, _direction(angle, plane), knots), nseg, groups))
    return sections


def interneuron(kind: str) -> list:
    if kind == "OLM":
        return _olm()
    spec = INTERNEURONS[kind]
    ra, cm = PASSIVE[spec.passive]
    soma = _soma(spec.soma_length, 10.0)
    sections = [soma]
    shape = {"PV": (PV_APICAL, PV_APICAL, PV_BASAL), "CCK": (CCK_APICAL_TAPERED, CCK_APICAL, CCK_BASAL)}[spec.shape]
    branches = [("apical1", 4, 1.0, spec.apical[0], shape[0]), ("apical2", 4, 1.0, spec.apical[1], shape[1]),
                ("basal1", 3, 0.0, spec.basal[0], shape[2]), ("basal2", 3, 0.0, spec.basal[1], shape[2])]
    for name, swc, end, angle, profile in branches:
        group = SWC_TYPE_NAMES[swc]
        origin = soma.points[1 if end == 1.0 else 0][:3]
        prox, dist = _cut(_knots(profile), spec.cut)
        direction = _direction(angle, "xz")
        for part, knots, parent in (("prox", prox, "soma"), ("dist", dist, f"{name}_prox")):
            points = _place(origin, direction, knots)
            sections.append(Section(f"{name}_{part}", swc, parent, end if part == "prox" else 1.0, points,
                                    d_lambda(points, ra, cm), (group, f"{group}_{part}", f"dendrite_{part}")))
    return sections


def _olm() -> list:
    ra, cm = PASSIVE["OLM"]
    soma = _soma(OLM["soma_length"], 10.0)
    sections = [soma]
    for i, angle in enumerate(OLM["dendrites"], 1):
        knots = _knots(((0.0, OLM["dendrite_length"], OLM["dendrite_diameter"], OLM["dendrite_diameter"]),))
        points = _place(soma.points[1][:3], _direction(angle, "xz"), knots)
        sections.append(Section(f"dend{i}", 3, "soma", 1.0, points, d_lambda(points, ra, cm), ("basal",)))
    knots = _knots(((0.0, OLM["axon_length"], OLM["axon_diameter"], OLM["axon_diameter"]),))
    points = _place(soma.points[0][:3], _direction(OLM["axon"], "yz"), knots)
    sections.append(Section("axon", 2, "soma", 0.0, points, d_lambda(points, ra, cm), ()))
    return sections


def cell(kind: str) -> list:
    return pyramidal() if kind == "PYR" else interneuron(kind)


def reference_depth(kind: str) -> float:
    return PYR_DEPTH if kind == "PYR" else OLM["depth"] if kind == "OLM" else INTERNEURONS[kind].depth


# -- writers ---------------------------------------------------------------------------------
def _num(v: float) -> str:
    text = f"{v:.{DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _summary(kind: str, sections) -> list:
    """Lines describing the cell, for the comments of both files."""
    lines = [f"{kind}: generated by specs/morphologies/generate.py (do not edit; run it again).",
             "Frame: um, soma centre at the origin, +z = layer (depth) axis towards SLM.",
             f"Reference soma depth z0 = {_num(reference_depth(kind))} um (SO 0-100, SP 100-150, SR 150-350, SLM 350-450).",
             "Sections (name: nseg): " + ", ".join(f"{s.name}: {s.nseg}" for s in sections) + "."]
    return lines


def swc_text(kind: str, sections) -> str:
    out = [f"# {line}" for line in _summary(kind, sections)]
    out.append("# id type x y z radius parent")
    ids, last = {}, 0
    rows = []
    for sec in sections:
        if sec.swc == 1:
            for k, (x, y, z, d) in enumerate(sec.points):
                last += 1
                rows.append((last, 1, x, y, z, d / 2, -1 if k == 0 else last - 1))
            ids[sec.name] = (1, last)
            continue
        first, tail = ids[sec.parent]
        parent_id = first if sec.end == 0.0 else tail
        start = last + 1
        for x, y, z, d in sec.points[1:]:
            last += 1
            rows.append((last, sec.swc, x, y, z, d / 2, parent_id))
            parent_id = last
        ids[sec.name] = (start, last)
    out += [f"{i} {t} {_num(x)} {_num(y)} {_num(z)} {_num(r)} {p}" for i, t, x, y, z, r, p in rows]
    return "\n".join(out) + "\n"


def _groups(kind: str, sections) -> list:
    """(id, neuroLexId or None, [section names]) of the named groups, in file order."""
    names = [s.name for s in sections]

    def where(test):
        return [s.name for s in sections if test(s)]

    groups = [("soma_group", NEUROLEX["soma"], where(lambda s: s.swc == 1))]
    axon = where(lambda s: s.swc == 2)
    if axon:
        groups.append(("axon_group", NEUROLEX["axon"], axon))
    groups.append(("dendrite_group", NEUROLEX["dendrite"], where(lambda s: s.swc in (3, 4))))
    seen = {g[0] for g in groups} | set(names)
    extra = []
    if kind == "PYR":
        extra += ["apical", "trunk", "oblique", "tuft", "basal"]
    else:
        extra += [g for s in sections for g in s.groups]
    for g in dict.fromkeys(extra):
        if g in seen:
            continue
        if g == "apical":
            members = where(lambda s: s.swc == 4)
        elif g == "basal":
            members = where(lambda s: s.swc == 3)
        else:
            members = where(lambda s, g=g: g in s.groups)
        groups.append((g, None, members))
        seen.add(g)
    groups.append(("all", None, names))
    return groups


def nml_text(kind: str, sections) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<neuroml xmlns="http://www.neuroml.org/schema/neuroml2"',
           '         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"',
           '         xsi:schemaLocation="http://www.neuroml.org/schema/neuroml2 '
           'https://raw.github.com/NeuroML/NeuroML2/development/Schemas/NeuroML2/NeuroML_v2.3.xsd"',
           f'         id="{kind}_morph">', "",
           "    <notes>", *(f"        {line}" for line in _summary(kind, sections)),
           "        Same points as " + f"{kind}.swc" + "; sources and choices: the docstring of generate.py.",
           "    </notes>", "",
           f'    <morphology id="{kind}_morphology">']
    seg_ids: dict = {}
    next_id = 0
    for sec in sections:
        own = []
        for k in range(1, len(sec.points)):
            sid = next_id
            next_id += 1
            own.append(sid)
            name = sec.name if len(sec.points) == 2 else f"{sec.name}_{k - 1}"
            out.append(f'        <segment id="{sid}" name="{name}">')
            if k == 1:
                if sec.parent is not None:
                    parent_segs = seg_ids[sec.parent]
                    if sec.end == 0.0:
                        out.append(f'            <parent segment="{parent_segs[0]}" fractionAlong="0"/>')
                    else:
                        out.append(f'            <parent segment="{parent_segs[-1]}"/>')
                x, y, z, d = sec.points[0]
                out.append(f'            <proximal x="{_num(x)}" y="{_num(y)}" z="{_num(z)}" diameter="{_num(d)}"/>')
            else:
                out.append(f'            <parent segment="{sid - 1}"/>')
            x, y, z, d = sec.points[k]
            out.append(f'            <distal x="{_num(x)}" y="{_num(y)}" z="{_num(z)}" diameter="{_num(d)}"/>')
            out.append("        </segment>")
        seg_ids[sec.name] = own
    out.append("")
    for sec in sections:
        out.append(f'        <segmentGroup id="{sec.name}" neuroLexId="{NEUROLEX["section"]}">')
        out.append(f'            <property tag="numberInternalDivisions" value="{sec.nseg}"/>')
        out += [f'            <member segment="{sid}"/>' for sid in seg_ids[sec.name]]
        out.append("        </segmentGroup>")
    for gid, lex, members in _groups(kind, sections):
        out.append(f'        <segmentGroup id="{gid}"' + (f' neuroLexId="{lex}"' if lex else "") + ">")
        out += [f'            <include segmentGroup="{m}"/>' for m in members]
        out.append("        </segmentGroup>")
    out += ["    </morphology>", "", "</neuroml>"]
    return "\n".join(out) + "\n"


def write(folder: Path = HERE) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in TYPES:
        sections = cell(kind)
        for name, text in ((f"{kind}.swc", swc_text(kind, sections)), (f"{kind}.morph.nml", nml_text(kind, sections))):
            path = folder / name
            path.write_bytes(text.encode("ascii"))
            written.append(path)
    return written


def main(argv: list[str]) -> int:
    folder = Path(argv[1]) if len(argv) > 1 else HERE
    for path in write(folder):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
