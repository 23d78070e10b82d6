"""Build a spec into a SONATA circuit directory, atomically."""

from __future__ import annotations

import math
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from ..neuroml.cell import read_cell
from ..spec import SystemSpec
from ..spec.neuroml import SEGMENT_GROUPS
from . import sonata
from .drives import trains
from .edges import block_edges, edge_types, target_blocks
from .parallel import World
from .estimate import available_memory, estimate, free_disk, size_text
from .mea import electrode_positions
from .morphology import neuroml_to_swc
from .placement import place

from . import BUILD_FORMAT
from .output import atomic_directory

NETWORK_DIR = "network"
COMPONENTS_DIR = "components"
MEA_DIR = "mea"


def node_population(spec: SystemSpec) -> str:
    return spec.name


def edge_population(spec: SystemSpec) -> str:
    return f"{spec.name}_to_{spec.name}"


def input_population(spec: SystemSpec) -> str:
    """The node population of the virtual (spike source) populations."""
    return f"{spec.name}_inputs"


INPUTS_DIR = "inputs"


def copy_components(spec: SystemSpec, components: Path) -> None:
    """Copy the spec and every file it references, keeping their relative layout."""
    base = spec.base_directory
    for path in spec.files:
        target = components / path.relative_to(base)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def livn_block(spec: SystemSpec, cells: dict) -> dict:
    """What livn adds to a SONATA config: provenance, the culture, the MEA, the noise, the
    connectivity rules (for inspection). Everything a simulation needs beyond the SONATA
    files; nothing after the build reads the YAML spec."""
    base = spec.base_directory
    component = "$COMPONENTS_DIR/{}"
    block = {
        "build_format": BUILD_FORMAT, "name": spec.name, "description": spec.description, "seed": spec.seed,
        "spec": component.format(spec.path.relative_to(base).as_posix()),
        "scale": spec.scale,
        "culture": {"size_um": list(spec.size), "thickness_um": spec.thickness},
        "populations": {p.name: ({"role": p.role, "virtual": True} if p.virtual else {"role": p.role, "cell": p.cell_id})
                        for p in spec.populations},
        "stimulation_electrodes": f"$BASE_DIR/{MEA_DIR}/stimulation_electrodes.csv",
        "recording_electrodes": f"$BASE_DIR/{MEA_DIR}/recording_electrodes.csv",
        "mea": {"pitch_um": spec.mea.pitch, "grid": list(spec.mea.grid), "electrode_radius_um": spec.mea.electrode_radius,
                "offset_um": spec.mea.offset, "recording_radius_um": spec.mea.recording_radius,
                "resistivity": spec.mea.resistivity},
        "delay": {"velocity_um_per_ms": spec.delay.velocity, "min_ms": spec.delay.minimum,
                  "synaptic_ms": spec.delay.synaptic},
        "projections": {p.name: _projection_block(p) for p in spec.projections},
    }
    if spec.noise is not None:
        sources = {}
        for kind in ("excitatory", "inhibitory"):
            ou = getattr(spec.noise, kind)
            sources[kind] = {"segment_group": SEGMENT_GROUPS.get(ou.onto, ou.onto), "g0": ou.g0, "sigma": ou.sigma,
                             "tau": ou.tau, "erev": ou.erev}
        block["noise"] = {"model": component.format(spec.noise.model.relative_to(base).as_posix()),
                          "units": {"g0": "mS/cm2" if spec.noise.per_area else "uS",
                                    "sigma": "mS/cm2" if spec.noise.per_area else "uS", "tau": "ms", "erev": "mV"},
                          "populations": [node_population(spec)], "sources": sources}
    if spec.temperature is not None:
        block["temperature_celsius"] = spec.temperature
    if spec.layers:
        block["culture"]["layers_um"] = {layer.name: [layer.z0, layer.z1] for layer in spec.layers}
    if spec.virtual:
        block["drives"] = {p.name: {"poisson": {"rate_hz": p.drive.rate, "duration_ms": p.drive.duration,
                                                **({"theta": {"frequency_hz": p.drive.theta.frequency,
                                                              "depth": p.drive.theta.depth,
                                                              "phase_rad": p.drive.theta.phase}} if p.drive.theta else {})}}
                           for p in spec.virtual}
        block["inputs"] = {input_population(spec): f"$BASE_DIR/{INPUTS_DIR}/{input_population(spec)}_spikes.h5"}
    return block


def _projection_block(projection) -> dict:
    block = {"receptors": list(projection.receptors)}
    if projection.sites:
        block["sites"] = {"/".join(x for x in (group, layer) if x): p for group, layer, p in projection.sites}
    else:
        kernel = projection.kernel
        block.update(onto=projection.onto, kernel={"sigma_um": kernel.sigma, "p_max": kernel.p_max,
                                                   "cutoff": kernel.cutoff})
    return block


def build_circuit(spec: SystemSpec, output: Path, owned: bool = False) -> Path:
    """Build ``spec`` into a SONATA circuit at ``output`` and return its path.

    Deterministic: the same spec (and seed) gives identical files, on any number of MPI ranks
    (``mpiexec -n N livn build``: ranks draw disjoint blocks of target cells; rank 0 writes).
    ``owned``: ``output`` is livn's own (a cache entry) and may be replaced whatever it holds.

    Raises
    ------
    SpecError
        When the build's estimate (:mod:`.estimate`) exceeds this machine's memory or the
        output's free disk space.
    """
    refuse_if_too_large(spec, Path(output))
    world = World()
    with world.failing_together():
        positions, rotation, layer = place(spec)
        cells = {p.name: read_cell(p.cell, p.cell_id) for p in spec.simulated}
        if world.rank != 0:
            _draw_edges(spec, positions, cells, world.bcast(None), world)
            world.barrier()
            return Path(output)
        with atomic_directory(output, owned=owned) as tmp:
            world.bcast(tmp)
            edges = _draw_edges(spec, positions, cells, tmp, world)
            _write_rest(spec, tmp, positions, rotation, layer, cells, edges)
        world.barrier()
    return Path(output)


def refuse_if_too_large(spec: SystemSpec, output: Path) -> None:
    """SpecError when the build would not fit in this process's memory or on the output's
    disk, with the figures and the largest scale that fits."""
    from ..spec import Problem, SpecError

    cost = estimate(spec)
    memory, free = available_memory(), free_disk(output)
    problems = []
    if cost.memory_bytes > 0.8 * memory:
        problems.append(f"{size_text(memory)} of memory available, the build needs ~{size_text(cost.memory_bytes)} "
                        f"per process")
    if cost.disk_bytes > 0.8 * free:
        problems.append(f"{size_text(free)} free at {output.absolute().parent}, the circuit needs "
                        f"~{size_text(cost.disk_bytes)}")
    if not problems:
        return
    fit = spec.scale * min(0.8 * free / max(cost.disk_bytes, 1.0), 1.0)
    if cost.memory_bytes > 0.8 * memory:
        fit = min(fit, spec.scale * 0.8 * memory / cost.memory_bytes)
    digits = 10 ** math.floor(math.log10(fit)) if fit > 0 else 0
    advice = (f"build a smaller part of it: scale={math.floor(fit / digits) * digits:.2g} fits here "
              f"(livn build {spec.name} --scale S, predefined({spec.name!r}, scale=S), make(..., scale=S))"
              if spec.layers and fit > 0 else "use fewer neurons, a larger culture or a narrower kernel "
                                              "(sigma, cutoff)")
    raise SpecError([Problem(str(spec.path), None, "", f"building {spec.name} (scale {spec.scale:g}) would take "
                                                       f"{cost}; this machine has {'; '.join(problems)}: {advice}")])


def _draw_edges(spec: SystemSpec, positions: np.ndarray, cells: dict, tmp: Path, world) -> list:
    """Every rank draws its share of the target blocks into ``tmp/.blocks``; rank 0 then
    writes the edge files from them, in block order, and returns their config entries."""
    from tqdm import tqdm

    types = edge_types(spec)
    blocks = target_blocks(spec) if spec.projections else []
    scratch = Path(tmp) / ".blocks"
    if world.rank == 0:
        scratch.mkdir()
    world.barrier()
    mine = range(world.rank, len(blocks), world.size)
    drawn = 0
    with tqdm(total=len(mine), unit="block", desc=f"{spec.name}: drawing edges", disable=world.rank != 0 or None,
              delay=2.0, mininterval=1.0) as bar:
        for i in mine:
            for virtual, columns in block_edges(spec, positions, cells, blocks[i], types).items():
                np.savez(scratch / f"{int(virtual)}-{i:06d}.npz", **columns)
                drawn += len(columns["target"])
            bar.set_postfix(edges=f"{drawn:.3g}", refresh=False)
            bar.update()
    world.barrier()
    if world.rank != 0:
        return []
    pop, input_pop = node_population(spec), input_population(spec)
    out = []
    for virtual in (False, True):
        files = [f for f in (scratch / f"{int(virtual)}-{i:06d}.npz" for i in range(len(blocks))) if f.exists()]
        if not files:
            continue
        name, source_pop = (f"{input_pop}_to_{pop}", input_pop) if virtual else (edge_population(spec), pop)
        sources = spec.virtual if virtual else spec.simulated
        total = 0
        for f in files:
            with np.load(f) as block:
                total += len(block["target"])

        def blocks_of(files=files):
            for f in files:
                with np.load(f) as block:
                    yield {k: block[k] for k in block.files}

        network = Path(tmp) / NETWORK_DIR
        network.mkdir(exist_ok=True)
        sonata.write_edges(network / f"{name}_edges.h5", name, source_pop, pop, sum(p.count for p in sources),
                           spec.num_neurons, blocks_of(), total, source_offset=spec.num_neurons if virtual else 0)
        sonata.write_types_csv(network / f"{name}_edge_types.csv", types[0], "edge_type_id")
        out.append((f"{name}_edges.h5", f"{name}_edge_types.csv", name))
    shutil.rmtree(scratch)
    return out


def _write_rest(spec: SystemSpec, tmp: Path, positions, rotation, layer, cells: dict, edges: list) -> None:
    """Nodes, inputs, components, electrodes and the configs (rank 0)."""
    simulated, virtual = spec.simulated, spec.virtual
    n_cells = spec.num_neurons
    base = spec.base_directory
    # model_template names the cell relative to biophysical_neuron_models_dir: the deepest
    # folder holding every cell file (the cells of a spec may live in several folders)
    cells_dir = Path(os.path.commonpath([p.cell.parent for p in simulated]))
    node_types = [sonata.NodeType(100 + i, p.name, "biophysical", f"nml:{p.cell.relative_to(cells_dir).as_posix()}",
                                  p.name, "e" if p.role == "excitatory" else "i", p.name, p.cell_id or p.name,
                                  "PYR" if p.role == "excitatory" else "INT",
                                  "EXC" if p.role == "excitatory" else "INH")
                  for i, p in enumerate(simulated)]
    node_type_ids = np.concatenate([np.full(p.count, 100 + i) for i, p in enumerate(simulated)])
    layers = {"layer": layer.astype(np.uint8)} if spec.layers else {}
    network = tmp / NETWORK_DIR
    network.mkdir(exist_ok=True)
    pop, input_pop = node_population(spec), input_population(spec)
    sonata.write_nodes(network / f"{pop}_nodes.h5", pop, node_type_ids, positions[:n_cells], rotation[:n_cells],
                       node_types, {k: v[:n_cells] for k, v in layers.items()})
    sonata.write_types_csv(network / f"{pop}_node_types.csv", node_types, "node_type_id")
    nodes = [(f"{pop}_nodes.h5", f"{pop}_node_types.csv", pop, "biophysical")]
    if virtual:
        input_types = [sonata.VirtualNodeType(200 + i, p.name, "virtual", "e" if p.role == "excitatory" else "i")
                       for i, p in enumerate(virtual)]
        input_type_ids = np.concatenate([np.full(p.count, 200 + i) for i, p in enumerate(virtual)])
        sonata.write_nodes(network / f"{input_pop}_nodes.h5", input_pop, input_type_ids, positions[n_cells:],
                           rotation[n_cells:], input_types, {k: v[n_cells:] for k, v in layers.items()})
        sonata.write_types_csv(network / f"{input_pop}_node_types.csv", input_types, "node_type_id")
        nodes.append((f"{input_pop}_nodes.h5", f"{input_pop}_node_types.csv", input_pop, "virtual"))
        write_drives(spec, tmp / INPUTS_DIR / f"{input_pop}_spikes.h5", input_pop)
        sonata.write_simulation_config(tmp / "simulation_config.json",
                                       {input_pop: f"{INPUTS_DIR}/{input_pop}_spikes.h5"})
    copy_components(spec, tmp / COMPONENTS_DIR)
    morphologies = tmp / COMPONENTS_DIR / "morphologies"
    morphologies.mkdir(exist_ok=True)
    for p in simulated:
        neuroml_to_swc(p.cell, p.cell_id, morphologies / f"{p.name}.swc")
    sonata.write_electrodes(tmp / MEA_DIR, electrode_positions(spec.mea, spec.size))
    synaptic_models = tmp / COMPONENTS_DIR / "synaptic_models"
    for receptor in spec.receptors:
        sonata.write_synapse_parameters(synaptic_models / f"{receptor.name}.json", receptor,
                                        os.path.relpath(receptor.model, base / "synaptic_models"))
    components = {"morphologies_dir": "$COMPONENTS_DIR/morphologies",
                  "biophysical_neuron_models_dir": f"$COMPONENTS_DIR/{cells_dir.relative_to(base).as_posix()}",
                  "synaptic_models_dir": "$COMPONENTS_DIR/synaptic_models"}
    # one node set per cell type, one per node population (libsonata and bluepysnap select by them)
    node_sets = {p.name: {"pop_name": p.name} for p in (*simulated, *virtual)}
    node_sets.update({name: {"population": name} for name in [pop] + ([input_pop] if virtual else [])
                      if name not in node_sets})
    sonata.write_circuit_config(tmp / "circuit_config.json", nodes, edges, components,
                                {"livn": livn_block(spec, cells)}, node_sets)


def write_drives(spec: SystemSpec, path: Path, population: str) -> None:
    """The spike trains of every virtual population as one SONATA spike file (node ids of
    ``population``, the virtual node population)."""
    from ..sonata.reports import write_spike_report

    ids, times = [], []
    for p in spec.virtual:
        gids, t = trains(spec.seed, p.name, p.drive, p.gids, p.drive.duration)
        ids.append(gids - spec.num_neurons)
        times.append(t)
    write_spike_report(path, {population: (np.concatenate(ids), np.concatenate(times))})
