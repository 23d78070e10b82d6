"""The Gymnasium environment: Gymnasium's own checker, stimulation that works, checked
arguments and actions, episodes that end, and runs that repeat."""

import math
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from livn import make
from livn.gym import CultureEnv

# EI2 at a quarter: 25 cells on 4 channels, a few seconds to build and fast to step
SMALL = dict(system="EI2", scale=0.25, step_duration=10.0, episode_duration=50.0, warmup=100.0)


@pytest.fixture(scope="module")
def env():
    culture = CultureEnv(**SMALL)
    yield culture
    culture.close()


def episode(culture, actions, seed=None):
    observation, info = culture.reset(seed=seed)
    observations, infos = [observation], [info]
    for action in actions:
        observation, _, _, _, info = culture.step(action)
        observations.append(observation)
        infos.append(info)
    return np.array(observations), infos


def test_gymnasium_check_env_passes_on_the_registered_id():
    culture = gymnasium.make("livn/EI2-v0", **{k: v for k, v in SMALL.items() if k != "system"})
    assert culture.spec.id == "livn/EI2-v0"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(culture.unwrapped)  # also makes a second one from the spec and closes it twice
    complaints = [str(w.message) for w in caught if "WARN" in str(w.message)]
    # the only remark: µA actions are not in [0, 1] (a documented choice; RescaleAction gives them)
    assert all("normalized space" in c for c in complaints), complaints
    culture.close()


def test_spaces_are_amplitudes_and_counts_per_channel(env):
    assert env.action_space == gymnasium.spaces.Box(0.0, 30.0, (4,), np.float32)
    assert env.observation_space.shape == (4,) and env.observation_space.dtype == np.float32
    # a cell spikes at most once per integration step: the bound is cells x 400 steps
    members = [len(m) for m in env.env.system.channel_members]
    np.testing.assert_array_equal(env.observation_space.high, np.array(members) * 400)
    observation, info = env.reset()
    assert observation in env.observation_space and np.all(observation == np.round(observation))
    assert info["time"] == pytest.approx(100.0) and info["episode_time"] == 0.0 and info["step"] == 0
    assert np.all((info["spike_times"] >= 90.0) & (info["spike_times"] < 100.0))  # the last step of the warm-up


def test_stimulation_evokes_more_spikes_than_none(env):
    """Five steps of 30 µA pulses on every channel against five unstimulated ones (measured
    2026-12: ~5 spikes without, >100 with); the channel counts and the info's totals agree."""
    quiet, quiet_info = episode(env, [np.zeros(4)] * 5)
    loud, loud_info = episode(env, [np.full(4, 30.0)] * 5)
    assert loud[1:].sum() > 3 * quiet[1:].sum() + 30, (quiet[1:].sum(), loud[1:].sum())
    spikes = sum(i["spikes"] for i in loud_info[1:])
    assert spikes == sum(sum(i["population_spikes"].values()) for i in loud_info[1:])


def test_the_same_actions_after_reset_give_the_same_observations(env):
    actions = np.random.default_rng(7).uniform(0, 30, (4, 4)).astype(np.float32)
    first, first_info = episode(env, actions, seed=1)
    again, again_info = episode(env, actions, seed=2)  # the seed does not touch the simulation
    np.testing.assert_array_equal(first, again)
    for a, b in zip(first_info, again_info):
        np.testing.assert_array_equal(a["spike_gids"], b["spike_gids"])
        np.testing.assert_array_equal(a["spike_times"], b["spike_times"])
    other, _ = episode(env, actions[::-1], seed=1)
    assert not np.array_equal(first, other), "different actions should give different observations"


def test_an_episode_truncates_at_episode_duration(env):
    env.reset()
    flags = []
    for _ in range(5):
        _, reward, terminated, truncated, info = env.step(np.zeros(4))
        flags.append(truncated)
        assert terminated is False and reward == 0.0
    assert flags == [False] * 4 + [True]
    assert info["episode_time"] == pytest.approx(50.0) and info["time"] == pytest.approx(150.0) and info["step"] == 5
    with pytest.raises(RuntimeError, match="episode ended.*call reset"):
        env.step(np.zeros(4))
    _, info = env.reset(options={"warmup": 20.0})
    assert info["time"] == pytest.approx(20.0)
    assert env.step(np.zeros(4))[3] is False


@pytest.mark.parametrize("action, found", [
    (np.zeros(3), r"found shape \(3,\)"),
    (np.zeros((4, 1)), r"found shape \(4, 1\)"),
    (5.0, r"found shape \(\)"),
    ([0, 0, 0, float("nan")], "channel 3: nan"),
    ([0, -1.0, 0, 0], "channel 1: -1.0"),
    ([0, 0, 30.5, 0], "channel 2: 30.5"),
    ([0, 0, math.inf, 0], "channel 2: inf"),
    (["a", "b", "c", "d"], "found an array of <U1"),
    (None, "found an array of object"),
    ([[0, 1], [2]], "found"),
])
def test_bad_actions_are_refused_naming_expected_and_found(env, action, found):
    env.reset(options={"warmup": 0.0})
    with pytest.raises(ValueError, match=r"action must have shape \(4,\) of pulse amplitudes in µA within \[0, 30\]"):
        env.step(action)
    with pytest.raises(ValueError, match=found):
        env.step(action)
    env.step([0, 0, 0, 30])  # ints and the bound itself are accepted; a refused action cost no time
    assert env.env.t == pytest.approx(10.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"step_duration": 0}, "step_duration must be a finite number of ms >= 0.45"),
    ({"step_duration": 0.3}, "step_duration must be a finite number of ms >= 0.45, found 0.3"),
    ({"step_duration": math.nan}, "step_duration must be a finite"),
    ({"step_duration": "x"}, "step_duration must be a number of ms, found 'x'"),
    ({"step_duration": 10.01}, "whole number of integration steps"),
    ({"episode_duration": 55.0}, "episode_duration must be a whole number .* steps of 10 ms, found 55 ms"),
    ({"episode_duration": 5.0}, "episode_duration must be a whole number"),
    ({"episode_duration": math.inf}, "episode_duration must be a finite"),
    ({"max_amplitude": 0}, "max_amplitude must be a finite number of µA > 0, found 0"),
    ({"max_amplitude": -20.0}, "max_amplitude must be"),
    ({"max_amplitude": math.inf}, "max_amplitude must be"),
    ({"max_amplitude": True}, "max_amplitude must be a number"),
    ({"warmup": -1.0}, "warmup must be a finite number of ms >= 0, found -1.0"),
    ({"warmup": 0.01}, "warmup must be a whole number of integration steps"),
    ({"render_mode": "human"}, "render_mode must be None"),
    ({"dt": 0.0}, "dt must be a finite number > 0"),
    ({"scale": 0.0}, "scale"),
    ({"backend": "nest"}, "unknown backend 'nest'"),
])
def test_bad_constructor_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CultureEnv(**{**SMALL, **kwargs})


def test_bad_reset_options_and_order_are_refused():
    culture = CultureEnv(**SMALL)
    with pytest.raises(RuntimeError, match=r"call reset\(\) before step\(\)"):
        culture.step(np.zeros(4))
    with pytest.raises(ValueError, match="unknown reset option.*'warm'.*valid: 'warmup'"):
        culture.reset(options={"warm": 10})
    with pytest.raises(ValueError, match=r"options\['warmup'\] must be a finite number of ms >= 0"):
        culture.reset(options={"warmup": -5})
    culture.close()
    culture.close()
    with pytest.raises(RuntimeError, match="closed"):
        culture.reset()


def test_a_reward_function_is_called_and_checked(env):
    seen = []

    def reward(observation, action):
        seen.append((observation, action))
        return float(observation.sum()) - 0.01 * float(action.sum())

    env.reward_function = reward
    try:
        env.reset(options={"warmup": 0.0})
        observation, value, *_ = env.step(np.full(4, 25.0))
        assert value == pytest.approx(observation.sum() - 1.0)
        np.testing.assert_array_equal(seen[0][1], [25.0] * 4)
        env.reward_function = lambda o, a: math.nan
        with pytest.raises(ValueError, match="reward must return a finite number, found nan"):
            env.step(np.zeros(4))
        env.reward_function = lambda o, a: "good"
        with pytest.raises(TypeError, match="reward must return a number, found str"):
            env.step(np.zeros(4))
    finally:
        env.reward_function = None
    with pytest.raises(TypeError, match="reward must be a callable"):
        CultureEnv(**SMALL, reward=1.0)


def test_an_existing_livn_env_is_taken_over_and_closed():
    livn_env = make("EI2", scale=0.25)
    with pytest.raises(ValueError, match="system is a livn Env already: backend"):
        CultureEnv(livn_env, backend="brian2")
    culture = CultureEnv(livn_env, episode_duration=20.0, warmup=0.0)
    observation, info = culture.reset()
    assert info["time"] == 0.0 and not observation.any()
    assert culture.step(np.full(4, 30.0))[0].sum() > 0
    culture.close()
    assert livn_env.simulation is None
    with pytest.raises(ValueError, match="closed livn Env"):
        CultureEnv(livn_env)


@pytest.mark.slow
def test_neuron_backend_steps_and_closes():
    """The same environment on NEURON (EI1: one channel); closing it frees the process's one
    NEURON network for the next."""
    actions = [np.zeros(1)] * 3 + [np.full(1, 40.0)] * 3
    culture = CultureEnv("EI1", backend="neuron", step_duration=10.0, episode_duration=60.0, warmup=50.0,
                         max_amplitude=40.0)  # NEURON (implicit) takes pulses Brian2 cannot
    try:
        assert culture.env.backend == "neuron" and culture.action_space.shape == (1,)
        first, _ = episode(culture, actions)
        again, _ = episode(culture, actions)
        np.testing.assert_array_equal(first, again)
        assert first[4:].sum() > first[1:4].sum() + 5, first.ravel()
    finally:
        culture.close()
    second = CultureEnv("EI1", backend="neuron", episode_duration=20.0, warmup=0.0)
    second.reset()
    assert second.step(np.zeros(1))[0].shape == (1,)
    second.close()


def test_vector_env_gives_each_sub_environment_what_a_culture_env_sees_across_an_autoreset():
    from livn.gym import CultureVectorEnv

    settings = dict(step_duration=5.0, episode_duration=15.0, warmup=50.0)
    vector = gymnasium.make_vec("livn/EI2-v0", num_envs=3, vectorization_mode="vector_entry_point", **settings)
    assert isinstance(vector.unwrapped, CultureVectorEnv) and vector.action_space.shape == (3, 16)
    rng = np.random.default_rng(3)
    actions = rng.uniform(0, 30, (4, 3, 16)).astype(np.float32)
    actions[:, 1] = 0  # sub-environment 1 is never stimulated
    observed, _ = vector.reset(seed=1)
    steps = [observed]
    for k in range(4):  # three steps, the last truncating; then the step that resets
        observation, reward, terminated, truncated, _ = vector.step(actions[k])
        steps.append(observation)
        assert not terminated.any() and truncated.all() == (k == 2) and not (k == 3 and truncated.any())
    assert np.array_equal(steps[4], steps[0]), "the autoreset step returns the reset observations"
    vector.close()
    single = CultureEnv("EI2", **settings)
    for b in range(3):
        expected = [single.reset()[0]] + [single.step(actions[k, b])[0] for k in range(3)]
        for k in range(4):
            assert np.array_equal(steps[k][b], expected[k]), (b, k)
    single.close()
    assert sum(steps[3][0]) > sum(steps[3][1]), "a stimulated copy sees more spikes"


def test_vector_env_refuses_bad_actions_and_arguments():
    from livn.gym import CultureVectorEnv

    with pytest.raises(ValueError, match="copies must be an integer"):
        CultureVectorEnv("EI1", num_envs=0)
    with pytest.raises(ValueError, match="episode_duration must be a whole number"):
        CultureVectorEnv("EI1", num_envs=2, step_duration=10.0, episode_duration=15.0)
    vector = CultureVectorEnv("EI1", num_envs=2, step_duration=5.0, episode_duration=10.0, warmup=0.0)
    with pytest.raises(RuntimeError, match="reset"):
        vector.step(np.zeros((2, 16)))
    vector.reset()
    channels = vector.single_action_space.shape[0]
    with pytest.raises(ValueError, match=rf"actions must have shape \(2, {channels}\)"):
        vector.step(np.zeros(channels))
    bad = np.zeros((2, channels))
    bad[1, 0] = -1.0
    with pytest.raises(ValueError, match=r"actions\[1\] must have .* channel 0: -1.0"):
        vector.step(bad)
    vector.close()
    with pytest.raises(RuntimeError, match="closed"):
        vector.reset()
