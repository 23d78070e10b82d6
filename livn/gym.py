"""A Gymnasium environment over a livn :class:`~livn.env.Env`: stimulate the MEA, observe spikes.

Each step delivers one biphasic, cathodic-first pulse per channel (the shape of
:func:`livn.io.biphasic_pulse`: 0.2 ms per phase, 0.05 ms gap) whose amplitude in µA is the
action, then observes how many spikes each channel saw during the step.

>>> import livn.gym
>>> env = livn.gym.CultureEnv("EI2")                        # or gymnasium.make("livn/EI2-v0")
>>> observation, info = env.reset(seed=0)
>>> observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
>>> env.close()

``CultureVectorEnv`` (or ``gymnasium.make_vec("livn/EI2-v0", num_envs=8,
vectorization_mode="vector_entry_point")``) steps several copies in one Brian2 simulation.

Importing this module registers ``livn/<name>-v0`` with Gymnasium for every predefined system
(``livn/EI1-v0`` ... ``livn/CA1-v0``); ``gymnasium.make("livn.gym:livn/EI2-v0")`` imports it first.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .env import Env, _positive, make
from .io import biphasic_pulse
from .system import System

__all__ = ["CultureEnv", "CultureVectorEnv"]

# the protocol's pulse (livn.protocols), so amplitudes mean what they mean in `livn dynamics`
PULSE_PHASE = 0.2  # ms
PULSE_GAP = 0.05  # ms
DEFAULT_DT = 0.025  # ms, livn.env.Env's


def _duration(name: str, value, dt: float, minimum: float = 0.0, strict: bool = True) -> float:
    """``value`` ms as a float: finite, above ``minimum`` and a whole number of steps ``dt``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number of ms, found {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of ms, found {value!r}") from None
    if not math.isfinite(number) or (number <= minimum if strict else number < minimum):
        raise ValueError(f"{name} must be a finite number of ms {'>' if strict else '>='} {minimum:g}, found {value!r}")
    steps = number / dt
    if abs(steps - round(steps)) > 1e-6:
        raise ValueError(f"{name} must be a whole number of integration steps ({dt:g} ms), found {number:g} ms")
    return number


def _amplitude(value) -> float:
    if isinstance(value, bool):
        raise ValueError(f"max_amplitude must be a number of µA, found {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"max_amplitude must be a number of µA, found {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"max_amplitude must be a finite number of µA > 0, found {value!r}")
    return number


def _episodes(owner, dt: float, step_duration, episode_duration, max_amplitude, warmup, reward, render_mode) -> None:
    """Check the episode arguments and set them on ``owner`` (both environments take the same)."""
    if render_mode is not None:
        raise ValueError(f"render_mode must be None (this environment does not render), found {render_mode!r}")
    if reward is not None and not callable(reward):
        raise TypeError(f"reward must be a callable (observation, action) -> float, found {type(reward).__name__}")
    owner.max_amplitude = _amplitude(max_amplitude)
    owner.pulse = biphasic_pulse(1.0, phase=PULSE_PHASE, gap=PULSE_GAP, dt=dt)
    owner.step_duration = _duration("step_duration", step_duration, dt, len(owner.pulse) * dt, strict=False)
    owner.episode_duration = _duration("episode_duration", episode_duration, dt)
    ratio = owner.episode_duration / owner.step_duration
    if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6:
        raise ValueError(f"episode_duration must be a whole number (>= 1) of steps of {owner.step_duration:g} ms, "
                         f"found {owner.episode_duration:g} ms")
    owner.steps_per_episode = int(round(ratio))
    owner.warmup = _duration("warmup", warmup, dt, strict=False)
    owner.reward_function = reward
    owner.render_mode = None


def _check_amplitudes(action, channels: int, max_amplitude: float, limit: float, name: str = "action") -> np.ndarray:
    expected = f"shape ({channels},) of pulse amplitudes in µA within [0, {max_amplitude:g}]"
    try:
        values = np.asarray(action)
    except Exception:  # ragged nested sequences
        raise ValueError(f"{name} must have {expected}, found {action!r}") from None
    if values.dtype.kind not in "iuf":
        raise ValueError(f"{name} must have {expected}, found an array of {values.dtype}")
    if values.shape != (channels,):
        raise ValueError(f"{name} must have {expected}, found shape {values.shape}")
    values = values.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0) | (values > limit))
    if len(bad):
        found = ", ".join(f"channel {k}: {float(values[k])!r}" for k in bad[:5].tolist())
        raise ValueError(f"{name} must have {expected}, found {found}{' ...' if len(bad) > 5 else ''}")
    return np.minimum(values, max_amplitude)


def _reward(function, observation: np.ndarray, action: np.ndarray) -> float:
    if function is None:
        return 0.0
    # copies: a reward that edits its arguments must not change what step() returns
    value = function(observation.copy(), action.copy())
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"reward must return a number, found {type(value).__name__}") from None
    if not math.isfinite(number):
        raise ValueError(f"reward must return a finite number, found {value!r}")
    return number


def _warmup_option(options, default: float, dt: float) -> float:
    if options is None:
        return default
    if not isinstance(options, dict):
        raise ValueError(f"options must be a dict or None, found {type(options).__name__}")
    unknown = sorted(set(options) - {"warmup"})
    if unknown:
        raise ValueError(f"unknown reset option(s) {', '.join(map(repr, unknown))}; valid: 'warmup'")
    if "warmup" in options:
        return _duration("options['warmup']", options["warmup"], dt, strict=False)
    return default


def _pulses(pulse: np.ndarray, samples: int, amplitudes: np.ndarray):
    """A step's stimulus: one pulse per channel at its start, µA; None without any (then no field
    is applied, and CoreNEURON can run)."""
    if not np.any(amplitudes > 0):
        return None
    stimulus = np.zeros((samples, len(amplitudes)))
    stimulus[:len(pulse)] = pulse[:, None] * amplitudes[None, :]
    return stimulus


def _window(result, warmup: float, step_duration: float):
    """The spikes of a warm-up's last ``step_duration`` ms (what reset observes)."""
    if result is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    keep = result.t >= max(0.0, warmup - step_duration) - 1e-9
    return result.it[keep], result.t[keep]


class CultureEnv(gymnasium.Env):
    """A neuronal culture on an MEA as a Gymnasium environment.

    Each :meth:`step` is ``step_duration`` ms of simulation: at its start, every channel delivers
    one biphasic, cathodic-first pulse (0.2 ms per phase, 0.05 ms gap; amplitude 0: no pulse)
    with the amplitude of its action entry; the observation is the number of spikes each channel
    recorded during the step (every spike of every cell within the channel's recording radius,
    so a spike near two electrodes counts on both).

    Parameters
    ----------
    system : str, path-like, livn.System or livn.env.Env, default "EI2"
        What :func:`livn.make` accepts (a predefined system name such as "EI2", a circuit
        directory / ``circuit_config.json`` / ``simulation_config.json``), a
        :class:`~livn.system.System`, or an existing livn ``Env`` (then ``backend``, ``scale``
        and ``options`` must be left out; this environment takes it over: it records its
        spikes, clears it on every reset and closes it on :meth:`close`).
    backend : str, optional
        "brian2" or "neuron" (see :func:`livn.make`; default ``$LIVN_BACKEND``, else "brian2").
        NEURON runs one network per process: close this environment before making another.
    scale : float, default 1.0
        Fraction of a predefined system to build, in (0, 1] (see :func:`livn.predefined`).
    step_duration : float, default 10.0
        ms per step: a whole number of integration steps, at least one pulse (0.45 ms) long.
    episode_duration : float, default 1000.0
        ms per episode after the warm-up, a whole number of steps: the step that reaches it
        returns ``truncated=True`` (an episode never terminates: a culture has no end state),
        and stepping on raises RuntimeError until :meth:`reset`.
    max_amplitude : float, default 30.0
        Largest pulse amplitude, µA (> 0). The documented stimulus scale is 20 µA
        (:data:`livn.protocols.STIMULUS_AMPLITUDE`); stronger pulses add few spikes (EI3 on
        Brian2: 14.6 Hz at 20 and at 30 µA), and from ~40 µA Brian2's explicit integration at
        dt 0.025 ms diverges in the cells nearest an electrode (EI3; EI2 from ~60 µA): the run
        then raises FloatingPointError. NEURON (implicit) takes larger amplitudes.
    warmup : float, default 200.0
        ms simulated without stimulus on every reset (>= 0, whole integration steps), so an
        episode starts past the network's initial transient.
    reward : callable, optional
        ``reward(observation, action) -> float``, called on each step with the observation
        (spike counts) and the action (µA) as float arrays. By default the reward is 0.0:
        the culture defines no task, and any built-in objective (e.g. "more spikes", solved by
        pulsing at ``max_amplitude``) would be a task users did not ask for.
    render_mode : None
        No rendering is offered; only None is accepted.
    **options
        Passed to :func:`livn.make` (e.g. ``dt`` in ms, Brian2 ``codegen``, NEURON ``field``).

    Attributes
    ----------
    action_space : gymnasium.spaces.Box
        ``Box(0, max_amplitude, (channels,), float32)``, µA per channel. Gymnasium's checker
        recommends [0, 1] actions; ``gymnasium.wrappers.RescaleAction(env, 0.0, 1.0)`` gives them.
    observation_space : gymnasium.spaces.Box
        ``Box(0, high, (channels,), float32)``: spike counts (whole numbers) per channel per
        step; ``high`` is each channel's cells x integration steps per step (a cell spikes at
        most once per integration step), a bound, not an expectation.
    env : livn.env.Env
        The simulation.

    Notes
    -----
    Seeding: livn's simulation noise is drawn from counter-based streams keyed by the
    system's spec seed and each cell's gid, so the same actions after :meth:`reset` give the
    same observations whatever ``seed`` is. ``reset(seed=...)`` seeds :attr:`np_random`
    (for a reward or subclass that wants randomness), as Gymnasium prescribes; action sampling
    is seeded by ``env.action_space.seed(...)``. To start episodes from different states,
    pass ``options={"warmup": ms}`` to :meth:`reset`.

    ``info`` (from :meth:`reset` and :meth:`step`) describes the observation's window (the
    step; on reset, the last ``step_duration`` ms of the warm-up, or all of it if shorter):
    ``time`` (ms, simulation clock at its end, warm-up included), ``episode_time`` (ms since
    the warm-up ended), ``step`` (steps taken this episode), ``spikes`` (total count),
    ``population_spikes`` (population -> count), ``spike_gids`` and ``spike_times`` (ms) of
    every spike in the window.
    """

    metadata = {"render_modes": []}

    def __init__(self, system="EI2", backend: str | None = None, scale: float = 1.0, step_duration: float = 10.0,
                 episode_duration: float = 1000.0, max_amplitude: float = 30.0, warmup: float = 200.0,
                 reward: Callable[[np.ndarray, np.ndarray], float] | None = None, render_mode: str | None = None,
                 **options):
        # the durations are checked before the simulation is built (seconds for a large system)
        dt = system.dt if isinstance(system, Env) else _positive("dt", options.get("dt", DEFAULT_DT), 1.0)
        _episodes(self, dt, step_duration, episode_duration, max_amplitude, warmup, reward, render_mode)
        self._step = None  # no episode until reset()
        self.env = self._make_env(system, backend, scale, options)
        try:
            self._spaces()
        except BaseException:
            if self.env is not system:  # ours: NEURON would otherwise hold the process's one network
                self.env.close()
            self.env = None
            raise

    @staticmethod
    def _make_env(system, backend, scale, options) -> Env:
        if isinstance(system, Env):
            given = [k for k, v in (("backend", backend), ("scale", scale != 1.0)) if v] + sorted(options)
            if given:
                raise ValueError(f"system is a livn Env already: {', '.join(given)} cannot apply to it "
                                 f"(pass a system name or path instead)")
            if system.simulation is None:
                raise ValueError("system is a closed livn Env: make a new one")
            return system
        if isinstance(system, System):
            if scale != 1.0:
                raise ValueError(f"scale={scale!r} applies to a predefined system name; a System is built already")
            return Env(system, backend=backend, **options)
        if isinstance(system, (str, os.PathLike)):
            return make(system, backend=backend, scale=scale, **options)
        raise TypeError(f"system must be a predefined system name, a circuit path, a livn System or a livn Env, "
                        f"found {type(system).__name__}")

    def _spaces(self) -> None:
        env = self.env
        channels = env.system.num_channels
        if channels == 0:
            raise ValueError(f"{env.system.name} has no MEA (no electrodes): there is nothing to stimulate or record")
        self._samples = int(round(self.step_duration / env.dt))
        self._members = [np.asarray(m, dtype=np.int64) for m in env.system.channel_members]
        self._populations = {p: np.asarray(env.system.gids(p), dtype=np.int64) for p in env.system.populations}
        self._cells = int(env.model.num_cells)  # gids are 0 .. num_cells - 1
        high = np.array([len(m) * self._samples for m in self._members], dtype=np.float32)
        self.action_space = spaces.Box(0.0, self.max_amplitude, (channels,), np.float32)
        self.observation_space = spaces.Box(np.zeros(channels, np.float32), high, (channels,), np.float32)
        # float32 rounds max_amplitude either way; accept both it and its float32 image
        self._limit = max(self.max_amplitude, float(self.action_space.high[0]))
        env.record_spikes()

    # -- the Gymnasium API -------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start an episode: the simulation goes back to t = 0 and runs the warm-up unstimulated.

        Parameters
        ----------
        seed : int, optional
            Seeds :attr:`np_random` only: the simulation is the same for every seed (see Notes
            of :class:`CultureEnv`).
        options : dict, optional
            ``{"warmup": ms}`` overrides the warm-up for this episode (>= 0, whole integration steps).

        Returns
        -------
        observation : ndarray
            Spike counts per channel over the last ``step_duration`` ms of the warm-up (zeros without one).
        info : dict
            See Notes of :class:`CultureEnv`.
        """
        super().reset(seed=seed)
        self._check_open()
        warmup = _warmup_option(options, self.warmup, self.env.dt)
        self._step = None  # an interrupted reset leaves no episode to step in
        self.env.clear()
        self._start = warmup
        it, t = _window(self.env.run(warmup) if warmup > 0 else None, warmup, self.step_duration)
        self._step = 0
        return self._observe(it), self._info(it, t)

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Pulse every channel with ``action`` µA and simulate one step.

        Parameters
        ----------
        action : array-like
            Shape (channels,), amplitudes in µA in [0, max_amplitude].

        Returns
        -------
        observation : ndarray
            Spike counts per channel during the step, float32.
        reward : float
            ``reward(observation, action)``, or 0.0 without a reward function.
        terminated : bool
            Always False.
        truncated : bool
            True on the step that reaches ``episode_duration``.
        info : dict
            See Notes of :class:`CultureEnv`.
        """
        self._check_open()
        if self._step is None:
            raise RuntimeError("call reset() before step()")
        if self._step >= self.steps_per_episode:
            raise RuntimeError(f"the episode ended at episode_duration = {self.episode_duration:g} ms "
                               f"(truncated=True was returned): call reset()")
        amplitudes = self._check_action(action)
        result = self.env.run(self.step_duration, stimulus=_pulses(self.pulse, self._samples, amplitudes))
        self._step += 1
        observation = self._observe(result.it)
        reward = self._reward(observation, amplitudes)
        truncated = self._step >= self.steps_per_episode
        return observation, reward, False, truncated, self._info(result.it, result.t)

    def close(self) -> None:
        """Close the livn Env (a NEURON one lets another be made in this process); idempotent."""
        if getattr(self, "env", None) is not None:
            self.env.close()
            self.env = None
        self._step = None

    # -- helpers -------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.env is None:
            raise RuntimeError("this CultureEnv is closed: make a new one")

    def _check_action(self, action) -> np.ndarray:
        return _check_amplitudes(action, len(self._members), self.max_amplitude, self._limit)

    def _counts(self, it: np.ndarray) -> np.ndarray:
        return np.bincount(np.asarray(it, dtype=np.int64), minlength=self._cells)

    def _observe(self, it: np.ndarray) -> np.ndarray:
        per_cell = self._counts(it)
        return np.array([per_cell[m].sum() for m in self._members], dtype=np.float32)

    def _info(self, it: np.ndarray, t: np.ndarray) -> dict[str, Any]:
        per_cell = self._counts(it)
        return {"time": float(self.env.t), "episode_time": float(self.env.t - self._start), "step": self._step,
                "spikes": int(len(it)),
                "population_spikes": {p: int(per_cell[g].sum()) for p, g in self._populations.items()},
                "spike_gids": np.array(it, dtype=np.int64), "spike_times": np.array(t, dtype=float)}

    def _reward(self, observation: np.ndarray, action: np.ndarray) -> float:
        return _reward(self.reward_function, observation, action)


class CultureVectorEnv(VectorEnv):
    """``num_envs`` copies of a culture stepped together in one Brian2 simulation
    (:class:`livn.batch.Batch`): a vector environment for RL at a fraction of the cost of
    ``num_envs`` :class:`CultureEnv`.

    Sub-environment b sees what a :class:`CultureEnv` with the same arguments sees given the same
    actions, spike for spike (tested). The episodes run in lockstep: they have one length and
    never terminate, so every sub-environment truncates on the same step, and the next
    :meth:`step` starts new episodes in all of them (Gymnasium's next-step autoreset: that step
    returns the reset observations, rewards 0 and no truncation). The shared warm-up is
    simulated once and rewound to on every reset.

    Parameters
    ----------
    system : str, path-like or livn.System, default "EI2"
        A predefined system name, a circuit path, or a System.
    num_envs : int, default 4
        Sub-environments (1..10000).
    scale, step_duration, episode_duration, max_amplitude, warmup, reward, render_mode
        As for :class:`CultureEnv` (``reward`` is called per sub-environment).
    **options
        ``dt`` (ms) and Brian2's ``codegen``.

    Attributes
    ----------
    single_action_space, single_observation_space : gymnasium.spaces.Box
        A sub-environment's spaces (those of :class:`CultureEnv`); ``action_space`` and
        ``observation_space`` stack them, shape (num_envs, channels).
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, system="EI2", num_envs: int = 4, scale: float = 1.0, step_duration: float = 10.0,
                 episode_duration: float = 1000.0, max_amplitude: float = 30.0, warmup: float = 200.0,
                 reward: Callable[[np.ndarray, np.ndarray], float] | None = None, render_mode: str | None = None,
                 **options):
        from .batch import Batch
        from .system import resolve_circuit

        dt = _positive("dt", options.pop("dt", DEFAULT_DT), 1.0)
        _episodes(self, dt, step_duration, episode_duration, max_amplitude, warmup, reward, render_mode)
        if isinstance(system, (str, os.PathLike)):
            system = System(resolve_circuit(system, scale))
        elif not isinstance(system, System):
            raise TypeError(f"system must be a predefined system name, a circuit path or a livn System, "
                            f"found {type(system).__name__}")
        elif scale != 1.0:
            raise ValueError(f"scale={scale!r} applies to a predefined system name; a System is built already")
        self.batch = None
        batch = Batch(system, num_envs, backend="brian2", dt=dt, **options)
        channels = system.num_channels
        if channels == 0:
            raise ValueError(f"{system.name} has no MEA (no electrodes): there is nothing to stimulate or record")
        self.batch, self.num_envs = batch, batch.copies
        self._samples = int(round(self.step_duration / dt))
        self._members = [np.asarray(m, dtype=np.int64) for m in system.channel_members]
        self._cells = int(system.network.num_cells)
        high = np.array([len(m) * self._samples for m in self._members], dtype=np.float32)
        self.single_action_space = spaces.Box(0.0, self.max_amplitude, (channels,), np.float32)
        self.single_observation_space = spaces.Box(np.zeros(channels, np.float32), high, (channels,), np.float32)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._limit = max(self.max_amplitude, float(self.single_action_space.high[0]))
        batch.record_spikes()
        self._warmup, self._first = None, None  # the warm-up the checkpoint holds, and its observation
        self._step = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        """Start episodes in every sub-environment (``options``: ``{"warmup": ms}`` for all)."""
        if seed is not None:
            self._np_random, self._np_random_seed = gymnasium.utils.seeding.np_random(seed)
        self._check_open()
        warmup = _warmup_option(options, self.warmup, self.batch.dt)
        self._step = None
        if self._warmup != warmup:
            self.batch.clear()
            results = self.batch.run(warmup) if warmup > 0 else [None] * self.num_envs
            self._first = [_window(r, warmup, self.step_duration) for r in results]
            self.batch.checkpoint()
            self._warmup = warmup
        else:
            self.batch.rewind()
        self._step = 0
        return self._gather([it for it, _ in self._first]), {}

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Pulse every channel of sub-environment b with ``actions[b]`` µA and simulate one step."""
        self._check_open()
        if self._step is None:
            raise RuntimeError("call reset() before step()")
        if self._step >= self.steps_per_episode:  # next-step autoreset
            observations, info = self.reset()
            zeros = np.zeros(self.num_envs, dtype=bool)
            return observations, np.zeros(self.num_envs), zeros, zeros.copy(), info
        try:
            values = np.asarray(actions)
        except Exception:
            raise ValueError(f"actions must have shape ({self.num_envs}, {len(self._members)}), found {actions!r}") from None
        if values.ndim != 2 or len(values) != self.num_envs:
            raise ValueError(f"actions must have shape ({self.num_envs}, {len(self._members)}) (one row of µA per "
                             f"sub-environment), found shape {values.shape}")
        amplitudes = [_check_amplitudes(row, len(self._members), self.max_amplitude, self._limit, f"actions[{b}]")
                      for b, row in enumerate(values)]
        results = self.batch.run(self.step_duration, [_pulses(self.pulse, self._samples, row) for row in amplitudes])
        self._step += 1
        observations = self._gather([r.it for r in results])
        rewards = np.array([_reward(self.reward_function, o, a) for o, a in zip(observations, amplitudes)])
        truncated = np.full(self.num_envs, self._step >= self.steps_per_episode)
        return observations, rewards, np.zeros(self.num_envs, dtype=bool), truncated, \
            {"spikes": np.array([len(r.it) for r in results])}

    def close_extras(self, **kwargs) -> None:
        if getattr(self, "batch", None) is not None:
            self.batch.close()
            self.batch = None
        self._step = None

    def _check_open(self) -> None:
        if self.batch is None:
            raise RuntimeError("this CultureVectorEnv is closed: make a new one")

    def _gather(self, spikes) -> np.ndarray:
        out = np.zeros((len(spikes), len(self._members)), dtype=np.float32)
        for b, it in enumerate(spikes):
            per_cell = np.bincount(np.asarray(it, dtype=np.int64), minlength=self._cells)
            out[b] = [per_cell[m].sum() for m in self._members]
        return out


def _register() -> None:
    from .resources import predefined_names

    for name in predefined_names():
        key = f"livn/{name}-v0"
        if key not in gymnasium.registry:  # a re-import must not warn about overriding
            gymnasium.register(key, entry_point=CultureEnv, vector_entry_point=CultureVectorEnv,
                               kwargs={"system": name})


_register()
