"""Bad input never hangs, crashes, corrupts or deletes: tables of bad inputs and the message
each must produce (a new case is one line)."""

import json
import os
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from conftest import LIVN, run_livn


def _limited(timeout: float = 60.0, memory: int = 3 << 30):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    return {"timeout": timeout, "preexec_fn": limit}


# -- specs that could exhaust the machine ---------------------------------------------------------
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))

#: (edit of EI1.yaml's text, or a whole file's content; expected message fragment)
SPEC_CASES = [
    (lambda t: t.replace("cutoff: 0.1", "cutoff: .nan"), ":33: error: connectivity.kernel.gaussian.cutoff: expected a finite number, found '.nan'"),
    (lambda t: t.replace("p_max: 0.74", "p_max: .inf"), "expected a finite number, found '.inf'"),
    (lambda t: t.replace("neurons: 10\n", "neurons: 100000\n"), "would take 100000 cells, ~1.8e+10 edges"),
    (lambda t: LAUGHS, "expands to more than 100000 values (YAML aliases"),
    (lambda t: "a: " + "[" * 20000 + "]" * 20000 + "\n", "nested too deeply to read"),
    (lambda t: t.encode() + b"\xff\xfe", "not UTF-8 text"),
    (lambda t: "# x\n" * 300000, "bytes; a spec has at most 1000000"),
    (lambda t: "", "the file is empty"),
]


@pytest.mark.parametrize("edit, expected", SPEC_CASES, ids=[str(i) for i in range(len(SPEC_CASES))])
def test_specs_that_could_exhaust_the_machine_are_refused_quickly(spec_copy, edit, expected):
    path = spec_copy("EI1")
    content = edit(path.read_text())
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    start = time.perf_counter()
    done = subprocess.run([LIVN, "validate", str(path)], capture_output=True, text=True, **_limited())
    assert time.perf_counter() - start < 30
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert expected in done.stderr, done.stderr[-2000:]


def test_a_build_too_large_for_the_machine_is_refused_before_allocating(spec_copy, tmp_path):
    path = spec_copy("EI1", lambda t: t.replace("neurons: 10\n", "neurons: 100000\n"))
    done = subprocess.run([LIVN, "build", str(path), "-o", str(tmp_path / "big")], capture_output=True, text=True,
                          **_limited(memory=1 << 30))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    # ~1e10 edges: the streaming builder would fit in memory, the disk would not
    assert "TB on disk" in done.stderr and "GB free at" in done.stderr, done.stderr
    assert not (tmp_path / "big").exists()


# -- never delete what livn did not write ----------------------------------------------------------
def test_recompiling_keeps_the_results_and_files_a_user_put_there(tmp_path):
    out = tmp_path / "EI1-brian2"
    assert run_livn("compile", "EI1", "--target", "brian2", "-o", out).returncode == 0
    (out / "output").mkdir()
    (out / "output" / "spikes.h5").write_bytes(b"results of an earlier run")
    (out / "notes.txt").write_text("mine")
    run = out / "run.py"
    run.write_text(run.read_text() + "\n# my edit\n")
    again = run_livn("compile", "EI1", "--target", "brian2", "-o", out)
    assert again.returncode == 0, again.stderr
    assert (out / "output" / "spikes.h5").read_bytes() == b"results of an earlier run"
    assert (out / "notes.txt").read_text() == "mine"
    assert "# my edit" not in run.read_text() and "# my edit" in (out / "run.py.user-1").read_text()


def test_rebuilding_a_circuit_keeps_what_a_user_added(tmp_path):
    out = tmp_path / "EI1"
    assert run_livn("build", "EI1", "-o", out).returncode == 0
    (out / "analysis").mkdir()
    (out / "analysis" / "figure.png").write_bytes(b"png")
    assert run_livn("build", "EI1", "-o", out).returncode == 0
    assert (out / "analysis" / "figure.png").read_bytes() == b"png"


def test_a_directory_livn_did_not_write_is_not_replaced_and_a_file_is_not_a_directory(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    done = run_livn("build", "EI1", "-o", mine)
    assert done.returncode == 1 and "is not a livn output" in done.stderr and "Traceback" not in done.stderr
    assert (mine / "thesis.tex").read_text() == "years of work" and len(list(mine.iterdir())) == 1
    file = tmp_path / "file"
    file.write_text("x")
    done = run_livn("compile", "EI1", "-o", file)
    assert done.returncode == 1 and "is a file" in done.stderr and file.read_text() == "x"


def test_temporaries_of_dead_builds_are_cleaned_and_live_ones_kept(tmp_path):
    out = tmp_path / "EI1"
    dead = tmp_path / ".EI1.tmp-999999999-deadbeef"
    live = tmp_path / f".EI1.tmp-{os.getpid()}-0000cafe"
    for path in (dead, live):
        path.mkdir()
        (path / "half.h5").write_bytes(b"x")
    assert run_livn("build", "EI1", "-o", out).returncode == 0
    assert not dead.exists() and live.exists()


def test_building_a_predefined_system_without_output_never_writes_into_a_folder_of_that_name(tmp_path):
    (tmp_path / "EI1").mkdir()
    (tmp_path / "EI1" / "data.csv").write_text("mine")
    done = run_livn("build", "EI1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert os.listdir(tmp_path / "EI1") == ["data.csv"]
    assert "livn-cache" in done.stdout  # conftest's private cache


# -- damaged caches and circuits -------------------------------------------------------------------
def test_a_file_where_compiled_mechanisms_go_is_refused_naming_the_setting(tmp_path):
    """LIVN_NRNMECH_CACHE naming a file: exit 1, the setting and the path named, no traceback,
    nothing written (the file untouched)."""
    from conftest import LIVN

    afile = tmp_path / "not-a-folder"
    afile.write_text("mine")
    env = {**os.environ, "LIVN_NRNMECH_CACHE": str(afile)}
    done = subprocess.run([LIVN, "run", "EI1", "--backend", "neuron", "--duration", "20", "-o", str(tmp_path / "run")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "LIVN_NRNMECH_CACHE must be a directory" in done.stderr + done.stdout and str(afile) in done.stderr
    assert afile.read_text() == "mine" and not (tmp_path / "run").exists()


@pytest.mark.parametrize("damage", ["truncate edges", "delete config", "delete nodes"])
def test_a_damaged_cache_entry_is_rebuilt(damage, tmp_path, monkeypatch):
    from livn.system import System, predefined

    monkeypatch.setenv("LIVN_CACHE", str(tmp_path / "cache"))
    first = predefined("EI1")
    edges = first / "network" / "EI1_to_EI1_edges.h5"
    size = edges.stat().st_size
    if damage == "truncate edges":
        with open(edges, "r+b") as handle:
            handle.truncate(size // 2)
    elif damage == "delete config":
        (first / "circuit_config.json").unlink()
    else:
        (first / "network" / "EI1_nodes.h5").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = predefined("EI1")
    assert again == first and any("damaged" in str(w.message) for w in caught)
    assert edges.stat().st_size == size and System(again).num_neurons == 10


def test_a_damaged_circuit_names_the_file(tmp_path):
    out = tmp_path / "EI1"
    assert run_livn("build", "EI1", "-o", out).returncode == 0
    edges = out / "network" / "EI1_to_EI1_edges.h5"
    with open(edges, "r+b") as handle:
        handle.truncate(500)
    for command in (("inspect", out), ("run", out, "--duration", "10", "-o", tmp_path / "r"),
                    ("compile", out, "-o", tmp_path / "c")):
        done = run_livn(*command)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert "EI1_to_EI1_edges.h5: error: cannot read this HDF5 file" in done.stderr


def test_nodes_and_edges_of_different_circuits_do_not_load_together(tmp_path, circuits):
    mixed = tmp_path / "mixed"
    shutil.copytree(circuits["EI1"], mixed)
    config = json.loads((mixed / "circuit_config.json").read_text())
    shutil.copy(circuits["EI2"] / "network" / "EI2_to_EI2_edges.h5", mixed / "network" / "EI1_to_EI1_edges.h5")
    with __import__("h5py").File(mixed / "network" / "EI1_to_EI1_edges.h5", "r+") as h5:
        h5.move("edges/EI2_to_EI2", "edges/EI1_to_EI1")
        for name in ("source_node_id", "target_node_id"):
            h5[f"edges/EI1_to_EI1/{name}"].attrs["node_population"] = "EI1"
    (mixed / "circuit_config.json").write_text(json.dumps(config))
    done = run_livn("inspect", mixed)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "indexes 100 target nodes but EI1 has 10: the nodes and edges files do not belong together" in done.stderr


def test_environment_backend_names_are_checked(tmp_path):
    done = subprocess.run([LIVN, "run", "EI1", "--duration", "10", "-o", str(tmp_path / "r")], capture_output=True,
                          text=True, env={**os.environ, "LIVN_BACKEND": "nest"}, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "unknown backend 'nest'; expected one of brian2, neuron" in done.stderr


def test_a_bad_plot_path_is_reported(tmp_path):
    (tmp_path / "file").write_text("x")
    done = run_livn("inspect", "EI1", "--plot", tmp_path / "file" / "sub" / "x.png")
    assert done.returncode == 1 and "Traceback" not in done.stderr and "error:" in done.stderr
    assert (tmp_path / "file").read_text() == "x"


def test_python_level_bugs_still_show_their_traceback():
    """The CLI's error boundary catches user errors, not bugs: LIVN_DEBUG shows everything."""
    done = subprocess.run([sys.executable, "-c", "import livn.cli as c; c.user_errors(lambda: 1/0)()"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 70 and "ZeroDivisionError" in done.stderr and "Traceback" in done.stderr
    assert "this is a bug in livn" in done.stderr


#: (pulse_train arguments, expected message) — the MEA helpers check what they are given
PULSE_CASES = [
    ((100, [0], 1, 20, 0), "rate must be a finite number > 0"),
    ((100, [0], 1, 20, -5), "rate must be a finite number > 0"),
    ((100, [3], 1, 20, 10), "channels must be integers in 0..0"),
    ((float("nan"), [0], 1, 20, 10), "duration must be a finite number > 0"),
    ((100, [0], 1, float("inf"), 10), "amplitude must be a finite number >= 0"),
    ((100, [0], 0, 20, 10), "num_channels must be a positive integer"),
]


@pytest.mark.parametrize("args, expected", PULSE_CASES)
def test_stimulus_helpers_check_their_arguments(args, expected):
    from livn.io import pulse_train

    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        pulse_train(*args)
