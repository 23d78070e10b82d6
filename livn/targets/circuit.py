"""A SONATA circuit as simulations read it, the MEA field and spike reports.

Self-contained (numpy, h5py): compiled simulation directories carry a copy of this file.
Units: µm, ms, mV, µA, Ω·m.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import h5py
import numpy as np


def _expand(config: dict, base: Path, value: str) -> Path:
    manifest = config.get("manifest", {})
    for _ in range(len(manifest) + 1):
        for key, replacement in manifest.items():
            value = value.replace(key, replacement)
    return (base / value).resolve()


class Circuit:
    """The parts of a SONATA circuit a simulation needs, read with h5py.

    ``edges=False`` leaves the edge arrays (source, target, edge_type, syn_weight, delay) unread,
    for a reader that takes only some edges from ``edges_file`` / ``edge_population``.
    """

    def __init__(self, path, edges: bool = True):
        path = Path(path)
        config_path = path / "circuit_config.json" if path.is_dir() else path
        base = config_path.parent
        config = json.loads(config_path.read_text())
        nodes = config["networks"]["nodes"][0]
        edges = config["networks"]["edges"][0]
        node_pop = next(iter(nodes["populations"]))
        edge_pop = next(iter(edges["populations"]))
        with h5py.File(_expand(config, base, nodes["nodes_file"]), "r") as h5:
            group = h5[f"nodes/{node_pop}/0"]
            self.positions = np.column_stack([group[a][:] for a in "xyz"]).astype(float)
            self.rotation = group["rotation_angle_zaxis"][:] if "rotation_angle_zaxis" in group else np.zeros(len(self.positions))
        self.edges_file, self.edge_population = _expand(config, base, edges["edges_file"]), edge_pop
        if edges:
            with h5py.File(self.edges_file, "r") as h5:
                pop = h5[f"edges/{edge_pop}"]
                self.source = pop["source_node_id"][:].astype(np.int64)
                self.target = pop["target_node_id"][:].astype(np.int64)
                self.edge_type = pop["edge_type_id"][:].astype(np.int64)
                self.syn_weight = pop["0/syn_weight"][:].astype(float)
                self.delay = pop["0/delay"][:].astype(float)
        with open(_expand(config, base, edges["edge_types_file"]), newline="") as handle:
            self.edge_types = {int(r["edge_type_id"]): r for r in csv.DictReader(handle, delimiter=" ")}
        livn = config.get("livn", {})
        electrodes = livn.get("stimulation_electrodes")
        self.electrodes = (np.loadtxt(_expand(config, base, electrodes), skiprows=1, ndmin=2)[:, :3]
                           if electrodes else np.zeros((0, 3)))
        self.node_population = node_pop


def field_transfer(circuit: Circuit, first_gid: int, count: int, centres_um, resistivity: float) -> list:
    """Extracellular potential (mV) per µA of each electrode at each compartment of gids
    ``first_gid .. first_gid + count - 1``: a point source in a homogeneous medium,
    V = ρ I / (4 π r).

    ``centres_um`` are the compartments' centres in the cell's own frame (soma first); each
    cell is rotated about z by its ``rotation_angle_zaxis`` and placed at its soma position.
    Returns one array (count, channels) per compartment.
    """
    gids = np.arange(first_gid, first_gid + count)
    soma_centre = np.asarray(centres_um[0])
    angle = circuit.rotation[gids]
    out = []
    for centre in centres_um:
        offset = np.asarray(centre) - soma_centre
        rotated = np.column_stack([offset[0] * np.cos(angle) - offset[1] * np.sin(angle),
                                   offset[0] * np.sin(angle) + offset[1] * np.cos(angle),
                                   np.full(count, offset[2])])
        position = circuit.positions[gids] + rotated
        r = np.linalg.norm(position[:, None, :] - circuit.electrodes[None, :, :], axis=2)  # µm
        # ρ[Ω·m] · 1 µA / (4π r[µm]) = ρ/(4π r) V = 1e3 ρ/(4π r) mV; r floored at 1 µm
        out.append(1e3 * resistivity / (4 * np.pi * np.maximum(r, 1.0)))
    return out


def write_spike_report(path, node_population: str, gids, times) -> None:
    """SONATA spike report, sorted by time (ms)."""
    order = np.lexsort((np.asarray(gids), np.asarray(times)))
    tmp = Path(str(path) + ".tmp")
    with h5py.File(tmp, "w") as h5:
        group = h5.create_group(f"spikes/{node_population}")
        sorting = h5py.enum_dtype({"none": 0, "by_id": 1, "by_time": 2}, basetype="u1")
        group.attrs.create("sorting", 2, dtype=sorting)
        group.create_dataset("timestamps", data=np.asarray(times, dtype=float)[order])
        group["timestamps"].attrs["units"] = "ms"
        group.create_dataset("node_ids", data=np.asarray(gids, dtype=np.uint64)[order])
    os.replace(tmp, path)


def read_spike_report(path, node_population: str) -> tuple[np.ndarray, np.ndarray]:
    """(node ids, times in ms) of a SONATA spike report."""
    with h5py.File(path, "r") as h5:
        group = h5[f"spikes/{node_population}"]
        return group["node_ids"][:].astype(np.int64), group["timestamps"][:].astype(float)
