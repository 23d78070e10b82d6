"""Problems found in a spec, collected as values and reported together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable


@dataclass(frozen=True, order=True)
class Problem:
    """One problem in a user's file.

    Attributes
    ----------
    file : str
        The file the problem is in.
    line : int or None
        1-based line in ``file`` (None when the location has no line, e.g. a missing key
        is reported at its parent mapping's line).
    path : str
        Dotted path in the document, e.g. ``populations.INH.count``.
    message : str
        What was expected and what was found.
    severity : str
        "error" or "warning".
    """

    file: str
    line: int | None
    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        at = f" {self.path}:" if self.path else ""
        return f"{where}: {self.severity}:{at} {one_line(self.message)}"


def one_line(message: str) -> str:
    """A message on one line (parsers' messages carry newlines and advice a user cannot act on)."""
    message = message.replace("use XML_PARSE_HUGE option", "").replace('in "<unicode string>", ', "")
    return " ".join(message.split()).rstrip(",; ")


class SpecError(Exception):
    """A spec has errors; ``problems`` lists every one of them."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.path, p.message))
        errors = [p for p in self.problems if p.severity == "error"]
        super().__init__(f"{len(errors)} problem(s) in spec:\n" + "\n".join(f"  {p}" for p in self.problems))


def relative_name(path: Path) -> str:
    """A short file name for messages: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
