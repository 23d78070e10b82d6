"""``livn systems sample``: a dataset of a system's responses to random MEA stimuli.

Trial ``i`` draws its stimulus from ``numpy.random.default_rng([seed, i])`` and starts from
the simulation's initial state, so a trial's data depend only on (system, configuration, i):
any number of workers, ranks or trials simulated at once (``batch``), in any order, gives the
serial run's dataset, and a killed run resumes where it stopped.

Stimulus of a trial (all draws uniform):

- ``k`` in 1..channels stimulated channels, chosen without replacement;
- each stimulated channel's amplitude in [amplitude_min, amplitude_max] µA;
- one pulse rate in [rate_min, rate_max] Hz for the trial, first pulse at a phase in
  [0, 1/rate) after the trial's onset;
- biphasic cathodic-first pulses (:func:`livn.io.biphasic_pulse`: 0.2 ms per phase, 0.05 ms gap).

A trial is ``warmup`` ms without stimulus (not stored: the network leaves its initial state),
then ``duration`` ms with it. Every trial sees the same noise realisation (livn's noise is
keyed by the spec's seed, gid and step), so trials differ by their stimulus only.

Layout of the run directory: ``config.json``; ``trials/trials-<first>-<stop>.parquet``, each
written whole by atomic rename; ``dataset.json`` and ``README.md``, the dataset card.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .rundir import RunDirectory, check_count, write_atomic

#: what each column of a trial row holds, with units (the dataset card lists it)
COLUMNS = {
    "trial": "trial index, from 0",
    "stimulus_amplitude": "per channel, uA (0: not stimulated)",
    "stimulus_rate": "pulse rate of the trial, Hz",
    "stimulus_onset": "first pulse after the trial's onset, ms",
    "spike_gid": "gid of each spike, in time order",
    "spike_time": "time of each spike from the trial's onset, ms",
    "channel_spike_count": "spikes per MEA channel (every cell within its recording radius)",
    "channel_spike_time": "per channel, the spike times it sees, ms from the trial's onset",
    "voltage": "with voltage_dt: per cell (gid order), soma potential every voltage_dt ms, mV",
}


@dataclass(frozen=True)
class SampleConfig:
    """Everything that determines a dataset (the run directory's key, with the circuit's hash).

    Attributes
    ----------
    duration : float
        Recorded part of each trial, ms.
    warmup : float
        Unstimulated, unrecorded start of each trial, ms (>= 0).
    seed : int
        Seed of the stimulus draws (the simulation's own noise comes from the spec's seed).
    chunk : int
        Trials per file.
    amplitude_min, amplitude_max : float
        Range of a stimulated channel's amplitude, µA. The default top, 30 µA, is below where
        Brian2's explicit integration at dt 0.025 ms diverges next to an electrode (~40 µA on
        EI3); a trial that diverges stops the run with FloatingPointError.
    rate_min, rate_max : float
        Range of the trial's pulse rate, Hz.
    voltage_dt : float or None
        Store every cell's soma potential at this interval, ms (None: no voltages).
    backend : str
        Simulator target.
    """

    duration: float = 500.0
    warmup: float = 200.0
    seed: int = 0
    chunk: int = 10
    amplitude_min: float = 5.0
    amplitude_max: float = 30.0
    rate_min: float = 2.0
    rate_max: float = 20.0
    voltage_dt: float | None = None
    backend: str = "brian2"

    def problems(self, dt: float = 0.025) -> list[str]:
        out = []

        def number(name, minimum, strict=True):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or (value <= minimum if strict else value < minimum):
                out.append(f"{name}: expected a finite number {'>' if strict else '>='} {minimum:g}, found {value!r}")
                return False
            return True

        number("duration", 0.0)
        number("warmup", 0.0, strict=False)
        for name, minimum in (("seed", 0), ("chunk", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                out.append(f"{name}: expected an integer >= {minimum}, found {value!r}")
        for low, high in (("amplitude_min", "amplitude_max"), ("rate_min", "rate_max")):
            if number(low, 0.0, strict=low.startswith("rate")) & number(high, 0.0):
                if getattr(self, low) > getattr(self, high):
                    out.append(f"{low} ({getattr(self, low):g}) must not exceed {high} ({getattr(self, high):g})")
        if self.voltage_dt is not None and number("voltage_dt", 0.0):
            if abs(self.voltage_dt / dt - round(self.voltage_dt / dt)) > 1e-9:
                out.append(f"voltage_dt: expected a multiple of the integration step {dt:g} ms, found {self.voltage_dt:g}")
        return out


def stimulus(config: SampleConfig, trial: int, num_channels: int, dt: float) -> tuple[np.ndarray, dict]:
    """The stimulus of ``trial``: (samples, channels) µA, and its parameters (amplitude per
    channel, rate, onset)."""
    from ..io import pulse_train

    rng = np.random.default_rng([config.seed, trial])
    k = int(rng.integers(1, num_channels + 1))
    channels = np.sort(rng.choice(num_channels, size=k, replace=False))
    amplitude = np.zeros(num_channels)
    amplitude[channels] = rng.uniform(config.amplitude_min, config.amplitude_max, size=k)
    rate = float(rng.uniform(config.rate_min, config.rate_max))
    onset = float(rng.uniform(0.0, 1000.0 / rate))
    steps = int(round(config.duration / dt))
    waveform = np.zeros((steps, num_channels))
    if onset < config.duration:
        for channel in channels:
            waveform += pulse_train(config.duration, [int(channel)], num_channels, amplitude[channel], rate,
                                    start=onset, dt=dt)
    return waveform, {"stimulus_amplitude": amplitude.astype(np.float32).tolist(), "stimulus_rate": rate,
                      "stimulus_onset": onset}


class Sampler:
    """One simulation that runs trials of a configuration (one per worker process).

    On a target with batches (Brian2), ``batch`` trials run at once as copies of the system
    (:class:`livn.batch.Batch`), and the warm-up, the same in every trial, is simulated once
    and rewound to; elsewhere each trial clears the Env and runs its warm-up. Either way a
    trial's row is the same, spike for spike.
    """

    def __init__(self, circuit: str, config: SampleConfig, batch: int = 1):
        from ..batch import Batch
        from ..env import Env
        from ..system import System
        from ..targets import get_target

        self.config, self.batch = config, batch
        system = System(circuit)
        self.members = system.channel_members
        if get_target(config.backend).batches:
            self.simulation = Batch(system, batch, backend=config.backend)
        else:
            self.simulation = Env(system, backend=config.backend)
        self.simulation.record_spikes()
        if config.voltage_dt is not None:
            self.simulation.record_voltage(dt=config.voltage_dt)
        if isinstance(self.simulation, Batch):
            if config.warmup > 0:
                self.simulation.run(config.warmup)
            self.simulation.checkpoint()

    def trials(self, indices: list[int]) -> list[dict]:
        """The rows of trials ``indices``."""
        from ..batch import Batch

        sim, config, rows = self.simulation, self.config, []
        for first in range(0, len(indices), self.batch):
            group = indices[first:first + self.batch]
            drawn = [stimulus(config, i, sim.system.num_channels, sim.dt) for i in group]
            if isinstance(sim, Batch):
                sim.rewind()
                waveforms = [w for w, _ in drawn] + [None] * (self.batch - len(group))
                results = sim.run(config.duration, waveforms)
            else:
                results = []
                for waveform, _ in drawn:
                    sim.clear()
                    if config.warmup > 0:
                        sim.run(config.warmup)
                    results.append(sim.run(config.duration, stimulus=waveform))
            rows += [self._row(i, params, result) for i, (_, params), result in zip(group, drawn, results)]
        return rows

    def _row(self, index: int, params: dict, result) -> dict:
        times = result.t - self.config.warmup
        per_channel = [times[np.isin(result.it, members)] for members in self.members]
        row = {"trial": index, **params,
               "spike_gid": result.it.astype(np.int32).tolist(), "spike_time": times.tolist(),
               "channel_spike_count": [len(c) for c in per_channel],
               "channel_spike_time": [c.tolist() for c in per_channel]}
        if self.config.voltage_dt is not None:
            row["voltage"] = result.v.astype(np.float32).tolist()
        return row

    def write(self, trials: list[int], folder: Path) -> Path:
        """Run ``trials`` and write them as one Parquet file (atomically); return its path."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(self.trials(trials))
        path = folder / f"trials-{trials[0]:06d}-{trials[-1] + 1:06d}.parquet"
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        write_atomic(path, sink.getvalue().to_pybytes())
        return path


def done_trials(folder: Path) -> set[int]:
    """Trials already in ``folder`` (from the complete files' names)."""
    done = set()
    for path in folder.glob("trials-*-*.parquet"):
        first, stop = (int(x) for x in path.stem.split("-")[1:3])
        done.update(range(first, stop))
    return done


def pending_groups(trials: int, done: set[int], chunk: int) -> list[list[int]]:
    """The trials still to run, grouped into files: consecutive trials of the same chunk."""
    groups: list[list[int]] = []
    for i in range(trials):
        if i in done:
            continue
        if groups and groups[-1][-1] == i - 1 and groups[-1][0] // chunk == i // chunk:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def dataset_directory(system: str, config: SampleConfig, root=None) -> tuple[RunDirectory, str]:
    """The run directory of (system, config) and the built circuit's path."""
    from ..system import System, resolve_circuit

    circuit = resolve_circuit(system)
    key = {"kind": "livn-sample-1", "circuit": System(circuit).content_key, **asdict(config)}
    return RunDirectory("sample", System(circuit).name, key, root=root), str(circuit)


#: trials simulated at once by default on a target with batches: on EI2 ten copies cost ~5 single
#: runs per step, thirty ~14 (benchmarks/sample_throughput.py)
DEFAULT_BATCH = 10

# a worker process keeps its simulation between the groups it is given
_WORKER: Sampler | None = None


def _start_worker(circuit: str, config: SampleConfig, batch: int) -> None:
    global _WORKER
    _WORKER = Sampler(circuit, config, batch)


def _run_group(group: list[int], folder: str) -> int:
    _WORKER.write(group, Path(folder))
    return len(group)


def sample(system: str, trials: int, config: SampleConfig, workers: int = 1, root=None, progress: bool = True,
           batch: int | None = None) -> Path:
    """Run the trials of (system, config) not yet in its run directory; return the directory.

    Parameters
    ----------
    system : str
        A predefined system's name, a spec file or a built circuit.
    trials : int
        Trials the dataset should hold (>= 1); trials 0..trials-1, the ones present kept.
    workers : int
        Processes running trials at once (>= 1). Under ``mpiexec`` the ranks share the trials
        instead (Brian2 only: a NEURON simulation under mpiexec spans the ranks).
    batch : int, optional
        Trials a worker simulates at once, as copies of the system (targets with batches:
        Brian2); at most ``config.chunk`` are used. Default 10 where the target has batches,
        else 1. The dataset does not depend on it.
    """
    from tqdm import tqdm

    from ..build.parallel import World
    from ..targets import get_target

    check_count("trials", trials)
    check_count("workers", workers)
    batches = get_target(config.backend).batches
    if batch is None:
        batch = DEFAULT_BATCH if batches else 1
    check_count("batch", batch)
    if batch > 1 and not batches:
        raise ValueError(f"batch {batch} needs a target that runs copies side by side (brian2); the "
                         f"{config.backend} target runs one trial at a time: use batch 1")
    batch = min(batch, config.chunk)
    problems = config.problems()
    if problems:
        raise ValueError("; ".join(problems))
    world = World()
    if world.size > 1 and config.backend != "brian2":
        raise ValueError(f"under mpiexec, sample gives each rank its own trials, which needs backend brian2 "
                         f"(found {config.backend!r}: its simulation would span the ranks); use --workers instead")
    run, circuit = dataset_directory(system, config, root)
    folder = run.path / "trials"
    if world.rank == 0:
        run.create()
        folder.mkdir(exist_ok=True)
    world.barrier()
    groups = pending_groups(trials, done_trials(folder), config.chunk)
    mine = groups[world.rank::world.size]
    total = sum(len(g) for g in groups)
    bar = tqdm(total=total, unit="trial", desc=f"sample {run.path.name}",
               disable=not progress or world.rank != 0 or total == 0)
    if workers == 1 or len(mine) <= 1:
        sampler = Sampler(circuit, config, batch) if mine else None
        for group in mine:
            sampler.write(group, folder)
            bar.update(len(group) * world.size)
    else:
        import multiprocessing

        # spawn: a forked child would inherit Brian2's/NEURON's state from this process
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_start_worker, initargs=(circuit, config, batch)) as pool:
            for future in as_completed([pool.submit(_run_group, g, str(folder)) for g in mine]):
                bar.update(future.result() * world.size)
    bar.close()
    world.barrier()
    if world.rank == 0:
        write_card(run, circuit, config)
    return run.path


def write_card(run: RunDirectory, circuit: str, config: SampleConfig) -> None:
    """The dataset card: ``dataset.json`` and ``README.md`` in the run directory."""
    from importlib.metadata import version

    from ..system import System

    system = System(circuit)
    complete = sorted(done_trials(run.path / "trials"))
    card = {
        "system": system.name, "circuit": circuit, "circuit_hash": system.content_key,
        "neurons": system.num_neurons, "channels": system.num_channels, "livn_version": version("livn"),
        "trials": len(complete), "trial_indices_complete": complete == list(range(len(complete))),
        "configuration": asdict(config), "columns": COLUMNS,
        "stimulus": (__doc__ or "").split("Stimulus of a trial (all draws uniform):")[1].split("Layout")[0].strip(),
        "load": f"livn.datasets.load({str(run.path)!r})  # or pandas.read_parquet(<this folder>/trials)",
    }
    write_atomic(run.path / "dataset.json", json.dumps(card, indent=2) + "\n")
    lines = [f"# Dataset: {system.name}, {len(complete)} trials", "",
             f"Made by `livn systems sample` (livn {card['livn_version']}) from the circuit {circuit} "
             f"(hash {system.content_key[:16]}; {system.num_neurons} neurons, {system.num_channels} MEA channels).",
             "", "Load it: `" + card["load"] + "`", "", "## Stimulus", "", card["stimulus"], "",
             "## Configuration", ""] + [f"- {k}: {v}" for k, v in asdict(config).items()] + [
             "", "## Columns (one row per trial)", ""] + [f"- `{k}`: {v}" for k, v in COLUMNS.items()]
    write_atomic(run.path / "README.md", "\n".join(lines) + "\n")


def worker_count() -> int:
    return max(1, os.cpu_count() or 1)
