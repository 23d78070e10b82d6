"""Load a YAML document safely, remembering the line of every value.

The document is data, never code: only YAML's safe core types are constructed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .problems import Problem, relative_name

PathKey = tuple  # a path into the document, e.g. ("populations", "INH", "count")


@dataclass
class Document:
    """A loaded YAML document and where each of its values came from.

    Attributes
    ----------
    path : Path
        The file.
    data : Any
        The plain Python value (dicts, lists, str, int, float, bool, None).
    lines : dict
        Path key (tuple of keys/indices) -> 1-based line of the value at that path.
    problems : list of Problem
        Syntax problems found while loading (duplicate keys, YAML errors).
    """

    path: Path
    data: Any = None
    lines: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return relative_name(self.path)

    def line_of(self, key: PathKey) -> int | None:
        """Line of the value at ``key``, or of its nearest ancestor that has one."""
        key = tuple(key)
        while key not in self.lines and key:
            key = key[:-1]
        return self.lines.get(key)

    def problem(self, key: PathKey, message: str, severity: str = "error") -> Problem:
        """A problem located at ``key`` in this document."""
        return Problem(self.name, self.line_of(key), dotted(key), message, severity)


def dotted(key: PathKey) -> str:
    """``("populations", "INH", "count")`` -> ``"populations.INH.count"``; indices as ``[i]``."""
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_document(path: Path) -> Document:
    """Parse ``path`` as YAML, collecting problems instead of raising."""
    path = Path(path)
    doc = Document(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        doc.problems.append(Problem(doc.name, None, "", f"cannot read the file: {err.strerror}"))
        return doc
    if len(raw) > MAX_BYTES:
        doc.problems.append(Problem(doc.name, None, "", f"the file has {len(raw)} bytes; a spec has at most "
                                                        f"{MAX_BYTES} (it is a text a person edits)"))
        return doc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        doc.problems.append(Problem(doc.name, line, "", f"not UTF-8 text (byte {raw[err.start]:#04x} at offset "
                                                        f"{err.start}): save the file as UTF-8"))
        return doc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        doc.problems.append(Problem(doc.name, line, "", f"not valid YAML: {getattr(err, 'problem', err)}"))
        return doc
    except RecursionError:
        doc.problems.append(Problem(doc.name, None, "", f"nested too deeply to read (a spec nests a few levels; "
                                                        f"at most {MAX_DEPTH})"))
        return doc
    if node is None:
        doc.data = None
        return doc
    constructor = yaml.SafeLoader("")
    budget = [MAX_VALUES]
    try:
        doc.data = _construct(node, (), doc, constructor, budget)
    except yaml.YAMLError as err:  # e.g. a tag asking for a Python object: specs are data only
        mark = getattr(err, "problem_mark", None)
        doc.data = None
        doc.problems.append(Problem(doc.name, mark.line + 1 if mark else None, "",
                                    f"not valid YAML: {getattr(err, 'problem', None) or err}"))
    except _TooLarge as err:
        doc.data = None
        doc.problems.append(Problem(doc.name, err.line, "", str(err)))
    return doc


#: limits of a spec document: bytes, values after aliases are expanded, nesting depth
MAX_BYTES = 1_000_000
MAX_VALUES = 100_000
MAX_DEPTH = 50


class _TooLarge(ValueError):
    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


#: YAML's core tags; any other tag (e.g. !!python/object) is refused: specs are data only
_CORE_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq",
                                                  "timestamp", "merge", "binary")}


def _construct(node: yaml.Node, key: PathKey, doc: Document, constructor: yaml.SafeLoader, budget: list) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge(f"the document expands to more than {MAX_VALUES} values (YAML aliases repeating a "
                        f"structure?); a spec is far smaller", node.start_mark.line + 1)
    if len(key) > MAX_DEPTH:
        raise _TooLarge(f"nested more than {MAX_DEPTH} levels deep; a spec nests a few", node.start_mark.line + 1)
    doc.lines[key] = node.start_mark.line + 1
    if node.tag not in _CORE_TAGS:
        doc.problems.append(Problem(doc.name, node.start_mark.line + 1, dotted(key),
                                    f"not valid YAML for a spec: tag {node.tag!r} is not allowed (specs are data only)"))
        return None
    if isinstance(node, yaml.MappingNode):
        constructor.flatten_mapping(node)  # YAML merge keys (<<)
        out: dict = {}
        for key_node, value_node in node.value:
            name = constructor.construct_object(key_node, deep=True)
            if not isinstance(name, (str, int, float, bool)):
                doc.problems.append(Problem(doc.name, key_node.start_mark.line + 1, dotted(key),
                                            f"a mapping key must be a plain value, found {type(name).__name__}"))
                continue
            if name in out:
                doc.problems.append(Problem(doc.name, key_node.start_mark.line + 1, dotted(key + (name,)),
                                            f"duplicate key {name!r} (first defined on line "
                                            f"{doc.lines[key + (name,)]})"))
                continue
            out[name] = _construct(value_node, key + (name,), doc, constructor, budget)
            doc.lines[key + (name,)] = key_node.start_mark.line + 1  # report a value at its key
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(child, key + (i,), doc, constructor, budget) for i, child in enumerate(node.value)]
    value = constructor.construct_object(node, deep=True)
    if isinstance(value, float) and not math.isfinite(value):
        doc.problems.append(Problem(doc.name, node.start_mark.line + 1, dotted(key),
                                    f"expected a finite number, found {node.value!r}"))
    return value

