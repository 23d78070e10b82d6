"""Build a spec into a SONATA circuit directory, atomically."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from ..neuroml.cell import read_cell
from ..spec import SystemSpec
from ..spec.neuroml import SEGMENT_GROUPS
from . import sonata
from .connectivity import connect
from .drives import trains
from .synapses import synapses_by_site
from .estimate import available_memory, estimate
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
        "delay": {"velocity_um_per_ms": spec.delay.velocity, "min_ms": spec.delay.minimum},
        "projections": {p.name: _projection_block(p) for p in spec.projections},
    }
    if spec.noise is not None:
        sources = {}
        for kind in ("excitatory", "inhibitory"):
            ou = getattr(spec.noise, kind)
            sources[kind] = {"segment_group": SEGMENT_GROUPS.get(ou.onto, ou.onto), "g0": ou.g0, "sigma": ou.sigma,
                             "tau": ou.tau, "erev": ou.erev}
        block["noise"] = {"model": component.format(spec.noise.model.relative_to(base).as_posix()),
                          "units": {"g0": "uS", "sigma": "uS", "tau": "ms", "erev": "mV"},
                          "populations": [node_population(spec)], "sources": sources}
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

    Deterministic: the same spec (and seed) gives identical datasets. ``owned``: ``output`` is
    livn's own (a cache entry) and may be replaced whatever it holds.

    Raises
    ------
    SpecError
        When the build's estimated memory (:mod:`.estimate`) exceeds what the machine has.
    """
    cost = estimate(spec)
    memory = available_memory()
    if cost.memory_bytes > 0.8 * memory:
        from ..spec import Problem, SpecError

        raise SpecError([Problem(str(spec.path), None, "culture.neurons",
                                 f"building {spec.name} would take {cost}; this machine has "
                                 f"{memory / 1e9:.3g} GB available: use fewer neurons, a "
                                 f"larger culture or a narrower kernel (sigma, cutoff)")])
    positions, rotation, layer = place(spec)
    electrodes = electrode_positions(spec.mea, spec.size)
    simulated, virtual = spec.simulated, spec.virtual
    n_cells = spec.num_neurons

    node_types = [sonata.NodeType(100 + i, p.name, "biophysical", f"nml:{p.cell.name}", f"{p.name}.swc",
                                  "e" if p.role == "excitatory" else "i")
                  for i, p in enumerate(simulated)]
    node_type_ids = np.concatenate([np.full(p.count, 100 + i) for i, p in enumerate(simulated)])
    input_types = [sonata.VirtualNodeType(200 + i, p.name, "virtual", "e" if p.role == "excitatory" else "i")
                   for i, p in enumerate(virtual)]
    layers = {"layer": layer.astype(np.uint8)} if spec.layers else {}
    cells = {p.name: read_cell(p.cell, p.cell_id) for p in simulated}
    edge_types, edge_blocks = _edges(spec, positions, cells)
    with atomic_directory(output, owned=owned) as tmp:
        network = tmp / NETWORK_DIR
        network.mkdir()
        pop, edge_pop, input_pop = node_population(spec), edge_population(spec), input_population(spec)
        sonata.write_nodes(network / f"{pop}_nodes.h5", pop, node_type_ids, positions[:n_cells], rotation[:n_cells],
                           node_types, {k: v[:n_cells] for k, v in layers.items()})
        sonata.write_types_csv(network / f"{pop}_node_types.csv", node_types, "node_type_id")
        nodes = [(f"{pop}_nodes.h5", f"{pop}_node_types.csv", pop, "biophysical")]
        if virtual:
            input_type_ids = np.concatenate([np.full(p.count, 200 + i) for i, p in enumerate(virtual)])
            sonata.write_nodes(network / f"{input_pop}_nodes.h5", input_pop, input_type_ids, positions[n_cells:],
                               rotation[n_cells:], input_types, {k: v[n_cells:] for k, v in layers.items()})
            sonata.write_types_csv(network / f"{input_pop}_node_types.csv", input_types, "node_type_id")
            nodes.append((f"{input_pop}_nodes.h5", f"{input_pop}_node_types.csv", input_pop, "virtual"))
            write_drives(spec, tmp / INPUTS_DIR / f"{input_pop}_spikes.h5", input_pop)
            sonata.write_simulation_config(tmp / "simulation_config.json",
                                           {input_pop: f"{INPUTS_DIR}/{input_pop}_spikes.h5"})
        edges = []
        for from_inputs, block in edge_blocks.items():
            name, source_pop = (f"{input_pop}_to_{pop}", input_pop) if from_inputs else (edge_pop, pop)
            offset = n_cells if from_inputs else 0
            order = np.lexsort((block["type_id"], block["source"], block["target"]))
            sonata.write_edges(
                network / f"{name}_edges.h5", name, source_pop, pop,
                sum(p.count for p in (virtual if from_inputs else simulated)), n_cells,
                block["source"][order] - offset, block["target"][order], block["type_id"][order],
                {"syn_weight": block["weight"][order], "delay": block["delay"][order],
                 "afferent_section_id": block["section"][order].astype(np.uint32),
                 "afferent_section_pos": block["position"][order].astype(np.float32),
                 "distance": block["distance"][order].astype(np.float32)},
                {"syn_weight": "uS", "delay": "ms", "distance": "um"})
            sonata.write_types_csv(network / f"{name}_edge_types.csv", edge_types, "edge_type_id")
            edges.append((f"{name}_edges.h5", f"{name}_edge_types.csv", name))
        copy_components(spec, tmp / COMPONENTS_DIR)
        morphologies = tmp / COMPONENTS_DIR / "morphologies"
        morphologies.mkdir(exist_ok=True)
        for p in simulated:
            neuroml_to_swc(p.cell, p.cell_id, morphologies / f"{p.name}.swc")
        sonata.write_electrodes(tmp / MEA_DIR, electrodes)
        base = spec.base_directory
        synaptic_models = tmp / COMPONENTS_DIR / "synaptic_models"
        for receptor in spec.receptors:
            sonata.write_synapse_parameters(synaptic_models / f"{receptor.name}.json", receptor,
                                            os.path.relpath(receptor.model, base / "synaptic_models"))
        cells_dir = {p.cell.parent.relative_to(base).as_posix() for p in simulated}
        components = {"morphologies_dir": "$COMPONENTS_DIR/morphologies",
                      "biophysical_neuron_models_dir": f"$COMPONENTS_DIR/{min(cells_dir)}",
                      "synaptic_models_dir": "$COMPONENTS_DIR/synaptic_models"}
        sonata.write_circuit_config(tmp / "circuit_config.json", nodes, edges, components,
                                    {"livn": livn_block(spec, cells)})
    return Path(output)


def _edges(spec: SystemSpec, positions: np.ndarray, cells: dict) -> tuple[list, dict]:
    """Edge types (one per projection and receptor) and the edges, by whether their sources
    are virtual: {False: block, True: block}, a block being columns of equal length."""
    weight_of = dict(spec.weights)
    edge_types, type_of = [], {}
    for index, projection in enumerate(spec.projections):
        for receptor_name in projection.receptors:
            receptor = spec.receptor(receptor_name)
            unit = projection.unit_conductance(receptor)
            type_of[(index, receptor_name)] = 100 + len(edge_types)
            edge_types.append(sonata.EdgeType(100 + len(edge_types), projection.name, receptor.name,
                                              receptor.component_id, f"{receptor.name}.json",
                                              projection.onto or "sites",
                                              weight_of[f"{projection.name}.{receptor.name}"] * unit, unit))
    parts = {False: [], True: []}

    def add(index, source, target, section, position, distance):
        projection = spec.projections[index]
        virtual = spec.population(projection.source).virtual
        for receptor_name in projection.receptors:
            edge_type = edge_types[type_of[(index, receptor_name)] - 100]
            n = len(source)
            parts[virtual].append({"source": source, "target": target, "type_id": np.full(n, edge_type.edge_type_id),
                                   "weight": np.full(n, edge_type.syn_weight), "delay": spec.delay.of(distance),
                                   "section": section, "position": position, "distance": distance})

    for index, projection in enumerate(spec.projections):
        if projection.sites:
            continue
        c = connect(spec, positions, projection)
        # synapses sit at the middle of the first section of the target cell's segment group
        section = cells[projection.target].sections_in(SEGMENT_GROUPS.get(projection.onto, projection.onto))[0]
        add(index, c.source, c.target, np.full(len(c.source), section, dtype=np.uint32),
            np.full(len(c.source), 0.5, dtype=np.float32), c.distance)
    if any(p.sites for p in spec.projections):
        s = synapses_by_site(spec, positions, cells)
        for index in np.unique(s.projection):
            mine = s.projection == index
            add(int(index), s.source[mine], s.target[mine], s.section[mine], s.position[mine], s.distance[mine])
    blocks = {virtual: {k: np.concatenate([p[k] for p in chunks]) for k in chunks[0]}
              for virtual, chunks in parts.items() if chunks}
    return edge_types, blocks


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
