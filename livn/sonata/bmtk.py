"""A livn circuit in BMTK's dialect of SONATA.

BMTK reads the per-node datasets of ``/nodes/<pop>/0`` before the node-types CSV, and h5py
hands HDF5 strings back as bytes: a per-node ``model_type`` reads as ``b'biophysical'``
(bionet: "Unrecognized model_type"), ``model_template`` cannot be split, ``morphology`` is not
resolved against ``morphologies_dir``. bluepysnap, on the other hand, requires those datasets
per node. So livn's circuits keep them, and :func:`copy_circuit` copies a circuit with the
string datasets left out of the node files: BMTK then takes them from the node-types CSV,
which holds the same values per node type.

The rest of the BMTK export (templates, mechanisms, simulation config, run script) is
:mod:`livn.targets.neuron.bmtk`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import h5py


def copy_circuit(system, directory) -> None:
    """Copy the circuit of ``system`` into the existing folder ``directory`` with node files
    BMTK reads (the per-node string datasets left to the node-types CSV)."""
    directory = Path(directory)
    shutil.copytree(system.directory, directory, dirs_exist_ok=True)
    for population in system.circuit.nodes.values():
        _drop_strings(directory / Path(population._file).relative_to(system.directory), population.name)


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
