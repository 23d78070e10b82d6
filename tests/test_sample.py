"""livn systems sample: datasets of random-stimulus trials, resumable and worker-independent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from livn import datasets
from livn.tools.generate import Culture2D, generate_2d
from livn.tools.sample import SampleConfig, pending_groups, sample, stimulus
from tests.conftest import LIVN, run_livn

CONFIG = SampleConfig(duration=60.0, warmup=20.0, chunk=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 20-neuron culture on 4 channels: seconds per trial."""
    return str(generate_2d(Culture2D("Tiny", exc=16, inh=4, width=200, height=200), tmp_path_factory.mktemp("tiny")))


def plain(value):
    """A cell of a loaded dataset as nested Python lists (Parquet lists load as object arrays)."""
    if isinstance(value, (np.ndarray, list, tuple)):
        return [plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return list(a.columns) == list(b.columns) and [plain(list(r)) for r in a.itertuples(index=False)] == \
        [plain(list(r)) for r in b.itertuples(index=False)]


def test_stimulus_is_a_function_of_seed_and_trial():
    a, pa = stimulus(CONFIG, 3, 16, 0.025)
    b, pb = stimulus(CONFIG, 3, 16, 0.025)
    c, _ = stimulus(CONFIG, 4, 16, 0.025)
    assert np.array_equal(a, b) and pa == pb and not np.array_equal(a, c)
    amplitudes = np.array(pa["stimulus_amplitude"])
    stimulated = amplitudes > 0
    assert 1 <= stimulated.sum() <= 16
    assert np.all((amplitudes[stimulated] >= 5) & (amplitudes[stimulated] <= 30))
    # the waveform carries each channel's amplitude, on the stimulated channels only
    assert np.allclose(np.abs(a).max(axis=0), np.where(stimulated, amplitudes, 0), atol=1e-5)


def test_pending_groups_follow_chunks_and_skip_done_trials():
    assert pending_groups(7, set(), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert pending_groups(7, {0, 1, 2, 6}, 3) == [[3, 4, 5]]
    assert pending_groups(8, {0, 1, 2, 3, 4, 5, 6}, 3) == [[7]]  # a grown dataset: only the new trial


def test_dataset_loads_with_one_line_and_stimulus_drives_spikes(tiny, tmp_path):
    path = sample(tiny, 4, CONFIG, root=tmp_path, progress=False)
    table = datasets.load(path)
    assert table.trial.tolist() == [0, 1, 2, 3]
    assert table.equals(pd.read_parquet(path / "trials").sort_values("trial", ignore_index=True))
    for row in table.itertuples():
        times = np.asarray(row.spike_time)
        assert np.all((times >= 0) & (times < CONFIG.duration))
        assert len(row.spike_gid) == len(times) and len(row.channel_spike_count) == 4
        assert [len(c) for c in row.channel_spike_time] == list(row.channel_spike_count)
    card = (path / "README.md").read_text()
    assert "Tiny, 4 trials" in card and "stimulus_amplitude" in card


def test_same_command_twice_reuses_and_more_trials_extend(tiny, tmp_path):
    path = sample(tiny, 2, CONFIG, root=tmp_path, progress=False)
    first = sorted(path.glob("trials/*.parquet"))
    stamps = [p.stat().st_mtime_ns for p in first]
    assert sample(tiny, 2, CONFIG, root=tmp_path, progress=False) == path
    assert [p.stat().st_mtime_ns for p in first] == stamps
    sample(tiny, 3, CONFIG, root=tmp_path, progress=False)
    assert [p.stat().st_mtime_ns for p in first] == stamps
    assert datasets.load(path).trial.tolist() == [0, 1, 2]


def test_trials_simulated_together_give_the_dataset_of_one_at_a_time(tiny, tmp_path):
    config = SampleConfig(duration=60.0, warmup=20.0, chunk=3, voltage_dt=1.0)
    alone = datasets.load(sample(tiny, 5, config, root=tmp_path / "alone", batch=1, progress=False))
    together = datasets.load(sample(tiny, 5, config, root=tmp_path / "together", batch=3, progress=False))
    assert frames_equal(alone, together)
    assert together["channel_spike_count"].map(sum).sum() > 0


@pytest.mark.slow
def test_two_workers_give_the_serial_dataset(tiny, tmp_path):
    serial = datasets.load(sample(tiny, 4, CONFIG, root=tmp_path / "serial", progress=False))
    parallel = datasets.load(sample(tiny, 4, CONFIG, root=tmp_path / "parallel", workers=2, progress=False))
    assert frames_equal(serial, parallel)


@pytest.mark.slow
def test_killed_run_resumes_without_repeating_or_losing_trials(tiny, tmp_path):
    args = [LIVN, "systems", "sample", tiny, "--trials", "6", "--chunk", "2", "--duration", "60", "--warmup", "20",
            "--launch"]
    env = {**os.environ, "LIVN_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    folder = None
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        found = list((tmp_path / "cache").glob("runs/sample/Tiny-*/trials/trials-*.parquet"))
        if found:
            folder = found[0].parent
            break
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert folder is not None, "no trial file appeared"
    kept = {p.name: p.stat().st_mtime_ns for p in folder.glob("trials-*.parquet")}
    assert 0 < len(kept) < 3
    resumed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert {name: (folder / name).stat().st_mtime_ns for name in kept} == kept  # not run again
    assert not list(folder.glob(".*"))  # no partial file left behind
    resumed_table = datasets.load(folder.parent)
    reference = datasets.load(sample(tiny, 6, CONFIG, root=tmp_path / "reference", progress=False))
    assert resumed_table.trial.tolist() == list(range(6))
    assert frames_equal(resumed_table, reference)


def test_load_names_the_command_that_makes_a_missing_dataset(tiny):
    with pytest.raises(FileNotFoundError, match="livn systems sample .*--launch"):
        datasets.load(tiny, seed=12345)


@pytest.mark.parametrize("options, message", [
    (["--trials", "0"], "expected an integer >= 1"),
    (["--duration", "-5"], "finite number > 0"),
    (["--amplitude", "30", "10"], "must not exceed"),
    (["--voltage-dt", "0.01"], "multiple of the integration step"),
    (["--workers", "0"], "expected an integer >= 1"),
    (["--batch", "0"], "expected an integer >= 1"),
    (["--batch", "2", "--backend", "neuron"], "runs one trial at a time"),
])
def test_bad_options_are_refused_before_anything_runs(tiny, tmp_path, options, message):
    result = run_livn("systems", "sample", tiny, *options, "--launch", env={"LIVN_CACHE": str(tmp_path)})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_without_launch_nothing_runs(tiny, tmp_path):
    result = run_livn("systems", "sample", tiny, "--trials", "3", env={"LIVN_CACHE": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "would run 3" in result.stdout and not (tmp_path / "runs").exists()
