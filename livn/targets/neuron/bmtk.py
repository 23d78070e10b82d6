"""A livn circuit as a BMTK bionet simulation: ``livn export CIRCUIT --to bmtk -o DIR``.

The folder holds what ``bmtk.simulator.bionet`` needs, where it looks for it:

- the circuit, with node files BMTK reads (:func:`livn.sonata.bmtk.copy_circuit`) and the
  node types table naming ``hoc:<cell>`` templates;
- ``components/templates/<cell>.hoc``: one hoc template per cell type, written from livn's
  section tree (the same 3-D points, ``nseg``, Ra, cm, channel densities and reversal
  potentials, concentration pools), its sections named as BMTK's morphology code expects
  (``soma``, ``dend``, ``axon``, ``apic``) and listed in ``all`` in livn's section order, so
  an edge's ``afferent_section_id`` means the same section; each cell starts at its own
  ``initMembPotential`` (an ``FInitializeHandler``, as livn's NEURON target does);
- ``components/mechanisms``: livn's generated NMODL (channels, pools, synapses, the OU noise)
  compiled there by ``nrnivmodl`` in name order, the order livn loads them in (NEURON sums a
  segment's currents in registration order);
- ``simulation_config.json``: run (tstop, dt, spike threshold), conditions, spikes out as
  SONATA (``output/spikes.h5``);
- ``run_bmtk.py``: BMTK's usual run script plus what BMTK has no built-in for, registered
  through its public hooks: a synapse model per livn receptor (edge ``model_template``
  ``AMPA``, ``NMDA`` with its Mg block, ``GABA_A``: livn's point processes, NetCon weight =
  peak conductance, µS; a Tsodyks–Markram synapse keeps its state in each NetCon's weight
  vector, initialised at ``finitialize``, so the NetCon bionet makes per edge depresses on its
  own as livn's do) and, where the circuit has noise, a ``model_processing`` step that
  adds livn's OU conductances keyed by (seed, gid, stream) as livn's targets key them; it
  integrates with Crank–Nicolson (``secondorder`` 2) like livn's NEURON target without
  ``extracellular``, and it runs under ``mpiexec`` with the ``mpich`` wheel.

Nothing in the folder imports livn: a BMTK user runs it with ``python run_bmtk.py``.

Virtual (spike-input) populations get their spike trains as SONATA input files
(``inputs/<population>_spikes.h5``, times on the step grid as livn delivers them); each cell
gets its own spike threshold (``ParallelContext.threshold`` after bionet built the network;
bionet itself has one ``spike_threshold``).

Edges must carry ``afferent_section_id``/``afferent_section_pos`` (livn's circuits do): for
edges placed by ``target_sections``/``distance_range`` bionet would draw its own sites.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ...neuroml.export import ExportError
from ...sonata.bmtk import copy_circuit
from .nmodl import network_mechanisms, nrnivmodl

#: names a hoc template cannot take (its own sections, hoc and NEURON words BMTK's run needs)
_RESERVED = {"soma", "dend", "axon", "apic", "all", "Biophys1", "IntFire1", "Exp2Syn", "VecStim", "NetCon", "Vector"}

#: segment group -> the section name BMTK's Morphology maps to an SWC type (soma, axon, dend, apic)
_SECTION_KINDS = (("soma_group", "soma"), ("axon_group", "axon"), ("apical_dendrite_group", "apic"),
                  ("apical_group", "apic"))

RUN_SCRIPT = '''"""Run {name} with BMTK's bionet (written by livn's `livn export --to bmtk`).

    python run_bmtk.py [simulation_config.json]
    mpiexec -n 2 python run_bmtk.py [simulation_config.json]

Spikes: output/spikes.h5 (SONATA). What BMTK has no built-in for is registered below through
BMTK's own hooks: livn's synapse point processes by receptor name, and livn's OU noise as a
model_processing step (parameters in livn_bmtk.json).
"""
import json
import os
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
settings = json.loads((here / "livn_bmtk.json").read_text())

# under mpiexec, NEURON must initialise MPI before anything else (with the mpich wheel it finds
# the library only through MPI_LIB_NRN_PATH)
size = int(os.environ.get("PMI_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1")))
if size > 1:
    library = Path(sys.prefix) / "lib" / "libmpi.so.12"
    if library.exists():
        os.environ.setdefault("MPI_LIB_NRN_PATH", str(library))
    from neuron import h
    h.nrnmpi_init()
    if int(h.ParallelContext().nhost()) != size:
        sys.exit(f"mpiexec started {{size}} processes but NEURON sees {{int(h.ParallelContext().nhost())}}: each would "
                 f"run the whole network alone (is MPI_LIB_NRN_PATH the library of this mpiexec?)")

from neuron import h  # noqa: E402
from bmtk.simulator import bionet  # noqa: E402
from bmtk.simulator.bionet.pyfunction_cache import add_cell_processor, add_synapse_model  # noqa: E402


def _synapse(mechanism):
    def make(syn_params, x, section):
        if isinstance(x, (list, tuple)) or hasattr(x, "__len__"):  # BMTK's placement: lists of x and sections
            return [getattr(h, mechanism)(xi, sec=si) for xi, si in zip(x, section)]
        return getattr(h, mechanism)(x, sec=section)
    return make


for receptor, mechanism in settings["synapses"].items():
    add_synapse_model(_synapse(mechanism), name=receptor)

_noise = []  # the point processes live as long as the run


def livn_noise(hobj, node, dynamics_params):
    gid = settings["population_offsets"][node.population_name] + int(node.node_id)
    sections = list(hobj.all)
    for source in settings["noise"]["sources"]:
        index = settings["noise"]["sections"][str(hobj.hname()).split("[")[0]][source["group"]]
        pp = getattr(h, settings["noise"]["mechanism"])(sections[index](0.5))
        scale = settings["noise"]["scales"][str(hobj.hname()).split("[")[0]][source["kind"]]
        pp.g0, pp.sigma = source["g0"] * scale, source["sigma"] * scale
        pp.tau, pp.e = source["tau"], source["erev"]
        pp.seed, pp.gid, pp.stream = float(settings["seed"]), float(gid), float(source["stream"])
        _noise.append(pp)
    return hobj


add_cell_processor(livn_noise, name="livn_noise")

conf = bionet.Config.from_json(sys.argv[1] if len(sys.argv) > 1 else str(here / "simulation_config.json"))
conf.build_env()
net = bionet.BioNetwork.from_config(conf)
sim = bionet.BioSimulator.from_config(conf, network=net)
pc = h.ParallelContext()
for gid, cell in net.get_local_cells().items():  # each cell's own spike threshold (bionet has one)
    template = str(cell.hobj.hname()).split("[")[0]
    if template in settings["thresholds"]:
        pc.threshold(gid, settings["thresholds"][template])
h.secondorder = settings["secondorder"]
sim.run()
bionet.nrn.quit_execution()
'''


def export_bmtk(system, directory, duration: float = 1000.0, dt: float = 0.025, ecp: bool = False) -> Path:
    """Write ``system`` as a BMTK bionet simulation into the new folder ``directory``.

    Parameters
    ----------
    system : livn.system.System
    directory : path-like
        Created; must not exist (livn never writes into a folder it did not make).
    duration, dt : float
        ``run.tstop`` and ``run.dt`` of the simulation config, ms.
    ecp : bool
        Also record the extracellular potential at livn's recording electrodes
        (``mea/recording_electrodes.csv``) with BMTK's ``extracellular`` module: a line source
        per segment in a medium of 0.3 S/m (BMTK's fixed value; livn's MEA uses a point source
        per compartment and the circuit's resistivity), every step, in ``output/ecp.h5`` (mV).

    Returns
    -------
    Path
        ``directory``; run it with ``python run_bmtk.py`` there.

    Raises
    ------
    ExportError
        Listing everything bionet cannot be given from this circuit, before anything is written.
    """
    directory = Path(directory)
    if directory.exists():
        raise FileExistsError(f"{directory} exists: choose a new folder")
    for name, value in (("duration", duration), ("dt", dt)):
        if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number of ms > 0, found {value!r}")
    model = system.network
    _check(model)
    report = _ecp_report(system) if ecp else None
    mechs = network_mechanisms(model)
    names = template_names(system)
    directory.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        copy_circuit(system, scratch)
        templates = scratch / "components" / "templates"
        templates.mkdir(parents=True)
        for index, name in names.items():
            (templates / f"{name}.hoc").write_text(hoc_template(model.cells[index], mechs, name))
        _write_mechanisms(mechs, scratch / "components" / "mechanisms",
                          vecstim=any(p.kind == "virtual" for p in model.populations.values()))
        _rewrite_node_types(system, scratch, names, noise=bool(model.noise))
        config = json.loads((scratch / "circuit_config.json").read_text())
        config["components"]["templates_dir"] = "$COMPONENTS_DIR/templates"
        config["components"]["mechanisms_dir"] = "$COMPONENTS_DIR/mechanisms"
        (scratch / "circuit_config.json").write_text(json.dumps(config, indent=2) + "\n")
        config = _simulation_config(model, duration, dt)
        config["inputs"] = _write_inputs(model, scratch, dt)
        _add_population_node_sets(system, scratch)
        if report:
            config["reports"]["ecp"] = report
        (scratch / "simulation_config.json").write_text(json.dumps(config, indent=2) + "\n")
        (scratch / "livn_bmtk.json").write_text(json.dumps(_settings(model, mechs, names), indent=2) + "\n")
        (scratch / "run_bmtk.py").write_text(RUN_SCRIPT.format(name=model.name))
        os.replace(scratch, directory)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return directory


def _check(model) -> None:
    problems = []
    for cell in model.cells:
        if not cell.id.isidentifier():
            problems.append(f"cell {cell.id!r} cannot name a hoc template")
    for name, edges in model.circuit.edges.items():
        if edges.size and "afferent_section_id" not in edges.attribute_names:
            problems.append(f"edge population {name} has no afferent_section_id: bionet would place its synapses "
                            f"by its own random draw, not where livn places them")
    if problems:
        raise ExportError(f"{model.source}: cannot export to BMTK:\n  " + "\n  ".join(problems))


def _section_kind(section) -> str:
    for group, kind in _SECTION_KINDS:
        if group in section.groups:
            return kind
    return "apic" if "apic" in section.name.lower() else "dend"


def template_names(system) -> dict[int, str]:
    """Index in ``system.network.cells`` -> hoc template name: the cell id, or, where one cell
    comes with several morphologies, the cell id and the morphology of its first node type."""
    model = system.network
    ids = [cell.id for cell in model.cells]
    names = {}
    for name, population in system.circuit.nodes.items():
        pop = model.populations[name]
        if pop.kind != "biophysical":
            continue
        for type_id, row in population.types.items():
            index = _cell_index(population, pop, type_id)
            if index < 0 or index in names:
                continue
            base = ids[index]
            if ids.count(base) > 1:
                base += "_" + re.sub(r"\W", "_", Path(str(row.get("morphology") or index)).stem)
            candidate, k = base, 1
            while candidate in names.values() or candidate in _RESERVED:
                candidate, k = f"{base}_{k}", k + 1
            names[index] = candidate
    return names


def hoc_template(cell, mechs, name: str | None = None) -> str:
    """The hoc template ``name`` (default ``cell.id``) that builds ``cell`` as livn's NEURON
    target does.

    Sections are ``soma[i]``, ``dend[i]``, ``axon[i]``, ``apic[i]`` (by segment group), in
    ``all`` in livn's section order; channels are the ``mechs`` suffixes with ``gmax`` (S/cm²)
    and, for ohmic currents, ``e`` (mV); every section starts at ``cell.v_init``.
    """
    name = name or cell.id
    kinds, index = {}, []
    for section in cell.sections:
        kind = _section_kind(section)
        index.append((kind, kinds.get(kind, 0)))
        kinds[kind] = kinds.get(kind, 0) + 1
    hoc_names = [f"{kind}[{i}]" for kind, i in index]
    lines = [f"// {name}: written by livn from {Path(cell.source).name} for BMTK (model_template hoc:{name}).",
             "// Sections in `all` follow livn's section order (SONATA afferent_section_id).",
             f"begintemplate {name}",
             f"public {', '.join(kinds)}, all, v_init_cell, set_v",
             f"create {', '.join(f'{k}[{n}]' for k, n in kinds.items())}",
             "objref all, fih, this",
             "",
             "proc init() {",
             "    all = new SectionList()"]
    for hoc_name, section in zip(hoc_names, cell.sections):
        lines.append(f"    {hoc_name} {{")
        lines.append("        pt3dclear()")
        lines += [f"        pt3dadd({x!r}, {y!r}, {z!r}, {d!r})" for x, y, z, d in section.points]
        lines.append(f"        nseg = {section.nseg}  Ra = {section.ra!r}  cm = {section.cm!r}")
        for density in section.densities:
            suffix = mechs.density(density)
            lines.append(f"        insert {suffix}  gmax_{suffix} = {density.gmax * 1e-3!r}")
            if density.erev is not None:
                lines.append(f"        e_{suffix} = {density.erev!r}")
        for species in section.species:
            pool = mechs.pool(species.model.id)
            lines.append(f"        insert {pool}  initial_{pool} = {species.initial!r}  "
                         f"initial_ext_{pool} = {species.initial_ext!r}")
        lines.append("        all.append()")
        lines.append("    }")
    for hoc_name, section in zip(hoc_names, cell.sections):
        if section.parent >= 0:
            lines.append(f"    connect {hoc_name}(0), {hoc_names[section.parent]}({section.parent_x!r})")
    lines += [f"    v_init_cell = {cell.v_init!r}",
              '    fih = new FInitializeHandler(0, "set_v()", this)  // before INITIAL blocks, after v = v_init',
              "}",
              "",
              "proc set_v() {",
              "    forsec all { v = v_init_cell }",
              "}",
              "",
              f"endtemplate {name}",
              ""]
    return "\n".join(lines)


def _write_mechanisms(mechs, directory: Path, vecstim: bool) -> None:
    directory.mkdir(parents=True)
    files = mechs.files()
    if vecstim:  # bionet replays virtual nodes with VecStim, from the mechanisms BMTK ships for its own setups
        from importlib.resources import files as package_files

        source = package_files("bmtk") / "utils" / "scripts" / "bionet" / "mechanisms" / "modfiles" / "vecevent.mod"
        files = {**files, "vecevent.mod": source.read_text()}
    for name, text in files.items():
        (directory / name).write_text(text)
    # named in order: NEURON registers mechanisms in this order, livn's order
    done = subprocess.run([str(nrnivmodl()), *sorted(files)], cwd=directory, capture_output=True, text=True,
                          timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"nrnivmodl failed in {directory}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def _rewrite_node_types(system, folder: Path, names: dict, noise: bool) -> None:
    """``model_template`` hoc:<cell id> per node type; ``model_processing`` livn_noise where
    the population has noise."""
    model = system.network
    for name, population in system.circuit.nodes.items():
        table = population._types_file
        if table is None:
            continue
        path = folder / Path(table).relative_to(system.directory)
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter=" "))
        fields = list(rows[0]) if rows else []
        with_noise = noise and name in model.noise_populations
        if with_noise and "model_processing" not in fields:
            fields.append("model_processing")
        pop = model.populations[name]
        for row in rows:
            template = row.get("model_template", "")
            if template.startswith("nml:"):
                index = _cell_index(population, pop, row["node_type_id"])
                if index >= 0:
                    row["model_template"] = f"hoc:{names[index]}"
            if with_noise:
                row["model_processing"] = "livn_noise"
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, delimiter=" ")
            writer.writeheader()
            writer.writerows(rows)


def _cell_index(population, pop, type_id) -> int:
    """The cell of node type ``type_id`` (that of its first node; every node of a type has
    one model template and morphology), or -1 if no node has that type."""
    members = np.flatnonzero(population.node_type_id == int(type_id))
    return int(pop.cell_index[members[0]]) if len(members) else -1


def _write_inputs(model, folder: Path, dt: float) -> dict:
    """The spike trains of the virtual populations as SONATA spike files (``inputs/``), on the
    step grid as livn's targets deliver them, and their simulation-config entries."""
    from ...sonata.reports import write_spike_report

    inputs, trains = {}, model.spike_inputs
    for pop in model.populations.values():
        if pop.kind != "virtual":
            continue
        ids = [g - pop.offset for g in pop.gids.tolist() if g in trains]
        times = [np.round(trains[pop.offset + i] / dt) * dt for i in ids]
        if not ids:
            continue
        node_ids = np.concatenate([np.full(len(t), i) for i, t in zip(ids, times)])
        write_spike_report(folder / "inputs" / f"{pop.name}_spikes.h5", {pop.name: (node_ids, np.concatenate(times))})
        inputs[f"{pop.name}_spikes"] = {"input_type": "spikes", "module": "sonata",
                                        "input_file": f"$BASE_DIR/inputs/{pop.name}_spikes.h5", "node_set": pop.name}
    return inputs


def _add_population_node_sets(system, folder: Path) -> None:
    """A node set named after each node population (the inputs name theirs), if missing."""
    config_path = folder / "circuit_config.json"
    config = json.loads(config_path.read_text())
    path = folder / "node_sets.json"
    sets = json.loads(path.read_text()) if path.is_file() else {}
    for name in system.circuit.nodes:
        sets.setdefault(name, {"population": name})
    path.write_text(json.dumps(sets, indent=2) + "\n")
    if "node_sets_file" not in config:
        config["node_sets_file"] = "$BASE_DIR/node_sets.json"
        config_path.write_text(json.dumps(config, indent=2) + "\n")


def _simulation_config(model, duration: float, dt: float) -> dict:
    # bionet detects spikes at one threshold; run_bmtk.py sets each cell's own (pc.threshold)
    threshold = model.cells[0].threshold
    conditions = {"v_init": model.cells[0].v_init}  # each template sets its own; BMTK wants one
    # without a network temperature no kinetics depend on it (the targets refuse otherwise);
    # BMTK needs a number: NEURON's default, which livn's NEURON target leaves in place
    conditions["celsius"] = model.temperature if model.temperature is not None else 6.3
    return {
        "manifest": {"$BASE_DIR": ".", "$OUTPUT_DIR": "$BASE_DIR/output"},
        "network": "$BASE_DIR/circuit_config.json",
        "target_simulator": "NEURON",
        # dL null: BMTK would otherwise re-segment every section to 20 µm (its default)
        "run": {"tstop": duration, "dt": dt, "dL": None, "spike_threshold": threshold, "nsteps_block": 5000},
        "conditions": conditions,
        "inputs": {},
        "output": {"log_file": "log.txt", "output_dir": "$OUTPUT_DIR", "spikes_file": "spikes.h5",
                   "spikes_sort_order": "time", "overwrite_output_dir": True},
        "reports": {},
    }


def _ecp_report(system) -> dict:
    electrodes = system.livn.get("recording_electrodes")
    if not electrodes:
        raise ExportError(f"{system.config_path}: --ecp needs recording electrodes (livn block "
                          f"recording_electrodes); this circuit has none")
    populations = list(system.circuit.nodes)
    electrodes = Path(electrodes)
    if electrodes.is_absolute():  # resolved into the source circuit: point at the export's copy
        if not electrodes.is_relative_to(system.directory):
            raise ExportError(f"{system.config_path}: the recording electrodes {electrodes} lie outside the circuit "
                              f"folder, which is what the export copies")
        electrodes = electrodes.relative_to(system.directory)
    electrodes = f"$BASE_DIR/{electrodes.as_posix()}"
    return {"module": "extracellular", "variable_name": "v", "file_name": "ecp.h5", "electrode_channels": "all",
            "electrode_positions": electrodes, "cells": {"population": populations[0] if len(populations) == 1 else populations}}


def _settings(model, mechs, names: dict) -> dict:
    sections, scales = {}, {}
    for index, name in names.items():
        cell = model.cells[index]
        sections[name] = {source.group: cell.sections_in(source.group)[0] for source in model.noise
                             if cell.sections_in(source.group)}
        scales[name] = {source.kind: model.noise_scale(cell, source) for source in model.noise}
    return {
        "seed": model.seed,
        "secondorder": 2,
        "synapses": {name: mechs.synapse(name) for name in model.synapse_names},
        "population_offsets": {p.name: p.offset for p in model.populations.values()},
        "thresholds": {name: model.cells[index].threshold for index, name in names.items()},
        "noise": {"mechanism": mechs.noise.name if mechs.noise else None,
                  "sources": [{"kind": s.kind, "group": s.group, "g0": s.g0, "sigma": s.sigma, "tau": s.tau,
                               "erev": s.erev, "stream": s.stream} for s in model.noise],
                  "sections": sections, "scales": scales},
    }
