"""specs/CA1.yaml against the CA1 reference sheet (shared/reference/ca1.md, "§x" below).

The spec is checked at full scale, from the spec alone (nothing is built): the cell counts
(§1.2), depth limits (§1.3), axon extents (§1.4), input drives (NOTES-CA1.md §5), synapses per
cell (§4.3), the convergence matrix (§4.5: expected synapses per post cell from each pre
population, from the sites' means and the normalised proportions), the total synapse count
(§6) and the build estimate.

Until the 12 CA1 cells load (specs/cells/*.cell.nml are being written; livn's reader is being
extended), the spec is loaded from a copy whose cells are the stand-ins of
tests/data/ca1_layers/cells (PYR_standin for PYR, PVBC_standin for every interneuron). Once
``load_spec("specs/CA1.yaml")`` succeeds the real cells are used, with no change here. Sites
are also checked against the real morphologies (specs/morphologies/<T>.morph.nml), which the
stand-ins do not have (e.g. OLM has no apical dendrite).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from livn.build.estimate import estimate
from livn.spec import SpecError, load_spec

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
SPEC = SPECS / "CA1.yaml"
STANDINS = REPO / "tests" / "data" / "ca1_layers" / "cells"

SIMULATED = ["PYR", "PVBC", "AAC", "BS", "CCKBC", "IVY", "NGFC", "OLM", "SCA", "IS1", "IS2", "IS3"]
INPUTS = ["CA3", "CA2", "EC"]

#: §1.2: cells per layer (IS2: the layer counts, 1820; NOTES-CA1.md §1.5)
COUNTS = {
    "PYR": {"SP": 311_500}, "PVBC": {"SO": 1_320, "SP": 3_880, "SR": 330}, "AAC": {"SO": 350, "SP": 1_030},
    "BS": {"SO": 530, "SP": 1_550, "SR": 130}, "CCKBC": {"SO": 780, "SP": 940, "SR": 1_170, "SLM": 710},
    "IVY": {"SO": 980, "SP": 5_410, "SR": 2_420}, "NGFC": {"SR": 610, "SLM": 2_970}, "OLM": {"SO": 1_640},
    "SCA": {"SR": 400}, "IS1": {"SO": 780, "SP": 1_800, "SR": 780, "SLM": 890},
    "IS2": {"SP": 480, "SR": 450, "SLM": 890}, "IS3": {"SP": 910, "SR": 220, "SLM": 120},
    "CA3": {"SR": 204_700}, "CA2": {"SO": 40_000}, "EC": {"SLM": 250_000},
}

#: §1.3: soma depth limits (µm)
DEPTHS = {"PYR": ("SP", 100, 150), "PVBC": ("SR", 150, 200), "CCKBC": ("SLM", 350, 370),
          "AAC": ("SO", 80, 100), "SCA": ("SR", 330, 350)}

#: §1.4: axon extent [width u, width v] (µm)
EXTENTS = {"PYR": (1000, 1000), "PVBC": (1185, 1042), "AAC": (600, 850), "BS": (1530, 1150),
           "CCKBC": (1000, 1000), "IVY": (1310, 750), "NGFC": (1200, 500), "OLM": (840, 500),
           "SCA": (1000, 1000), "IS1": (800, 150), "IS2": (800, 150), "IS3": (800, 150),
           "CA3": (2000, 2000), "CA2": (2000, 2000), "EC": (2000, 2000)}

#: §4.3: synapses per cell (total); CCKBC without its 1.2 soma/SR orphans (§4.5), left out
PER_CELL = {"PYR": 20_905, "PVBC": 5_772, "AAC": 6_525, "BS": 5_972, "CCKBC": 2_147 - 1.2, "IVY": 6_988,
            "NGFC": 3_474, "OLM": 3_623, "SCA": 1_737, "IS1": 1_646, "IS2": 2_115, "IS3": 5_327}

#: §4.5: expected synapses per post cell (rows) from each pre population (columns); values
#: below 10 are given to 0.1, the others to 1
CONVERGENCE = {
    "PYR": {"EC": 4_175, "CA3": 10_430, "CA2": 4_737, "PYR": 302, "PVBC": 89, "AAC": 34, "BS": 85, "CCKBC": 57,
            "IVY": 383, "NGFC": 374, "OLM": 228, "SCA": 13},
    "PVBC": {"EC": 954, "CA3": 1_535, "CA2": 438, "PYR": 1_308, "PVBC": 601, "BS": 56, "CCKBC": 3.0, "IVY": 202,
             "NGFC": 397, "OLM": 270, "SCA": 8.0},
    "AAC": {"EC": 954, "CA3": 1_535, "CA2": 438, "PYR": 1_308, "PVBC": 2_065, "BS": 8.9, "CCKBC": 3.0, "IVY": 31,
            "NGFC": 107, "OLM": 73, "SCA": 2.1},
    "BS": {"EC": 954, "CA3": 1_745, "CA2": 545, "PYR": 1_524, "PVBC": 181, "BS": 27, "CCKBC": 136, "IVY": 100,
           "NGFC": 200, "OLM": 133, "SCA": 6.7, "IS1": 240, "IS3": 180},
    "CCKBC": {"EC": 358, "CA3": 540, "CA2": 149, "PYR": 236, "PVBC": 102, "BS": 65, "CCKBC": 82, "IVY": 215,
              "NGFC": 145, "OLM": 101, "SCA": 11, "IS1": 93, "IS2": 25, "IS3": 25},
    "IVY": {"CA3": 2_936, "CA2": 1_009, "PYR": 1_943, "PVBC": 4.6, "BS": 280, "CCKBC": 95, "IVY": 368, "NGFC": 36,
            "SCA": 104, "IS1": 140, "IS2": 72},
    "NGFC": {"EC": 1_747, "CA3": 125, "BS": 160, "IVY": 320, "NGFC": 214, "OLM": 854, "SCA": 53},
    "OLM": {"PYR": 2_836, "OLM": 472, "IS3": 315},
    "SCA": {"EC": 623, "CA3": 121, "CA2": 52, "PYR": 315, "PVBC": 51, "BS": 4.6, "CCKBC": 69, "IVY": 4.8,
            "NGFC": 254, "OLM": 177, "SCA": 0.8, "IS1": 58, "IS2": 7.6},
    "IS1": {"CA3": 698, "CA2": 203, "PYR": 396, "PVBC": 1.2, "BS": 48, "IVY": 210, "SCA": 23, "IS1": 43, "IS2": 24},
    "IS2": {"EC": 1_133, "CA3": 632, "NGFC": 313, "SCA": 22, "IS1": 15},
    "IS3": {"EC": 1_313, "CA3": 1_638, "CA2": 349, "PYR": 960, "PVBC": 2.0, "BS": 207, "IVY": 333, "NGFC": 328,
            "SCA": 22, "IS1": 109, "IS2": 65},
}


def _about_cells(problem) -> bool:
    """A problem of the cells (a missing cell file, or NeuroML livn cannot read yet)."""
    parts = Path(problem.file).parts
    return problem.path.endswith(".cell") or bool({"cells", "channels", "morphologies"} & set(parts))


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    try:
        return load_spec(SPEC)
    except SpecError as err:
        others = [p for p in err.problems if p.severity == "error" and not _about_cells(p)]
        if others:
            raise
    text = SPEC.read_text()
    text = text.replace("cell: cells/PYR.cell.nml", f"cell: {STANDINS / 'PYR_standin.cell.nml'}")
    text = re.sub(r"cell: cells/\w+\.cell\.nml", f"cell: {STANDINS / 'PVBC_standin.cell.nml'}", text)
    text = text.replace("model: synapses/", f"model: {SPECS / 'synapses'}/")
    copy = tmp_path_factory.mktemp("ca1") / "CA1.yaml"
    copy.write_text(text)
    return load_spec(copy)


def _kind(spec, projection) -> str:
    return "exc" if spec.population(projection.source).role == "excitatory" else "inh"


def _synapses(spec, projection) -> float:
    """Expected synapses per target cell from ``projection``: each site's mean times the
    projection's proportion, normalised over the projections supplying that site (§4.1 step 2)."""
    target, kind = spec.population(projection.target), _kind(spec, projection)
    total = 0.0
    for group, layer, proportion in projection.sites:
        mean = next(s.mean for s in target.synapses if (s.group, s.layer, s.kind) == (group, layer, kind))
        shares = sum(p for other in spec.projections if other.target == target.name and _kind(spec, other) == kind
                     for g, l, p in other.sites if (g, l) == (group, layer))
        total += mean * proportion / shares
    return total


def test_populations_counts_and_roles(spec):
    assert [p.name for p in spec.populations] == SIMULATED + INPUTS
    for name, layers in COUNTS.items():
        population = spec.population(name)
        assert dict(population.layers) == layers, name
        assert population.role == ("excitatory" if name in ["PYR"] + INPUTS else "inhibitory"), name
        assert population.virtual == (name in INPUTS), name
    assert spec.num_neurons == 345_970
    assert sum(p.count for p in spec.virtual) == 494_700
    assert [(layer.name, layer.z0, layer.z1) for layer in spec.layers] == \
        [("SO", 0, 100), ("SP", 100, 150), ("SR", 150, 350), ("SLM", 350, 450)]
    assert spec.size == (4000, 4000) and spec.mea.grid == (16, 16)


def test_depth_limits_and_axon_extents(spec):
    for population in spec.populations:
        expected = DEPTHS.get(population.name)
        assert population.depth == ((expected,) if expected else ()), population.name
        assert population.axon_extent == EXTENTS[population.name], population.name


def test_input_drives(spec):
    """NOTES-CA1.md §5: Poisson, 8 Hz theta of depth 0.5; EC peaks at 0, CA3/CA2 at 180°."""
    expected = {"CA3": (1.5, 180), "CA2": (1.0, 180), "EC": (2.0, 0)}
    for name, (rate, phase) in expected.items():
        drive = spec.population(name).drive
        assert drive.rate == rate and drive.theta.frequency == 8 and drive.theta.depth == 0.5, name
        assert drive.theta.phase == pytest.approx(math.radians(phase)), name


def test_synapses_per_cell(spec):
    """§4.3 totals per cell (sites of zero capacity and the CCKBC orphans left out, §4.5)."""
    for name, total in PER_CELL.items():
        assert sum(s.mean for s in spec.population(name).synapses) == pytest.approx(total, rel=1e-3), name


def test_every_site_is_supplied_and_its_proportions_sum_to_one(spec):
    for population in spec.simulated:
        for site in population.synapses:
            total = sum(p for projection in spec.projections if projection.target == population.name
                        and _kind(spec, projection) == site.kind
                        for g, l, p in projection.sites if (g, l) == (site.group, site.layer))
            assert total == pytest.approx(1.0, abs=1e-9), (population.name, site.name)


def test_sites_exist_on_the_real_morphologies(spec):
    """Every site's segment group is a group of the type's own morphology (the stand-in cells
    have the PYR and PVBC groups only)."""
    for population in spec.simulated:
        text = (SPECS / "morphologies" / f"{population.name}.morph.nml").read_text()
        groups = set(re.findall(r'<segmentGroup id="([^"]+)"', text))
        for site in population.synapses:
            assert site.group in groups, (population.name, site.name, sorted(groups))


def test_convergence_matches_the_sheet(spec):
    """§4.5 within 2 %, or within the table's rounding (0.05 below 10, else 0.5) where that
    is larger (e.g. SCA -> SCA: 25.3 x 0.03 = 0.76, given as 0.8)."""
    found = {}
    for projection in spec.projections:
        found.setdefault(projection.target, {})[projection.source] = _synapses(spec, projection)
    assert {post: set(row) for post, row in found.items()} == {post: set(row) for post, row in CONVERGENCE.items()}
    assert len(spec.projections) == 120
    for post, row in CONVERGENCE.items():
        for pre, expected in row.items():
            tolerance = max(0.02 * expected, 0.05 if expected < 10 else 0.5)
            assert abs(found[post][pre] - expected) <= tolerance, (pre, post, found[post][pre], expected)


def test_total_synapses_and_estimate(spec):
    """§6: ≈ 6.67e9 synapses at full scale; the estimate counts one edge per synapse and receptor."""
    synapses = {p.name: _synapses(spec, p) * spec.population(p.target).count for p in spec.projections}
    assert sum(synapses.values()) == pytest.approx(6.672e9, rel=0.01)
    per_site = sum(p.count * sum(s.mean for s in p.synapses) for p in spec.simulated)
    assert sum(synapses.values()) == pytest.approx(per_site, rel=1e-9)  # every site supplied
    edges = sum(synapses[p.name] * len(p.receptors) for p in spec.projections)
    assert estimate(spec).edges == pytest.approx(edges, rel=1e-9)


def test_receptors_are_named_by_their_kinetics(spec):
    """AMPA_0p5_3: rise 0.5 ms, decay 3 ms; a suffix _em75 is e = -75 mV (§4.4)."""
    default_e = {"AMPA": 0, "NMDA": 0, "GABAA": -70, "GABAB": -90}
    for receptor in spec.receptors:
        kind, rise, decay, *rest = receptor.name.split("_")
        erev = -float(rest[0][2:]) if rest else default_e[kind]
        expected = tuple(float(x.replace("p", ".")) for x in (rise, decay)) + (erev,)
        assert receptor.kinetics == pytest.approx(expected), receptor.name
        assert receptor.component_id == receptor.name
    used = {r for p in spec.projections for r in p.receptors}
    assert used == {r.name for r in spec.receptors}
