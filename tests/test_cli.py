"""The ``livn`` command as a user types it."""

import os
import subprocess
from pathlib import Path

import pytest

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
    assert [line.split()[0] for line in lines] == ["CA1", "EI1", "EI2", "EI3", "EI4"]
    assert "345970 neurons" in lines[0] and "(+ 494700 input cells)" in lines[0]
    assert "10000 neurons" in lines[4]


def test_unknown_target_is_an_error(tmp_path):
    result = run_livn("build", "EI9", "-o", tmp_path / "x")
    assert result.returncode == 1 and "predefined systems: CA1, EI1, EI2, EI3, EI4" in result.stderr
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


def test_neuron_runs_say_nothing_about_a_missing_display(tmp_path):
    """On a headless machine NEURON's import used to print "Warning: no DISPLAY environment
    variable" into every NEURON command's output."""
    from conftest import LIVN

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "NEURON_MODULE_OPTIONS")}
    result = subprocess.run([LIVN, "run", "EI1", "--backend", "neuron", "--duration", "50", "-o", str(tmp_path / "run")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "EI1: 50 ms simulated" in result.stdout
    assert "DISPLAY" not in result.stdout + result.stderr


# --------------------------------------------------------------------------- user errors


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_validate_reads_the_neuroml_as_strictly_as_the_yaml(spec_copy):
    """Quantities with the wrong dimension, no unit or no number are errors at validate time,
    each with its .nml file and line (a time where a voltage belongs used to become -90000 mV,
    and 'abc' made compile hang)."""
    spec = spec_copy("EI2")
    cell = spec_copy.folder / "cells" / "EXC.cell.nml"
    _edit(cell, 'erev="-90mV" segmentGroup="soma_group"', 'erev="-90s" segmentGroup="soma_group"')
    _edit(cell, 'condDensity="2mS_per_cm2" erev="-90mV"', 'condDensity="abc" erev="-90mV"')
    lines = cell.read_text().splitlines()
    result = run_livn("validate", spec)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for needle, expected in (('erev="-90s"', "erev='-90s': expected a voltage"),
                             ('condDensity="abc"', "condDensity='abc': expected a conductance density")):
        line = next(i for i, text in enumerate(lines, 1) if needle in text)
        assert f"EXC.cell.nml:{line}: error: {expected}" in result.stderr, result.stderr


def test_validate_with_a_target_reports_what_it_cannot_run(spec_copy):
    """A gate named after an NMODL keyword passes the NeuroML checks but not the NEURON target:
    ``--target neuron`` says so with the channel file and line; Brian2 can run it."""
    spec = spec_copy("EI2")
    channel = spec_copy.folder / "channels" / "Km.channel.nml"
    _edit(channel, '<gateHHrates id="n"', '<gateHHrates id="COMMENT"')
    line = next(i for i, text in enumerate(channel.read_text().splitlines(), 1) if '<ionChannelHH id="Km"' in text)
    assert run_livn("validate", spec).returncode == 0
    neuron = run_livn("validate", spec, "--target", "neuron")
    assert neuron.returncode == 1 and "Traceback" not in neuron.stderr
    assert f"Km.channel.nml:{line}: error: target neuron: channel Km: 'COMMENT' is an NMODL keyword" in neuron.stderr
    brian2 = run_livn("validate", spec, "--target", "brian2")
    assert brian2.returncode == 0, brian2.stderr


def test_run_compile_and_dynamics_report_user_errors_without_a_traceback(tmp_path, spec_copy):
    # a dendritic leak of 5 S/cm2 (a unit slip): g/C = 5000/ms, beyond RK4's reach at dt 0.025 ms
    leaky = spec_copy("EI1")
    cell = spec_copy.folder / "cells" / "EXC.cell.nml"
    text = cell.read_text()
    cell.write_text(text.replace('id="Leak_dend" ionChannel="Leak" condDensity="0.05mS_per_cm2"',
                                 'id="Leak_dend" ionChannel="Leak" condDensity="5000mS_per_cm2"'))
    assert cell.read_text() != text
    cases = [
        (("run", "EI1", "--duration", "nan"), 2, "expected a finite number > 0"),
        (("run", "EI1", "--duration", "-5"), 2, "expected a finite number > 0"),
        (("run", "EI1", "--ranks", "0"), 2, "0 is not in the range x>=1"),
        (("run", "EI1", "--pulse-rate", "0", "--stimulate", "20"), 2, "expected a finite number > 0"),
        (("run", tmp_path / "nothing"), 1, "no such circuit"),
        (("compile", "EI1", "--target", "brian2", "-o", tmp_path / "c", "--dt", "0"), 2, "expected a finite number"),
        (("dynamics", "EI1", "--duration", "500", "--transient", "600"), 2, "must be shorter than --duration"),
        (("dynamics", "EI1", "--transient", "8000"), 2, "(8000 ms) must be shorter than --duration (7000 ms)"),
        (("dynamics", "EI1", "--transient", "-1"), 2, "expected a finite number >= 0"),
        (("run", "EI1", "--backend", "nest"), 2, "'nest' is not one of 'brian2', 'neuron'"),
        # RK4 on Brian2 cannot follow it: said, not a traceback, nothing written
        (("run", leaky, "--duration", "50", "-o", tmp_path / "diverged"), 1, "the integration diverged"),
    ]
    for args, status, message in cases:
        result = run_livn(*args)
        assert result.returncode == status, (args, result.stderr)
        assert "Traceback" not in result.stderr and message in result.stderr, (args, result.stderr)
    assert not (tmp_path / "diverged").exists()


def test_a_circuit_whose_neuroml_breaks_is_reported_with_file_and_line(tmp_path):
    """After the build the circuit carries its own NeuroML: an edit there is read when the
    circuit is loaded, and an error names the file and line (no traceback, nothing written)."""
    built = run_livn("build", "EI1", "-o", tmp_path / "EI1")
    assert built.returncode == 0, built.stderr
    channel = tmp_path / "EI1" / "components" / "channels" / "Km.channel.nml"
    _edit(channel, 'midpoint="-30mV"', 'midpoint="-30parsecs"')
    line = next(i for i, text in enumerate(channel.read_text().splitlines(), 1) if "parsecs" in text)
    for args in (("run", tmp_path / "EI1", "-o", tmp_path / "run"), ("compile", tmp_path / "EI1", "-o", tmp_path / "c")):
        result = run_livn(*args)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"Km.channel.nml:{line}: error: midpoint='-30parsecs': expected a voltage" in result.stderr
    assert not (tmp_path / "run" / "spikes.h5").exists() and not (tmp_path / "c").exists()


def test_compiled_neuron_config_takes_threshold_and_v_init_from_the_cells(tmp_path):
    """simulation_config.json used to say -20 mV / -65 mV while the NeuroML cells say 0 mV and
    -69.8 / -64.3 mV: now the threshold is the cells' (all 0 mV) and no common v_init is claimed."""
    import json

    result = run_livn("compile", "EI1", "--target", "neuron", "-o", tmp_path / "n")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "n" / "simulation_config.json").read_text())
    assert config["run"]["spike_threshold"] == 0.0 and "v_init" not in config["conditions"]


def test_run_writes_a_voltage_report_libsonata_reads(tmp_path):
    """``--voltage`` records every compartment of the chosen cells into a SONATA compartment
    report; libsonata reads back the same potentials (soma of EXC cells starts at -69.8 mV)."""
    import libsonata
    import numpy as np

    result = run_livn("run", "EI1", "--duration", "50", "--voltage", "0,9", "-o", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    report = libsonata.ElementReportReader(str(tmp_path / "run" / "voltage.h5"))["EI1"]
    assert sorted(report.get_node_ids()) == [0, 9]
    frame = report.get(node_ids=[0, 9])
    data = np.asarray(frame.data)
    assert data.shape == (500, 4)  # 50 ms every 0.1 ms; two compartments per cell
    assert [tuple(map(int, i)) for i in frame.ids] == [(0, 0), (0, 1), (9, 0), (9, 1)]
    assert data[0, 0] == pytest.approx(-69.8, abs=1e-4) and data[0, 2] == pytest.approx(-64.3, abs=1e-4)
    bad = run_livn("run", "EI1", "--duration", "10", "--voltage", "0,x")
    assert bad.returncode == 2 and "expected gids like 0,5,80" in bad.stderr
    unknown = run_livn("run", "EI1", "--duration", "10", "--voltage", "42", "-o", tmp_path / "run2")
    assert unknown.returncode == 1 and "gids [42] are not simulated cells" in unknown.stderr


@pytest.mark.mpi
def test_dynamics_under_mpiexec_reports_once_with_the_serial_figures(tmp_path):
    """`mpiexec -n 2 livn dynamics EI1 --backend neuron`: every rank measures, rank 0 alone
    prints, and the figures are those of one process (the spikes do not depend on the ranks)."""
    from conftest import LIVN

    args = ["dynamics", "EI1", "--backend", "neuron", "--duration", "600", "--transient", "200"]
    env = {**os.environ, "LIVN_CACHE": str(tmp_path)}
    serial = subprocess.run([LIVN, *args], capture_output=True, text=True, env=env, timeout=600)
    parallel = subprocess.run([str(Path(LIVN).parent / "mpiexec"), "-n", "2", LIVN, *args], capture_output=True,
                              text=True, env=env, timeout=600)
    assert serial.returncode == 0 and parallel.returncode == 0, (serial.stderr + parallel.stderr)[-3000:]
    assert parallel.stdout.count("spontaneous mean rate") == 1, parallel.stdout
    figures = [line for line in serial.stdout.splitlines() if "mean rate" in line or "branching" in line]
    assert figures and all(line in parallel.stdout for line in figures), (serial.stdout, parallel.stdout)
