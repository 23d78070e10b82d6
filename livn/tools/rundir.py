"""Run directories: a command's configuration and its result, in a folder named by a hash of
the configuration, so the same command twice finds the first one's result.

A run directory holds ``config.json`` (written when the directory is made, never changed) and
whatever the command writes; every file goes in by atomic rename, so a killed run leaves
either a file or nothing, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from ..system import cache_root


def config_hash(config: dict) -> str:
    """SHA-256 of ``config`` as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data.encode() if isinstance(data, str) else data)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def check_count(name: str, value, minimum: int = 1) -> int:
    """``value`` if it is an integer >= ``minimum``, else ValueError saying so."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, found {value!r}")
    return value


class RunDirectory:
    """The folder of one configuration of a command.

    Parameters
    ----------
    kind : str
        The command ("sample", "tune"): runs of a kind live under ``<cache>/runs/<kind>/``.
    label : str
        A readable prefix of the folder's name (the system's name).
    config : dict
        Everything that determines the result (JSON-serialisable).
    root : path-like, optional
        Where the kind's folders go instead of the cache.
    """

    def __init__(self, kind: str, label: str, config: dict, root=None):
        self.config = config
        self.key = config_hash(config)
        base = Path(root) if root is not None else cache_root() / "runs" / kind
        self.path = base / f"{label}-{self.key[:16]}"

    def exists(self) -> bool:
        return (self.path / "config.json").is_file()

    def create(self) -> Path:
        """Make the folder with its ``config.json`` (or find it); refuse a folder whose
        configuration is not this one (a hash collision, or a hand-edited file)."""
        if self.exists():
            found = json.loads((self.path / "config.json").read_text())
            if found != self.config:
                raise RuntimeError(f"{self.path} holds another configuration than this command's; "
                                   f"move it away to run this one")
            return self.path
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path / "config.json", json.dumps(self.config, indent=2, sort_keys=True) + "\n")
        return self.path
