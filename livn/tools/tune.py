"""``livn systems tune``: search a system's weights and noise toward target dynamics.

Each trial sets the parameters, runs both protocols of :mod:`livn.protocols` (spontaneous and
stimulated) and scores the figures against the targets. The first trial is the system's
defaults; then Optuna's TPE sampler (a surrogate model of where good parameters lie: Bergstra
et al. 2011) proposes the next trial. The study lives in an SQLite file in the run directory
(keyed by the system, targets and settings), so an interrupted run resumes from its stored
trials and the same command again adds nothing.

Targets (``TARGETS``; a YAML file of the same shape replaces any of them): a figure with
``target`` and ``scale`` costs ((value - target) / scale)^2, one with ``range`` and ``scale``
costs (distance outside the range / scale)^2; the loss is their sum. A figure that cannot
be measured (no MEA, no bursts to time) costs ``UNMEASURED``.

Trials that cannot win stop early: the spontaneous protocol runs first and gives every figure
but the stimulated rate, and the loss is a sum of squares, so what those figures cost is a
lower bound of the trial's loss. When it is above the best loss so far, the trial is pruned
(Optuna's PRUNED state, the bound reported as its intermediate value, which TPE ranks it by)
without its stimulated protocol. No trial that could have become the best is lost; silent or
runaway proposals, common in a narrow regime, cost half.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .rundir import RunDirectory, check_count, write_atomic

#: what the issue asks of the EI systems: ~3 Hz spontaneous, ~12 Hz stimulated, m ~ 1,
#: network bursts at 0.05-0.5 Hz (Wagenaar et al. 2006: 0.1-1 per 10 s to several per min)
#: with most channels taking part; and no population silent (a culture's interneurons fire at
#: least as often as its pyramidal cells, so a mean of 3 Hz with one population near 0 is not it)
TARGETS = {
    "spontaneous_rate": {"target": 3.0, "scale": 0.5, "unit": "Hz"},
    "slowest_population_rate": {"range": [1.5, 1000.0], "scale": 0.5, "unit": "Hz"},
    "stimulated_rate": {"target": 12.0, "scale": 2.0, "unit": "Hz"},
    "branching_ratio": {"target": 1.0, "scale": 0.05, "unit": ""},
    "network_burst_rate": {"range": [0.05, 0.5], "scale": 0.05, "unit": "Hz"},
    "burst_participation": {"range": [0.5, 1.0], "scale": 0.25, "unit": ""},
}
#: cost of a targeted figure the trial could not measure
UNMEASURED = 25.0


#: the figures of the stimulated protocol; the others come from the spontaneous one, which runs first
STIMULATED_FIGURES = ("stimulated_rate",)


def figures(dynamics) -> dict[str, float]:
    """The targeted figures of a :class:`livn.protocols.Dynamics` (NaN: not measured)."""
    bursts = dynamics.bursts
    return {
        "spontaneous_rate": float(dynamics.spontaneous["all"]),
        "slowest_population_rate": float(min(rate for name, rate in dynamics.spontaneous.items() if name != "all")),
        "stimulated_rate": float("nan") if dynamics.stimulated is None else float(dynamics.stimulated["all"]),
        "branching_ratio": float(dynamics.branching_ratio),
        "network_burst_rate": float("nan") if bursts is None else float(bursts.rate),
        "burst_participation": float("nan") if bursts is None or not bursts.count else float(bursts.participation),
    }


def loss(values: dict[str, float], targets: dict) -> float:
    total = 0.0
    for name, goal in targets.items():
        value = values.get(name, float("nan"))
        if not math.isfinite(value):
            total += UNMEASURED
        elif "target" in goal:
            total += ((value - goal["target"]) / goal["scale"]) ** 2
        else:
            low, high = goal["range"]
            total += (max(low - value, 0.0, value - high) / goal["scale"]) ** 2
    return total


def check_targets(targets) -> list[str]:
    """Every problem of a targets mapping (names, target/range, scale > 0)."""
    if not isinstance(targets, dict) or not targets:
        return [f"expected a mapping of figure -> {{target|range, scale}}, found {targets!r}"]
    out = []
    for name, goal in targets.items():
        where = f"targets.{name}"
        if name not in TARGETS:
            out.append(f"{where}: unknown figure; known: {', '.join(TARGETS)}")
            continue
        if not isinstance(goal, dict):
            out.append(f"{where}: expected a mapping with target (or range) and scale, found {goal!r}")
            continue
        number = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)  # noqa: E731
        if ("target" in goal) == ("range" in goal):
            out.append(f"{where}: expected exactly one of 'target' (a number) or 'range' ([low, high])")
        elif "target" in goal and not number(goal["target"]):
            out.append(f"{where}.target: expected a finite number, found {goal['target']!r}")
        elif "range" in goal and not (isinstance(goal["range"], list) and len(goal["range"]) == 2
                                      and all(number(x) for x in goal["range"]) and goal["range"][0] <= goal["range"][1]):
            out.append(f"{where}.range: expected [low, high] with low <= high, found {goal['range']!r}")
        if not number(goal.get("scale")) or goal["scale"] <= 0:
            out.append(f"{where}.scale: expected a finite number > 0 (what one unit of loss is), found {goal.get('scale')!r}")
        unknown = set(goal) - {"target", "range", "scale", "unit"}
        if unknown:
            out.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return out


def read_targets(path) -> dict:
    """TARGETS with those of the YAML file at ``path`` replacing theirs; ValueError listing
    every problem (with the file's name)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read the targets: {err}") from None
    problems = check_targets(data)
    if problems:
        raise ValueError("; ".join(f"{path}: {p}" for p in problems))
    return data


@dataclass(frozen=True)
class TuneConfig:
    """Everything that determines a tuning run (its run directory's key, with the circuit).

    Attributes
    ----------
    duration, transient : float
        Each protocol's length and the part of it not measured, ms.
    factor : float
        Each parameter is searched log-uniformly in [default / factor, default x factor].
    parameters : tuple of str
        The parameters searched (names of ``default_params()``; empty: every one with a
        default > 0).
    targets : dict
        Figure -> goal (see the module's description).
    seed : int
        The sampler's seed.
    backend : str
        Simulator target.
    """

    duration: float = 5000.0
    transient: float = 2000.0
    factor: float = 4.0
    parameters: tuple = ()
    targets: dict = field(default_factory=lambda: json.loads(json.dumps(TARGETS)))
    seed: int = 0
    backend: str = "brian2"

    def problems(self) -> list[str]:
        out = []
        for name, minimum in (("duration", 0.0), ("transient", 0.0), ("factor", 1.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)
                    and (value > minimum or (name == "transient" and value == 0))):
                out.append(f"{name}: expected a finite number > {minimum:g}, found {value!r}")
        if not out and self.transient >= self.duration:
            out.append(f"transient ({self.transient:g} ms) must be shorter than duration ({self.duration:g} ms)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            out.append(f"seed: expected an integer >= 0, found {self.seed!r}")
        return out + check_targets(self.targets)


def search_space(defaults: dict, config: TuneConfig) -> dict[str, tuple[float, float]]:
    """Parameter -> (low, high) of the log-uniform search; ValueError for unknown names or a
    parameter whose default is 0 (no scale to search around)."""
    names = list(config.parameters) or [name for name, value in defaults.items() if value > 0]
    unknown = [n for n in names if n not in defaults]
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; the system's: {', '.join(defaults)}")
    zero = [n for n in names if defaults[n] <= 0]
    if zero:
        raise ValueError(f"parameter(s) {', '.join(zero)} default to 0: a log-uniform search needs a scale")
    return {n: (defaults[n] / config.factor, defaults[n] * config.factor) for n in names}


def tune_directory(system: str, config: TuneConfig, root=None) -> tuple[RunDirectory, str]:
    from ..system import System, resolve_circuit

    circuit = resolve_circuit(system)
    key = {"kind": "livn-tune-1", "circuit": System(circuit).content_key, **asdict(config),
           "parameters": list(config.parameters)}
    return RunDirectory("tune", System(circuit).name, key, root=root), str(circuit)


def _storage(run: RunDirectory) -> str:
    return f"sqlite:///{run.path / 'study.db'}"


def open_study(run: RunDirectory, config: TuneConfig, stream: tuple = ()):
    """The study of ``run``. ``stream`` (trials started, worker) gives each parallel worker a
    sampler seed of its own: workers seeded alike propose the same parameters."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = config.seed if not stream else int(np.random.SeedSequence([config.seed, *stream]).generate_state(1)[0])
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)
    return optuna.create_study(study_name="livn-tune", storage=_storage(run), sampler=sampler,
                               direction="minimize", load_if_exists=True)


class Objective:
    """One simulation scoring parameter sets (one per worker process)."""

    def __init__(self, circuit: str, config: TuneConfig):
        from ..env import Env
        from ..system import System

        self.config = config
        self.env = Env(System(circuit), backend=config.backend)
        self.space = search_space(self.env.default_params(), config)

    def __call__(self, trial) -> float:
        import optuna

        from ..protocols import measure

        params = {name: trial.suggest_float(name, low, high, log=True) for name, (low, high) in self.space.items()}
        self.env.set_params(params)
        spontaneous = {k: goal for k, goal in self.config.targets.items() if k not in STIMULATED_FIGURES}
        best = [math.inf]

        def proceed(partial) -> bool:
            # the loss is a sum of squares: what the spontaneous figures cost already is a lower
            # bound of the trial's loss, so a trial whose bound is above the best loss so far
            # (read now: parallel workers may have found a better one meanwhile) cannot win, and
            # its stimulated protocol is not run
            bound = loss(figures(partial), spontaneous)
            trial.report(bound, 0)
            best[0] = best_loss(trial.study)
            return bound < best[0]

        dynamics = measure(self.env, self.config.duration, self.config.transient, progress=False, proceed=proceed)
        values = figures(dynamics)
        for name, value in values.items():
            if dynamics.stimulated is not None or name not in STIMULATED_FIGURES:
                trial.set_user_attr(name, value)
        if dynamics.stimulated is None:
            raise optuna.TrialPruned(f"the spontaneous figures alone cost more than the best trial's {best[0]:.4g}")
        return loss(values, self.config.targets)


def best_loss(study) -> float:
    """The lowest loss of the study's complete trials (inf before the first)."""
    try:
        return study.best_value
    except ValueError:
        return math.inf


_WORKER: Objective | None = None


def _start_worker(circuit: str, config: TuneConfig) -> None:
    global _WORKER
    _WORKER = Objective(circuit, config)


def _optimize(run_path: str, config: TuneConfig, trials: int, stream: tuple) -> None:
    study = open_study(_Run(run_path), config, stream)
    study.optimize(_WORKER, n_trials=trials, catch=(RuntimeError, FloatingPointError))


class _Run:
    """The part of a RunDirectory a worker needs: its path."""

    def __init__(self, path: str):
        self.path = Path(path)


def finished_trials(study) -> list:
    """The trials that reached a verdict: complete, or pruned (stopped after the spontaneous
    protocol because they could not beat the best). ``--trials`` counts these; failed trials
    (a simulation that diverged) and ones a killed run left running do not count."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def recover(study) -> int:
    """Trials a killed run left RUNNING are failed and queued again (same parameters); return
    how many."""
    from optuna.trial import TrialState

    failed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # one that finished since it was read (a worker of the killed run still ending its
        # trial) keeps its result
        if study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True).state == TrialState.FAIL:
            study.enqueue_trial(trial.params)
            failed += 1
    return failed


def tune(system: str, trials: int, config: TuneConfig, workers: int = 1, root=None, progress: bool = True) -> Path:
    """Run the trials of (system, config) not yet in its study; return the run directory.

    The study holds ``trials`` complete trials afterwards (failed ones, a simulation whose
    state stopped being finite, do not count). ``workers`` processes share the study
    (Optuna's parallel optimisation over one storage); their proposals then depend on timing,
    a serial run's do not. ``result.json`` gets the best trial.
    """
    from filelock import FileLock, Timeout
    from tqdm import tqdm

    check_count("trials", trials)
    check_count("workers", workers)
    problems = config.problems()
    if problems:
        raise ValueError("; ".join(problems))
    run, circuit = tune_directory(system, config, root)
    run.create()
    lock = FileLock(str(run.path / "study.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RuntimeError(f"another `livn systems tune` is running on {run.path}; wait for it") from None
    try:
        study = open_study(run, config)
        recover(study)
        if not study.trials:  # the system's defaults are the first trial: the search starts from them
            from ..system import System

            defaults = System(circuit).default_params()
            study.enqueue_trial({name: defaults[name] for name in search_space(defaults, config)})
        remaining = trials - len(finished_trials(study))
        bar = tqdm(total=max(remaining, 0), unit="trial", desc=f"tune {run.path.name}", disable=not progress)
        if remaining > 0 and workers == 1:
            objective = Objective(circuit, config)

            def report(study, trial):
                bar.update(1 if trial.state.name in ("COMPLETE", "PRUNED") else 0)
                if best_loss(study) < math.inf:
                    bar.set_postfix(best=f"{study.best_value:.3g}")

            while len(finished_trials(study)) < trials:  # failed trials do not count
                study.optimize(objective, n_trials=trials - len(finished_trials(study)), callbacks=[report],
                               catch=(RuntimeError, FloatingPointError))
        elif remaining > 0:
            _parallel(run, circuit, config, trials, workers, study, bar)
        bar.close()
        _write_result(run, study, config)
    finally:
        lock.release()
    return run.path


def _parallel(run, circuit, config, trials, workers, study, bar) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                             initargs=(circuit, config)) as pool:
        done = len(finished_trials(study))
        while done < trials:
            missing = trials - done
            shares = [missing // workers + (k < missing % workers) for k in range(workers)]
            # every round and worker its own seed: the study's size so far tells rounds (and
            # resumed runs) apart
            started = len(study.get_trials(deepcopy=False))
            futures = {pool.submit(_optimize, str(run.path), config, n, (started, k)) for k, n in enumerate(shares) if n}
            while futures:
                finished, futures = wait(futures, timeout=2.0, return_when=FIRST_COMPLETED)
                for future in finished:
                    future.result()
                now = len(finished_trials(study))
                bar.update(now - done)
                done = now
                if best_loss(study) < math.inf:
                    bar.set_postfix(best=f"{study.best_value:.3g}")


def _write_result(run: RunDirectory, study, config: TuneConfig) -> dict:
    best = study.best_trial
    from optuna.trial import TrialState

    finished = finished_trials(study)
    result = {"trials": len(finished), "pruned": sum(t.state == TrialState.PRUNED for t in finished),
              "best_trial": best.number, "loss": best.value,
              "params": best.params, "figures": {k: best.user_attrs.get(k) for k in config.targets},
              "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_atomic(run.path / "result.json", json.dumps(result, indent=2) + "\n")
    return result


def promote(spec_path, result: dict, run_path, scale: float = 1.0) -> Path:
    """Write the best parameters into the spec's defaults, the measured figures in a comment
    beside them; the spec is validated before it replaces the file (atomically). ``scale``:
    the fraction of the system the trials ran (said in the comment: the figures are the
    patch's)."""
    import re
    import tempfile

    from ..spec import SpecError, load_spec

    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and 0 < scale <= 1):
        raise ValueError(f"scale must be a number in (0, 1] (the fraction of the system tuned), found {scale!r}")
    path = Path(spec_path)
    lines = path.read_text().splitlines(keepends=True)
    params = result["params"]
    missing = set(params)
    section = None
    for i, line in enumerate(lines):
        top = re.match(r"^(\w+):", line)
        if top:
            section = top.group(1)
        if section == "defaults":
            for name in list(missing):
                if name.startswith("noise."):
                    continue
                source, rest = name.split("->")
                target, receptor = rest.rsplit(".", 1)
                pattern = rf"^(\s+{re.escape(source)}\s*->\s*{re.escape(target)}\.{re.escape(receptor)}:\s*)([^\s#]+)"
                if re.match(pattern, line):
                    lines[i] = re.sub(pattern, lambda m: m.group(1) + f"{params[name]:.4g}", line)
                    missing.discard(name)
        if section == "noise":
            kind = re.match(r"^\s+(excitatory|inhibitory):", line)
            if kind:
                for quantity in ("g0", "sigma"):
                    name = f"noise.{kind.group(1)}.{quantity}"
                    if name in missing:
                        lines[i] = re.sub(rf"(\b{quantity}:\s*)([0-9.eE+-]+)(\s*(?:uS|mS/cm2))",
                                          lambda m: m.group(1) + f"{params[name]:.4g}" + m.group(3), lines[i])
                        missing.discard(name)
    if missing:
        raise ValueError(f"{path}: cannot find the line(s) of {', '.join(sorted(missing))} to write "
                         f"(expected under defaults.weights / noise)")
    figures_text = ", ".join(f"{k} {v:.3g}" for k, v in result["figures"].items() if v is not None)
    patch = f" at scale {scale:g}" if scale != 1.0 else ""
    note = (f"  # Promoted {result['written'][:10]} by `livn systems tune` (best of {result['trials']} trials{patch}, "
            f"loss {result['loss']:.3g}; {run_path}):\n  #   {figures_text}\n")
    start = next((i + 1 for i, line in enumerate(lines) if re.match(r"^defaults:", line)), None)
    if start is None:
        raise ValueError(f"{path}: no defaults section to write the tuned parameters into")
    end = start
    while end < len(lines) and (lines[end].startswith("  # Promoted") or (end > start and lines[end].startswith("  #   "))):
        end += 1  # the note of an earlier promotion is replaced
    lines[start:end] = [note]
    text = "".join(lines)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".yaml", delete=False) as scratch:
        scratch.write(text)
    try:
        spec = load_spec(scratch.name)
        found = {k: v for k, v in spec.default_params().items() if k in params}
        if any(not np.isclose(found[k], params[k], rtol=1e-3) for k in params):
            raise ValueError(f"{path}: the promoted spec does not give the tuned parameters back: {found}")
        Path(scratch.name).replace(path)
    except SpecError as err:
        Path(scratch.name).unlink()
        raise ValueError(f"{path}: the promoted spec does not validate: "
                         + "; ".join(p.message for p in err.problems)) from None
    except BaseException:
        Path(scratch.name).unlink(missing_ok=True)
        raise
    return path
