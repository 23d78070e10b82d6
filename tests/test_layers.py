"""Layered cultures, per-layer counts, virtual input populations with drives, and ``scale``
(spec → build), on the CA1 population table (shared/reference/ca1.md §1.2-1.4) with the EI
cells standing in for CA1's (tests/data/ca1_layers)."""

from pathlib import Path

import h5py
import libsonata
import numpy as np
import pytest

from livn.build import build_circuit
from livn.build.drives import CHUNK, chunk, trains
from livn.spec import SpecError, check_spec, load_spec
from livn.spec.model import PoissonDrive, ThetaModulation
from livn.system import System

SPEC = Path(__file__).parent / "data" / "ca1_layers" / "CA1_layers.yaml"

# §1.2: cells per layer (SO, SP, SR, SLM)
TABLE = {"PYR": (0, 311500, 0, 0), "PVBC": (1320, 3880, 330, 0), "AAC": (350, 1030, 0, 0),
         "BS": (530, 1550, 130, 0), "CCKBC": (780, 940, 1170, 710), "IVY": (980, 5410, 2420, 0),
         "NGFC": (0, 0, 610, 2970), "OLM": (1640, 0, 0, 0), "SCA": (0, 0, 400, 0),
         "IS1": (780, 1800, 780, 890), "IS2": (0, 480, 450, 890), "IS3": (0, 910, 220, 120),
         "CA3": (0, 0, 204700, 0), "CA2": (40000, 0, 0, 0), "EC": (0, 0, 0, 250000)}
LAYERS = ("SO", "SP", "SR", "SLM")
BOUNDS = {"SO": (0, 100), "SP": (100, 150), "SR": (150, 350), "SLM": (350, 450)}
DEPTH = {("PVBC", "SR"): (150, 200), ("CCKBC", "SLM"): (350, 370), ("AAC", "SO"): (80, 100),
         ("SCA", "SR"): (330, 350), ("PYR", "SP"): (100, 150)}


def test_full_scale_counts_are_the_reference_table():
    spec = load_spec(SPEC)
    for p in spec.populations:
        assert dict(p.layers) == {layer: n for layer, n in zip(LAYERS, TABLE[p.name]) if n}, p.name
    assert spec.num_neurons == 345_970
    assert sum(p.count for p in spec.virtual) == 494_700
    assert spec.size == (4000.0, 4000.0) and spec.thickness == 450.0
    # simulated populations take the first gids, in spec order; the inputs follow
    assert [p.name for p in spec.virtual] == ["CA3", "CA2", "EC"]
    assert spec.population("CA3").first_gid == 345_970


@pytest.mark.parametrize("scale, simulated, inputs, side", [
    (0.001, {"PYR": 312, "PVBC": 5, "AAC": 1, "BS": 3, "CCKBC": 4, "IVY": 8, "NGFC": 4, "OLM": 2, "SCA": 1,
             "IS1": 5, "IS2": 1, "IS3": 1}, {"CA3": 205, "CA2": 40, "EC": 250}, 126.49),
    (0.01, {"PYR": 3115, "PVBC": 55, "AAC": 14, "BS": 22, "CCKBC": 36, "IVY": 88, "NGFC": 36, "OLM": 16,
            "SCA": 4, "IS1": 43, "IS2": 18, "IS3": 12}, {"CA3": 2047, "CA2": 400, "EC": 2500}, 400.0)])
def test_scale_keeps_densities(scale, simulated, inputs, side):
    spec = load_spec(SPEC, scale)
    counts = {p.name: p.count for p in spec.populations}
    assert counts == {**simulated, **inputs}
    assert spec.size[0] == pytest.approx(side, abs=0.01) and spec.size[0] == spec.size[1]
    # each layer's count is the full count x scale, rounded half to even (at least 1 cell)
    for p in spec.populations:
        expected = {layer: round(n * scale) for layer, n in zip(LAYERS, TABLE[p.name]) if round(n * scale)}
        if not expected:
            full = dict(zip(LAYERS, TABLE[p.name]))
            expected = {max(full, key=full.get): 1}
        assert dict(p.layers) == expected, p.name


def test_ei_specs_scale_too():
    spec = load_spec(Path(__file__).parents[1] / "specs" / "EI2.yaml", 0.25)
    assert spec.num_neurons == 25 and spec.size == (200.0, 200.0)
    assert [p.count for p in spec.populations] == [20, 5]
    assert spec == load_spec(Path(__file__).parents[1] / "specs" / "EI2.yaml", 0.25)


@pytest.mark.parametrize("scale", [0, -0.1, 1.5, float("nan"), "0.1", True])
def test_bad_scale_is_refused(scale):
    spec, problems = check_spec(SPEC, scale)
    assert spec is None and len(problems) == 1
    assert "expected scale to be a number in (0, 1]" in problems[0].message


def _absolute(text: str) -> str:
    """The spec's relative file names made absolute, so a copy elsewhere finds them."""
    return text.replace("cells/", str(SPEC.parent / "cells") + "/").replace(
        "../../../specs/", str(SPEC.parents[3] / "specs") + "/")


def test_every_layer_mistake_at_once(tmp_path):
    text = _absolute(SPEC.read_text())
    text = text.replace("SR: [150 um, 350 um]", "SR: [140 um, 350 um]")              # overlaps SP
    text = text.replace("PYR:   {layers: {SP: 311500}", "PYR:   {layers: {SX: 311500}")  # unknown layer
    text = text.replace("depth: {SO: [80 um, 100 um]}", "depth: {SO: [80 um, 120 um]}")  # outside SO
    text = text.replace("OLM:   {layers: {SO: 1640}, cell", "OLM:   {layers: {SO: 1640}, drive: {poisson: {rate: 1 Hz}}, cell")
    text = text.replace("rate: 2 Hz", "rate: 2 um")                                     # not a frequency
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    spec, problems = check_spec(bad)
    assert spec is None
    messages = "\n".join(f"{p.line} {p.path}: {p.message}" for p in problems)
    assert "culture.layers.SR" in messages and "overlaps" in messages
    assert "populations.PYR.layers.SX" in messages and "unknown layer 'SX'" in messages
    assert "populations.AAC.depth.SO" in messages and "within layer SO" in messages
    assert "populations.OLM" in messages and "exactly one of 'cell'" in messages
    assert "populations.EC.drive.poisson.rate" in messages
    assert sum(p.severity == "error" for p in problems) == 5, messages
    assert all(p.line for p in problems), messages


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = build_circuit(load_spec(SPEC, 0.001), tmp_path_factory.mktemp("ca1") / "circuit")
    return path


def test_somata_lie_in_their_layer_and_depth_range(small):
    spec = load_spec(SPEC, 0.001)
    config = libsonata.CircuitConfig.from_file(str(small / "circuit_config.json"))
    assert set(config.node_populations) == {"CA1_layers", "CA1_layers_inputs"}
    cells, inputs = config.node_population("CA1_layers"), config.node_population("CA1_layers_inputs")
    assert cells.size == 347 and inputs.size == 495
    z = np.concatenate([cells.get_attribute("z", cells.select_all()), inputs.get_attribute("z", inputs.select_all())])
    layer = np.concatenate([cells.get_attribute("layer", cells.select_all()),
                            inputs.get_attribute("layer", inputs.select_all())])
    xy = np.concatenate([np.column_stack([p.get_attribute(a, p.select_all()) for a in "xy"]) for p in (cells, inputs)])
    assert (xy >= 0).all() and (xy <= spec.size[0] + 1e-3).all()
    for p in spec.populations:
        first = p.first_gid
        for name, n in p.layers:
            zz = z[first:first + n]
            low, high = DEPTH.get((p.name, name), BOUNDS[name])
            assert (zz >= low - 1e-3).all() and (zz <= high + 1e-3).all(), (p.name, name)
            assert (layer[first:first + n] == LAYERS.index(name)).all()
            first += n
    assert inputs.get_attribute("model_type", 0) == "virtual"


def test_inputs_are_sonata_spike_trains_of_the_drive(small):
    system = System(small / "simulation_config.json")
    trains_by_gid = system.network.spike_inputs
    spec = load_spec(SPEC, 0.001)
    ca3 = spec.population("CA3")
    gids, times = trains(spec.seed, "CA3", ca3.drive, ca3.gids, ca3.drive.duration)
    for gid in ca3.gids[:20]:
        np.testing.assert_array_equal(trains_by_gid.get(gid, np.zeros(0)), times[gids == gid])
    # the circuit directory alone (no simulation config) plays the same trains
    assert set(System(small).network.spike_inputs) == set(trains_by_gid)
    reader = libsonata.SpikeReader(str(small / "inputs" / "CA1_layers_inputs_spikes.h5"))
    assert reader.get_population_names() == ["CA1_layers_inputs"]


DRIVE = PoissonDrive(rate=5.0, theta=ThetaModulation(frequency=8.0, depth=0.5, phase=np.pi / 3), duration=10_000.0)


def test_a_train_is_a_function_of_gid_and_time():
    gids, times = trains(3, "EC", DRIVE, range(100, 130), 3000.0)
    alone = chunk(3, "EC", DRIVE, 1, [117])
    mine = times[(gids == 117) & (times >= CHUNK) & (times < 2 * CHUNK)]
    np.testing.assert_array_equal(alone[1], mine)
    # a longer train extends a shorter one; other cells make no difference
    g2, t2 = trains(3, "EC", DRIVE, [117], 1500.0)
    np.testing.assert_array_equal(t2, times[(gids == 117) & (times < 1500.0)])


def test_poisson_rate_and_theta_modulation():
    n, duration = 1000, 10_000.0
    gids, times = trains(11, "CA3", DRIVE, range(n), duration)
    rate = len(times) / n / (duration / 1e3)
    expected_sd = np.sqrt(DRIVE.rate * duration / 1e3 * n) / n / (duration / 1e3)
    assert abs(rate - DRIVE.rate) < 3 * expected_sd
    # the pooled train's 8 Hz Fourier component: depth and phase of the modulation
    phase = 2 * np.pi * 8.0 / 1e3 * times
    component = np.mean(np.exp(1j * phase))
    assert 2 * abs(component) == pytest.approx(0.5, abs=0.05)
    assert np.angle(component) == pytest.approx(np.pi / 3, abs=0.1)
    # interspike intervals of a homogeneous Poisson train are exponential (CV 1)
    flat = PoissonDrive(rate=20.0, theta=None, duration=duration)
    g, t = trains(11, "X", flat, [0], duration)
    isi = np.diff(t)
    assert np.std(isi) / np.mean(isi) == pytest.approx(1.0, abs=0.1)


def test_every_site_mistake_at_once(tmp_path):
    text = _absolute(SPEC.read_text())
    text = text.replace("ais/inh: 1}", "ais/inh: 1, spine/SO/exc: 3}")                    # no such group
    text = text.replace("{sites: {basal/SO: 0.47}", "{sites: {basal/SR: 0.47}")              # PYR has no basal/SR/exc
    text = text.replace("PYR -> PVBC: {sites: {basal/SO: 0.7}", "PYR -> PVBC: {sites: {basal/SO: 0.5}")  # sums to 0.8
    text = text.replace("OLM:   {layers: {SO: 1640}, cell: cells/", "OLM:   {layers: {SO: 1640}, cell: cells/")
    text = text.replace(", role: inhibitory, axon_extent: [840 um, 500 um]}", ", role: inhibitory}")  # OLM: no extent
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    spec, problems = check_spec(bad)
    assert spec is None
    messages = "\n".join(f"{p.severity} {p.line} {p.path}: {p.message}" for p in problems)
    assert "populations.PYR.synapses.spine/SO/exc" in messages and "no segment group 'spine'" in messages
    assert "connectivity.projections.CA2 -> PYR.sites.basal/SR" in messages and "PYR has no exc synapse site" in messages
    assert "warning" in messages and "sum to 0.8" in messages
    assert "give OLM an 'axon_extent'" in messages
    assert all(p.line for p in problems), messages


@pytest.mark.parametrize("text, expected", [("36 degC", 36.0), ("309.15 K", 36.0)])
def test_temperature_reaches_the_circuit(text, expected, tmp_path):
    spec_text = _absolute(SPEC.read_text()).replace("  shape: rectangle\n", f"  shape: rectangle\n  temperature: {text}\n")
    path = tmp_path / "warm.yaml"
    path.write_text(spec_text)
    spec = load_spec(path, 0.001)
    assert spec.temperature == pytest.approx(expected)
    built = build_circuit(spec, tmp_path / "circuit")
    assert System(built).livn["temperature_celsius"] == pytest.approx(expected)


def test_a_temperature_no_neuron_lives_at_is_refused(tmp_path):
    path = tmp_path / "hot.yaml"
    path.write_text(_absolute(SPEC.read_text()).replace("  shape: rectangle\n", "  shape: rectangle\n  temperature: 360 degC\n"))
    spec, problems = check_spec(path)
    assert spec is None
    (problem,) = [p for p in problems if p.path == "culture.temperature"]
    assert problem.line == 11 and "0-50 degC, found '360 degC'" in problem.message
