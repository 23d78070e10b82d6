"""Specs: the shipped ones validate; bad ones get every problem at once, located."""

import re

import pytest

from livn.resources import predefined_names, spec_path
from livn.spec import SpecError, check_spec, load_spec

from conftest import run_livn

EXPECTED = {"EI1": (10, 8, 2, 40, 1), "EI2": (100, 80, 20, 400, 16),
            "EI3": (1000, 800, 200, 1000, 64), "EI4": (10000, 8000, 2000, 4000, 1024)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_specs_describe_the_standard_systems(name):
    spec = load_spec(spec_path(name))
    neurons, exc, inh, side, channels = EXPECTED[name]
    assert spec.num_neurons == neurons
    assert [(p.name, p.count, p.role) for p in spec.populations] == [("EXC", exc, "excitatory"), ("INH", inh, "inhibitory")]
    assert spec.size == (side, side)
    assert spec.mea.grid[0] * spec.mea.grid[1] == channels
    assert {p.name for p in spec.projections} == {"EXC->EXC", "EXC->INH", "INH->EXC", "INH->INH"}
    for p in spec.projections:
        assert p.kernel.sigma == 200.0
        excitatory = p.source == "EXC"
        assert p.receptors == (("AMPA", "NMDA") if excitatory else ("GABA_A",))
        assert p.onto == ("dendrite" if excitatory else "soma")
    assert spec.delay.velocity == 250.0
    assert set(spec.weight_names) == {"EXC->EXC.AMPA", "EXC->EXC.NMDA", "EXC->INH.AMPA", "EXC->INH.NMDA",
                                      "INH->EXC.GABA_A", "INH->INH.GABA_A"}


def test_predefined_names_are_the_shipped_specs():
    assert set(EXPECTED) <= set(predefined_names())


def test_ca1_validates_at_a_scale_and_full_scale_names_one_that_fits_here():
    small = run_livn("validate", "CA1", "--scale", "0.002", "--target", "neuron")
    assert small.returncode == 0, small.stderr
    assert "CA1.yaml: OK (694 neurons, 15 populations, 120 projections" in small.stdout and "runs on neuron" in small.stdout
    full = run_livn("validate", "CA1")
    # 1.3e10 edges, ~0.9 TB: more than this machine's disk; the message names a scale that fits
    assert full.returncode == 1 and "~1.3e+10 edges" in full.stderr and "fits here" in full.stderr, full.stderr
    assert "Traceback" not in full.stderr


def test_validate_command_accepts_good_specs_by_name_and_path():
    result = run_livn("validate", "EI3", spec_path("EI1"))
    assert result.returncode == 0, result.stderr
    assert "EI3.yaml: OK (1000 neurons" in result.stdout
    assert "EI1.yaml: OK (10 neurons" in result.stdout


def line_of(path, text):
    """1-based line of the first line of ``path`` containing ``text``."""
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


# (description, edit of the YAML text, expected path, words the message must contain, line marker)
BAD = [
    ("missing key", lambda s: s.replace("seed: 2\n", ""), "", ["missing required key 'seed'"], None),
    ("wrong type", lambda s: s.replace("neurons: 100", "neurons: many"), "culture.neurons",
     ["expected an integer", "'many'"], "neurons: many"),
    ("negative count", lambda s: s.replace("neurons: 100", "neurons: -100"), "culture.neurons",
     ["expected a value ≥ 1", "-100"], "neurons: -100"),
    ("fractions", lambda s: s.replace("fraction: 0.2", "fraction: 0.3"), "populations",
     ["fractions must sum to 1", "1.1", "EXC 0.8 + INH 0.3"], "populations:"),
    ("unknown population", lambda s: s.replace("INH -> INH:", "INH -> PV:"), "connectivity.projections.INH -> PV",
     ["unknown population 'PV'", "EXC, INH"], "INH -> PV:"),
    ("unknown receptor", lambda s: s.replace("[GABA_A], onto: soma}\n    INH -> INH", "[GABA_B], onto: soma}\n    INH -> INH"),
     "connectivity.projections.INH -> EXC.receptors[0]", ["unknown receptor 'GABA_B'", "AMPA, NMDA, GABA_A"], "[GABA_B]"),
    ("missing NeuroML file", lambda s: s.replace("cells/INH.cell.nml", "cells/PV.cell.nml"), "populations.INH.cell",
     ["cell file 'cells/PV.cell.nml' not found"], "cells/PV.cell.nml"),
    ("no unit", lambda s: s.replace("sigma: 200 um", "sigma: 200"), "connectivity.kernel.gaussian.sigma",
     ["expected a length", "the number 200"], "sigma: 200,"),
    ("wrong unit", lambda s: s.replace("velocity: 250 um/ms", "velocity: 250 ms"), "connectivity.delay.velocity",
     ["expected a velocity", "'250 ms'"], "velocity: 250 ms"),
    ("negative synaptic delay", lambda s: s.replace("synaptic: 1 ms", "synaptic: -1 ms"),
     "connectivity.delay.synaptic", ["-1 ms"], "synaptic: -1 ms"),
    ("noise density without time unit", lambda s: re.sub(r"g0: [0-9.]+ mS/cm2, sigma: [0-9.]+ mS/cm2", "g0: 0.5 mS/cm2, sigma: 0.1 mS/s", s, count=1),
     "noise.excitatory.sigma", ["conductance"], "sigma: 0.1 mS/s"),
    ("probability out of range", lambda s: s.replace("p_max: 0.74", "p_max: 1.5"), "connectivity.kernel.gaussian.p_max",
     ["≤ 1", "1.5"], "p_max: 1.5"),
    ("cutoff above p_max", lambda s: s.replace("cutoff: 0.1", "cutoff: 0.9"), "connectivity.kernel.gaussian.cutoff",
     ["below p_max"], "cutoff: 0.9"),
    ("unknown key", lambda s: s.replace("  shape: rectangle", "  shape: rectangle\n  colour: blue"), "culture.colour",
     ["unknown key 'colour'"], "colour: blue"),
    ("non-positive area", lambda s: s.replace("size: [400 um, 400 um]", "size: [0 um, 400 um]"), "culture.size[0]",
     ["> 0"], "size: [0 um"),
    ("weight for no projection", lambda s: s.replace("INH -> INH.GABA_A:", "INH -> INH.AMPA:"),
     "defaults.weights", ["missing default weight(s) for INH->INH.GABA_A"], "  weights:"),
    ("duplicate key", lambda s: s.replace("seed: 2\n", "seed: 2\nseed: 3\n"), "seed", ["duplicate key 'seed'"], "seed: 3"),
    ("seed too large", lambda s: s.replace("seed: 2\n", "seed: 4294967296\n"), "seed",
     ["≤ 4294967295", "4294967296"], "seed: 4294967296"),
    ("YAML syntax", lambda s: s.replace("populations:\n", "populations: [\n"), "", ["not valid YAML"], None),
]


@pytest.mark.parametrize("description, edit, path, words, marker", BAD, ids=[b[0] for b in BAD])
def test_bad_spec_is_reported_with_file_line_and_path(spec_copy, description, edit, path, words, marker):
    spec = spec_copy("EI2", edit)
    result, problems = check_spec(spec)
    assert result is None
    match = [p for p in problems if p.path == path and all(w in p.message for w in words)]
    assert match, f"no problem at {path!r} with {words}; got:\n" + "\n".join(map(str, problems))
    assert match[0].file.endswith("EI2.yaml")
    if marker is not None:
        assert match[0].line == line_of(spec, marker)
    # the command line says the same and fails
    cli = run_livn("validate", spec)
    assert cli.returncode == 1
    assert words[0] in cli.stderr


def test_every_problem_is_reported_at_once(spec_copy):
    def many(s):
        s = s.replace("neurons: 100", "neurons: -5").replace("cells/INH.cell.nml", "cells/PV.cell.nml")
        s = s.replace("INH -> INH:", "INH -> PV:").replace("velocity: 250 um/ms", "velocity: fast")
        return s.replace("seed: 2\n", "")
    spec = spec_copy("EI2", many)
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    paths = {p.path for p in err.value.problems}
    assert {"culture.neurons", "populations.INH.cell", "connectivity.projections.INH -> PV",
            "connectivity.delay.velocity", ""} <= paths
    lines = [p.line for p in err.value.problems if p.line]
    assert lines == sorted(lines), "problems are reported in file order"
    message = str(err.value)
    assert "EI2.yaml:" in message and "populations.INH.cell" in message


def test_problem_inside_a_neuroml_file_names_that_file(spec_copy):
    spec = spec_copy("EI2")
    cell = spec_copy.folder / "cells" / "EXC.cell.nml"
    text = cell.read_text()
    cell.write_text(text.replace("<cell ", '<include href="../channels/Missing.channel.nml"/>\n    <cell ', 1))
    _, problems = check_spec(spec)
    match = [p for p in problems if "Missing.channel.nml" in p.message]
    assert match and match[0].file.endswith("EXC.cell.nml") and match[0].line is not None


def test_onto_needs_the_segment_group(spec_copy):
    spec = spec_copy("EI2")
    cell = spec_copy.folder / "cells" / "INH.cell.nml"
    cell.write_text(cell.read_text().replace('"dendrite_group"', '"dendrites"'))
    _, problems = check_spec(spec)
    assert any(p.path.startswith("connectivity.projections.EXC -> INH.onto") and "dendrite_group" in p.message
               for p in problems), problems


def test_fractions_and_counts_agree(spec_copy):
    spec = spec_copy("EI2", lambda s: s.replace("fraction: 0.8", "count: 80").replace("fraction: 0.2", "count: 30"))
    _, problems = check_spec(spec)
    assert any(p.path == "culture.neurons" and "sum to culture.neurons = 100, found 110" in p.message for p in problems)
    ok = spec_copy("EI2", lambda s: s.replace("count: 30", "count: 20"))
    assert load_spec(ok).num_neurons == 100


def test_spec_is_data_not_code(spec_copy):
    spec = spec_copy("EI2", lambda s: s.replace("seed: 2", "seed: !!python/object/apply:os.system ['true']"))
    _, problems = check_spec(spec)
    assert problems and "not valid YAML" in problems[0].message
