"""The Brian2 target: equations come from the NeuroML files; compiled directories run alone."""

import ast
import shutil
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from livn.resources import resource_dir
from livn.system import System, predefined
from livn.targets.brian2.cell import current_clamp
from livn.targets.brian2.translate import translate
from livn.neuroml import read_cell

from conftest import run_livn


def test_equations_carry_the_neuroml_numbers():
    model, _ = translate(System(predefined("EI2")).network)
    exc = model["groups"]["EXC"]["equations"]
    assert "dv_soma/dt" in exc and "dv_dend/dt" in exc
    assert "m_Na_RS_soma" in exc and "n_Km_dend" in exc
    assert "0.009/exprel" in exc  # Km: HHExpLinearRate rate 0.009/ms (km.mod, Mainen & Sejnowski 1996)
    assert "exp(-(v_dend/mV)/16.13)" in exc  # NMDA Jahr–Stevens block on the dendrite
    inh = model["groups"]["INH"]["equations"]
    assert "5.0*(" in inh  # Wang–Buzsáki phi = 5 as q10Fixed
    assert model["synapses"]["NMDA"]["tau_rise"] == pytest.approx(2.0)


def test_changing_a_rate_constant_in_the_neuroml_changes_the_simulation(tmp_path):
    specs = tmp_path / "specs"
    shutil.copytree(resource_dir("specs"), specs)
    original = read_cell(specs / "cells" / "EXC.cell.nml", "EXC")
    channel = specs / "channels" / "Km.channel.nml"
    channel.write_text(channel.read_text().replace('rate="0.009per_ms"', 'rate="0.09per_ms"', 1))
    edited = read_cell(specs / "cells" / "EXC.cell.nml", "EXC")
    before = current_clamp(original, 0.6, 50, 500, 600)[2]
    after = current_clamp(edited, 0.6, 50, 500, 600)[2]
    assert len(before) > 3
    assert len(after) < len(before), "a ten times larger M-current opening rate adapts more"


@pytest.mark.parametrize("cell_id, rheobase", [("EXC", (0.1, 0.5)), ("INH", (0.01, 0.2))])
def test_cells_rest_quietly_and_fire_above_rheobase(cell_id, rheobase):
    cell = read_cell(resource_dir("specs") / "cells" / f"{cell_id}.cell.nml", cell_id)
    t, v, spikes = current_clamp(cell, 0.0, 50, 500, 600)
    assert len(spikes) == 0 and abs(v[-1] - cell.v_init) < 1.0
    low, high = rheobase
    assert len(current_clamp(cell, low, 50, 500, 600)[2]) == 0
    assert len(current_clamp(cell, high, 50, 500, 600)[2]) >= 2


def test_compiled_directory_runs_without_livn(tmp_path):
    out = tmp_path / "EI2-brian2"
    result = run_livn("compile", "EI2", "--target", "brian2", "-o", out)
    assert result.returncode == 0, result.stderr
    for name in ("model.json", "arrays.npz", "runtime.py", "gid_normal.py", "reports.py", "run.py"):
        assert (out / name).is_file()
    imported = {node.names[0].name.split(".")[0] for node in ast.walk(ast.parse((out / "runtime.py").read_text()))
                if isinstance(node, ast.Import)}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse((out / "runtime.py").read_text()))
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert "livn" not in imported
    # run it with livn made unimportable
    script = textwrap.dedent(f"""
        import runpy, sys
        sys.modules["livn"] = None
        sys.argv = ["run.py", "--duration", "300", "--output", {str(tmp_path / 'spikes.h5')!r}]
        sys.path.insert(0, {str(out)!r})
        runpy.run_path({str(out / 'run.py')!r}, run_name="__main__")
    """)
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert ran.returncode == 0, ran.stderr[-2000:]
    with h5py.File(tmp_path / "spikes.h5") as h5:
        times = h5["spikes/EI2/timestamps"][:]
        ids = h5["spikes/EI2/node_ids"][:]
    assert np.all(np.diff(times) >= 0) and np.all(times < 300) and np.all(ids < 100)
    assert f"{len(times)} spikes" in ran.stdout


def test_codegen_cache_makes_a_second_process_fast(tmp_path):
    """The first construction compiles; a new process reuses the cache (seconds, not a minute)."""
    script = textwrap.dedent("""
        import time
        from livn import make
        start = time.perf_counter()
        env = make("EI2")
        env.run(10)
        print(time.perf_counter() - start)
    """)
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=900)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-2000:]
    assert float(runs[1].stdout.split()[-1]) < 20.0


def test_noise_streams_are_keyed_by_seed_gid_and_step():
    import brian2 as b2

    from livn.targets.brian2.runtime import gid_normal_function
    function = gid_normal_function(7)
    values = {}
    for target in ("numpy", "cython"):
        b2.prefs.codegen.target = target
        network = b2.Network()
        group = b2.NeuronGroup(50, "x : 1", namespace={"gid_normal": function}, dt=0.025 * b2.ms)
        group.run_regularly("x = gid_normal(i + 1000, 1, int(t/dt + 0.5))")
        monitor = b2.StateMonitor(group, "x", record=True, dt=0.025 * b2.ms)
        network.add(group, monitor)
        network.run(1 * b2.ms, namespace={})
        values[target] = np.asarray(monitor.x)
    np.testing.assert_allclose(values["numpy"], values["cython"], rtol=1e-12)
    # ... and they are the shared numbers the NEURON target draws
    from livn.targets.gid_normal import gid_normal
    shared = gid_normal(7, np.arange(1000, 1050)[:, None], 1, np.arange(values["cython"].shape[1])[None, :])
    np.testing.assert_allclose(values["cython"], shared, rtol=1e-12, atol=1e-15)
    # the same (gid, step) gives the same number whichever other cells exist
    steps = np.arange(40)
    np.testing.assert_allclose(function.pyfunc(np.full(40, 1003), np.ones(40), steps), values["numpy"][3])
    assert not np.allclose(gid_normal_function(8).pyfunc(np.full(40, 1003), np.ones(40), steps), values["numpy"][3])
    draws = function.pyfunc(np.arange(10**6) % 997, np.zeros(10**6), np.arange(10**6) // 997)
    assert abs(draws.mean()) < 0.005 and abs(draws.std() - 1) < 0.005
    assert abs(np.corrcoef(draws[:-1], draws[1:])[0, 1]) < 0.005


@pytest.mark.slow
def test_strong_mea_pulses_stay_finite_and_agree_with_neuron():
    """EI3 under the stimulated protocol's pulses: MEA fields swing compartments of some cells
    to −200 mV, where Na_RS h relaxes at ~1000/ms; without the gate rate limit RK4 diverged within
    the first pulse (11 cells). Now every state stays finite and the evoked spikes match NEURON's
    (implicit integration, the same field as axial currents) within 5 %."""
    from livn import make
    from livn.io import pulse_train
    from livn.protocols import STIMULUS_AMPLITUDE, STIMULUS_RATE

    counts = {}
    for backend, options in (("brian2", {}), ("neuron", {"field": "currents"})):
        env = make("EI3", backend=backend, **options)
        env.record_spikes()
        n = env.system.num_channels
        it, t, *_ = env.run(50, stimulus=pulse_train(50, range(n), n, STIMULUS_AMPLITUDE, STIMULUS_RATE, dt=env.dt))
        counts[backend] = (len(it), len(set(it.tolist())))
    assert counts["neuron"][0] > 500, counts
    for brian2, neuron in zip(counts["brian2"], counts["neuron"]):
        assert abs(brian2 - neuron) <= 0.05 * neuron, counts


def test_pulses_far_beyond_physiology_stay_finite_and_agree_with_neuron():
    """EI1 under 1 mA pulses: compartments swing beyond −1 V, outside the potentials where the
    gates' rates are checked (LIMIT_RANGE), where the Kd n gate's rate grows as exp(−v/40) and
    RK4 diverged (EI4's 1,024 electrodes at 20 µA reach −310 mV). The rates there are those at
    the range's bound; the spikes match NEURON's (implicit gates, no bound) within 10 %."""
    from livn import make
    from livn.io import pulse_train

    counts, lowest = {}, {}
    for backend, options in (("brian2", {}), ("neuron", {"field": "currents"})):
        env = make("EI1", backend=backend, **options)
        env.record_spikes()
        env.record_voltage()
        n = env.system.num_channels
        result = env.run(100, stimulus=pulse_train(100, range(n), n, 1000.0, 20.0, dt=env.dt))
        counts[backend] = len(result.it)
        lowest[backend] = float(np.min(result.v))
    assert lowest["brian2"] < -1000 and abs(lowest["brian2"] - lowest["neuron"]) < 0.02 * abs(lowest["neuron"]), lowest
    assert counts["neuron"] >= 40 and abs(counts["brian2"] - counts["neuron"]) <= 0.1 * counts["neuron"], counts


def test_a_diverged_integration_is_an_error_not_a_warning():
    """Brian2 only logs invalid values and runs on; livn stops and names the cells."""
    import brian2 as b2

    from livn import make

    env = make("EI1")
    env.run(1.0)
    env.simulation.runtime.groups["EXC"].v_dend[3] = np.nan * b2.volt
    with pytest.raises(FloatingPointError, match=r"v_dend of 1 EXC cell\(s\) \(gids \[3\]\)"):
        env.run(1.0)


def test_a_compiled_directory_carries_the_plasticity(spec_copy, tmp_path):
    """EI1 with Tsodyks–Markram depression on AMPA and NMDA: the compiled directory (livn-free)
    holds each synapse type's parameters and gives the in-process Env's spikes, which differ from
    EI1's without plasticity."""
    import json

    from conftest import DEPRESSION, make_plastic, without_plasticity
    from livn.build import build_circuit
    from livn.env import Env
    from livn.spec import load_spec

    for receptor in ("AMPA", "NMDA"):
        make_plastic(spec_copy.folder, receptor, DEPRESSION)
    circuit = build_circuit(load_spec(spec_copy("EI1")), tmp_path / "EI1-plastic")
    out = tmp_path / "compiled"
    result = run_livn("compile", circuit, "--target", "brian2", "-o", out)
    assert result.returncode == 0, result.stderr
    synapses = json.loads((out / "model.json").read_text())["synapses"]
    assert synapses["AMPA"]["plasticity"] == {"release": 0.5, "tau_rec": 800.0, "tau_fac": 0.0}
    assert synapses["GABA_A"]["plasticity"] is None
    ran = subprocess.run([sys.executable, "run.py", "--duration", "1000", "--output", str(tmp_path / "spikes.h5")],
                         cwd=out, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-2000:]
    with h5py.File(tmp_path / "spikes.h5") as h5:
        compiled = h5["spikes/EI1/node_ids"][:], h5["spikes/EI1/timestamps"][:]
    runs = {}
    plain = without_plasticity(spec_copy, "EI1", tmp_path / "EI1-plain")
    for name, system in (("plastic", System(circuit)), ("plain", System(plain))):
        env = Env(system, backend="brian2")
        env.record_spikes()
        runs[name] = env.run(1000.0)
        env.close()
    assert len(compiled[0]) > 15
    np.testing.assert_array_equal(compiled[0], runs["plastic"].it)
    np.testing.assert_allclose(compiled[1], runs["plastic"].t, rtol=0, atol=1e-9)
    assert len(runs["plain"].it) != len(runs["plastic"].it)


def test_synapse_types_on_the_same_connections_share_one_object(monkeypatch):
    """AMPA and NMDA of one projection make the same connections with the same plasticity: one
    Synapses object carries both (4 objects on EI2, not 6), with the same spikes and potentials
    as one object per type, weights set per type (NMDA changed, AMPA not)."""
    import brian2 as b2

    from livn import make
    from livn.io import pulse_train
    from livn.targets.brian2 import runtime

    def simulate():
        env = make("EI2")
        env.record_spikes()
        env.record_voltage([0, 85])
        defaults = env.default_params()
        env.set_params({"EXC->EXC.NMDA": 2 * defaults["EXC->EXC.NMDA"]})
        results = [env.run(250), env.run(50, stimulus=pulse_train(50, [3, 4], 16, 20.0, 40.0, dt=env.dt))]
        objects = sum(isinstance(obj, b2.Synapses) for obj in env.simulation.runtime.network.objects)
        env.close()
        return results, objects

    merged, merged_objects = simulate()
    monkeypatch.setattr(runtime.Simulation, "merge", False)
    separate, separate_objects = simulate()
    assert (merged_objects, separate_objects) == (4, 6)
    assert len(merged[0].it) > 20
    for got, expected in zip(merged, separate):
        np.testing.assert_array_equal(got.it, expected.it)
        np.testing.assert_array_equal(got.t, expected.t)
        np.testing.assert_array_equal(got.v, expected.v)


def test_clear_and_a_second_env_compile_nothing_new():
    """Monitors carry fixed names: Brian2's numbered defaults changed with the objects alive in
    the process, and the generated code contains the name, so every clear() compiled the
    monitors' code again (~15 s of Cython per call on a fresh cache: EI1 ran 15x slower)."""
    from brian2.codegen.runtime.cython_rt.extension_manager import cython_extension_manager
    from livn import make

    def episode(env):
        env.record_spikes()
        env.record_voltage([0, 9])
        env.run(5)

    env = make("EI1")
    episode(env)
    compiled = len(cython_extension_manager._code_cache)
    for _ in range(3):
        env.clear()
        episode(env)
    second = make("EI1")  # while the first is alive
    episode(second)
    assert len(cython_extension_manager._code_cache) == compiled
    second.close()
    env.close()


def test_the_direct_step_runs_what_brian2_runs(monkeypatch):
    """Steps call the compiled code objects directly and later run calls skip Brian2's per-call
    extras (runtime.PreparedNetwork.direct); Brian2's own call paths give the same spikes,
    potentials and monitor contents, over a long call, short calls, a stimulated one and a call
    after clear()."""
    from livn import make
    from livn.io import pulse_train
    from livn.targets.brian2 import runtime

    def simulate():
        env = make("EI2")
        env.record_spikes()
        env.record_voltage([0, 85])
        env.set_params({"noise.excitatory.g0": 0.6, "noise.excitatory.sigma": 0.24})
        results = [env.run(150)] + [env.run(10) for _ in range(5)]
        results.append(env.run(50, stimulus=pulse_train(50, [3, 4], 16, 20.0, 40.0, dt=env.dt)))
        env.clear()  # a restore, and a new monitor to prepare
        env.record_voltage([0, 5, 85])
        results.append(env.run(100))
        network = env.simulation.runtime.network
        direct = sum("run" in vars(obj) for obj in network.sorted_objects)
        env.close()
        return results, direct

    results, direct = simulate()
    monkeypatch.setattr(runtime.PreparedNetwork, "direct", False)
    plain, plain_direct = simulate()
    assert direct >= 10 and plain_direct == 0
    assert len(results[0].it) > 20 and len(results[-1].it) > 0
    for got, expected in zip(results, plain):
        np.testing.assert_array_equal(got.it, expected.it)
        np.testing.assert_array_equal(got.t, expected.t)
        np.testing.assert_array_equal(got.v, expected.v)
