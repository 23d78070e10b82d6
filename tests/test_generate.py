"""livn systems generate_2d: a new culture's spec, its models beside it, built and run."""

from __future__ import annotations

import pytest

from livn.spec import load_spec
from livn.tools.generate import Culture2D, generate_2d
from tests.conftest import run_livn


def test_generated_spec_has_the_requested_culture(tmp_path):
    spec_path = generate_2d(Culture2D("MyCulture", exc=30, inh=10, width=300, height=200, sigma=120, seed=7),
                            tmp_path / "out")
    spec = load_spec(spec_path)
    assert spec.name == "MyCulture" and spec.seed == 7
    assert {p.name: p.count for p in spec.populations} == {"EXC": 30, "INH": 10}
    # every file the spec names is inside the new folder: it stands on its own
    assert all(tmp_path / "out" in path.parents for path in spec.files)


def test_make_runs_a_generated_spec(tmp_path):
    from livn.env import make

    spec_path = generate_2d(Culture2D("Small", exc=16, inh=4, width=200, height=200), tmp_path)
    env = make(str(spec_path))
    assert env.system.num_neurons == 20 and env.system.num_channels == 4
    xy = env.system.coordinates[:, :2]
    assert xy.min() >= 0 and xy.max() <= 200
    env.record_spikes()
    it, t, *_ = env.run(300)
    assert 0 < len(t) / 20 / 0.3 < 50  # a few to tens of Hz: the EI3 defaults drive it


def test_cli_plans_without_launch_and_writes_with_it(tmp_path):
    folder = tmp_path / "culture"
    plan = run_livn("systems", "generate_2d", "Mine", "--exc", "16", "--inh", "4", "--area", "200x200", "-o", folder)
    assert plan.returncode == 0, plan.stderr
    assert "name: Mine" in plan.stdout and "--launch" in plan.stderr
    assert not folder.exists()
    done = run_livn("systems", "generate_2d", "Mine", "--exc", "16", "--inh", "4", "--area", "200x200", "-o", folder,
                    "--launch")
    assert done.returncode == 0, done.stderr
    assert "20 neurons" in done.stdout and (folder / "Mine.yaml").is_file()
    again = run_livn("systems", "generate_2d", "Mine", "--exc", "16", "--inh", "4", "--area", "200x200", "-o", folder,
                     "--launch")
    assert again.returncode == 0, again.stderr  # the same files again: kept, nothing refused


@pytest.mark.parametrize("options, message", [
    (["--exc", "0"], "expected an integer >= 1"),
    (["--inh", "-3"], "expected an integer >= 0"),
    (["--area", "800by800"], "WIDTHxHEIGHT"),
    (["--area", "0x100"], "width and height > 0"),
    (["--sigma", "nan"], "finite number"),
    (["--p-max", "1.5"], "<= 1"),
    (["--cutoff", "0.9", "--p-max", "0.5"], "cutoff"),
    (["--pitch", "1000", "--area", "400x400"], "at least one electrode"),
])
def test_bad_options_are_refused_before_anything_is_written(tmp_path, options, message):
    folder = tmp_path / "culture"
    result = run_livn("systems", "generate_2d", "Mine", *options, "-o", folder, "--launch")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not folder.exists()


def test_bad_name_is_refused(tmp_path):
    result = run_livn("systems", "generate_2d", "9lives", "-o", tmp_path / "x", "--launch")
    assert result.returncode == 2 and "letters, digits" in result.stderr
    assert not (tmp_path / "x").exists()


def test_a_different_file_of_the_same_name_is_never_overwritten(tmp_path):
    folder = tmp_path / "culture"
    folder.mkdir()
    (folder / "Mine.yaml").write_text("my own notes\n")
    result = run_livn("systems", "generate_2d", "Mine", "-o", folder, "--launch")
    assert result.returncode == 1 and "Mine.yaml" in result.stderr and "other content" in result.stderr
    assert (folder / "Mine.yaml").read_text() == "my own notes\n"
    assert sorted(p.name for p in folder.iterdir()) == ["Mine.yaml"]


def test_culture_without_inhibition(tmp_path):
    spec = load_spec(generate_2d(Culture2D("OnlyExc", exc=20, inh=0, width=200, height=200), tmp_path))
    assert [p.name for p in spec.populations] == ["EXC"]
    assert spec.weight_names == ["EXC->EXC.AMPA", "EXC->EXC.NMDA"]
    assert not any("INH" in path.name or "GABA" in path.name for path in spec.files)
