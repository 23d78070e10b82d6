"""SWC morphologies from NeuroML2 cells, for tools that load a morphology file per node
(libsonata requires a morphologies_dir for biophysical nodes; BMTK's bionet loads SWC)."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

_SWC_TYPES = {"soma_group": 1, "axon_group": 2, "dendrite_group": 3}


def _local(tag) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def neuroml_to_swc(nml: Path, cell_id: str, swc: Path) -> None:
    """Write the morphology of ``<cell id=cell_id>`` in ``nml`` as SWC (µm).

    Soma segments become SWC type 1, axon 2, everything else 3 (basal dendrite); a segment's
    group comes from the NeuroML segment groups ``soma_group``, ``axon_group``,
    ``dendrite_group``.
    """
    root = etree.parse(str(nml)).getroot()
    cell = next(e for e in root.iter() if _local(e.tag) == "cell" and e.get("id") == cell_id)
    groups = {g.get("id"): g for g in cell.iter() if _local(g.tag) == "segmentGroup"}

    def members(group_id: str, seen=()) -> set:
        """Segments of a group, following <include segmentGroup=...>."""
        out = set()
        for child in groups[group_id]:
            if _local(child.tag) == "member":
                out.add(int(child.get("segment")))
            elif _local(child.tag) == "include" and child.get("segmentGroup") not in seen:
                out |= members(child.get("segmentGroup"), seen + (group_id,))
        return out

    segment_type = {}
    for group_id, kind in _SWC_TYPES.items():
        if group_id in groups:
            for segment in members(group_id):
                segment_type[segment] = kind
    lines, distal_point, next_id = [], {}, 1
    for segment in (e for e in cell.iter() if _local(e.tag) == "segment"):
        sid = int(segment.get("id"))
        kind = segment_type.get(sid, 3)
        points = {_local(p.tag): p for p in segment if _local(p.tag) in ("proximal", "distal", "parent")}
        parent_point = -1
        if "parent" in points:
            parent_point = distal_point[int(points["parent"].get("segment"))]
        if "proximal" in points or parent_point == -1:
            p = points["proximal"]
            lines.append(f"{next_id} {kind} {p.get('x')} {p.get('y')} {p.get('z')} {float(p.get('diameter')) / 2:g} {parent_point}")
            parent_point, next_id = next_id, next_id + 1
        d = points["distal"]
        lines.append(f"{next_id} {kind} {d.get('x')} {d.get('y')} {d.get('z')} {float(d.get('diameter')) / 2:g} {parent_point}")
        distal_point[sid], next_id = next_id, next_id + 1
    swc.write_text(f"# {cell_id} from {nml.name} (NeuroML2), µm\n" + "\n".join(lines) + "\n")
