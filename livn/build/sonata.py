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
import libsonata
import numpy as np

SONATA_MAGIC = 0x0A7A
SONATA_VERSION = (0, 1)


@dataclass(frozen=True)
class NodeType:
    """One row of the node types CSV."""

    node_type_id: int
    pop_name: str
    model_type: str
    model_template: str
    morphology: str
    ei: str


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

    Positions in µm; ``rotation_angle_zaxis`` in radians (SONATA's name); the types' fields
    per node; ``extra`` more per-node datasets (name -> values).
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
        fields = [f for f in ("model_type", "model_template", "morphology", "pop_name", "ei")
                  if f in types[0].__dataclass_fields__]
        for field in fields:
            _strings(group, field, [getattr(by_id[t], field) for t in node_type_ids])
        for name, values in (extra or {}).items():
            group.create_dataset(name, data=values)
        group.create_group("dynamics_params")


def write_edges(path: Path, population: str, source_population: str, target_population: str,
                num_sources: int, num_targets: int, source: np.ndarray, target: np.ndarray,
                edge_type_id: np.ndarray, attributes: dict, units: dict) -> None:
    """Write ``/edges/<population>`` (edges must already be sorted by target) and its indices.

    Both index names are written: libsonata's ``node_id_to_ranges`` and, as a hard link to
    the same data, BMTK's ``node_id_to_range``.
    """
    n = len(source)
    with h5py.File(path, "w") as h5:
        _root_attributes(h5)
        pop = h5.create_group(f"edges/{population}")
        pop.create_dataset("source_node_id", data=source.astype(np.uint64))
        pop["source_node_id"].attrs["node_population"] = source_population
        pop.create_dataset("target_node_id", data=target.astype(np.uint64))
        pop["target_node_id"].attrs["node_population"] = target_population
        pop.create_dataset("edge_type_id", data=edge_type_id.astype(np.uint64))
        pop.create_dataset("edge_group_id", data=np.zeros(n, dtype=np.uint32))
        pop.create_dataset("edge_group_index", data=np.arange(n, dtype=np.uint64))
        group = pop.create_group("0")
        for name, values in attributes.items():
            group.create_dataset(name, data=values)
            if name in units:
                group[name].attrs["units"] = units[name]
        group.create_group("dynamics_params")
    libsonata.EdgePopulation.write_indices(str(path), population, num_sources, num_targets)
    with h5py.File(path, "r+") as h5:
        for direction in ("source_to_target", "target_to_source"):
            index = h5[f"edges/{population}/indices/{direction}"]
            index["node_id_to_range"] = index["node_id_to_ranges"]


def write_types_csv(path: Path, rows: list, id_field: str) -> None:
    """Space-separated types table, the id column first (SONATA / BMTK convention)."""
    fields = [id_field] + [f for f in rows[0].__dataclass_fields__ if f != id_field]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=" ")
        writer.writerow(fields)
        for row in rows:
            writer.writerow([getattr(row, f) for f in fields])


def write_circuit_config(path: Path, nodes: list, edges: list, components: dict, extra: dict) -> None:
    """``circuit_config.json`` with ``populations`` blocks (libsonata needs them).

    ``nodes``: (nodes file, node types file, population, type) per node population;
    ``edges``: (edges file, edge types file, population) per edge population; file names
    relative to the network folder.
    """
    config = {
        "manifest": {"$BASE_DIR": ".", "$NETWORK_DIR": "$BASE_DIR/network", "$COMPONENTS_DIR": "$BASE_DIR/components"},
        "components": components,
        "networks": {
            "nodes": [{"nodes_file": f"$NETWORK_DIR/{nodes_file}", "node_types_file": f"$NETWORK_DIR/{types_file}",
                       "populations": {population: {"type": kind}}}
                      for nodes_file, types_file, population, kind in nodes],
            "edges": [{"edges_file": f"$NETWORK_DIR/{edges_file}", "edge_types_file": f"$NETWORK_DIR/{types_file}",
                       "populations": {population: {"type": "chemical"}}}
                      for edges_file, types_file, population in edges],
        },
        **extra,
    }
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
