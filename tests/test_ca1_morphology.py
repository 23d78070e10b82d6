"""CA1 morphologies (docs/CA1-plan.md Step 5): specs/morphologies/generate.py and its output.

The figures below are typed from shared/reference/ca1.md ("§x"), not imported from the
generator, so that a change there has to be made twice (and is then deliberate).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from livn.neuroml.cell import read_cell

REPO = Path(__file__).resolve().parents[1]
MORPHOLOGIES = REPO / "specs" / "morphologies"
GENERATOR = MORPHOLOGIES / "generate.py"
NS = "http://www.neuroml.org/schema/neuroml2"

TYPES = ("PYR", "PVBC", "AAC", "BS", "CCKBC", "IVY", "NGFC", "OLM", "SCA", "IS1", "IS2", "IS3")
INTERNEURONS = TYPES[1:]
LAYERS = (("SO", 0.0, 100.0), ("SP", 100.0, 150.0), ("SR", 150.0, 350.0), ("SLM", 350.0, 450.0))  # §1.1

# Soma depth at which the reach is checked: the centre of the type's most populated layer
# (§1.2), or of its depth limit (§1.3) where that limit holds every cell of the type (PYR, SCA).
REFERENCE_DEPTH = {"PYR": 125.0, "PVBC": 125.0, "AAC": 125.0, "BS": 125.0, "CCKBC": 250.0, "IVY": 125.0,
                   "NGFC": 400.0, "OLM": 50.0, "SCA": 340.0, "IS1": 125.0, "IS2": 400.0, "IS3": 125.0}

# §4.3 "Per (section/layer/class)": every (group, layer) with synapses > 0, as (exc, inh) per
# cell. The §4.5 zero-capacity sites have no entry there, so none here; the CCKBC soma/SR
# orphans (0.7 + 0.5, no projection names them; plan row "§4.5") are left out like in the spec.
SITES = {
    "PYR": {("ais", "SP"): (0, 34.0), ("apical", "SLM"): (4174.8, 695.8), ("apical", "SR"): (5390.3, 168.4),
            ("basal", "SO"): (10078.4, 359.9), ("soma", "SP"): (0, 3.7)},
    "PVBC": {("apical", "SLM"): (954.3, 667.3), ("apical", "SR"): (1106.6, 266.0), ("basal", "SO"): (2166.0, 600.0),
             ("soma", "SP"): (8.0, 3.6)},
    "AAC": {("apical", "SLM"): (954.3, 180.2), ("apical", "SR"): (1106.6, 42.6), ("basal", "SO"): (2166.0, 2064.0),
            ("soma", "SP"): (8.0, 3.6)},
    "BS": {("apical", "SLM"): (954.3, 333.7), ("apical", "SP"): (533.3, 133.3), ("apical", "SR"): (1106.6, 133.0),
           ("basal", "SO"): (2166.0, 600.0), ("soma", "SP"): (8.0, 3.6)},
    "CCKBC": {("apical", "SLM"): (357.8, 245.2), ("apical", "SR"): (574.6, 359.1), ("basal", "SO"): (337.7, 249.3),
              ("soma", "SP"): (12.9, 9.5)},
    "IVY": {("apical", "SR"): (3792.0, 720.0), ("basal", "SO"): (1691.7, 321.2), ("basal", "SP"): (204.3, 38.8),
            ("soma", "SP"): (200.0, 20.0)},
    "NGFC": {("apical", "SLM"): (1248.0, 1068.0), ("basal", "SLM"): (624.0, 534.0)},
    "OLM": {("basal", "SO"): (2828.3, 783.5), ("soma", "SO"): (8.0, 3.6)},
    "SCA": {("apical", "SLM"): (623.3, 430.7), ("apical", "SR"): (36.7, 25.3), ("basal", "SR"): (450.0, 168.0),
            ("soma", "SR"): (1.3, 1.8)},
    "IS1": {("apical", "SR"): (731.4, 239.8), ("basal", "SO"): (564.0, 108.0), ("soma", "SP"): (1.4, 1.2)},
    "IS2": {("apical", "SLM"): (1133.3, 226.7), ("apical", "SR"): (66.7, 13.3), ("basal", "SR"): (564.0, 108.0),
            ("soma", "SR"): (1.4, 1.2)},
    "IS3": {("apical", "SLM"): (1313.1, 328.3), ("apical", "SR"): (1743.4, 435.9), ("basal", "SO"): (1200.0, 300.0),
            ("soma", "SP"): (4.0, 2.0)},
}
# A soma carries its synapses in whatever layer it sits. §4.3's soma layer is the SWC label;
# for two types it is not the layer of the reference depth (CCKBC: 1,170 of 3,600 in SR;
# IS2: 890 of 1,820 in SLM). The spec has to name those soma sites without a layer, or the
# cells outside the labelled layer lose them.
SOMA_LAYER_AT_REFERENCE = {"CCKBC": "SR", "IS2": "SLM"}

# §2.3 runtime PYR: name -> (parent, where on the parent, L µm, diam µm, nseg).
PYR = {
    "soma": (None, None, 10, 20, 1),
    "hillock": ("soma", 0.0, 20, 2.25, 1), "ais": ("hillock", 1.0, 10, 1.0, 1), "axon": ("ais", 1.0, 150, 0.5, 5),
    "radTprox": ("soma", 1.0, 80, 2.75, 1), "radTmed": ("radTprox", 1.0, 70, 2.5, 1),
    "radTdist1": ("radTmed", 1.0, 50, 2.0, 1), "radTdist2": ("radTdist1", 1.0, 50, 1.75, 1),
    "radTdist3": ("radTdist2", 1.0, 50, 1.5, 1),
    **{f"rad_thick{i}": ("radTmed", 1.0, 50, 1.9, 1) for i in (1, 2)},
    **{f"rad_medium{i}": (f"rad_thick{i}", 1.0, 50, 1.5, 1) for i in (1, 2)},
    **{f"rad_thin{i}{b}": (f"rad_medium{i}", 1.0, 75, 0.95, 3) for i in (1, 2) for b in "ab"},
    "lm_thick1": ("radTdist3", 1.0, 50, 0.95, 1), "lm_thick2": ("radTdist3", 1.0, 100, 0.75, 3),
    **{f"lm_medium{i}": (f"lm_thick{i}", 1.0, 50, 0.9, 3) for i in (1, 2)},
    **{f"lm_thin{i}{b}": (f"lm_medium{i}", 1.0, 75, 0.6, 3) for i in (1, 2) for b in "ab"},
    **{f"oriprox{i}": ("soma", 0.0, 75, 1.6, 3) for i in (1, 2)},
    **{f"oridist{i}{b}": (f"oriprox{i}", 1.0, 75, 1.1, 3) for i in (1, 2) for b in "ab"},
}
TRUNK = ("radTprox", "radTmed", "radTdist1", "radTdist2", "radTdist3")
# §2.3 "Membrane area ✔", µm², rounded to integers there. The AIS's 31 is 10·π = 31.42, 1.3 %
# above it, so the tolerance is 1 % or the half unit of the rounding, whichever is larger.
PYR_AREAS = {"soma_group": 628, "apical": 5262, "basal": 1791, "axon": 236, "hillock": 142, "ais": 31}

# §2.1 stepwise diameters (2 × radius) at mid-piece path distances (µm from the soma).
PV_DIAMETERS = {"apical": {50: 4.0, 150: 3.0, 300: 2.0, 450: 1.5, 550: 1.0}, "basal": {50: 2.0, 150: 1.5, 250: 1.0}}
CCK_DIAMETERS = {"apical": {75: 3.5, 150: 2.5, 300: 1.5, 450: 1.2, 550: 1.0},
                 "basal": {25: 1.75, 75: 1.5, 150: 1.2, 250: 1.0}}
SHAPE = {**{t: PV_DIAMETERS for t in ("PVBC", "AAC", "BS", "IVY", "NGFC")},
         **{t: CCK_DIAMETERS for t in ("CCKBC", "SCA", "IS1", "IS2", "IS3")}}
SOMA_LENGTH = {**{t: 20.0 for t in ("PVBC", "AAC", "BS", "CCKBC", "IVY", "NGFC", "OLM")},
               **{t: 10.0 for t in ("SCA", "IS1", "IS2", "IS3")}}
PROX_CUT = {**{t: 100.0 for t in ("PVBC", "AAC", "BS", "CCKBC", "IVY", "NGFC", "SCA")},
            **{t: 150.0 for t in ("IS1", "IS2", "IS3")}}  # plan row "§7.5"
# Final Ra (Ω·cm) and dendritic cm (µF/cm²) of §2.2, for the d_lambda rule (plan row "§7.6").
PASSIVE = {"PVBC": (100, 1.4), "AAC": (100, 1.4), "BS": (100, 1.4), "CCKBC": (150, 1.0), "SCA": (150, 1.0),
           "IVY": (14, 1.8), "NGFC": (14, 1.8), "OLM": (150, 1.3), "IS1": (100, 1.1), "IS2": (100, 1.1),
           "IS3": (100, 1.1)}


def layer_of(z: float) -> str | None:
    for name, lo, hi in LAYERS:
        if lo <= z < hi or (name == "SLM" and z == hi):
            return name
    return None


def _cell_file(kind: str, folder: Path, morphology: bool) -> Path:
    """A minimal cell around the standalone morphology (or without one, for the SWC): livn's
    reader takes cells, not bare <morphology> documents, and does not yet resolve
    <cell morphology="...">."""
    root = etree.Element(f"{{{NS}}}neuroml", nsmap={None: NS}, id=f"{kind}_test")
    cell = etree.SubElement(root, f"{{{NS}}}cell", id=kind)
    if morphology:
        doc = etree.parse(str(MORPHOLOGIES / f"{kind}.morph.nml"))
        cell.append(doc.getroot().find(f"{{{NS}}}morphology"))
    bio = etree.SubElement(cell, f"{{{NS}}}biophysicalProperties", id=f"{kind}_bio")
    membrane = etree.SubElement(bio, f"{{{NS}}}membraneProperties")
    etree.SubElement(membrane, f"{{{NS}}}spikeThresh", value="-20mV")
    etree.SubElement(membrane, f"{{{NS}}}specificCapacitance", value="1.0uF_per_cm2")
    etree.SubElement(membrane, f"{{{NS}}}initMembPotential", value="-65mV")
    intra = etree.SubElement(bio, f"{{{NS}}}intracellularProperties")
    etree.SubElement(intra, f"{{{NS}}}resistivity", value="100ohm_cm")
    path = folder / f"{kind}{'' if morphology else '_bare'}.cell.nml"
    path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return path


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    """Type -> livn Cell read from T.morph.nml."""
    folder = tmp_path_factory.mktemp("ca1_nml")
    return {kind: read_cell(_cell_file(kind, folder, True), kind) for kind in TYPES}


@pytest.fixture(scope="module")
def swc_cells(tmp_path_factory):
    """Type -> livn Cell read from T.swc."""
    folder = tmp_path_factory.mktemp("ca1_swc")
    return {kind: read_cell(_cell_file(kind, folder, False), kind, morphology=MORPHOLOGIES / f"{kind}.swc")
            for kind in TYPES}


def _by_name(cell):
    return {s.name: s for s in cell.sections}


def _area(cell, group: str) -> float:
    return sum(cell.sections[i].area for i in cell.sections_in(group))


def _profile(cell, prefix: str):
    """(path distances, diameters) along the dendrite whose sections start with ``prefix``,
    from its origin on the soma."""
    s, d, total = [], [], 0.0
    for sec in cell.sections:
        if sec.name.split("_")[0] == prefix or sec.name == prefix:
            p = sec.xyzd
            steps = [0.0] + [math.dist(a[:3], b[:3]) for a, b in zip(p, p[1:])]
            for k, row in enumerate(p):
                total += steps[k]
                s.append(total)
                d.append(row[3])
    return s, d


def _diameter_at(profile, x: float) -> float:
    s, d = profile
    for k in range(1, len(s)):
        if s[k - 1] <= x <= s[k] and s[k] > s[k - 1]:
            return d[k - 1] + (d[k] - d[k - 1]) * (x - s[k - 1]) / (s[k] - s[k - 1])
    raise AssertionError(f"{x} µm is beyond the dendrite ({s[-1]:.1f} µm)")


def _neuron_d_lambda(section, ra: float, cm: float) -> int:
    """NEURON's d_lambda rule (0.1 λ at 100 Hz, odd) with λ integrated over the 3-D points
    like NEURON's lambda_f."""
    p = section.xyzd
    k = 1e-5 * math.sqrt(4 * math.pi * 100.0 * ra * cm)
    lam = sum(math.dist(a[:3], b[:3]) * k / math.sqrt((a[3] + b[3]) / 2) for a, b in zip(p, p[1:]))
    return int((lam / 0.1 + 0.9) / 2) * 2 + 1


# ------------------------------------------------------------------------------ reproducible
def test_generator_rewrites_the_committed_files(tmp_path):
    ran = subprocess.run([sys.executable, str(GENERATOR), str(tmp_path)], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert ran.returncode == 0, ran.stderr
    expected = sorted(f"{t}{ext}" for t in TYPES for ext in (".swc", ".morph.nml"))
    assert sorted(p.name for p in tmp_path.iterdir()) == expected
    for name in expected:
        assert (tmp_path / name).read_bytes() == (MORPHOLOGIES / name).read_bytes(), \
            f"{name} differs from a fresh run of generate.py: run it and commit the result"


# ------------------------------------------------------------------------------ PYR (§2.3)
def test_pyr_has_the_31_runtime_sections_and_69_compartments(cells):
    cell = cells["PYR"]
    sections = _by_name(cell)
    assert set(sections) == set(PYR) and len(cell.sections) == 31
    assert cell.sections[0].name == "soma"
    for name, (parent, at, length, diameter, nseg) in PYR.items():
        sec = sections[name]
        assert sec.length == pytest.approx(length, abs=1e-3), name
        assert sec.nseg == nseg, name
        # one diameter (§2.3 flattened the tapers to the mean) along all but the sub-µm
        # transitions the generator writes at junctions
        p = sec.xyzd
        longest = max(range(len(p) - 1), key=lambda k: math.dist(p[k, :3], p[k + 1, :3]))
        assert math.dist(p[longest, :3], p[longest + 1, :3]) > length - 1, name
        assert p[longest, 3] == p[longest + 1, 3] == pytest.approx(diameter), name
        if parent is None:
            assert sec.parent == -1
        else:
            assert cell.sections[sec.parent].name == parent, name
            assert sec.parent_x == at, name
    assert len(cell.compartments) == 69


def test_pyr_membrane_areas_match_the_runtime_cell(cells):
    cell = cells["PYR"]
    for group, quoted in PYR_AREAS.items():
        area = _area(cell, group)
        assert abs(area - quoted) <= max(0.01 * quoted, 0.5), (group, area, quoted)
    # each section is a cylinder of the §2.3 L and diam (the transitions keep the area)
    for name, (_, _, length, diameter, _) in PYR.items():
        assert _by_name(cell)[name].area == pytest.approx(math.pi * length * diameter, rel=2e-3), name


def test_pyr_groups(cells):
    cell = cells["PYR"]
    names = lambda group: {cell.sections[i].name for i in cell.sections_in(group)}  # noqa: E731
    assert names("ais") == {"ais"}
    assert names("axon_group") == {"hillock", "ais", "axon"}
    assert names("trunk") == set(TRUNK)
    assert names("oblique") == {n for n in PYR if n.startswith("rad_")}
    assert names("tuft") == {n for n in PYR if n.startswith("lm_")}
    assert names("apical") == names("trunk") | names("oblique") | names("tuft")
    assert names("basal") == {n for n in PYR if n.startswith("ori")}
    assert names("dendrite_group") == names("apical") | names("basal")
    assert names("soma_group") == {"soma"}


def test_pyr_orientation_in_the_layers(cells):
    z0 = REFERENCE_DEPTH["PYR"]
    sections = _by_name(cells["PYR"])
    z = {name: sec.xyzd[:, 2] + z0 for name, sec in sections.items()}
    assert z["radTdist3"][-1] == pytest.approx(430, abs=5)
    for name in PYR:
        if name.startswith("rad_"):
            assert 150 <= z[name].min() and z[name].max() < 350, name  # obliques in SR
        if name.startswith("lm_"):
            assert 350 <= z[name].min() and z[name].max() <= 450, name  # tufts in SLM
        if name.startswith("ori"):
            assert z[name].min() >= 5, name
    assert min(z[f"oridist{i}{b}"][-1] for i in (1, 2) for b in "ab") < 100  # basals reach SO
    for name in ("hillock", "ais", "axon"):  # towards the MEA face
        assert z[name][-1] < z[name][0], name
    assert {layer_of(v) for v in z["ais"]} == {"SP"}


# ------------------------------------------------------------------------------ interneurons (§2.1)
@pytest.mark.parametrize("kind", [t for t in INTERNEURONS if t != "OLM"])
def test_stylised_interneuron_geometry(cells, kind):
    cell = cells[kind]
    soma = cell.soma
    assert soma.length == pytest.approx(SOMA_LENGTH[kind]) and soma.diameter == pytest.approx(10.0)
    assert (soma.xyzd[:, :3].mean(axis=0) == pytest.approx([0, 0, 0], abs=1e-9))
    for group, count, length in (("apical", 2, 600.0), ("basal", 2, 300.0)):
        for i in range(1, count + 1):
            profile = _profile(cell, f"{group}{i}")
            assert profile[0][-1] == pytest.approx(length, abs=1e-3), (group, i)
            for x, d in SHAPE[kind][group].items():
                assert _diameter_at(profile, x) == pytest.approx(d, abs=1e-3), (group, i, x)
            prox = _by_name(cell)[f"{group}{i}_prox"]
            assert prox.length == pytest.approx(PROX_CUT[kind], abs=1e-3), (group, i)
    if SHAPE[kind] is CCK_DIAMETERS:  # §2.1: one apical branch tapers 2.0 -> 1.75 µm over ~50 µm
        assert _diameter_at(_profile(cell, "apical1"), 25) == pytest.approx(3.75, abs=1e-3)
        assert _diameter_at(_profile(cell, "apical2"), 25) == pytest.approx(3.5, abs=1e-3)
    groups = cell.groups
    assert {"soma_group", "dendrite_group", "apical", "basal", "apical_prox", "apical_dist", "basal_prox",
            "basal_dist", "dendrite_prox", "dendrite_dist"} <= groups
    assert "axon_group" not in groups  # §2.1: no axon on these cells
    names = lambda group: {cell.sections[i].name for i in cell.sections_in(group)}  # noqa: E731
    assert names("apical_prox") == {"apical1_prox", "apical2_prox"}
    assert names("dendrite_dist") == {"apical1_dist", "apical2_dist", "basal1_dist", "basal2_dist"}


def test_olm_geometry(cells):
    cell = cells["OLM"]
    sections = _by_name(cell)
    assert set(sections) == {"soma", "dend1", "dend2", "axon"}
    for name in ("dend1", "dend2"):
        sec = sections[name]
        assert sec.length == pytest.approx(391.7, abs=1e-3) and sec.diameter == pytest.approx(3.0)
        assert sec.xyzd[-1, 2] > sec.xyzd[0, 2]  # towards +z
        assert "basal" in sec.groups
    axon = sections["axon"]
    assert axon.length == pytest.approx(150.0, abs=1e-3) and axon.diameter == pytest.approx(1.5)
    assert axon.xyzd[-1, 2] < axon.xyzd[0, 2] and "axon_group" in axon.groups


@pytest.mark.parametrize("kind", INTERNEURONS)
def test_interneuron_nseg_is_d_lambda_with_the_final_passive_properties(cells, kind):
    ra, cm = PASSIVE[kind]
    for sec in cells[kind].sections:
        assert sec.nseg % 2 == 1
        assert sec.nseg == _neuron_d_lambda(sec, ra, cm), sec.name


# ------------------------------------------------------------------------------ reach (the test)
@pytest.mark.parametrize("kind", TYPES)
def test_every_synapse_site_is_reached_at_the_reference_depth(cells, kind):
    cell, z0 = cells[kind], REFERENCE_DEPTH[kind]
    for sec in cell.sections:
        z = sec.xyzd[:, 2] + z0
        assert z.min() >= 0 and z.max() <= 450, (sec.name, z.min(), z.max())  # inside the stack
    soma_layer = layer_of(cell.compartments[0].centre[2] + z0)
    for (group, layer), counts in SITES[kind].items():
        assert sum(counts) > 0
        if group == "soma":
            assert soma_layer == SOMA_LAYER_AT_REFERENCE.get(kind, layer), (kind, soma_layer)
            continue
        members = set(cell.sections_in(group))
        assert members, (kind, group)
        layers = {layer_of(c.centre[2] + z0) for c in cell.compartments if c.section in members}
        assert layer in layers, f"{kind} {group}: no compartment midpoint in {layer} (has {sorted(map(str, layers))})"


# ------------------------------------------------------------------------------ SWC = NeuroML
def _frusta(cell) -> list:
    out = []
    for sec in cell.sections:
        p = sec.xyzd
        out += [tuple(round(float(v), 6) for v in (*a, *b)) for a, b in zip(p, p[1:])]
    return sorted(out)


@pytest.mark.parametrize("kind", TYPES)
def test_swc_and_neuroml_give_the_same_geometry(cells, swc_cells, kind):
    nml, swc = cells[kind], swc_cells[kind]
    assert _frusta(nml) == _frusta(swc)
    for nml_group, swc_group in (("soma_group", "somatic"), ("axon_group", "axonal"), ("basal", "basal"),
                                 ("apical", "apical")):
        assert _area(nml, nml_group) == pytest.approx(_area(swc, swc_group), rel=1e-9), nml_group
        assert sum(nml.sections[i].length for i in nml.sections_in(nml_group)) == pytest.approx(
            sum(swc.sections[i].length for i in swc.sections_in(swc_group)), rel=1e-9), nml_group
    # the SWC joins sections that meet without a branch (prox/dist, trunk pieces): same cable
    assert len(swc.sections) <= len(nml.sections)


def test_a_cell_can_reference_the_morphology_file(tmp_path):
    (tmp_path / "PVBC.morph.nml").write_bytes((MORPHOLOGIES / "PVBC.morph.nml").read_bytes())
    (tmp_path / "PVBC.cell.nml").write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<neuroml xmlns="{NS}" id="PVBC_cell_doc">
    <include href="PVBC.morph.nml"/>
    <cell id="PVBC" morphology="PVBC_morphology">
        <biophysicalProperties id="PVBC_bio">
            <membraneProperties>
                <spikeThresh value="-20mV"/>
                <specificCapacitance value="1.0uF_per_cm2"/>
                <initMembPotential value="-65mV"/>
            </membraneProperties>
            <intracellularProperties>
                <resistivity value="100ohm_cm"/>
            </intracellularProperties>
        </biophysicalProperties>
    </cell>
</neuroml>
""")
    cell = read_cell(tmp_path / "PVBC.cell.nml", "PVBC")
    assert len(cell.sections) == 9 and "apical_prox" in cell.groups


def test_a_dangling_morphology_reference_names_file_and_line(tmp_path):
    from livn.neuroml import NeuroMLError

    (tmp_path / "PVBC.morph.nml").write_bytes((MORPHOLOGIES / "PVBC.morph.nml").read_bytes())
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<neuroml xmlns="{NS}" id="doc">
    <include href="PVBC.morph.nml"/>
    <cell id="PVBC" morphology="PVBC_morfology">
        <biophysicalProperties id="PVBC_bio">
            <membraneProperties><specificCapacitance value="1.0uF_per_cm2"/></membraneProperties>
            <intracellularProperties><resistivity value="100ohm_cm"/></intracellularProperties>
        </biophysicalProperties>
    </cell>
</neuroml>
"""
    (tmp_path / "PVBC.cell.nml").write_text(text)
    with pytest.raises(NeuroMLError) as err:
        read_cell(tmp_path / "PVBC.cell.nml", "PVBC")
    (file, line, message), = err.value.problems
    assert file.endswith("PVBC.cell.nml") and line == 4
    assert "morphology='PVBC_morfology' names no <morphology>" in message
