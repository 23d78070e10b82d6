"""RL stepping throughput: sub-environment steps per second of ``CultureEnv`` against
``CultureVectorEnv`` (copies in one Brian2 simulation), random actions, 10 ms steps.

    .venv/bin/python benchmarks/gym_speed.py [EI2] [--steps 100] [--envs 1 8 16] [--repeats 3]

Each figure is a median over repeats of ``--steps`` steps after a reset (construction and
compilation untimed); the ratio compares with the single environment.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from livn.gym import CultureEnv, CultureVectorEnv


def _rate(env, steps: int, shape, rng) -> float:
    env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        env.step(rng.uniform(0, 30, shape).astype(np.float32))
    return steps * (shape[0] if len(shape) == 2 else 1) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", nargs="?", default="EI2")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{args.system}: {args.steps} steps of 10 ms, medians of {args.repeats}")
    print(f"{'environment':>26} {'env-steps/s':>12} {'simulated s/s':>14} {'ratio':>6}")
    first = None
    for n in args.envs:
        if n == 1:
            env = CultureEnv(args.system, episode_duration=10.0 * args.steps)
            shape = env.action_space.shape
        else:
            env = CultureVectorEnv(args.system, num_envs=n, episode_duration=10.0 * args.steps)
            shape = env.action_space.shape
        _rate(env, 5, shape, rng)  # compile and prepare
        rate = statistics.median(_rate(env, args.steps, shape, rng) for _ in range(args.repeats))
        env.close()
        first = first or rate
        label = "CultureEnv" if n == 1 else f"CultureVectorEnv({n})"
        print(f"{label:>26} {rate:>12.1f} {rate * 0.01:>14.3f} {rate / first:>6.2f}")


if __name__ == "__main__":
    main()
