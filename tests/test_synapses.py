"""Synapses by site (livn.build.synapses): counts per site, positions in their layer and group,
projections by proportion, sources from the windowed Gaussian of the source's axon extent.
Tsodyks–Markram short-term plasticity of synapses (NeuroML plasticityMechanism): read strictly,
and on both targets each connection follows NeuroML's law with its own state."""

from pathlib import Path

import h5py
import libsonata
import numpy as np
import pytest
from scipy import stats

from livn.build import build_circuit
from livn.build.synapses import choose_sources
from livn.neuroml import read_cell
from livn.spec import load_spec
from livn.system import System

SPEC = Path(__file__).parent / "data" / "ca1_layers" / "CA1_layers.yaml"
SCALE = 0.002


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    spec = load_spec(SPEC, SCALE)
    return spec, build_circuit(spec, tmp_path_factory.mktemp("sites") / "circuit")


def _edges(path):
    """Every edge of both edge populations as gids: source, target, type, section, pos."""
    config = libsonata.CircuitConfig.from_file(str(path / "circuit_config.json"))
    offsets = {"CA1_layers": 0, "CA1_layers_inputs": config.node_population("CA1_layers").size}
    columns = {k: [] for k in ("source", "target", "section", "position", "projection", "receptor")}
    for name in config.edge_populations:
        edges = config.edge_population(name)
        everything = edges.select_all()
        types = {}
        for line in open(path / "network" / f"{name}_edge_types.csv").read().splitlines()[1:]:
            fields = line.split(" ")
            types[int(fields[0])] = (fields[1], fields[2])
        with h5py.File(path / "network" / f"{name}_edges.h5") as h5:
            type_ids = h5[f"edges/{name}/edge_type_id"][:]
        columns["source"].append(edges.source_nodes(everything) + offsets[edges.source])
        columns["target"].append(edges.target_nodes(everything))
        columns["section"].append(edges.get_attribute("afferent_section_id", everything))
        columns["position"].append(edges.get_attribute("afferent_section_pos", everything))
        columns["projection"].append(np.array([types[t][0] for t in type_ids]))
        columns["receptor"].append(np.array([types[t][1] for t in type_ids]))
    return {k: np.concatenate(v) for k, v in columns.items()}


def test_synapses_per_site_and_projection_follow_the_spec(built):
    spec, path = built
    edges = _edges(path)
    pyr = spec.population("PYR")
    # one receptor's edges per synapse: count AMPA (excitatory) and GABA_A (inhibitory) edges
    for projection in spec.projections:
        if projection.target != "PYR":
            continue
        receptor = projection.receptors[0]
        mine = (edges["projection"] == projection.name) & (edges["receptor"] == receptor)
        kind = "exc" if spec.population(projection.source).role == "excitatory" else "inh"
        expected = 0.0
        for group, layer, share in projection.sites:
            site = next(s for s in pyr.synapses if (s.group, s.layer, s.kind) == (group, layer, kind))
            total = sum(p for other in spec.projections if other.target == "PYR" and
                        ("exc" if spec.population(other.source).role == "excitatory" else "inh") == kind
                        for g, l, p in other.sites if (g, l) == (group, layer))
            expected += site.mean * share / total
        per_cell = mine.sum() / pyr.count
        # Poisson counts, multinomial split: sd of the mean over cells <= sqrt(expected / cells)
        assert abs(per_cell - expected) < 4 * np.sqrt(expected / pyr.count) + 1e-9, (projection.name, per_cell, expected)
    # a receptor pair shares its synapse: AMPA and NMDA edges of a projection are the same synapses
    for name in ("CA3->PYR", "EC->PYR"):
        ampa = (edges["projection"] == name) & (edges["receptor"] == "AMPA")
        nmda = (edges["projection"] == name) & (edges["receptor"] == "NMDA")
        key = lambda m: sorted(zip(edges["target"][m], edges["source"][m], edges["section"][m], edges["position"][m]))
        assert key(ampa) == key(nmda)


def test_synapses_lie_in_their_group_and_layer(built):
    spec, path = built
    edges = _edges(path)
    cell = read_cell(spec.population("PYR").cell, spec.population("PYR").cell_id)
    system = System(path)
    z = system.circuit.nodes["CA1_layers"].positions[:, 2]
    base = cell.compartments[0].centre[2]
    groups = {"AAC->PYR": "ais", "EC->PYR": "apical", "OLM->PYR": "apical"}
    for name, group in groups.items():
        mine = edges["projection"] == name
        assert mine.any()
        assert all(group in cell.sections[s].groups for s in np.unique(edges["section"][mine])), name
    # EC and OLM synapses onto PYR sit on compartments whose middle is in SLM (350-450 um): the
    # PYR tuft reaches it from anywhere in SP
    for name in ("EC->PYR", "OLM->PYR"):
        mine = np.flatnonzero(edges["projection"] == name)
        heights = np.array([cell.compartments[cell.compartment_at(s, x)].centre[2] - base for s, x in
                            zip(edges["section"][mine], edges["position"][mine])])
        depth = z[edges["target"][mine]] + heights
        assert (depth >= 350 - 1e-3).all() and (depth <= 450 + 1e-3).all(), name


def test_sources_follow_the_windowed_gaussian():
    rng = np.random.default_rng(5)
    # sources uniform around the window, dense enough that their own scatter does not show
    grid = 2005.0 + (rng.random((1_000_000, 2)) - 0.5) * np.array([1200.0, 600.0])
    grid = grid[np.argsort(grid[:, 0])]  # the builder keeps sources sorted by x
    gids = np.arange(len(grid))
    half, sigma = np.array([500.0, 250.0]), np.array([1000.0, 500.0]) / 6
    centre = np.array([2005.0, 2005.0])
    chosen = choose_sources(rng, gids, grid, half, sigma, centre, exclude=-1, n=20000)
    d = grid[chosen] - centre
    assert (np.abs(d) < half).all()
    for axis in range(2):
        # a normal of sd sigma truncated to the window
        truncated = stats.truncnorm(-half[axis] / sigma[axis], half[axis] / sigma[axis], scale=sigma[axis])
        assert stats.kstest(d[:, axis], truncated.cdf).pvalue > 0.01
    # nothing in the window: no source
    far = np.array([[0.0, 0.0]])
    assert (choose_sources(rng, gids[:1], far, half, sigma, centre, -1, 3) == -1).all()


def test_the_build_is_deterministic_and_readable(built, tmp_path):
    spec, path = built
    again = build_circuit(load_spec(SPEC, SCALE), tmp_path / "again")
    first, second = _edges(path), _edges(again)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    system = System(path)
    afferent = system.network.afferent(np.arange(5))
    assert set(np.unique(afferent.target)) <= set(range(5)) and len(afferent.source) > 0
    # inputs reach the cells from the virtual population's gids
    assert (afferent.source >= spec.num_neurons).any()


# -- Tsodyks–Markram short-term plasticity (NeuroML plasticityMechanism) ---------------------------
SHIPPED_NMDA = Path(__file__).parent.parent / "specs" / "synapses" / "NMDA.synapse.nml"


def _nml(tmp_path, body: str) -> Path:
    path = tmp_path / "plastic.synapse.nml"
    path.write_text(f'<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="plastic">\n{body}\n</neuroml>\n')
    return path


_BPS = '<blockingPlasticSynapse id="{id}" gbase="0.5nS" erev="0mV" tauRise="0.5ms" tauDecay="3ms">{children}' \
       '</blockingPlasticSynapse>'
_BLOCK = ('<blockMechanism type="voltageConcDepBlockMechanism" species="mg" blockConcentration="1mM" '
          'scalingConc="3.57mM" scalingVolt="16.13mV"/>')


def test_plasticity_mechanisms_are_read_with_their_units(tmp_path):
    """A blockingPlasticSynapse's Tsodyks–Markram mechanism, with or without the Mg2+ block: U
    as a bare number, times in any NeuroML time unit; without a mechanism, no plasticity."""
    from livn.neuroml import Plasticity, read_synapse

    path = _nml(tmp_path, "\n".join([
        _BPS.format(id="dep", children='<plasticityMechanism type="tsodyksMarkramDepMechanism" '
                                       'initReleaseProb="0.5" tauRec="0.8s"/>'),
        _BPS.format(id="depfac", children='<plasticityMechanism type="tsodyksMarkramDepFacMechanism" '
                                          'initReleaseProb="0.2" tauRec="200ms" tauFac="600000us"/>' + _BLOCK),
        _BPS.format(id="plain", children=_BLOCK)]))
    dep = read_synapse(path, "dep")
    assert dep.kind == "exp2" and dep.plasticity == Plasticity("tsodyksMarkramDepMechanism", 0.5, 800.0, 0.0)
    assert not dep.plasticity.facilitates
    depfac = read_synapse(path, "depfac")
    assert depfac.kind == "exp2_block" and depfac.block_scaling_volt == 16.13
    assert depfac.plasticity == Plasticity("tsodyksMarkramDepFacMechanism", 0.2, 200.0, 600.0)
    assert depfac.plasticity.facilitates
    assert read_synapse(path, "plain").plasticity is None
    assert read_synapse(SHIPPED_NMDA, "NMDA").plasticity == Plasticity("tsodyksMarkramDepMechanism", 0.5, 800.0, 0.0)


def test_bad_plasticity_is_refused_with_file_and_line_every_problem_at_once(spec_copy):
    """`livn validate` (and the build, and every target, which read through the same reader)
    lists every problem of every synapse file with its file and line: a release probability of 0
    or above 1, a recovery time below 0, a time without unit, an unknown mechanism type."""
    from conftest import make_plastic, run_livn

    folder = spec_copy.folder
    ampa = make_plastic(folder, "AMPA", '<plasticityMechanism type="tsodyksMarkramDepMechanism" '
                                        'initReleaseProb="0" tauRec="800ms"/>')
    nmda = make_plastic(folder, "NMDA", '<plasticityMechanism type="tsodyksMarkramDepMechanism" '
                                        'initReleaseProb="1.5" tauRec="-1ms"/>')
    gaba = make_plastic(folder, "GABA_A", '<plasticityMechanism type="stdpMechanism" initReleaseProb="0.5" '
                                          'tauRec="800"/>')
    line = {p: next(k for k, text in enumerate(p.read_text().splitlines(), 1) if "<plasticityMechanism" in text)
            for p in (ampa, nmda, gaba)}
    done = run_livn("validate", spec_copy("EI1"))
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout + done.stderr
    expected = [(ampa, "initReleaseProb must be in (0, 1]", "found 0"),
                (nmda, "initReleaseProb must be in (0, 1]", "found 1.5"),
                (nmda, "tauRec must be a time > 0", "'-1ms'"),
                (gaba, "plasticityMechanism type 'stdpMechanism' is not supported", "tsodyksMarkramDepFacMechanism")]
    for path, message, detail in expected:
        hits = [text for text in out.splitlines() if f"{path.name}:{line[path]}:" in text and message in text]
        assert len(hits) == 1 and detail in hits[0], f"{path.name}:{line[path]}: {message!r} not reported in\n{out}"
    assert "4 error(s)" in out and "Traceback" not in out
    # a time without its unit is refused too, with the other problems of the element
    from livn.neuroml import NeuroMLError, read_synapse

    with pytest.raises(NeuroMLError) as err:
        read_synapse(_nml(spec_copy.folder, _BPS.format(id="x", children=(
            '<plasticityMechanism type="tsodyksMarkramDepFacMechanism" initReleaseProb="-0.1" tauRec="800" '
            'tauFac="0ms"/>'))), "x")
    messages = [m for _, _, m in err.value.problems]
    assert [line for _, line, _ in err.value.problems] == [2, 2, 2]
    assert any("tauRec='800': expected a time" in m for m in messages)
    assert any("initReleaseProb must be in (0, 1]" in m for m in messages)
    assert any("tauFac must be a time > 0" in m for m in messages)


#: one EXC cell; IN, two virtual nodes, each one AMPA connection onto its dendrite (one compartment:
#: one NEURON point process takes both NetCons)
PLASTIC_SPEC = """format: livn/1
name: TM1
seed: 3
culture: {shape: rectangle, size: [40 um, 40 um]}
populations:
  EXC: {count: 1, cell: cells/EXC.cell.nml, role: excitatory}
  IN: {count: 2, role: excitatory, drive: {poisson: {rate: 20 Hz}, duration: 1 s}}
receptors:
  AMPA: {model: synapses/AMPA.synapse.nml, unit_conductance: 1e-3 uS}
connectivity:
  kernel: {gaussian: {sigma: 200 um, p_max: 1.0, cutoff: 0.1}}
  delay: {velocity: 250 um/ms, min: 0.05 ms}
  projections:
    IN -> EXC: {receptors: [AMPA], onto: dendrite}
mea: {pitch: 100 um, grid: fit, electrode_radius: 15 um, offset: 52 um, recording_radius: 60 um, resistivity: 3.5 ohm m}
defaults:
  weights: {IN -> EXC.AMPA: 1.0}
"""
#: the trains replayed by the two IN nodes (gids 1, 2): 25 Hz from 50 ms, and one spike at 400 ms
TRAIN = 50.0 + 40.0 * np.arange(8)
LATE = 400.0


def plastic_circuit(spec_copy, mechanism, trains: dict):
    """PLASTIC_SPEC with AMPA given ``mechanism``, built, its inputs replaced by ``trains`` (IN node
    -> spike times ms)."""
    from conftest import make_plastic
    from livn.sonata.reports import write_spike_report

    make_plastic(spec_copy.folder, "AMPA", mechanism)
    spec = spec_copy.folder / "TM1.yaml"
    spec.write_text(PLASTIC_SPEC)
    circuit = build_circuit(load_spec(spec), spec_copy.folder.parent / "TM1")
    ids = np.concatenate([np.full(len(t), k) for k, t in trains.items()])
    times = np.concatenate(list(trains.values()))
    write_spike_report(circuit / "inputs" / "TM1_inputs_spikes.h5", {"TM1_inputs": (ids, times)})
    return System(circuit)


def _conductance_run(system, backend: str, duration: float) -> tuple:
    """(t ms, AMPA conductance µS on the EXC cell's dendrite, its afferent connections) of a run."""
    from livn.env import Env

    env = Env(system, backend=backend)
    try:
        if backend == "brian2":
            import brian2 as b2

            runtime = env.simulation.runtime
            (cells,) = runtime._cells()
            group = runtime.groups[cells]
            b, a = "B_AMPA_dend", "A_AMPA_dend"
            monitor = b2.StateMonitor(group, [a, b], record=0, dt=0.025 * b2.ms)
            runtime.network.add(monitor)
            env.run(duration)
            g = np.asarray((getattr(monitor, b)[0] - getattr(monitor, a)[0]) / b2.usiemens)
        else:
            from neuron import h

            network = env.simulation.network
            (point,) = set(network.cells[0].synapses.values())  # both NetCons share it
            assert network._wiring.netcons.count() == 2
            vector = h.Vector()
            vector.record(point._ref_g, 0.025)
            network._initialise()  # vectors record from finitialize
            env.run(duration)
            g = np.array(vector.to_python())[:round(duration / 0.025)]
        conn = env.model.afferent([0])
    finally:
        env.close()
    return np.arange(len(g)) * 0.025, g, conn


@pytest.mark.parametrize("mechanism", ["depression", "facilitation"])
def test_each_connection_follows_neuromls_tsodyks_markram_law_on_both_targets(spec_copy, mechanism):
    """A 25 Hz train on one connection and a late single spike on another, onto the same
    compartment (NEURON: one point process, two NetCons). The conductance peaks follow NeuroML's
    law (conftest.tm_factors, the tails of earlier events included) on Brian2 and on NEURON
    within 1e-6 of the first peak (measured: Brian2 3e-8, RK4's error on the waveform; NEURON
    2e-15), the first at weight × U; the late spike of the other connection acts on its own,
    undepleted resources (one state per point process would have given it ~0.13 U)."""
    from conftest import DEPRESSION, FACILITATION, conductance_peaks, tm_factors

    system = plastic_circuit(spec_copy, DEPRESSION if mechanism == "depression" else FACILITATION,
                             {0: TRAIN, 1: np.array([LATE])})
    synapse = system.network.synapses["AMPA"]
    p = synapse.plasticity
    assert p is not None and p.facilitates == (mechanism == "facilitation")
    weight = 1e-3  # µS: weight 1 × the unit conductance
    for backend in ("brian2", "neuron"):
        t, g, conn = _conductance_run(system, backend, 450.0)
        delay = dict(zip(conn.source.tolist(), conn.delay.tolist()))
        train = np.round(TRAIN / 0.025) * 0.025 + np.round(delay[1] / 0.025) * 0.025
        late = np.round(LATE / 0.025) * 0.025 + np.round(delay[2] / 0.025) * 0.025
        arrivals = np.concatenate([train, [late]])
        amplitudes = weight * np.concatenate([tm_factors(train, p.release, p.tau_rec, p.tau_fac), [p.release]])
        expected = conductance_peaks(arrivals, amplitudes, synapse)
        got = np.array([g[(t > a - 1e-9) & (t < a + 8.0)].max() for a in arrivals])
        print(backend, mechanism, "peaks / first:", np.round(got / got[0], 6).tolist(),
              "max |got - NeuroML| / first:", np.abs(got - expected).max() / expected[0])
        assert got[0] == pytest.approx(weight * p.release, rel=1e-6), backend
        assert np.abs(got - expected).max() < 1e-6 * expected[0], (backend, got / got[0], expected / expected[0])
        if mechanism == "depression":  # the classic train: 2nd/1st = (1 - U) + U (1 - e^{-Δ/τrec})
            ratio = (1 - p.release) + p.release * (1 - np.exp(-40.0 / p.tau_rec))
            assert got[1] / got[0] == pytest.approx(ratio, rel=1e-4)
            assert got[-2] / got[0] < 0.12 and got[-1] / got[0] == pytest.approx(1.0, abs=1e-4)
        else:  # U 0.2 facilitates first: the 2nd event is larger than the 1st
            assert got[1] > got[0] and got[-1] / got[0] == pytest.approx(1.0, abs=1e-4)


def test_same_step_events_depress_in_order_on_neuron_and_brian2_warns(spec_copy):
    """Two spikes of one virtual node within one step reach its connection at the same time:
    NEURON delivers both to the NetCon, the second after the first depressed it (w·U, then
    w·U·(1 - U)); Brian2 replays the second from a copy of the node, whose synapse has its own
    state, and says so."""
    from conftest import DEPRESSION
    from livn.targets.brian2.translate import translate

    system = plastic_circuit(spec_copy, DEPRESSION, {0: np.array([50.0, 50.01]), 1: np.array([LATE])})
    with pytest.warns(RuntimeWarning, match="share a step of dt.*Tsodyks–Markram"):
        translate(system.network)
    t, g, _ = _conductance_run(system, "neuron", 100.0)
    U = system.network.synapses["AMPA"].plasticity.release
    assert g.max() == pytest.approx(1e-3 * (U + U * (1 - U)), rel=1e-6)
