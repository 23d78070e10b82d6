"""What a spec needs to know about its NeuroML2 files: ids, segment groups, includes.

Only reads; the simulator targets translate the dynamics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from .problems import Problem, relative_name

#: NeuroML2 elements that define a synapse a receptor can point at
SYNAPSE_ELEMENTS = {"expOneSynapse", "expTwoSynapse", "expThreeSynapse", "alphaSynapse",
                    "blockingPlasticSynapse", "doubleSynapse", "gapJunction"}

#: where a synapse or noise can sit ("onto" in a spec) -> NeuroML2 segment group id
SEGMENT_GROUPS = {"soma": "soma_group", "dendrite": "dendrite_group"}


@dataclass
class NeuroMLFile:
    """Facts read from one NeuroML2 file (and, via ``includes``, the files it includes)."""

    path: Path
    cells: dict = field(default_factory=dict)          # cell id -> set of segment group ids
    synapses: list = field(default_factory=list)       # synapse component ids
    synapse_attributes: dict = field(default_factory=dict)  # synapse id -> {attribute: raw text}
    component_types: list = field(default_factory=list)
    includes: list = field(default_factory=list)       # resolved paths of <include href>
    morphologies: dict = field(default_factory=dict)   # top-level morphology id -> set of segment group ids
    cell_morphology: dict = field(default_factory=dict)  # cell id -> id of the morphology it references


def _local(tag) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def read_neuroml(path: Path, problems: list, seen: dict) -> NeuroMLFile | None:
    """Read ``path`` and its includes (once each, into ``seen``), appending any problems.

    Returns None when the file itself cannot be read.
    """
    path = path.resolve()
    if path in seen:
        return seen[path]
    name = relative_name(path)
    try:
        tree = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))
    except OSError as err:
        reason = ("not UTF-8 text (invalid bytes for its encoding): save it as UTF-8" if "encoding" in str(err)
                  else f"cannot read the file: {err.strerror or err}")
        problems.append(Problem(name, None, "", reason))
        seen[path] = None
        return None
    except etree.XMLSyntaxError as err:
        problems.append(Problem(name, err.lineno, "", f"not well-formed XML: {err.msg}"))
        seen[path] = None
        return None
    info = NeuroMLFile(path)
    seen[path] = info
    root = tree.getroot()
    if _local(root.tag) != "neuroml":
        problems.append(Problem(name, root.sourceline, "", f"expected a <neuroml> document, found <{_local(root.tag)}>"))
        return info
    for element in root:
        tag = _local(element.tag)
        if tag == "include":
            href = element.get("href", "")
            target = (path.parent / href).resolve()
            if not target.is_file():
                problems.append(Problem(name, element.sourceline, f"include[href={href}]",
                                        f"included file {href!r} not found (looked at {relative_name(target)})"))
                continue
            info.includes.append(target)
            read_neuroml(target, problems, seen)
        elif tag == "cell":
            groups = {g.get("id") for g in element.iter() if _local(g.tag) == "segmentGroup"}
            info.cells[element.get("id")] = groups
            if element.get("morphology"):
                info.cell_morphology[element.get("id")] = element.get("morphology")
        elif tag == "morphology":
            info.morphologies[element.get("id")] = {g.get("id") for g in element if _local(g.tag) == "segmentGroup"}
        elif tag in SYNAPSE_ELEMENTS:
            info.synapses.append(element.get("id"))
            info.synapse_attributes[element.get("id")] = dict(element.attrib, type=tag)
        elif tag == "ComponentType":
            info.component_types.append(element.get("name"))
    return info


def cell_groups(path: Path, cell_id: str, seen: dict) -> set:
    """Segment groups of cell ``cell_id`` of ``path``: its own, or those of the morphology it
    references by id (looked up in the file and its includes)."""
    info = seen.get(path.resolve())
    if info is None:
        return set()
    groups = set(info.cells.get(cell_id) or ())
    reference = info.cell_morphology.get(cell_id)
    if reference is not None:
        for other in closure(path, seen):
            found = seen.get(other)
            if found is not None and reference in found.morphologies:
                groups |= found.morphologies[reference]
                break
    return groups


def closure(path: Path, seen: dict) -> list[Path]:
    """``path`` and every file it includes, transitively, in a stable order."""
    out, stack = [], [path.resolve()]
    while stack:
        current = stack.pop()
        if current in out:
            continue
        out.append(current)
        info = seen.get(current)
        if info is not None:
            stack.extend(reversed(info.includes))
    return out
