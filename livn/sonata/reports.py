"""SONATA spike and compartment reports: written in one place, atomically; read back.

Units: ms for times, node ids per population. ``sorting`` is the HDF5 enum libsonata expects.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _sorting_enum():
    import h5py

    return h5py.enum_dtype({"none": 0, "by_id": 1, "by_time": 2}, basetype="u1")


def write_spike_report(path, spikes: dict) -> Path:
    """Write ``{population: (node ids, times ms)}`` as one SONATA spike file, sorted by time.

    Written to a temporary file and renamed: a reader never sees half a report.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as h5:
            for population, (ids, times) in spikes.items():
                ids, times = np.asarray(ids, dtype=np.uint64), np.asarray(times, dtype=float)
                order = np.lexsort((ids, times))
                group = h5.create_group(f"spikes/{population}")
                group.attrs.create("sorting", 2, dtype=_sorting_enum())
                group.create_dataset("timestamps", data=times[order])
                group["timestamps"].attrs["units"] = "ms"
                group.create_dataset("node_ids", data=ids[order])
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_spike_report_all(path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{population: (node ids, times ms)}`` of a SONATA spike file (BMTK's older
    ``gids``/``node_ids`` at the top level too)."""
    import h5py

    out = {}
    with h5py.File(path, "r") as h5:
        spikes = h5.get("spikes")
        if spikes is None:
            raise ValueError(f"{path}: no /spikes group: not a SONATA spike file")
        for name, group in spikes.items():
            if not hasattr(group, "keys"):
                continue
            ids = group["node_ids"][:] if "node_ids" in group else group["gids"][:]
            out[name] = (ids.astype(np.int64), group["timestamps"][:].astype(float))
    return out


def read_spike_report(path, population: str) -> tuple[np.ndarray, np.ndarray]:
    """(node ids, times in ms) of ``population`` in a SONATA spike report."""
    reports = read_spike_report_all(path)
    if population not in reports:
        raise KeyError(f"{path}: no spikes of population {population!r} (found: {', '.join(reports) or 'none'})")
    return reports[population]


def write_compartment_report(path, reports: dict, start: float, dt: float, units: str) -> Path:
    """A SONATA compartment report: ``{population: (node ids, element ids, data)}`` with one
    node id and element id (compartment index) per column of ``data`` (samples, elements);
    a node's columns are contiguous. Written atomically."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as h5:
            for population, (node_ids, element_ids, data) in reports.items():
                node_ids = np.asarray(node_ids, dtype=np.uint64)
                unique, first = np.unique(node_ids, return_index=True)
                order = np.argsort(first)
                group = h5.create_group(f"report/{population}")
                group.create_dataset("data", data=np.asarray(data, dtype=np.float32))
                group["data"].attrs["units"] = units
                mapping = group.create_group("mapping")
                mapping.create_dataset("node_ids", data=unique[order])
                mapping.create_dataset("index_pointers", data=np.append(np.sort(first), len(node_ids)).astype(np.uint64))
                mapping.create_dataset("element_ids", data=np.asarray(element_ids, dtype=np.uint32))
                mapping.create_dataset("time", data=np.array([start, start + dt * len(data), dt]))
                mapping["time"].attrs["units"] = "ms"
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
