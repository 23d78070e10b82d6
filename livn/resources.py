"""Locate the specs and schemas shipped with livn.

A wheel carries them as ``livn/_data/{specs,schemas}``; a source checkout (or an editable
install) keeps them at the repository root, where scientists edit them.
"""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the directory of shipped resource ``name`` ("specs" or "schemas")."""
    packaged = _PACKAGE / "_data" / name
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"livn resource directory {name!r} not found (looked in {packaged} and {checkout})")


def spec_path(name: str) -> Path:
    """Path of the shipped spec of predefined system ``name`` (e.g. "EI2")."""
    return resource_dir("specs") / f"{name}.yaml"


def predefined_names() -> list[str]:
    """Names of the systems whose specs ship with livn, sorted."""
    return sorted(p.stem for p in resource_dir("specs").glob("*.yaml"))
