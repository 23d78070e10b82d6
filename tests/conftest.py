"""Shared fixtures: the shipped specs, copies a test may edit, and built circuits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from livn.resources import resource_dir

LIVN = str(Path(sys.executable).parent / "livn")


@pytest.fixture(scope="session")
def livn_cache(tmp_path_factory) -> Path:
    """The test session's own livn cache, never the user's. The xdist workers of one session
    share it: livn locks each cache entry, so a system or a mechanism set that tests on both
    workers need is built or compiled once (what concurrent MPI ranks and users rely on too)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "livn-cache"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(livn_cache):
    """Everything livn caches (predefined systems, compiled mechanisms) goes to the session's
    cache, for module and session fixtures too (hence session scope)."""
    previous = os.environ.get("LIVN_CACHE")
    os.environ["LIVN_CACHE"] = str(livn_cache)
    yield
    if previous is None:
        os.environ.pop("LIVN_CACHE", None)
    else:
        os.environ["LIVN_CACHE"] = previous


@pytest.fixture
def spec_copy(tmp_path):
    """A writable copy of specs/; returns a function (name, edit) -> path of the edited spec.

    ``edit`` maps the YAML text to new text (plain string surgery, so lines stay meaningful).
    """
    folder = tmp_path / "specs"
    shutil.copytree(resource_dir("specs"), folder)

    def make(name: str = "EI2", edit=None) -> Path:
        path = folder / f"{name}.yaml"
        if edit is not None:
            text = path.read_text()
            new = edit(text)
            assert new != text, "the edit changed nothing"
            path.write_text(new)
        return path

    make.folder = folder
    return make


@pytest.fixture(scope="session")
def circuits(tmp_path_factory):
    """EI1, EI2 and EI3 built once per session from the shipped specs: name -> circuit path."""
    from livn.build import build_circuit
    from livn.resources import spec_path
    from livn.spec import load_spec

    root = tmp_path_factory.mktemp("circuits")
    return {name: build_circuit(load_spec(spec_path(name)), root / name) for name in ("EI1", "EI2", "EI3")}


def run_livn(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    """Run the ``livn`` command as a user would."""
    return subprocess.run([LIVN, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=300)


def spec_of(system):
    """The spec a livn circuit was built from (it travels inside the circuit as provenance)."""
    from livn.spec import load_spec

    return load_spec(system.livn["spec"])
