"""Write a SONATA circuit that libsonata, BMTK and NEST read.

Choices follow shared/reference/sonata-notes.md: uncompressed datasets, per-node x/y/z and
model attributes in the HDF5, both index names, ``populations`` blocks in the config.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .estimate import INDEX_LIMIT

SONATA_MAGIC = 0x0A7A
SONATA_VERSION = (0, 1)


@dataclass(frozen=True)
class NodeType:
    """One row of the node types CSV. ``morphology`` is a name in morphologies_dir without its
    extension (SONATA's form; readers add ``.swc``). ``mtype``, ``etype``, ``morph_class``
    ("PYR" or "INT") and ``synapse_class`` ("EXC" or "INH") are the BBP names bluepysnap's
    validator asks for."""

    node_type_id: int
    pop_name: str
    model_type: str
    model_template: str
    morphology: str
    ei: str
    mtype: str
    etype: str
    morph_class: str
    synapse_class: str


@dataclass(frozen=True)
class VirtualNodeType:
    """One row of a virtual (spike source) population's node types CSV."""

    node_type_id: int
    pop_name: str
    model_type: str
    ei: str


@dataclass(frozen=True)
class EdgeType:
    """One row of the edge types CSV: one (projection, receptor) pair; ``syn_weight`` is the
    default conductance (µS), ``weight_unit`` the conductance of weight 1 (µS)."""

    edge_type_id: int
    projection: str
    receptor: str
    model_template: str
    dynamics_params: str
    onto: str
    syn_weight: float
    weight_unit: float


def _root_attributes(h5: h5py.File) -> None:
    h5.attrs["magic"] = np.uint32(SONATA_MAGIC)
    h5.attrs["version"] = np.array(SONATA_VERSION, dtype=np.uint32)


def _strings(group: h5py.Group, name: str, values) -> None:
    group.create_dataset(name, data=np.array(values, dtype=object), dtype=h5py.string_dtype())


def write_nodes(path: Path, population: str, node_type_ids: np.ndarray, positions: np.ndarray,
                rotation: np.ndarray, types: list, extra: dict | None = None) -> None:
    """Write ``/nodes/<population>`` with one group (0) holding every per-node attribute.

    Positions in µm; ``rotation_angle_zaxis`` in radians (SONATA's name, what BMTK reads) and
    the same rotation as the unit quaternion ``orientation_w/x/y/z`` (what BBP tools read); the
    types' fields per node; ``extra`` more per-node datasets (name -> values). Biophysical nodes
    also get ``dynamics_params/holding_current`` (0 nA: livn applies none) and
    ``threshold_current`` (NaN: livn does not compute a rheobase), which BBP tools require.
    """
    by_id = {t.node_type_id: t for t in types}
    n = len(node_type_ids)
    with h5py.File(path, "w") as h5:
        _root_attributes(h5)
        pop = h5.create_group(f"nodes/{population}")
        pop.create_dataset("node_type_id", data=node_type_ids.astype(np.uint64))
        pop.create_dataset("node_id", data=np.arange(n, dtype=np.uint64))
        pop.create_dataset("node_group_id", data=np.zeros(n, dtype=np.uint32))
        pop.create_dataset("node_group_index", data=np.arange(n, dtype=np.uint64))
        group = pop.create_group("0")
        for axis, name in enumerate("xyz"):
            group.create_dataset(name, data=positions[:, axis].astype(np.float32))
            group[name].attrs["units"] = "um"
        group.create_dataset("rotation_angle_zaxis", data=rotation.astype(np.float32))
        group["rotation_angle_zaxis"].attrs["units"] = "radian"
        for name, values in zip("wxyz", (np.cos(rotation / 2), 0 * rotation, 0 * rotation, np.sin(rotation / 2))):
            group.create_dataset(f"orientation_{name}", data=np.asarray(values, dtype=np.float32))
        fields = [f for f in ("model_type", "model_template", "morphology", "pop_name", "ei", "mtype", "etype",
                              "morph_class", "synapse_class") if f in types[0].__dataclass_fields__]
        for field in fields:
            _strings(group, field, [getattr(by_id[t], field) for t in node_type_ids])
        for name, values in (extra or {}).items():
            group.create_dataset(name, data=values)
        params = group.create_group("dynamics_params")
        if all(t.model_type == "biophysical" for t in types):
            for name, value in (("holding_current", 0.0), ("threshold_current", np.nan)):
                params.create_dataset(name, data=np.full(n, value, dtype=np.float32))
                params[name].attrs["units"] = "nA"


#: the SONATA extension's type for dual-exponential conductance synapses with per-edge
#: conductance, tau1, tau2 and erev (Allen's "chemical" connections); NMDA's Mg2+ block is in
#: its dynamics_params (NeuroML), like every receptor's full model
EDGE_POPULATION_TYPE = "Exp2Syn_synapse"

_EDGE_ATTRIBUTES = {"syn_weight": ("weight", np.float64, "uS"), "delay": ("delay", np.float64, "ms"),
                    "afferent_section_id": ("section", np.uint32, None),
                    "afferent_section_pos": ("position", np.float32, None),
                    "distance": ("distance", np.float32, "um"),
                    # SONATA extension, Exp2Syn_synapse edges (bluepysnap's validator requires them)
                    "conductance": ("conductance", np.float32, "uS"), "tau1": ("tau1", np.float32, "ms"),
                    "tau2": ("tau2", np.float32, "ms"), "erev": ("erev", np.float32, "mV")}


def write_edges(path: Path, population: str, source_population: str, target_population: str,
                num_sources: int, num_targets: int, blocks, total: int, source_offset: int = 0) -> None:
    """Write ``/edges/<population>`` from ``blocks`` (column dicts, each sorted by target, in
    target order; ``total`` edges in all; source gids minus ``source_offset`` are the source
    node ids) and its indices, one block in memory at a time.

    Both index names are written: libsonata's ``node_id_to_ranges`` and, as a hard link to
    the same data, BMTK's ``node_id_to_range``.
    """
    ranges = []  # (target, first edge, end) per run of equal targets
    with h5py.File(path, "w") as h5:
        _root_attributes(h5)
        pop = h5.create_group(f"edges/{population}")
        columns = {"source_node_id": np.uint64, "target_node_id": np.uint64, "edge_type_id": np.uint64,
                   "edge_group_id": np.uint32, "edge_group_index": np.uint64}
        data = {name: pop.create_dataset(name, shape=(total,), dtype=dtype) for name, dtype in columns.items()}
        pop["source_node_id"].attrs["node_population"] = source_population
        pop["target_node_id"].attrs["node_population"] = target_population
        group = pop.create_group("0")
        for name, (_, dtype, unit) in _EDGE_ATTRIBUTES.items():
            data[name] = group.create_dataset(name, shape=(total,), dtype=dtype)
            if unit:
                data[name].attrs["units"] = unit
        group.create_group("dynamics_params")
        start = 0
        for block in blocks:
            n = len(block["target"])
            if n == 0:
                continue
            end = start + n
            data["source_node_id"][start:end] = block["source"] - source_offset
            data["target_node_id"][start:end] = block["target"]
            data["edge_type_id"][start:end] = block["type_id"]
            data["edge_group_id"][start:end] = 0
            data["edge_group_index"][start:end] = np.arange(start, end, dtype=np.uint64)
            for name, (column, dtype, _) in _EDGE_ATTRIBUTES.items():
                data[name][start:end] = block[column].astype(dtype)
            targets, first = np.unique(block["target"], return_index=True)
            bounds = np.append(first, n) + start
            ranges.extend(zip(targets.tolist(), bounds[:-1].tolist(), bounds[1:].tolist()))
            start = end
        if start != total:
            raise RuntimeError(f"{path}: wrote {start} edges, expected {total}")
    with h5py.File(path, "r+") as h5:
        indices = h5[f"edges/{population}"].create_group("indices")
        _write_index(indices.create_group("target_to_source"), num_targets,
                     np.array([r[0] for r in ranges], dtype=np.int64), np.array([r[1:] for r in ranges], dtype=np.int64))
        if total <= INDEX_LIMIT:
            _write_index(indices.create_group("source_to_target"), num_sources,
                         *_runs(h5[f"edges/{population}/source_node_id"][:].astype(np.int64)))


def _runs(node: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(node, [first edge id, end)) of each run of consecutive edge ids sharing a node, by node
    then edge id: what a node-to-edges index lists."""
    order = np.argsort(node, kind="stable")
    ordered = node[order]
    start = np.flatnonzero(np.concatenate(([True], (ordered[1:] != ordered[:-1]) | (order[1:] != order[:-1] + 1))))
    end = np.append(start[1:], len(order))
    return ordered[start], np.column_stack([order[start], order[end - 1] + 1])


def _write_index(group, num_nodes: int, run_nodes: np.ndarray, run_edges: np.ndarray) -> None:
    """A SONATA index: ``node_id_to_ranges`` [first, end) runs per node, and
    ``range_to_edge_id`` [first, end) edge ids per run; ``node_id_to_range`` (BMTK's name) is a
    hard link to the former. Written with h5py, so the file's bytes depend only on the edges."""
    # runs come sorted by node: a node's runs start after those of every smaller node (also
    # for a node without edges, whose range is empty there, as libsonata writes it)
    count = np.bincount(run_nodes, minlength=num_nodes)[:num_nodes] if len(run_nodes) else np.zeros(num_nodes, int)
    end = np.cumsum(count)
    node_to_ranges = np.column_stack([end - count, end]).astype(np.uint64)
    group.create_dataset("node_id_to_ranges", data=node_to_ranges)
    group.create_dataset("range_to_edge_id", data=np.asarray(run_edges, dtype=np.uint64).reshape(-1, 2))
    group["node_id_to_range"] = group["node_id_to_ranges"]


def write_types_csv(path: Path, rows: list, id_field: str) -> None:
    """Space-separated types table, the id column first (SONATA / BMTK convention)."""
    fields = [id_field] + [f for f in rows[0].__dataclass_fields__ if f != id_field]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=" ")
        writer.writerow(fields)
        for row in rows:
            writer.writerow([getattr(row, f) for f in fields])


def write_circuit_config(path: Path, nodes: list, edges: list, components: dict, extra: dict,
                         node_sets: dict | None = None) -> None:
    """``circuit_config.json`` with ``populations`` blocks (libsonata needs them).

    ``nodes``: (nodes file, node types file, population, type) per node population;
    ``edges``: (edges file, edge types file, population) per edge population; file names
    relative to the network folder. ``node_sets`` (name -> SONATA node set expression), when
    given, go to ``node_sets.json`` beside the config.
    """
    config = {
        "manifest": {"$BASE_DIR": ".", "$NETWORK_DIR": "$BASE_DIR/network", "$COMPONENTS_DIR": "$BASE_DIR/components"},
        **({"node_sets_file": "$BASE_DIR/node_sets.json"} if node_sets else {}),
        "components": components,
        "networks": {
            "nodes": [{"nodes_file": f"$NETWORK_DIR/{nodes_file}", "node_types_file": f"$NETWORK_DIR/{types_file}",
                       "populations": {population: {"type": kind}}}
                      for nodes_file, types_file, population, kind in nodes],
            "edges": [{"edges_file": f"$NETWORK_DIR/{edges_file}", "edge_types_file": f"$NETWORK_DIR/{types_file}",
                       "populations": {population: {"type": EDGE_POPULATION_TYPE}}}
                      for edges_file, types_file, population in edges],
        },
        **extra,
    }
    if node_sets:
        (path.parent / "node_sets.json").write_text(json.dumps(node_sets, indent=2) + "\n")
    path.write_text(json.dumps(config, indent=2) + "\n")


def write_simulation_config(path: Path, inputs: dict) -> None:
    """``simulation_config.json`` naming the circuit and the spike inputs of virtual
    populations (population -> spike file relative to ``path``'s folder), as BMTK and
    libsonata read them."""
    config = {
        "manifest": {"$BASE_DIR": "."},
        "network": "$BASE_DIR/circuit_config.json",
        "inputs": {f"{population}_spikes": {"input_type": "spikes", "module": "sonata",
                                            "input_file": f"$BASE_DIR/{file}", "node_set": population}
                   for population, file in inputs.items()},
    }
    path.write_text(json.dumps(config, indent=2) + "\n")


def write_synapse_parameters(path: Path, receptor, neuroml: str) -> None:
    """BMTK-style dynamics_params JSON of a receptor: Exp2Syn kinetics (ms, mV) and, as the
    source of truth, the NeuroML file and component they were read from."""
    tau_rise, tau_decay, erev = receptor.kinetics
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"level_of_detail": "exp2syn", "tau1": tau_rise, "tau2": tau_decay, "erev": erev,
                                "neuroml": neuroml, "component": receptor.component_id}, indent=2) + "\n")


def write_electrodes(directory: Path, electrodes: np.ndarray) -> None:
    """BMTK electrode files (µm): stimulation (xstim) and recording (extracellular)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "stimulation_electrodes.csv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=" ")
        writer.writerow(["pos_x", "pos_y", "pos_z", "rotation_x", "rotation_y", "rotation_z"])
        for x, y, z in electrodes:  # row i is channel i
            writer.writerow([f"{x:g}", f"{y:g}", f"{z:g}", 0, 0, 0])
    with open(directory / "recording_electrodes.csv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=" ")
        writer.writerow(["channel", "x_pos", "y_pos", "z_pos"])
        for channel, (x, y, z) in enumerate(electrodes):
            writer.writerow([channel, f"{x:g}", f"{y:g}", f"{z:g}"])
