"""The Env: the seed page's simulation code, runs that continue, parameters, MEA, reports."""

import h5py
import libsonata
import numpy as np
import pytest

from livn import make
from livn.env import Env
from livn.io import biphasic_pulse, pulse_train
from livn.measures import mean_rate
from livn.system import System, predefined
from livn.sonata import write_spike_report


@pytest.fixture(scope="module")
def env():
    return make("EI2")


def test_seed_page_code_runs_as_written(env):
    print(env.system.default_params())
    env.clear()
    env.record_spikes()
    env.record_voltage()
    it, t, iv, v, *rest = env.run(100)
    assert len(rest) == 2
    assert list(iv) == list(range(100))
    assert v.shape == (100, 4000)  # every dt = 0.025 ms
    # no conductance reverses below -90 mV (K+); before the OU noise was rectified its negative
    # excursions took EXC to -110 mV within 100 ms (measured over 1 s now: -74.6 to 40.4 mV)
    assert np.all((v > -95) & (v < 60))
    assert v[:, 0] == pytest.approx(np.where(np.arange(100) < 80, -69.8, -64.3), abs=0.5)  # initMembPotential
    assert len(it) == len(t) and np.all(np.diff(t) >= 0) and np.all((t >= 0) & (t < 100))
    assert set(it) <= set(range(100))


def test_successive_runs_continue_and_clear_starts_over(env):
    env.clear()
    env.record_spikes()
    first = env.run(300)
    second = env.run(300)
    assert np.all(second[1] >= 300) and np.all(first[1] < 300)
    env.clear()
    again = env.run(300)
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_allclose(again[1], first[1])
    # one 600 ms run is the two 300 ms runs
    env.clear()
    whole = env.run(600)
    np.testing.assert_array_equal(whole[0], np.concatenate([first[0], second[0]]))


def test_set_params_changes_the_dynamics_and_rejects_unknown_names(env):
    env.record_spikes()
    defaults = env.default_params()
    env.clear()
    env.set_params({"noise.excitatory.g0": 0.0, "noise.excitatory.sigma": 0.0})
    it, t, *_ = env.run(500)
    assert len(it) == 0, "without excitatory drive nothing fires"
    env.clear()
    env.set_params({"noise.excitatory.g0": 4 * defaults["noise.excitatory.g0"],
                    "noise.excitatory.sigma": defaults["noise.excitatory.sigma"]})
    loud = env.run(500)
    assert mean_rate(loud[0], loud[1], env.system.gids("EXC"), 100, 500) > 5
    with pytest.raises(KeyError) as err:
        env.set_params({"EXC->EXC.GABA_B": 1.0})
    assert "EXC->EXC.AMPA" in str(err.value) and "noise.inhibitory.sigma" in str(err.value)
    env.set_params(defaults)


def test_excitatory_weights_increase_firing(env):
    """Recurrent excitation amplifies: without EXC->EXC synapses the network fires less than
    with twice their default weight (default noise)."""
    env.record_spikes()
    defaults = env.default_params()
    rates = []
    for scale in (0.0, 2.0):
        env.clear()
        env.set_params({name: defaults[name] * scale for name in env.system.weight_names if name.startswith("EXC->EXC")})
        it, t, *_ = env.run(1500)
        rates.append(mean_rate(it, t, env.system.gids("EXC"), 500, 1500))
    env.set_params(defaults)
    assert rates[1] > 2 * rates[0] + 0.5, rates


def test_mea_stimulation_excites_cells_near_the_stimulated_electrode(env):
    env.record_spikes()
    env.clear()
    # no noise and no synapses: the cells that fire are those the pulses excite directly (with
    # its synapses the culture would carry the activity to every cell)
    env.set_params({name: 0.0 for name in env.default_params()})
    quiet = env.run(200)
    assert len(quiet[0]) == 0
    stimulus = pulse_train(200, channels=[0], num_channels=env.system.num_channels, amplitude=60.0, rate=50.0, dt=env.dt)
    it, t, *_ = env.run(200, stimulus=stimulus)
    assert len(it) > 0
    distance = np.hypot(*(env.system.coordinates[:, :2] - env.system.electrodes[0, :2]).T)
    responders = np.unique(it)
    assert np.median(distance[responders]) < np.median(distance)
    env.set_params(env.default_params())


def test_pulse_shapes():
    pulse = biphasic_pulse(10.0, phase=0.2, gap=0.05, dt=0.025)
    np.testing.assert_array_equal(pulse, [-10] * 8 + [0, 0] + [10] * 8)
    train = pulse_train(100, [1], 4, 5.0, rate=20.0, dt=0.025)
    assert train.shape == (4000, 4) and np.all(train[:, [0, 2, 3]] == 0)
    column = train[:, 1]
    onsets = np.flatnonzero((column < 0) & (np.r_[0, column[:-1]] == 0))
    np.testing.assert_array_equal(onsets, [0, 2000])
    assert train[:, 1].sum() == pytest.approx(0.0)  # charge balanced


def test_backend_is_an_argument_with_an_environment_default(monkeypatch):
    monkeypatch.setenv("LIVN_BACKEND", "nest")
    with pytest.raises(ValueError, match="unknown backend 'nest'"):
        make("EI1")
    assert Env(System(predefined("EI1")), backend="brian2", codegen="numpy").backend == "brian2"


def test_spike_report_round_trips_through_libsonata(env, tmp_path):
    env.clear()
    env.record_spikes()
    it, t, *_ = env.run(300)
    path = tmp_path / "spikes.h5"
    write_spike_report(path, {"EI2": (it[::-1], t[::-1])})
    reader = libsonata.SpikeReader(str(path))
    population = reader["EI2"]
    assert population.sorting == "by_time"
    spikes = population.get()
    np.testing.assert_array_equal([s[0] for s in spikes], it)
    np.testing.assert_allclose([s[1] for s in spikes], t)
    with h5py.File(path) as h5:
        assert h5["spikes/EI2/timestamps"].attrs["units"] == "ms"
