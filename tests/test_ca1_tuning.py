"""specs/tune_ca1.py: the open-loop tuning circuit is a valid spec that keeps every projection of
CA1, the crossing is where the rate curve first rises through the target, and writing the tuned
factors scales exactly the excitatory weights onto the tuned types."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from livn.spec import load_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.fixture(scope="module")
def tune():
    loader = importlib.util.spec_from_file_location("tune_ca1", SPECS / "tune_ca1.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


def test_the_open_loop_spec_is_valid_and_drives_each_copy_from_sources_at_target_rates(tune, tmp_path):
    ca1 = yaml.safe_load((SPECS / "CA1.yaml").read_text())
    levels = {"PVBC": [0.5, 2.0], "PYR": [1.0]}
    tuning = tune.open_loop_spec(ca1, levels, {"PVBC": 1, "PYR": 2}, scale=1e-4, sources=10)
    path = tmp_path / "open_loop.yaml"
    path.write_text(yaml.safe_dump(tuning, sort_keys=False))
    spec = load_spec(path, 1e-4)  # raises SpecError listing every problem

    populations = tuning["populations"]
    assert {"PVBC_0", "PVBC_1", "PYR_0"} <= set(populations)
    assert "PVBC_2" not in populations and "IVY_0" not in populations
    assert populations["PVBC_in"]["drive"] == {"poisson": {"rate": "25.0 Hz"}}
    assert populations["CA3"]["drive"] == ca1["populations"]["CA3"]["drive"]
    assert populations["PYR_in"]["layers"] == {"SP": 3115000}
    # every projection onto a tuned type, from the sources, once per copy
    onto_pvbc = [n for n in ca1["connectivity"]["projections"] if n.split("->")[1].strip() == "PVBC"]
    projections = tuning["connectivity"]["projections"]
    for name in onto_pvbc:
        source = name.split("->")[0].strip()
        source = source if source in ("CA3", "CA2", "EC") else f"{source}_in"
        for k in (0, 1):
            assert projections[f"{source} -> PVBC_{k}"] == ca1["connectivity"]["projections"][name]
    weights = tuning["defaults"]["weights"]
    defaults = ca1["defaults"]["weights"]
    assert weights["PYR_in -> PVBC_1.AMPA_0p07_2"] == pytest.approx(2.0 * defaults["PYR -> PVBC.AMPA_0p07_2"])
    assert weights["CA3 -> PVBC_0.NMDA_10_35"] == pytest.approx(0.5 * defaults["CA3 -> PVBC.NMDA_10_35"])
    assert weights["OLM_in -> PVBC_1.GABAA_0p25_7p5"] == defaults["OLM -> PVBC.GABAA_0p25_7p5"]
    # a fixed factor on a whole projection (here an inhibitory one), on top of the levels
    weaker = tune.open_loop_spec(ca1, levels, {"PVBC": 1, "PYR": 2}, scale=1e-4, sources=10,
                                 projections={("OLM", "PVBC"): 0.5, ("PYR", "PVBC"): 3.0})["defaults"]["weights"]
    assert weaker["OLM_in -> PVBC_1.GABAA_0p25_7p5"] == pytest.approx(0.5 * defaults["OLM -> PVBC.GABAA_0p25_7p5"])
    assert weaker["PYR_in -> PVBC_1.AMPA_0p07_2"] == pytest.approx(6.0 * defaults["PYR -> PVBC.AMPA_0p07_2"])
    assert weaker["CA3 -> PVBC_1.AMPA_0p5_3"] == weights["CA3 -> PVBC_1.AMPA_0p5_3"]
    # the copies: the number of cells asked for, whatever the scale
    counts = {p.name: p.count for p in spec.populations if p.name.endswith(("_0", "_1"))}
    assert counts == {"PVBC_0": 1, "PVBC_1": 1, "PYR_0": 2}



def test_in_network_probes_keep_the_network_and_listen_to_its_populations(tune, tmp_path):
    ca1 = yaml.safe_load((SPECS / "CA1.yaml").read_text())
    tuning = tune.open_loop_spec(ca1, {"AAC": [0.5, 2.0]}, {"AAC": 2}, scale=1e-4, sources=10,
                                 projections={("PVBC", "AAC"): 0.5}, in_network=True)
    path = tmp_path / "in_network.yaml"
    path.write_text(yaml.safe_dump(tuning, sort_keys=False))
    spec = load_spec(path, 1e-4)

    populations = tuning["populations"]
    assert set(ca1["populations"]) | {"AAC_0", "AAC_1"} == set(populations)
    assert not any(name.endswith("_in") for name in populations)  # no stand-in sources
    assert populations["CA3"]["drive"] == ca1["populations"]["CA3"]["drive"]
    projections = tuning["connectivity"]["projections"]
    # the whole network, unchanged, plus each projection onto AAC once per probe, from the real source
    assert {n: projections[n] for n in ca1["connectivity"]["projections"]} == ca1["connectivity"]["projections"]
    onto_aac = [n for n in ca1["connectivity"]["projections"] if n.split("->")[1].strip() == "AAC"]
    assert len(projections) == len(ca1["connectivity"]["projections"]) + 2 * len(onto_aac)
    assert not any(n.split("->")[0].strip().startswith("AAC_") for n in projections)  # probes project nowhere
    weights, defaults = tuning["defaults"]["weights"], ca1["defaults"]["weights"]
    assert weights["PYR -> AAC_1.AMPA_0p07_2"] == pytest.approx(2.0 * defaults["PYR -> AAC.AMPA_0p07_2"])
    assert weights["PYR -> AAC.AMPA_0p07_2"] == defaults["PYR -> AAC.AMPA_0p07_2"]
    # a whole-projection factor applies to the network and the probes alike
    assert weights["PVBC -> AAC.GABAA_0p08_4p8"] == pytest.approx(0.5 * defaults["PVBC -> AAC.GABAA_0p08_4p8"])
    assert weights["PVBC -> AAC_0.GABAA_0p08_4p8"] == pytest.approx(0.5 * defaults["PVBC -> AAC.GABAA_0p08_4p8"])
    counts = {p.name: p.count for p in spec.populations if p.name.startswith("AAC_")}
    assert counts == {"AAC_0": 2, "AAC_1": 2}

def test_the_crossing_is_where_the_rate_first_rises_through_the_target(tune):
    levels = np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    # rises, then falls again (depolarisation block): the rising crossing counts
    rates = np.array([0.0, 10.0, 30.0, 50.0, 5.0])
    assert tune.crossing(levels, rates, 20.0) == pytest.approx(np.sqrt(0.5 * 1.0))
    assert tune.crossing(levels, rates, 10.0) == pytest.approx(0.5)
    assert tune.crossing(levels, rates, 60.0) is None  # never reached
    assert tune.crossing(levels, np.array([25.0, 30, 40, 50, 60]), 20.0) is None  # above at every level


def test_writing_scales_only_the_excitatory_weights_onto_the_tuned_types(tune, tmp_path):
    path = tmp_path / "CA1.yaml"
    original = (SPECS / "CA1.yaml").read_text()
    path.write_text(original)
    changed = tune.write({"PVBC": 0.5, "IVY": 2.0}, path)
    text = path.read_text()

    def weight(body, name):
        return float(re.search(rf"^\s*{re.escape(name)}:\s*(\S+)", body, re.M).group(1))

    assert changed == 8 + 6  # PVBC: CA2, CA3, EC, PYR x (AMPA, NMDA); IVY: CA2, CA3, PYR x 2
    assert weight(text, "PYR -> PVBC.AMPA_0p07_2") == pytest.approx(0.5 * weight(original, "PYR -> PVBC.AMPA_0p07_2"), rel=1e-3)
    assert weight(text, "CA3 -> IVY.NMDA_10_35") == pytest.approx(2 * weight(original, "CA3 -> IVY.NMDA_10_35"), rel=1e-3)
    assert weight(text, "OLM -> PVBC.GABAA_0p25_7p5") == weight(original, "OLM -> PVBC.GABAA_0p25_7p5")
    assert weight(text, "PYR -> AAC.AMPA_0p07_2") == weight(original, "PYR -> AAC.AMPA_0p07_2")
    # comments and layout kept: only the changed numbers differ
    assert len(text.splitlines()) == len(original.splitlines())
    assert [l for l in text.splitlines() if "#" in l] != [] and text.count("#") == original.count("#")
    # a whole projection (inhibitory here) by its own factor, on top of the type's
    path.write_text(original)
    assert tune.write({"PVBC": 0.5}, path, projections={("OLM", "PVBC"): 0.25, ("PYR", "PVBC"): 2.0}) == 7  # PYR -> PVBC: 0.5 x 2 = 1
    both = path.read_text()
    assert weight(both, "OLM -> PVBC.GABAA_0p25_7p5") == pytest.approx(0.25 * weight(original, "OLM -> PVBC.GABAA_0p25_7p5"), rel=1e-3)
    assert weight(both, "PYR -> PVBC.AMPA_0p07_2") == pytest.approx(weight(original, "PYR -> PVBC.AMPA_0p07_2"), rel=1e-3)
    tuned, before = yaml.safe_load(text), yaml.safe_load(original)
    assert {k: v for k, v in tuned.items() if k != "defaults"} == {k: v for k, v in before.items() if k != "defaults"}


def test_the_band_distance_is_zero_inside_every_band_and_grows_outside(tune):
    inside = {t: target for t, (target, low, high) in tune.TARGETS.items()}
    assert tune.band_distance(inside) == 0.0
    low_pyr = dict(inside, PYR=tune.TARGETS["PYR"][1] / np.e)
    assert tune.band_distance(low_pyr) == pytest.approx(1.0)
    saturated = dict(inside, PVBC=tune.TARGETS["PVBC"][2] * np.e ** 2)
    assert tune.band_distance(saturated) == pytest.approx(4.0)
    silent = dict(inside, IVY=0.0)  # counted as 0.1 Hz: finite
    assert tune.band_distance(silent) == pytest.approx(np.log(tune.TARGETS["IVY"][1] / 0.1) ** 2)


def test_factor_lists_are_parsed_and_bad_ones_refused_naming_the_item(tune):
    assert tune.parse_factors("PYR=1.5, IVY=2") == {"PYR": 1.5, "IVY": 2.0}
    assert tune.parse_factors("IS1 -> IVY=0.1", "->") == {"IS1->IVY": 0.1}
    assert tune.parse_factors("") == {}
    for bad in ("PYR", "PYR=x", "PYR=0", "PYR=-1", "PYR=nan", "PYR=inf", "=2"):
        with pytest.raises(ValueError, match="expected TYPE=factor"):
            tune.parse_factors(bad)
    for bad in ("IVY=0.1", "IS1->=0.1", "A->B->C=1"):
        with pytest.raises(ValueError, match="expected SOURCE->TARGET=factor"):
            tune.parse_factors(bad, "->")


def test_unknown_types_are_refused_by_name():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(SPECS / "tune_ca1.py"), "--in-network", "--types", "AAC,FOO"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--types: unknown FOO" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
