"""livn.batch: copies of a system in one simulation run exactly what separate Envs run."""

import numpy as np
import pytest

from livn.batch import Batch
from livn.env import Env
from livn.io import pulse_train
from livn.system import System, resolve_circuit


@pytest.fixture(scope="module")
def ei2():
    return System(resolve_circuit("EI2"))


def _stimuli(system, dt=0.025):
    channels = system.num_channels
    return [pulse_train(100, [5, 6], channels, 25.0, 40.0, dt=dt),
            None,
            pulse_train(100, [0, 15], channels, 30.0, 80.0, start=3.0, dt=dt)]


def test_each_copy_runs_spike_for_spike_what_an_env_runs_and_rewind_repeats_it(ei2):
    stimuli = _stimuli(ei2)
    batch = Batch(ei2, 3)
    batch.record_spikes()
    batch.record_voltage(dt=0.5)
    batch.run(150)
    batch.checkpoint()
    first = batch.run(100, stimuli)
    batch.rewind()
    assert batch.t == 150
    again = batch.run(100, stimuli[::-1])  # another copy now gets each stimulus
    env = Env(ei2)
    env.record_spikes()
    env.record_voltage(dt=0.5)
    counts = []
    for b, stimulus in enumerate(stimuli):
        env.clear()
        env.run(150)
        expected = env.run(100, stimulus=stimulus)
        for got in (first[b], again[2 - b]):
            assert np.array_equal(got.it, expected.it) and np.array_equal(got.t, expected.t)
            assert np.array_equal(got.iv, expected.iv) and np.array_equal(got.v, expected.v)
            assert got.start == 150 and got.duration == 100
        counts.append(len(expected.it))
    # the copies are independent: different stimuli, different responses
    assert counts[0] != counts[1] and counts[2] != counts[1]
    assert first[0].v.shape == (ei2.num_neurons, 200)


def test_batch_refuses_bad_arguments_with_what_it_expected(ei2):
    for copies in (0, True, "3", 2.5, 10001):
        with pytest.raises(ValueError, match="copies must be an integer in 1..10000"):
            Batch(ei2, copies)
    with pytest.raises(ValueError, match="does not run batches.*backend 'brian2'"):
        Batch(ei2, 2, backend="neuron")
    with pytest.raises(TypeError, match="unknown option"):
        Batch(ei2, 2, field="currents")
    batch = Batch(ei2, 2)
    with pytest.raises(RuntimeError, match="checkpoint"):
        batch.rewind()
    with pytest.raises(ValueError, match="one stimulus .* per copy: 2, found 3"):
        batch.run(10, _stimuli(ei2))
    with pytest.raises(ValueError, match=r"stimuli\[1\]: stimulus must have shape \(samples, 16 channels\)"):
        batch.run(10, [None, np.zeros((10, 3))])
    with pytest.raises(ValueError, match=r"stimuli\[0\]: stimulus must be finite"):
        batch.run(10, [np.full((10, 16), np.nan), None])
    with pytest.raises(ValueError, match="duration must be a finite number > 0"):
        batch.run(float("inf"))
    assert batch.t == 0
