"""livn systems tune: Optuna over the protocols' figures, resumable, promoted into the spec."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

import numpy as np
import pytest

from livn.spec import load_spec
from livn.tools.generate import Culture2D, generate_2d
from livn.tools.tune import (TARGETS, UNMEASURED, TuneConfig, check_targets, finished_trials, loss, open_study,
                             promote, recover, search_space, tune, tune_directory)
from tests.conftest import LIVN, run_livn

# short protocols on a 20-neuron culture: a few seconds per trial
CONFIG = TuneConfig(duration=400.0, transient=100.0, parameters=("noise.excitatory.g0", "EXC->EXC.AMPA"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(generate_2d(Culture2D("Tiny", exc=16, inh=4, width=200, height=200), tmp_path_factory.mktemp("tiny")))


def test_loss_scores_distance_in_units_of_scale():
    perfect = {"spontaneous_rate": 3.0, "slowest_population_rate": 2.0, "stimulated_rate": 12.0, "branching_ratio": 1.0,
               "network_burst_rate": 0.2, "burst_participation": 0.8}
    assert loss(perfect, TARGETS) == 0.0
    assert loss({**perfect, "spontaneous_rate": 4.0}, TARGETS) == pytest.approx(4.0)  # 1 Hz off at scale 0.5
    assert loss({**perfect, "network_burst_rate": 0.6}, TARGETS) == pytest.approx(4.0)  # 0.1 Hz above the range
    assert loss({**perfect, "slowest_population_rate": 0.5}, TARGETS) == pytest.approx(4.0)  # a population 1 Hz too quiet
    assert loss({**perfect, "network_burst_rate": float("nan")}, TARGETS) == UNMEASURED


@pytest.mark.parametrize("targets, message", [
    ({"rate": {"target": 3, "scale": 1}}, "unknown figure"),
    ({"spontaneous_rate": {"target": 3}}, "scale"),
    ({"spontaneous_rate": {"target": 3, "range": [1, 2], "scale": 1}}, "exactly one"),
    ({"network_burst_rate": {"range": [0.5, 0.1], "scale": 1}}, "low <= high"),
    ({"spontaneous_rate": {"target": float("nan"), "scale": 1}}, "finite"),
])
def test_bad_targets_are_named(targets, message):
    problems = check_targets(targets)
    assert any(message in p for p in problems), problems


def test_search_space_is_around_the_defaults():
    defaults = {"EXC->EXC.AMPA": 4.0, "noise.excitatory.g0": 0.03, "EXC->INH.NMDA": 0.0}
    assert search_space(defaults, TuneConfig(factor=2.0)) == {"EXC->EXC.AMPA": (2.0, 8.0),
                                                              "noise.excitatory.g0": (0.015, 0.06)}
    with pytest.raises(ValueError, match="unknown parameter"):
        search_space(defaults, TuneConfig(parameters=("nope",)))
    with pytest.raises(ValueError, match="default to 0"):
        search_space(defaults, TuneConfig(parameters=("EXC->INH.NMDA",)))


def test_tune_stores_trials_reuses_them_and_reproduces_the_best(tiny, tmp_path):
    from livn.env import make
    from livn.protocols import measure
    from livn.tools.tune import figures

    path = tune(tiny, 3, CONFIG, root=tmp_path, progress=False)
    result = json.loads((path / "result.json").read_text())
    assert result["trials"] == 3
    space = search_space(make(tiny).default_params(), CONFIG)
    assert all(low <= result["params"][n] <= high for n, (low, high) in space.items())
    stamp = (path / "study.db").stat().st_mtime_ns
    started = time.time()
    assert tune(tiny, 3, CONFIG, root=tmp_path, progress=False) == path  # nothing left to run
    assert time.time() - started < 20
    # the stored figures are what the best parameters give again
    env = make(tiny)
    env.set_params(result["params"])
    again = figures(measure(env, CONFIG.duration, CONFIG.transient, progress=False))
    for name, value in result["figures"].items():
        assert value == pytest.approx(again[name], nan_ok=True), name
    assert (path / "study.db").stat().st_mtime_ns >= stamp


def test_a_trial_that_cannot_beat_the_best_stops_after_the_spontaneous_protocol(tiny, tmp_path):
    """Targets at the defaults' own figures: the defaults score 0, so a trial whose spontaneous
    rate differs already costs more (the stimulated protocol could only add to it) and is
    pruned; both count as trials."""
    from dataclasses import replace

    from optuna.trial import TrialState

    from livn.env import make
    from livn.protocols import measure
    from livn.tools.tune import figures

    base = figures(measure(make(tiny), CONFIG.duration, CONFIG.transient, progress=False))
    config = replace(CONFIG, targets={name: {"target": base[name], "scale": 0.01}
                                      for name in ("spontaneous_rate", "stimulated_rate")})
    run, _ = tune_directory(tiny, config, tmp_path)
    run.create()
    study = open_study(run, config)
    space = search_space(make(tiny).default_params(), config)
    study.enqueue_trial({name: make(tiny).default_params()[name] for name in space})
    study.enqueue_trial({name: high for name, (low, high) in space.items()})  # 4x the excitation
    path = tune(tiny, 2, config, root=tmp_path, progress=False)
    first, second = open_study(run, config).trials
    assert first.state == TrialState.COMPLETE and first.value == pytest.approx(0.0, abs=1e-9)
    assert second.state == TrialState.PRUNED and second.intermediate_values[0] > 0
    assert "stimulated_rate" not in second.user_attrs and "spontaneous_rate" in second.user_attrs
    result = json.loads((path / "result.json").read_text())
    assert result["trials"] == 2 and result["pruned"] == 1 and result["best_trial"] == 0


@pytest.mark.slow
def test_parallel_workers_propose_different_parameters(tiny, tmp_path):
    """Two workers on one study: four distinct parameter sets (workers seeded alike would
    propose each random start twice)."""
    import optuna

    path = tune(tiny, 4, CONFIG, workers=2, root=tmp_path, progress=False)
    study = optuna.load_study(study_name="livn-tune", storage=f"sqlite:///{path / 'study.db'}")
    proposals = {tuple(sorted(t.params.items())) for t in study.trials}
    assert len(study.trials) == 4 and len(proposals) == 4, proposals


def test_recover_requeues_a_killed_runs_trials_but_keeps_one_that_finished_meanwhile(tmp_path, monkeypatch):
    """A trial read as RUNNING may finish before it is failed (a worker of the killed run
    ending it): its result stays and it is not queued again; a really stale one is failed and
    queued with the same parameters."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")
    space = {"x": FloatDistribution(0.0, 1.0)}
    finishing, stale = study.ask(space), study.ask(space)
    snapshot = study.get_trials(states=(TrialState.RUNNING,))
    study.tell(finishing, 0.5)
    read = study.get_trials
    monkeypatch.setattr(study, "get_trials", lambda *a, states=None, **k:
                        snapshot if states == (TrialState.RUNNING,) else read(*a, states=states, **k))
    assert recover(study) == 1
    trials = read()
    assert trials[finishing.number].state == TrialState.COMPLETE and trials[finishing.number].value == 0.5
    assert trials[stale.number].state == TrialState.FAIL
    queued = [t for t in trials if t.state == TrialState.WAITING]
    assert [t.system_attrs["fixed_params"] for t in queued] == [{"x": stale.params["x"]}]


def _complete_trial_numbers(database) -> list:
    """Read-only look into a running tune's storage: opening it through Optuna would create
    its tables and version row, racing the run that is creating them (CI saw the run fail)."""
    if not database.exists():
        return []
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            return [row[0] for row in connection.execute("SELECT number FROM trials WHERE state = 'COMPLETE'")]
    except sqlite3.OperationalError:  # tables not there yet, or the run holds a write lock
        return []


@pytest.mark.slow
def test_killed_tuning_resumes_from_its_stored_trials(tiny, tmp_path):
    # far more trials than run before the kill: the first run cannot finish on a fast machine
    args = [LIVN, "systems", "tune", tiny, "--duration", "400", "--transient", "100",
            "--param", "noise.excitatory.g0", "--launch"]
    env = {**os.environ, "LIVN_CACHE": str(tmp_path)}
    run, _ = tune_directory(tiny, TuneConfig(duration=400.0, transient=100.0, parameters=("noise.excitatory.g0",)),
                            root=tmp_path / "runs" / "tune")
    process = subprocess.Popen(args[:4] + ["--trials", "200"] + args[4:], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    first = []
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None and not first:
        time.sleep(0.5)
        first = _complete_trial_numbers(run.path / "study.db")
    assert process.poll() is None, process.communicate()[1][-2000:]
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert first, "no trial completed before the deadline"
    study = open_study(run, TuneConfig(duration=400.0, transient=100.0, parameters=("noise.excitatory.g0",)))
    kept = {t.number: t.params for t in finished_trials(study)}  # those the kill left (>= first)
    wanted = len(kept) + 2
    resumed = subprocess.run(args[:4] + ["--trials", str(wanted)] + args[4:], env=env, capture_output=True,
                             text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr
    study = open_study(run, TuneConfig(duration=400.0, transient=100.0, parameters=("noise.excitatory.g0",)))
    done = finished_trials(study)
    assert len(done) == wanted
    assert all({t.number: t.params for t in done}[n] == p for n, p in kept.items())  # not run again


def test_promote_writes_the_parameters_and_the_figures(spec_copy):
    path = spec_copy("EI2")
    before = load_spec(path).default_params()
    result = {"params": {"EXC->EXC.AMPA": 5.5, "noise.excitatory.g0": 0.031}, "trials": 12, "loss": 1.25,
              "figures": {"spontaneous_rate": 3.1, "stimulated_rate": 11.8}, "written": "2026-12-02 15:00:00"}
    promote(path, result, "/runs/x")
    params = load_spec(path).default_params()
    assert params["EXC->EXC.AMPA"] == 5.5 and params["noise.excitatory.g0"] == pytest.approx(0.031)
    assert params["INH->EXC.GABA_A"] == before["INH->EXC.GABA_A"]  # the others as they were
    text = path.read_text()
    assert "g0: 0.031 mS/cm2" in text  # the noise keeps its unit (per membrane area)
    assert "spontaneous_rate 3.1" in text and "# default_params() returns" in text
    promote(path, {**result, "params": {"EXC->EXC.AMPA": 6.0}}, "/runs/y")
    text = path.read_text()
    assert text.count("# Promoted") == 1 and "/runs/y" in text
    assert load_spec(path).default_params()["EXC->EXC.AMPA"] == 6.0
    promote(path, result, "/runs/z", scale=0.1)  # figures of a patch say so
    assert "best of 12 trials at scale 0.1," in path.read_text()
    for bad in (0, 1.5, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match="scale must be a number in"):
            promote(path, result, "/runs/w", scale=bad)
    assert "/runs/w" not in path.read_text()  # nothing written


def test_cli_plans_without_launch(tiny, tmp_path):
    result = run_livn("systems", "tune", tiny, "--trials", "5", env={"LIVN_CACHE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "would run 5" in result.stdout and "noise.excitatory.g0" in result.stdout
    assert not (tmp_path / "runs").exists()


def test_a_patch_has_its_own_study(tiny, tmp_path):
    """--scale tunes on a fraction of the culture (same densities and in-degree): its own circuit,
    so its own study."""
    plans = [run_livn("systems", "tune", tiny, *options, env={"LIVN_CACHE": str(tmp_path)})
             for options in ((), ("--scale", "0.5"))]
    assert all(p.returncode == 0 for p in plans), plans[-1].stderr
    assert "20 neurons)" in plans[0].stdout and "10 neurons (scale 0.5)" in plans[1].stdout
    studies = [p.stdout.splitlines()[0] for p in plans]
    assert studies[0].startswith("study: ") and studies[0] != studies[1]


@pytest.mark.parametrize("options, message", [
    (["--scale", "0"], "finite number > 0 and <= 1"),
    (["--scale", "1.5"], "finite number > 0 and <= 1"),
    (["--factor", "0.5"], "finite number > 1"),
    (["--trials", "0"], "integer >= 1"),
    (["--transient", "500", "--duration", "400"], "shorter than duration"),
    (["--param", "nope"], "unknown parameter"),
])
def test_bad_options_are_refused(tiny, tmp_path, options, message):
    result = run_livn("systems", "tune", tiny, *options, "--launch", env={"LIVN_CACHE": str(tmp_path)})
    assert result.returncode in (1, 2), result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_bad_targets_file_is_refused_with_its_name(tiny, tmp_path):
    targets = tmp_path / "targets.yaml"
    targets.write_text("spontaneous_rate: {target: 3}\nfoo: {target: 1, scale: 1}\n")
    result = run_livn("systems", "tune", tiny, "--targets", targets, "--launch", env={"LIVN_CACHE": str(tmp_path)})
    assert result.returncode == 1
    assert "targets.yaml" in result.stderr and "scale" in result.stderr and "unknown figure" in result.stderr


def test_promote_needs_a_spec(tmp_path, circuits):
    result = run_livn("systems", "tune", circuits["EI1"], "--promote", env={"LIVN_CACHE": str(tmp_path)})
    assert result.returncode == 2 and "--promote writes into a spec" in result.stderr
    result = run_livn("systems", "tune", circuits["EI1"], "--scale", "0.5", env={"LIVN_CACHE": str(tmp_path)})
    assert result.returncode == 1 and "is a circuit, built already" in result.stderr
    assert "Traceback" not in result.stderr
