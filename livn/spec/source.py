"""Load a YAML document safely, remembering the line of every value.

The document is data, never code: only YAML's safe core types are constructed.
"""

from __future__ import annotations

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
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        doc.problems.append(Problem(doc.name, None, "", f"cannot read the file: {err.strerror}"))
        return doc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        doc.problems.append(Problem(doc.name, line, "", f"not valid YAML: {getattr(err, 'problem', err)}"))
        return doc
    if node is None:
        doc.data = None
        return doc
    constructor = yaml.SafeLoader("")
    try:
        doc.data = _construct(node, (), doc, constructor)
    except yaml.YAMLError as err:  # e.g. a tag asking for a Python object: specs are data only
        mark = getattr(err, "problem_mark", None)
        doc.data = None
        doc.problems.append(Problem(doc.name, mark.line + 1 if mark else None, "",
                                    f"not valid YAML: {getattr(err, 'problem', None) or err}"))
    return doc


#: YAML's core tags; any other tag (e.g. !!python/object) is refused: specs are data only
_CORE_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq",
                                                  "timestamp", "merge", "binary")}


def _construct(node: yaml.Node, key: PathKey, doc: Document, constructor: yaml.SafeLoader) -> Any:
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
            out[name] = _construct(value_node, key + (name,), doc, constructor)
            doc.lines[key + (name,)] = key_node.start_mark.line + 1  # report a value at its key
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(child, key + (i,), doc, constructor) for i, child in enumerate(node.value)]
    return constructor.construct_object(node, deep=True)

