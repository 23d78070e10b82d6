"""A livn circuit in BMTK's dialect of SONATA.

BMTK reads the per-node datasets of ``/nodes/<pop>/0`` before the node-types CSV, and h5py
hands HDF5 strings back as bytes: a per-node ``model_type`` reads as ``b'biophysical'``
(bionet: "Unrecognized model_type"), ``model_template`` cannot be split, ``morphology`` is not
resolved against ``morphologies_dir``. bluepysnap, on the other hand, requires those datasets
per node. So livn's circuits keep them, and :func:`export_bmtk` copies a circuit with the
string datasets left out of the node files: BMTK then takes them from the node-types CSV,
which holds the same values per node type.

This is the first part of the BMTK export (what BMTK's network reader needs); the simulation
config, cell templates and synapse models bionet runs with are the next (docs/interchange-plan.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import h5py


def export_bmtk(system, directory) -> Path:
    """Copy the circuit of ``system`` into the new folder ``directory`` with node files BMTK
    reads; returns ``directory``."""
    directory = Path(directory)
    if directory.exists():
        raise FileExistsError(f"{directory} exists: choose a new folder")
    scratch = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        shutil.copytree(system.directory, scratch, dirs_exist_ok=True)
        for population in system.circuit.nodes.values():
            _drop_strings(scratch / Path(population._file).relative_to(system.directory), population.name)
        os.replace(scratch, directory)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return directory


def _drop_strings(path: Path, population: str) -> None:
    """Rewrite a nodes file without the string datasets of its node groups (the types CSV has them)."""
    rewritten = path.with_name(path.name + ".bmtk")
    with h5py.File(path, "r") as source, h5py.File(rewritten, "w") as target:
        for key, value in source.attrs.items():
            target.attrs[key] = value

        def copy(name, item):
            if isinstance(item, h5py.Group):
                group = target.require_group(name)
                for key, value in item.attrs.items():
                    group.attrs[key] = value
            elif not (item.dtype.kind in "OSU" and name.startswith(f"nodes/{population}/")
                      and name.count("/") == 3):
                source.copy(item, target, name=name)

        source.visititems(copy)
    os.replace(rewritten, path)
