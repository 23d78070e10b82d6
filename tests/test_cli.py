"""The ``livn`` command as a user types it."""

from pathlib import Path

from conftest import run_livn


def test_build_then_inspect(tmp_path):
    out = tmp_path / "out" / "EI3"
    built = run_livn("build", "EI3", "-o", out)
    assert built.returncode == 0, built.stderr
    assert "built EI3: 1000 neurons" in built.stdout and "64 MEA channels" in built.stdout
    for name in ("circuit_config.json", "network/EI3_nodes.h5", "network/EI3_node_types.csv",
                 "network/EI3_to_EI3_edges.h5", "network/EI3_to_EI3_edge_types.csv",
                 "components/EI3.yaml", "components/cells/EXC.cell.nml", "components/synapses/NMDA.synapse.nml",
                 "components/morphologies/EXC.swc", "mea/stimulation_electrodes.csv", "mea/recording_electrodes.csv"):
        assert (out / name).is_file(), name
    inspected = run_livn("inspect", out, "--plot", tmp_path / "EI3.png")
    assert inspected.returncode == 0, inspected.stderr
    text = inspected.stdout
    for words in ("1000 neurons", "EXC          800 cells", "INH          200 cells", "EXC->INH",
                  "mean in-degree", "distance mean/median/max", "MEA: 64 channels (8 x 8", "EXC->EXC.AMPA"):
        assert words in text, words
    png = (tmp_path / "EI3.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_inspect_a_predefined_system_by_name():
    result = run_livn("inspect", "EI1")
    assert result.returncode == 0, result.stderr
    assert "System EI1: 10 neurons" in result.stdout and "MEA: 1 channels" in result.stdout


def test_commands_work_from_any_directory(tmp_path):
    result = run_livn("validate", "EI2", cwd=tmp_path)
    assert result.returncode == 0 and "EI2.yaml: OK" in result.stdout


def test_inspect_something_that_is_not_a_circuit(tmp_path):
    result = run_livn("inspect", tmp_path)
    assert result.returncode == 1 and "no circuit_config.json" in result.stderr


def test_systems_list():
    result = run_livn("systems", "list")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines][:4] == ["EI1", "EI2", "EI3", "EI4"]
    assert "10000 neurons" in lines[3]


def test_unknown_target_is_an_error(tmp_path):
    result = run_livn("build", "EI9", "-o", tmp_path / "x")
    assert result.returncode == 1 and "predefined systems: EI1, EI2, EI3, EI4" in result.stderr
    assert not Path(tmp_path / "x").exists()


def test_run_writes_a_spike_report_and_a_raster(tmp_path):
    result = run_livn("run", "EI2", "--duration", "300", "-o", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "EI2: 300 ms simulated" in result.stdout and "EXC:" in result.stdout and "branching ratio" in result.stdout
    import h5py
    with h5py.File(tmp_path / "run" / "spikes.h5") as h5:
        times = h5["spikes/EI2/timestamps"][:]
    assert len(times) == 0 or (times.max() < 300 and (times[1:] >= times[:-1]).all())
    assert (tmp_path / "run" / "raster.png").read_bytes()[:4] == b"\x89PNG"
