"""Runs written as NWB: read back with pynwb's reader, checked by nwbinspector."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import run_livn


def _inspect(path) -> list:
    """nwbinspector's messages at or above CRITICAL (PyNWB validation and errors included),
    except its demand for the subject's age: a simulated circuit has none to state."""
    from nwbinspector import Importance, inspect_nwbfile

    return [m for m in inspect_nwbfile(nwbfile_path=str(path), ignore=["check_subject_age"])
            if m.importance.value >= Importance.CRITICAL.value]


@pytest.fixture(scope="module")
def stimulated():
    """EI1 on Brian2, 100 ms with 20 µA pulses on channel 0: spikes, two cells' potentials and
    the MEA channel signals."""
    from livn import make
    from livn.io import pulse_train

    env = make("EI1", backend="brian2")
    try:
        env.record_spikes()
        env.record_voltage([0, 9], dt=0.1)
        env.record_membrane_current(dt=0.1)
        stimulus = pulse_train(100.0, [0], env.system.num_channels, 20.0, dt=env.dt)
        yield env.run(100.0, stimulus=stimulus), stimulus
    finally:
        env.close()


def test_a_run_round_trips_through_pynwb(stimulated, tmp_path):
    from pynwb import NWBHDF5IO

    result, stimulus = stimulated
    system = result.system
    assert len(result.it) > 10, "the comparison needs spikes"
    path = result.to_nwb(tmp_path / "run.nwb")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.nwb"]  # no scratch file left
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        units = nwb.units.to_dataframe()
        assert units["gid"].tolist() == system.gids().tolist()  # silent cells too
        for gid in (0, 9, int(system.gids("INH")[0])):
            row = units.loc[gid]
            np.testing.assert_allclose(row["spike_times"], result.t[result.it == gid] / 1000.0)
            np.testing.assert_allclose([row["x"], row["y"], row["z"]], system.coordinates[gid])
        assert set(units["population"]) == {"EXC", "INH"}
        assert (units["population"] == "INH").sum() == len(system.gids("INH"))
        assert nwb.units.resolution == pytest.approx(result.dt / 1000.0)

        mea = nwb.acquisition["MEA"]
        assert mea.rate == pytest.approx(10_000.0) and mea.conversion == 1e-6
        np.testing.assert_allclose(mea.data[:], result.mp.T)
        electrodes = nwb.electrodes.to_dataframe()
        np.testing.assert_allclose(electrodes[["rel_x", "rel_y", "rel_z"]].to_numpy(), system.electrodes)

        potential = nwb.acquisition["membrane_potential"]
        np.testing.assert_allclose(potential.data[:], result.v.T)
        assert potential.unit == "volts" and potential.conversion == 1e-3

        applied = nwb.stimulus["MEA_stimulus"]
        np.testing.assert_array_equal(applied.data[:], stimulus)
        assert applied.rate == pytest.approx(1000.0 / result.dt) and applied.unit == "amperes"
        assert np.abs(applied.data[:, 0]).max() == pytest.approx(20.0) and not applied.data[:, 1:].any()
    assert _inspect(path) == []


def test_an_existing_file_is_never_replaced(stimulated, tmp_path):
    result, _ = stimulated
    mine = tmp_path / "mine.nwb"
    mine.write_text("not livn's")
    with pytest.raises(FileExistsError, match="mine.nwb exists"):
        result.to_nwb(mine)
    assert mine.read_text() == "not livn's" and len(list(tmp_path.iterdir())) == 1


def test_a_naive_start_time_and_a_misshapen_stimulus_are_refused(stimulated, tmp_path):
    from datetime import datetime

    from livn.nwb import write_nwb

    result, stimulus = stimulated
    with pytest.raises(ValueError, match="timezone-aware"):
        result.to_nwb(tmp_path / "a.nwb", session_start_time=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match=r"stimulus must have shape \(samples, 1 channels\)"):
        write_nwb(tmp_path / "b.nwb", result, result.system, stimulus=np.zeros((10, 3)))
    assert not list(tmp_path.iterdir())


def test_a_result_without_its_system_says_how_to_write_it(tmp_path):
    from livn.result import Result

    with pytest.raises(ValueError, match="write_nwb"):
        Result(it=np.zeros(0, int), t=np.zeros(0)).to_nwb(tmp_path / "x.nwb")
    assert not list(tmp_path.iterdir())


def test_consecutive_results_concatenate_into_one():
    from livn.result import Result, concatenate

    a = Result(it=np.array([1]), t=np.array([5.0]), v=np.ones((2, 3)), stimulus=np.ones((4, 2)), dt=1.0,
               start=0.0, duration=4.0, voltages={7: np.ones((1, 3))})
    b = Result(it=np.array([2, 3]), t=np.array([6.0, 7.0]), v=np.zeros((2, 2)), start=4.0, duration=2.0, dt=1.0,
               voltages={7: np.zeros((1, 2))})
    both = concatenate([a, b])
    assert both.it.tolist() == [1, 2, 3] and both.v.shape == (2, 5) and both.voltages[7].shape == (1, 5)
    assert both.duration == 6.0 and both.stimulus.shape == (6, 2) and not both.stimulus[4:].any()
    with pytest.raises(ValueError, match="must follow each other"):
        concatenate([a, a])


def test_run_command_writes_nwb_and_refuses_an_existing_file(tmp_path):
    from pynwb import NWBHDF5IO

    from livn.sonata import read_spike_report

    path = tmp_path / "ei1.nwb"
    done = run_livn("run", "EI1", "--duration", "50", "--stimulate", "20", "--nwb", path, "-o", tmp_path / "run")
    assert done.returncode == 0, done.stderr[-2000:]
    ids, times = read_spike_report(tmp_path / "run" / "spikes.h5", "EI1")
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        units = nwb.units.to_dataframe()
        got = sorted((gid, round(s * 1000.0, 6)) for gid, train in zip(units["gid"], units["spike_times"]) for s in train)
        assert got == sorted(zip(ids.tolist(), np.round(times, 6).tolist())) and len(got) > 0
        assert nwb.acquisition["MEA"].data.shape == (500, 1)  # 50 ms every 0.1 ms; EI1 has one channel
        assert nwb.stimulus["MEA_stimulus"].data.shape == (2000, 1)
    assert _inspect(path) == []
    before = path.stat().st_mtime_ns
    again = run_livn("run", "EI1", "--duration", "50", "--nwb", path, "-o", tmp_path / "run2")
    assert again.returncode == 2 and "exists (livn does not replace it)" in again.stderr
    assert "Traceback" not in again.stderr and path.stat().st_mtime_ns == before and not (tmp_path / "run2").exists()
