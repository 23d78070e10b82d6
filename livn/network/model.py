"""The simulator-neutral network model, built from a SONATA circuit alone.

:class:`NetworkModel` is what every target consumes: populations with global gids, cells as
section trees (from NeuroML and, where a cell has none inline, the SONATA ``morphology``),
synapse types, connections with section and position, the noise and spike inputs, the MEA,
and one parameter set with one meaning of ``set_params``.

Synapse types (:attr:`NetworkModel.synapses`, by receptor) are read from the NeuroML file an
edge type's ``dynamics_params`` names, when the model is made: kinetics, Mg²⁺ block and
Tsodyks–Markram plasticity (:class:`~livn.neuroml.reader.Synapse`) reach the targets from
there, not from the edges' per-edge ``tau1``/``tau2``/``erev`` (which the build writes for
SONATA's Exp2Syn_synapse readers); the plasticity state is per connection, in each target.

Gids: each node population gets a block of gids in config order (a livn circuit has one
population, so gid = node id).

Parameters (``default_params()``; ``set_params`` validates and both targets apply
:meth:`NetworkModel.conductances`):

- a weight per (projection, synapse) — named ``SOURCE->TARGET.SYNAPSE`` after the edge type's
  ``projection`` column, else its edge population's source and target, and its ``receptor``
  column, else the stem of its ``dynamics_params`` (``EXC->EXC.AMPA``). The value is in
  multiples of the edge type's ``weight_unit`` (µS; 1 µS when the circuit has none). An
  edge's conductance is value × unit × the edge's relative weight within its group
  (``syn_weight`` / default conductance; 1 when the default is 0): setting a weight whose
  default is 0 gives every edge of the group value × unit.
- noise ``noise.<kind>.g0`` and ``noise.<kind>.sigma`` (µS) of the livn block's noise.

Units: ms, mV, µm, µS, nA; electrode currents µA.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ..sonata import Circuit, CircuitError
from ..neuroml.cell import Cell, read_cell
from ..neuroml.reader import NeuroMLError, NoiseType, Synapse, read_noise_type, read_synapse

#: BMTK's section names → NeuroML segment groups (when a cell has no group of that name)
SECTION_ALIASES = {"somatic": "soma_group", "soma": "soma_group", "basal": "dendrite_group",
                   "apical": "dendrite_group", "dend": "dendrite_group", "dendrite": "dendrite_group",
                   "axonal": "axon_group", "axon": "axon_group"}

#: NEURON's built-in dual exponential, as BMTK names it in edge model_template
EXP2SYN_TEMPLATES = {"exp2syn", "Exp2Syn"}

#: node model types of integrate-and-fire point processes (bionet, SONATA)
POINT_MODEL_TYPES = {"point_process", "point_neuron"}
#: the point-process models livn translates (NEURON's IntFire1, as BMTK's bionet names it)
POINT_TEMPLATES = {"nrn:IntFire1"}


class NetworkError(ValueError):
    """What a circuit asks for that livn cannot model: ``problems`` = (file, line, message) list."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(f"{f}{':' + str(line) if line else ''}: {m}" for f, line, m in self.problems))


@dataclass
class Components:
    """The models a target must translate, without a circuit (what ``livn validate --target`` checks):
    cells, synapses by name, and the file problems are reported against."""

    cells: list
    synapses: dict
    source: str
    noise: tuple = ()
    temperature: float | None = None  # degC, the system's (None: not given)


@dataclass
class Population:
    """A node population: gids ``offset .. offset + size - 1``.

    ``kind`` is "biophysical" (cells of :attr:`NetworkModel.cells`), "point" (NEURON's
    ``IntFire1`` integrate-and-fire point processes, BMTK's ``nrn:IntFire1``; ``point`` holds
    per node ``tau`` and ``refrac`` in ms) or "virtual" (spike sources).
    """

    name: str
    kind: str
    size: int
    offset: int
    labels: np.ndarray
    positions: np.ndarray
    rotation: np.ndarray
    cell_index: np.ndarray | None = None  # per node, index into NetworkModel.cells
    point: dict | None = None  # kind "point": {"tau": ms per node, "refrac": ms per node}

    @property
    def gids(self) -> np.ndarray:
        return np.arange(self.offset, self.offset + self.size)


@dataclass(frozen=True)
class WeightGroup:
    """One tunable weight: its default (× unit) and unit (µS)."""

    name: str
    default: float
    unit: float


@dataclass(frozen=True)
class NoiseSource:
    """An OU conductance on every cell of ``populations``, on segment group ``group`` (µS, ms, mV;
    with ``per_area`` g0 and sigma are mS/cm² of the group's membrane: see
    :meth:`NetworkModel.noise_scale`)."""

    kind: str
    group: str
    g0: float
    sigma: float
    tau: float
    erev: float
    stream: int
    per_area: bool = False


@dataclass
class Connections:
    """Afferent edges of some cells, in a fixed order (edge population, edge type, edge id).

    Arrays of equal length: ``source``/``target`` gids, ``synapse`` (index into
    :attr:`NetworkModel.synapse_names`; -1 onto a point cell), ``section`` and ``x`` on the target cell,
    ``group`` (index into :attr:`NetworkModel.weight_names`), ``relative`` weight, ``delay`` (ms).
    """

    source: np.ndarray
    target: np.ndarray
    synapse: np.ndarray
    section: np.ndarray
    x: np.ndarray
    group: np.ndarray
    relative: np.ndarray
    delay: np.ndarray

    def __len__(self) -> int:
        return len(self.source)


def _concat(parts: list, field_names) -> Connections:
    if not parts:
        return Connections(*(np.zeros(0, dtype=float if n in ("x", "relative", "delay") else np.int64)
                             for n in field_names))
    return Connections(*(np.concatenate([getattr(p, n) for p in parts]) for n in field_names))


def _hash_uniform(seed: int, stream: int, ids: np.ndarray) -> np.ndarray:
    """Uniform numbers in [0, 1) keyed by (seed, stream, id): splitmix64, order-independent."""
    with np.errstate(over="ignore"):
        x = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(stream) * np.uint64(0xBF58476D1CE4E5B9)
             ^ ids.astype(np.uint64))
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(float) / float(1 << 53)


class NetworkModel:
    """The network of a SONATA circuit, for any target.

    Parameters
    ----------
    circuit : Circuit or path
        A circuit (directory, ``circuit_config.json``, or ``simulation_config.json``).

    Raises
    ------
    NetworkError
        Listing every node type, edge type or NeuroML file livn cannot model, at once.
    """

    def __init__(self, circuit):
        self.circuit = circuit if isinstance(circuit, Circuit) else Circuit(circuit)
        c = self.circuit
        livn = c.livn or {}
        self.name = c.name
        self.seed = int(livn.get("seed", (c.run_settings or {}).get("random_seed", 0)) or 0)
        self.populations: dict[str, Population] = {}
        self.cells: list[Cell] = []
        problems: list = []
        offset = 0
        for name, pop in c.nodes.items():
            model_type = pop.attribute("model_type", default="biophysical")
            kinds = set(np.unique(model_type.astype(str)).tolist())
            if kinds == {"virtual"} or pop.type == "virtual":
                kind = "virtual"
            elif kinds and kinds <= POINT_MODEL_TYPES:
                kind = "point"
            else:
                kind = "biophysical"
            if kind == "biophysical" and kinds - {"biophysical"}:
                problems.append((str(pop._types_file or pop._file), None,
                                 f"node population {name}: model_type {', '.join(sorted(kinds - {'biophysical'}))} "
                                 f"is not supported in a population with biophysical nodes (supported: one model "
                                 f"type per node population: biophysical with an nml: template, point_process "
                                 f"with nrn:IntFire1, or virtual)"))
            labels = (pop.attribute("pop_name") if "pop_name" in pop.attribute_names
                      else np.full(pop.size, name, dtype=object)).astype(str)
            entry = Population(name, kind, pop.size, offset, labels, pop.positions, pop.rotation_z)
            if kind == "biophysical":
                entry.cell_index, found = self._read_cells(pop)
                problems += found
            elif kind == "point":
                entry.point, found = self._read_points(pop)
                problems += found
            self.populations[name] = entry
            offset += pop.size
        self.num_cells = offset
        self.synapses: dict[str, Synapse] = {}
        self._edge_info: dict[str, dict] = {}
        self.weights: dict[str, WeightGroup] = {}
        for name, pop in c.edges.items():
            problems += self._read_edge_types(name, pop)
        self.noise_type: NoiseType | None = None
        self.noise: tuple = ()
        self.noise_populations: tuple = ()
        problems += self._read_noise(livn.get("noise"))
        if problems:
            raise NetworkError(problems)

    # -- construction --------------------------------------------------------------------
    def _read_cells(self, pop):
        """Per node, the index of its Cell (one per (template, morphology) pair)."""
        problems = []
        templates = pop.attribute("model_template", default="").astype(str)
        morphologies = (pop.attribute("morphology").astype(str) if "morphology" in pop.attribute_names
                        else np.full(pop.size, "", dtype=object))
        keys = np.char.add(np.char.add(templates.astype(str), "|"), morphologies.astype(str))
        unique, inverse = np.unique(keys, return_inverse=True)
        index = np.empty(len(unique), dtype=np.int64)
        models_dir = self.circuit.components.get("biophysical_neuron_models_dir")
        morph_dir = self.circuit.components.get("morphologies_dir")
        where = str(pop._types_file or pop._file)
        for k, key in enumerate(unique):
            template, morphology = key.split("|", 1)
            if not template.startswith("nml:"):
                problems.append((where, None, f"node population {pop.name}: model_template {template or '(none)'!r} "
                                              f"cannot be simulated by livn (supported: 'nml:<file>.nml' NeuroML2 "
                                              f"cells in biophysical_neuron_models_dir)"))
                index[k] = -1
                continue
            file = template[4:]
            path = Path(file) if Path(file).is_absolute() else (models_dir or self.circuit.directory) / file
            swc = None
            if morphology and morphology not in ("None", "nan"):
                swc = Path(morphology) if Path(morphology).is_absolute() else (morph_dir or self.circuit.directory) / morphology
                if swc.suffix == "":
                    swc = swc.with_suffix(".swc")
            if not path.is_file():
                problems.append((where, None, f"node population {pop.name}: model_template {template!r}: "
                                              f"{path} does not exist"))
                index[k] = -1
                continue
            try:
                cell = read_cell(path, None if len(_cells_in(path)) == 1 else Path(file).name.split(".")[0],
                                 morphology=swc if swc is not None and swc.is_file() else None)
            except NeuroMLError as err:
                problems += err.problems
                index[k] = -1
                continue
            index[k] = len(self.cells)
            self.cells.append(cell)
        return index[inverse], problems

    def _read_points(self, pop):
        """Per node ``tau`` and ``refrac`` (ms) of an IntFire1 population, from each node type's
        ``dynamics_params`` JSON in ``point_neuron_models_dir`` (seconds, BMTK's convention)."""
        problems, where = [], str(pop._types_file or pop._file)
        templates = pop.attribute("model_template", default="").astype(str)
        params = (pop.attribute("dynamics_params").astype(str) if "dynamics_params" in pop.attribute_names
                  else np.full(pop.size, "", dtype=object))
        folder = self.circuit.components.get("point_neuron_models_dir", self.circuit.directory)
        tau, refrac = np.zeros(pop.size), np.zeros(pop.size)
        for template in sorted(set(templates.tolist()) - POINT_TEMPLATES):
            problems.append((where, None, f"node population {pop.name}: point-process model_template {template!r} "
                                          f"is not supported (supported: {', '.join(sorted(POINT_TEMPLATES))})"))
        for file in sorted(set(params.tolist())):
            mask = params == file
            if not file or file in ("None", "nan"):
                problems.append((where, None, f"node population {pop.name}: IntFire1 nodes need dynamics_params (a "
                                              f"JSON file with 'tau' and 'refrac' in seconds)"))
                continue
            path = Path(file) if Path(file).is_absolute() else Path(folder) / file
            try:
                data = json.loads(path.read_text())
                values = [float(data[k]) for k in ("tau", "refrac")]
            except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                problems.append((str(path), None, f"node population {pop.name}: IntFire1 dynamics_params need numbers "
                                                  f"'tau' and 'refrac' (seconds): {type(err).__name__}: {err}"))
                continue
            if not (math.isfinite(values[0]) and values[0] > 0 and math.isfinite(values[1]) and values[1] >= 0):
                problems.append((str(path), None, f"node population {pop.name}: IntFire1 needs tau > 0 and refrac >= 0 "
                                                  f"(seconds), found tau={values[0]!r}, refrac={values[1]!r}"))
                continue
            tau[mask], refrac[mask] = values[0] * 1e3, values[1] * 1e3
        return {"tau": tau, "refrac": refrac}, problems

    def _synapse(self, edge_pop: str, row: dict, where: str):
        """(synapse key, problems) of an edge type row."""
        template = str(row.get("model_template") or "")
        params = row.get("dynamics_params")
        params_path = None
        data = {}
        if isinstance(params, str) and params:
            folder = self.circuit.components.get("synaptic_models_dir", self.circuit.directory)
            params_path = Path(params) if Path(params).is_absolute() else folder / params
            try:
                data = json.loads(params_path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                return None, [(where, None, f"edge type {row['edge_type_id']}: dynamics_params {params!r}: {err}")]
        key = str(row.get("receptor") or (params_path.stem if params_path else template))
        if key in self.synapses:
            return key, []
        try:
            if data.get("neuroml"):
                nml = Path(data["neuroml"])
                nml = nml if nml.is_absolute() else params_path.parent / nml
                synapse = read_synapse(nml, data.get("component") or template)
            elif template in EXP2SYN_TEMPLATES or (not template and data.get("level_of_detail") in EXP2SYN_TEMPLATES):
                missing = [k for k in ("tau1", "tau2", "erev") if not isinstance(data.get(k), (int, float))]
                if missing:
                    return None, [(str(params_path or where), None, f"exp2syn parameters need {', '.join(missing)}")]
                tau1, tau2 = float(data["tau1"]), float(data["tau2"])
                if not (0 <= tau1 < tau2):
                    return None, [(str(params_path), None, f"exp2syn needs 0 <= tau1 < tau2, found {tau1}, {tau2}")]
                synapse = Synapse(key, "exp2", tau1, tau2, float(data["erev"]))
            else:
                return None, [(where, None, f"edge type {row['edge_type_id']} ({edge_pop}): model_template "
                                            f"{template or '(none)'!r} is not supported (supported: exp2syn with "
                                            f"tau1/tau2/erev, or dynamics_params naming a NeuroML synapse)")]
        except NeuroMLError as err:
            return None, err.problems
        self.synapses[key] = synapse
        return key, []

    def _point_synapse(self, row: dict, where: str):
        """(weight-group key, sign, problems) of an edge type onto IntFire1 cells: bionet adds
        ``syn_weight`` × ``sign`` (from its dynamics_params, default 1) × ``nsyns`` to the
        target's state per event."""
        params = row.get("dynamics_params")
        sign = 1.0
        if isinstance(params, str) and params:
            folder = self.circuit.components.get("synaptic_models_dir", self.circuit.directory)
            path = Path(params) if Path(params).is_absolute() else Path(folder) / params
            try:
                sign = float(json.loads(path.read_text()).get("sign", 1.0))
            except (OSError, json.JSONDecodeError, TypeError, ValueError) as err:
                return None, 1.0, [(str(path), None, f"edge type {row['edge_type_id']}: dynamics_params {params!r}: "
                                                     f"{err}")]
        key = str(row.get("receptor") or (Path(params).stem if isinstance(params, str) and params else "event"))
        return key, sign, []

    def _read_edge_types(self, name: str, pop) -> list:
        problems = []
        where = str(pop._types_file or pop._file)
        if pop.source not in self.populations or pop.target not in self.populations:
            return [(where, None, f"edge population {name}: node population {pop.source!r} or {pop.target!r} "
                                  f"is not in the circuit")]
        if self.populations[pop.target].kind == "virtual":
            return [(where, None, f"edge population {name}: targets virtual nodes ({pop.target})")]
        onto_points = self.populations[pop.target].kind == "point"
        info = {}
        for type_id, row in pop.types.items():
            if onto_points:  # an event adds the weight to the target's state: no synapse model
                key, sign, found = self._point_synapse(row, where)
            else:
                (key, found), sign = self._synapse(name, row, where), 1.0
            problems += found
            if key is None:
                continue
            projection = str(row.get("projection") or
                             f"{_query_label(row.get('source_query'), pop.source)}->"
                             f"{_query_label(row.get('target_query'), pop.target)}")
            group = f"{projection}.{key}"
            if any(i["group"] == group for i in info.values()) or group in self.weights:
                group = f"{projection}.{key}[{type_id}]"  # two edge types, one name: keep them apart
            unit = float(row.get("weight_unit") or 1.0)
            default_g = row.get("syn_weight")
            info[type_id] = dict(synapse=None if onto_points else key, group=group, unit=unit, default_g=default_g,
                                 sections=row.get("target_sections"), distance=row.get("distance_range"),
                                 sign=sign)
        # type-level syn_weight is the default conductance; otherwise the mean of the edges' values
        missing = [t for t, i in info.items() if i["default_g"] is None]
        if missing and pop.size:
            chosen = pop.select(None, ["syn_weight"])
            weights = chosen.attributes.get("syn_weight", np.ones(pop.size))
            for t in missing:
                mask = chosen.edge_type_id == t
                info[t]["default_g"] = float(np.mean(weights[mask])) if mask.any() else 0.0
        for t, i in info.items():
            default = abs(float(i["default_g"] or 0.0)) / i["unit"]
            self.weights[i["group"]] = WeightGroup(i["group"], default, i["unit"])
        self._edge_info[name] = info
        return problems

    def _read_noise(self, block) -> list:
        if not block:
            return []
        try:
            self.noise_type = read_noise_type(block["model"])
        except NeuroMLError as err:
            return err.problems
        units = block.get("units") or {}
        per_area = units.get("g0") == "mS/cm2"
        if per_area != (units.get("sigma") == "mS/cm2"):
            return [(self.source, f"livn.noise.units: g0 and sigma must both be uS or both mS/cm2, found {units}")]
        sources = []
        for stream, (kind, s) in enumerate(block["sources"].items()):
            sources.append(NoiseSource(kind, s["segment_group"], float(s["g0"]), float(s["sigma"]), float(s["tau"]),
                                       float(s["erev"]), stream, per_area))
        self.noise = tuple(sources)
        self.noise_populations = tuple(block.get("populations") or
                                       [p for p, v in self.populations.items() if v.kind == "biophysical"])
        return []

    # -- what targets ask -----------------------------------------------------------------
    @property
    def source(self) -> str:
        """The file problems of this model are reported against."""
        return str(self.circuit.config_path)

    @cached_property
    def synapse_names(self) -> list[str]:
        return sorted(self.synapses)

    @cached_property
    def weight_names(self) -> list[str]:
        return list(self.weights)

    @property
    def biophysical_gids(self) -> np.ndarray:
        parts = [p.gids for p in self.populations.values() if p.kind == "biophysical"]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    @property
    def point_gids(self) -> np.ndarray:
        """Gids of the integrate-and-fire point-process cells (no membrane, no compartments)."""
        parts = [p.gids for p in self.populations.values() if p.kind == "point"]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    @property
    def simulated_gids(self) -> np.ndarray:
        """Gids of every cell that is simulated (biophysical and point process), in gid order."""
        parts = [p.gids for p in self.populations.values() if p.kind != "virtual"]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    @property
    def virtual_gids(self) -> np.ndarray:
        parts = [p.gids for p in self.populations.values() if p.kind == "virtual"]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def locate(self, gids) -> tuple[Population, np.ndarray]:
        """(population, node ids) of ``gids``, which must lie in one population."""
        gids = np.asarray(gids, dtype=np.int64)
        for pop in self.populations.values():
            if len(gids) and gids.min() >= pop.offset and gids.max() < pop.offset + pop.size:
                return pop, gids - pop.offset
        raise ValueError("gids of more than one population (or out of range)")

    def population_of(self, gid: int) -> Population:
        for pop in self.populations.values():
            if pop.offset <= gid < pop.offset + pop.size:
                return pop
        raise ValueError(f"gid {gid} is not in the network (0..{self.num_cells - 1})")

    def cell_of(self, gid: int) -> Cell:
        pop = self.population_of(int(gid))
        if pop.kind != "biophysical":
            raise ValueError(f"gid {gid} is a {pop.kind} node of {pop.name}, not a cell with a membrane")
        return self.cells[int(pop.cell_index[int(gid) - pop.offset])]

    def noise_on(self, gid: int) -> bool:
        return bool(self.noise) and self.population_of(int(gid)).name in self.noise_populations

    @staticmethod
    def noise_scale(cell: Cell, source: NoiseSource) -> float:
        """What a noise parameter (g0, sigma) is multiplied by to give µS on ``cell``: 1 for
        conductances; for densities (mS/cm²) the membrane area of the segment group the noise
        goes onto (µm² × 1e-8 cm²/µm² × 1e3 µS/mS)."""
        if not source.per_area:
            return 1.0
        sections = set(cell.sections_in(source.group))
        return sum(c.area for c in cell.compartments if c.section in sections) * 1e-5

    def default_params(self) -> dict[str, float]:
        """Every tunable parameter with its default: weights (× unit), then noise g0/sigma (µS, or
        mS/cm² for noise given per area)."""
        params = {name: w.default for name, w in self.weights.items()}
        for source in self.noise:
            params[f"noise.{source.kind}.g0"] = source.g0
            params[f"noise.{source.kind}.sigma"] = source.sigma
        return params

    def check_params(self, params: dict) -> dict[str, float]:
        """``params`` as floats, or a ValueError/KeyError naming every bad entry and the valid names."""
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of name -> number, found {type(params).__name__}")
        valid = self.default_params()
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise KeyError(f"unknown parameter(s) {', '.join(map(str, unknown))}; valid: {', '.join(valid)}")
        out, bad = {}, []
        for name, value in params.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                bad.append(f"{name}={value!r} (not a number)")
                continue
            if not math.isfinite(number) or number < 0:
                bad.append(f"{name}={value!r} (expected a finite number >= 0)")
                continue
            out[name] = number
        if bad:
            raise ValueError(f"invalid parameter value(s): {'; '.join(bad)}")
        return out

    def conductance_scale(self, params: dict) -> np.ndarray:
        """Per weight group (order of :attr:`weight_names`): value × unit (µS per relative weight)."""
        return np.array([params[n] * self.weights[n].unit for n in self.weight_names])

    def afferent(self, gids) -> Connections:
        """The edges onto ``gids`` (biophysical or point cells), read through the SONATA index.
        Edges onto point cells have synapse -1 (an event adds its weight to the cell's state)."""
        gids = np.unique(np.asarray(gids, dtype=np.int64))
        parts = []
        fields = ("source", "target", "synapse", "section", "x", "group", "relative", "delay")
        for p, (name, pop) in enumerate(self.circuit.edges.items()):
            target_pop = self.populations[pop.target]
            local = gids[(gids >= target_pop.offset) & (gids < target_pop.offset + target_pop.size)] - target_pop.offset
            if len(local) == 0:
                continue
            ids = pop.afferent(local)
            if len(ids) == 0:
                continue
            wanted = [a for a in ("syn_weight", "delay", "afferent_section_id", "afferent_section_pos", "nsyns")
                      if a in pop.attribute_names]
            sel = pop.select(ids, wanted)
            info = self._edge_info[name]
            types = sel.edge_type_id
            keep = np.isin(types, list(info))
            order = np.lexsort((sel.ids, types))
            order = order[keep[order]]
            types = types[order]
            n = len(order)
            syn_index = {k: i for i, k in enumerate(self.synapse_names)}
            group_index = {k: i for i, k in enumerate(self.weight_names)}
            synapse = np.array([-1 if info[t]["synapse"] is None else syn_index[info[t]["synapse"]]
                                for t in types.tolist()], dtype=np.int64)
            group = np.array([group_index[info[t]["group"]] for t in types.tolist()], dtype=np.int64)
            weight = sel.attributes.get("syn_weight")
            weight = weight[order].astype(float) if weight is not None else None
            relative = np.ones(n)
            for t in np.unique(types):
                mask = types == t
                default = abs(float(info[int(t)]["default_g"] or 0.0))
                if weight is not None and default != 0:
                    relative[mask] = weight[mask] / default
            if target_pop.kind == "point":  # bionet: syn_weight x sign x nsyns onto an IntFire1
                relative *= np.array([info[t]["sign"] for t in types.tolist()])
                if "nsyns" in sel.attributes:
                    relative *= sel.attributes["nsyns"][order].astype(float)
            delay = sel.attributes.get("delay")
            delay = delay[order].astype(float) if delay is not None else np.full(n, 1.0)
            source_pop = self.populations[pop.source]
            source = sel.source[order] + source_pop.offset
            target = sel.target[order] + target_pop.offset
            if target_pop.kind == "point":
                section, x = np.zeros(n, dtype=np.int64), np.full(n, 0.5)
            elif "afferent_section_id" in sel.attributes:
                section = sel.attributes["afferent_section_id"][order].astype(np.int64)
                x = (sel.attributes["afferent_section_pos"][order].astype(float)
                     if "afferent_section_pos" in sel.attributes else np.full(n, 0.5))
            else:
                section, x = self._place(p, sel.ids[order], target, types, info)
            parts.append(Connections(source, target, synapse, section, x, group, relative, delay))
        return _concat(parts, fields)

    def _place(self, stream: int, edge_ids, target, types, info) -> tuple[np.ndarray, np.ndarray]:
        """BMTK's placement (target_sections, distance_range): a compartment per edge, chosen
        uniformly among those of the named sections within the distance range, keyed by
        (seed, edge population, edge id) so any rank count gives the same placement."""
        u = _hash_uniform(self.seed, 1000 + stream, edge_ids)
        section, x = np.zeros(len(target), dtype=np.int64), np.full(len(target), 0.5)
        for k, (gid, t) in enumerate(zip(target.tolist(), types.tolist())):
            cell = self.cell_of(gid)
            candidates = _candidates(cell, info[t]["sections"], info[t]["distance"])
            comp = candidates[min(int(u[k] * len(candidates)), len(candidates) - 1)]
            section[k], x[k] = comp.section, comp.x
        return section, x

    # -- MEA ------------------------------------------------------------------------------
    @property
    def electrodes(self) -> np.ndarray:
        return self.circuit.electrodes

    @property
    def temperature(self) -> float | None:
        """The network temperature, degC, that temperature-dependent kinetics read (q10ExpTemp,
        Nernst and GHK potentials; NeuroML's ``networkWithTemperature``): the livn block's
        ``temperature_celsius``, else the SONATA simulation config's ``conditions.celsius``
        (BMTK writes it), else None — not given. None is no default: a target refuses cells
        that depend on the temperature without one, and leaves every other cell as it was (the
        EI systems use only fixed q10 factors, so their results do not depend on it)."""
        value = (self.circuit.livn or {}).get("temperature_celsius")
        if value is None:
            value = ((self.circuit.simulation or {}).get("conditions") or {}).get("celsius")
        return None if value is None else float(value)

    @property
    def resistivity(self) -> float:
        """Ω·m of the extracellular medium."""
        return float(((self.circuit.livn or {}).get("mea") or {}).get("resistivity", 3.5))

    def compartment_positions(self, gid: int) -> np.ndarray:
        """(compartments, 3) positions in µm: the cell's frame rotated about z and placed at the soma."""
        pop = self.population_of(int(gid))
        node = int(gid) - pop.offset
        cell = self.cell_of(gid)
        centres = np.array([c.centre for c in cell.compartments])
        offset = centres - centres[0]
        angle = float(pop.rotation[node])
        rotated = np.column_stack([offset[:, 0] * math.cos(angle) - offset[:, 1] * math.sin(angle),
                                   offset[:, 0] * math.sin(angle) + offset[:, 1] * math.cos(angle), offset[:, 2]])
        return pop.positions[node] + rotated

    def field_transfer(self, gid: int) -> np.ndarray:
        """(compartments, channels): extracellular potential (mV) per µA of each electrode, a
        point source in a homogeneous medium V = ρI/(4πr) (r floored at 1 µm)."""
        r = np.linalg.norm(self.compartment_positions(gid)[:, None, :] - self.electrodes[None, :, :], axis=2)
        return 1e3 * self.resistivity / (4 * np.pi * np.maximum(r, 1.0))

    def check_stimulus(self, stimulus, duration: float, dt: float) -> np.ndarray:
        """``stimulus`` as a finite (samples, channels) array of µA, or a ValueError saying what is wrong."""
        channels = len(self.electrodes)
        if channels == 0:
            raise ValueError(f"{self.circuit.config_path}: this circuit has no MEA (no livn block with electrodes): "
                             f"it cannot be stimulated")
        stimulus = np.asarray(stimulus, dtype=float)
        if stimulus.ndim != 2 or stimulus.shape[1] != channels:
            raise ValueError(f"stimulus must have shape (samples, {channels} channels) in µA, found {stimulus.shape}")
        if not np.all(np.isfinite(stimulus)):
            raise ValueError("stimulus must be finite (found NaN or infinity)")
        return stimulus[: int(round(duration / dt))]

    # -- spike inputs --------------------------------------------------------------------
    @cached_property
    def spike_inputs(self) -> dict[int, np.ndarray]:
        """gid -> sorted spike times (ms) of the virtual nodes with SONATA spike-train input."""
        out = {}
        for population, (ids, times) in self.circuit.spike_inputs().items():
            pop = self.populations.get(population)
            if pop is None:
                where = getattr(self.circuit, "simulation_path", self.circuit.config_path)
                raise NetworkError([(str(where), None, f"spike input for node population "
                                                       f"{population!r}, which the circuit lacks")])
            ids = np.asarray(ids, dtype=np.int64)
            order = np.lexsort((times, ids))
            ids, times = ids[order], np.asarray(times, dtype=float)[order]
            nodes, starts = np.unique(ids, return_index=True)
            for node, train in zip(nodes.tolist(), np.split(times, starts[1:])):
                out[node + pop.offset] = train
        return out


def _query_label(query, population: str) -> str:
    """A short name for BMTK's node query of an edge type: ``pop_name=='Exc'`` -> ``Exc``;
    ``*`` or none -> the node population."""
    if not isinstance(query, str) or query.strip() in ("", "*"):
        return population
    parts = [p.split("==", 1)[1].strip().strip("'\"") for p in query.split("&") if "==" in p]
    return "&".join(parts) if parts else population


def _cells_in(path: Path) -> list[str]:
    from ..neuroml.reader import document

    return document(path).cells()


def _candidates(cell: Cell, sections, distance) -> list:
    names = sections
    if isinstance(names, str):
        try:
            names = json.loads(names.replace("'", '"'))
        except json.JSONDecodeError:
            names = [names]
    names = list(names or ["all"])
    groups = set()
    for n in names:
        groups.add(n if n in cell.groups else SECTION_ALIASES.get(n, n))
    lo, hi = 0.0, float("inf")
    if distance is not None:
        values = json.loads(distance) if isinstance(distance, str) else distance
        lo, hi = float(values[0]), float(values[1])
    path_distance = _path_distances(cell)
    comps = [c for c in cell.compartments
             if groups & cell.sections[c.section].groups and lo <= path_distance[c.index] <= hi]
    return comps or [cell.compartments[0]]


def _path_distances(cell: Cell) -> np.ndarray:
    """Path distance (µm) from the soma centre to each compartment centre."""
    out = np.zeros(len(cell.compartments))
    start = {}
    for sec in cell.sections:
        if sec.parent < 0:
            start[sec.index] = -sec.length / 2
        else:
            start[sec.index] = start[sec.parent] + sec.parent_x * cell.sections[sec.parent].length
            if cell.sections[sec.parent].parent < 0:
                start[sec.index] = max(start[sec.index] - cell.sections[sec.parent].length / 2, 0.0) \
                    if sec.parent_x >= 1 else 0.0
    for comp in cell.compartments:
        sec = cell.sections[comp.section]
        out[comp.index] = abs(start[sec.index] + comp.x * sec.length) if sec.parent >= 0 else 0.0
    return out


__all__ = ["NetworkModel", "NetworkError", "Population", "Connections", "WeightGroup", "NoiseSource",
           "CircuitError"]
