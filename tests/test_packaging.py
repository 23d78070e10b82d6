"""A wheel (non-editable install) carries the specs and schemas and works from anywhere."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_specs_and_schemas_and_runs_outside_the_checkout(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(REPO)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("livn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("livn/_data/specs/EI2.yaml", "livn/_data/specs/cells/EXC.cell.nml", "livn/_data/specs/channels/Km.channel.nml",
                 "livn/_data/schemas/system.schema.json", "livn/_data/schemas/mea.schema.json",
                 "livn/targets/brian2/runtime.py"):
        assert name in names, name
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(target), "LIVN_CACHE": str(tmp_path / "cache")}
    probe = ("import livn, livn.resources as r; print(livn.__file__); print(r.resource_dir('specs')); "
             "from livn.system import System, predefined; print(System(predefined('EI1')).num_neurons)")
    ran = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    module, specs, neurons = ran.stdout.split()
    assert module.startswith(str(target)) and specs.startswith(str(target)) and neurons == "10"
    cli = subprocess.run([str(target / "bin" / "livn"), "validate", "EI3"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0 and "EI3.yaml: OK" in cli.stdout, cli.stderr
    assert str(target) in cli.stdout
