"""Directories livn writes (circuits, compiled simulations), replaced atomically and without
ever deleting what livn did not write.

A directory is written beside its destination (``.<name>.tmp-<pid>-<random>``) and renamed
into place when complete; it carries a manifest (``.livn-manifest.json``: every file livn
wrote, with its size and SHA-256). When it replaces an earlier one:

- anything in the old directory that its manifest does not list (results a compiled
  ``run.py`` wrote into ``output/``, a user's notes) is carried over into the new one, unless
  the new one has a file of that name (then it is kept as ``<name>.user-<n>`` beside it);
- a directory without a manifest and without livn's marker file is not replaced at all.

Temporaries of builds that died (their process is gone) are removed on the next write.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path

MANIFEST = ".livn-manifest.json"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


#: files above this size are identified by size and modification time, not hashed (an EI4
#: circuit's edges would add ~15 % to its build time)
HASH_LIMIT = 8 << 20


def _facts(path: Path) -> dict:
    stat = path.stat()
    if stat.st_size > HASH_LIMIT:
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return {"size": stat.st_size, "sha256": _digest(path)}


def _unchanged(path: Path, facts: dict) -> bool:
    if not path.is_file() or path.stat().st_size != facts["size"]:
        return False
    if "sha256" in facts:
        return _digest(path) == facts["sha256"]
    return path.stat().st_mtime_ns == facts.get("mtime_ns")


def write_manifest(directory: Path) -> None:
    """List every file under ``directory`` with its size and SHA-256 (large ones: mtime)."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST):
        files[path.relative_to(directory).as_posix()] = _facts(path)
    (directory / MANIFEST).write_text(json.dumps({"format": 1, "files": files}, indent=0) + "\n")


def read_manifest(directory: Path) -> dict | None:
    try:
        return json.loads((Path(directory) / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def verify(directory: Path, content: bool = False) -> list[str]:
    """What is wrong with a directory livn wrote: missing or resized files (and, with
    ``content``, changed ones); [] if intact, ["no manifest"] if it has none."""
    files = read_manifest(directory)
    if files is None:
        return ["no manifest"]
    problems = []
    for name, facts in files.items():
        path = Path(directory) / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != facts["size"]:
            problems.append(f"{name} has {path.stat().st_size} bytes, {facts['size']} were written")
        elif content and not _unchanged(path, facts):
            problems.append(f"{name} has changed since it was written")
    return problems


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(output: Path) -> None:
    """Remove temporaries beside ``output`` left by writers that died (``kill -9``, power loss)."""
    for path in output.parent.glob(f".{output.name}.*-*"):
        parts = path.name.rsplit(".", 1)[-1].split("-")
        if len(parts) == 3 and parts[0] in ("tmp", "old") and parts[1].isdigit() and not _alive(int(parts[1])):
            shutil.rmtree(path, ignore_errors=True)


def _carry_over(old: Path, new: Path) -> list[str]:
    """Move what livn did not write (or what was edited since) from ``old`` into ``new``;
    returns what was moved."""
    manifest = read_manifest(old) or {}
    listed = {name for name, facts in manifest.items() if _unchanged(old / name, facts)}
    moved = []
    for path in sorted(old.rglob("*"), key=lambda p: len(p.parts)):
        if not path.exists() or path.name == MANIFEST:
            continue
        relative = path.relative_to(old).as_posix()
        if path.is_dir():
            if any(f == relative or f.startswith(relative + "/") for f in listed):
                continue  # a folder livn wrote into: look at its contents
            target = new / relative
        elif relative in listed:
            continue
        else:
            target = new / relative
        if target.exists():
            n = 1
            while target.with_name(f"{target.name}.user-{n}").exists():
                n += 1
            target = target.with_name(f"{target.name}.user-{n}")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, target)
        moved.append(relative)
    return moved


@contextmanager
def atomic_directory(output: Path, marker: str = "circuit_config.json", owned: bool = False):
    """Yield a temporary directory beside ``output``; on success it replaces ``output``.

    On any error the temporary directory is removed and ``output`` is left as it was. An
    existing ``output`` is replaced only if it is empty, has a livn manifest, holds ``marker``
    or is ``owned`` (a cache entry); what livn did not write in it is carried over (see the module).
    """
    output = Path(output).absolute()
    if output.exists() and not output.is_dir():
        raise FileExistsError(f"{output} is a file; livn writes a directory there: choose another path")
    if (output.exists() and not owned and any(output.iterdir()) and read_manifest(output) is None
            and not (output / marker).is_file()):
        raise FileExistsError(f"{output} exists and is not a livn output (no {marker}); refusing to replace it")
    output.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(output)
    tmp = output.parent / f".{output.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        write_manifest(tmp)
        if output.exists():
            _carry_over(output, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if output.exists():
        old = output.parent / f".{output.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(output, old)
    os.rename(tmp, output)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
