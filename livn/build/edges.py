"""The edges of a circuit, drawn in blocks of target cells and written in blocks.

Targets are split into fixed ranges of gids (:func:`target_blocks`, sized from the spec so
that a block holds ~``estimate.BLOCK_EDGES`` edges, whatever the number of processes). Every rule
draws a target's edges from that target's own random stream, so a block's edges do not
depend on the other blocks: blocks can be drawn on any rank, in any order, and written one
after the other. Memory holds one block, not the circuit.

One edge per (connection or synapse, receptor); within a block, edges are sorted by target,
then source, then edge type, so the concatenated blocks are sorted as SONATA readers want.
"""

from __future__ import annotations

import numpy as np

from ..spec import SystemSpec
from ..spec.neuroml import SEGMENT_GROUPS
from . import sonata
from .connectivity import connect
from . import estimate
from .estimate import expected_edges_per_cell
from .synapses import synapses_by_site

COLUMNS = {"source": np.int64, "target": np.int64, "type_id": np.int64, "weight": np.float64,
           "delay": np.float64, "section": np.uint32, "position": np.float32, "distance": np.float32,
           "conductance": np.float32, "tau1": np.float32, "tau2": np.float32, "erev": np.float32}


def edge_types(spec: SystemSpec) -> tuple[list, dict]:
    """One edge type per (projection, receptor): the list, and (projection index, receptor) -> type id."""
    weight_of = dict(spec.weights)
    types, type_of = [], {}
    for index, projection in enumerate(spec.projections):
        for receptor_name in projection.receptors:
            receptor = spec.receptor(receptor_name)
            unit = projection.unit_conductance(receptor)
            type_of[(index, receptor_name)] = 100 + len(types)
            types.append(sonata.EdgeType(100 + len(types), projection.name, receptor.name, receptor.component_id,
                                         f"{receptor.name}.json", projection.onto or "sites",
                                         weight_of[f"{projection.name}.{receptor.name}"] * unit, unit))
    return types, type_of


def target_blocks(spec: SystemSpec) -> list[range]:
    """Consecutive ranges of simulated gids holding ~``estimate.BLOCK_EDGES`` expected edges each."""
    per_cell = expected_edges_per_cell(spec)
    blocks, start, load = [], 0, 0.0
    for population in spec.simulated:
        cost = per_cell.get(population.name, 0.0)
        for gid in population.gids:
            if load + cost > estimate.BLOCK_EDGES and gid > start:
                blocks.append(range(start, gid))
                start, load = gid, 0.0
            load += cost
    if spec.num_neurons > start:
        blocks.append(range(start, spec.num_neurons))
    return blocks


def block_edges(spec: SystemSpec, positions: np.ndarray, cells: dict, targets: range, types: tuple) -> dict:
    """The edges onto ``targets``, by whether their sources are virtual: {virtual: columns}."""
    edge_type_list, type_of = types
    parts = {False: [], True: []}

    def add(index, source, target, section, position, distance):
        projection = spec.projections[index]
        virtual = spec.population(projection.source).virtual
        for receptor_name in projection.receptors:
            edge_type = edge_type_list[type_of[(index, receptor_name)] - 100]
            n = len(source)
            # the fields of the SONATA extension's Exp2Syn_synapse edges (Allen's chemical
            # connections): peak conductance, rise and decay time, reversal potential
            kinetics = spec.receptor(receptor_name).kinetics
            tau1, tau2, erev = kinetics if len(kinetics) == 3 else (np.nan, np.nan, np.nan)
            parts[virtual].append({"source": source, "target": target, "type_id": np.full(n, edge_type.edge_type_id),
                                   "weight": np.full(n, edge_type.syn_weight), "delay": spec.delay.of(distance),
                                   "section": section, "position": position, "distance": distance,
                                   "conductance": np.full(n, edge_type.syn_weight), "tau1": np.full(n, tau1),
                                   "tau2": np.full(n, tau2), "erev": np.full(n, erev)})

    for index, projection in enumerate(spec.projections):
        if projection.sites:
            continue
        c = connect(spec, positions, projection, targets)
        # synapses sit at the middle of the first section of the target cell's segment group
        section = cells[projection.target].sections_in(SEGMENT_GROUPS.get(projection.onto, projection.onto))[0]
        add(index, c.source, c.target, np.full(len(c.source), section, dtype=np.uint32),
            np.full(len(c.source), 0.5, dtype=np.float32), c.distance)
    if any(p.sites for p in spec.projections):
        s = synapses_by_site(spec, positions, cells, targets)
        for index in np.unique(s.projection):
            mine = s.projection == index
            add(int(index), s.source[mine], s.target[mine], s.section[mine], s.position[mine], s.distance[mine])
    out = {}
    for virtual, chunks in parts.items():
        if not chunks:
            continue
        block = {k: np.concatenate([c[k] for c in chunks]).astype(dtype) for k, dtype in COLUMNS.items()}
        order = np.lexsort((block["type_id"], block["source"], block["target"]))
        out[virtual] = {k: v[order] for k, v in block.items()}
    return out
