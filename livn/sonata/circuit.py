"""The one SONATA reader: a circuit's node and edge populations, as any tool may have written them.

Reads with h5py (gzip-compressed files from BMTK included), merges each population's HDF5
attributes with its types CSV (the HDF5 value wins, strings decoded), and selects edges
through the SONATA index (``node_id_to_ranges``, or BMTK's ``node_id_to_range``), so a
reader that needs the afferent edges of a few nodes reads only those. libsonata is the
second opinion in the tests.

Paths resolve as libsonata resolves them: the manifest's ``$BASE_DIR`` against the folder of
the config file. A ``simulation_config.json`` is accepted where a circuit is expected: its
``network`` (or inline ``networks``) gives the circuit, its ``inputs`` the spike trains of
virtual nodes, its ``run`` block the defaults of a run.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class CircuitError(ValueError):
    """A circuit cannot be read; ``problems`` lists (file, message) pairs, every one found."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(f"{file}: {message}" for file, message in self.problems))


def _decode(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in ("S", "O"):
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)
    return values


def _number(text: str):
    """A CSV cell as int, float or (when neither) the string itself; 'NULL'/'' as None."""
    if text is None or text in ("", "NULL", "None", "NONE"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def read_types_csv(path: Path, id_field: str) -> dict[int, dict]:
    """A SONATA types table (space separated; BMTK quotes lists such as ``"['somatic']"``)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter=" ", skipinitialspace=True))
    out = {}
    for row in rows:
        row = {k: _number(v) for k, v in row.items() if k}
        out[int(row[id_field])] = row
    return out


class _Attributes:
    """Per-element attributes of one population: HDF5 groups merged with the types table."""

    def __init__(self, h5_population, type_ids: np.ndarray, types: dict[int, dict], id_field: str,
                 group_id_name: str, group_index_name: str):
        self._pop = h5_population
        self.type_ids = type_ids
        self.types = types
        self._id_field = id_field
        self._group_id_name, self._group_index_name = group_id_name, group_index_name

    def _groups(self):
        return [k for k in self._pop.keys() if k.isdigit()]

    def h5_names(self) -> set[str]:
        names = set()
        for g in self._groups():
            names |= {k for k, v in self._pop[g].items() if hasattr(v, "shape")}
        return names

    def type_names(self) -> set[str]:
        return {k for row in self.types.values() for k, v in row.items() if k != self._id_field and v is not None}

    def names(self) -> set[str]:
        return self.h5_names() | self.type_names()

    def get(self, name: str, index: np.ndarray, default=None) -> np.ndarray:
        """Values of ``name`` at element ``index`` (an int array, sorted ascending)."""
        out = None
        if name in self.type_names():
            ids = self.type_ids[index]
            lookup = {t: row.get(name) for t, row in self.types.items()}
            values = [lookup.get(int(t)) for t in ids]
            kinds = {type(v) for v in values if v is not None}
            if kinds <= {int, float} and None not in values:
                out = np.asarray(values, dtype=float if float in kinds else np.int64)
            else:
                out = np.array(values, dtype=object)
        groups = [g for g in self._groups() if hasattr(self._pop[g].get(name), "shape")]
        if groups:
            if self._group_id_name in self._pop and len(self._groups()) > 1:
                gid = self._pop[self._group_id_name][:][index]
                gidx = self._pop[self._group_index_name][:][index]
            else:
                gid = np.full(len(index), int(groups[0]))
                gidx = self._pop[self._group_index_name][:][index] if self._group_index_name in self._pop else index
            for g in groups:
                mask = gid == int(g)
                if not mask.any():
                    continue
                values = _decode(_take(self._pop[g][name], gidx[mask]))
                if out is None:
                    out = np.empty(len(index), dtype=values.dtype if values.dtype != object else object)
                    if out.dtype.kind in "fc":
                        out[:] = np.nan
                elif out.dtype.kind in "iu" and values.dtype.kind == "f":
                    out = out.astype(float)
                elif values.dtype == object and out.dtype != object:
                    out = out.astype(object)
                out[mask] = values
        if out is None:
            if default is None:
                raise KeyError(name)
            return np.full(len(index), default)
        return out


def _take(dataset, index: np.ndarray) -> np.ndarray:
    """``dataset[index]`` for a sorted index, reading one contiguous block (fast for h5py)."""
    index = np.asarray(index, dtype=np.int64)
    if len(index) == 0:
        return dataset[0:0]
    lo, hi = int(index.min()), int(index.max()) + 1
    return dataset[lo:hi][index - lo]


class _Tables:
    """What node and edge populations share: their types table and attribute names."""

    @property
    def types(self) -> dict[int, dict]:
        """Rows of the types table, by type id."""
        return self._attributes.types

    @property
    def attribute_names(self) -> set[str]:
        """Every attribute, per element in the HDF5 or per type in the table."""
        return self._attributes.names()


@dataclass
class NodePopulation(_Tables):
    """One node population.

    Attributes
    ----------
    name : str
    size : int
    type : str
        The config's population ``type`` ("biophysical", "virtual", "point_neuron", ...),
        else the single ``model_type`` of its nodes.
    """

    name: str
    size: int
    type: str
    _file: Path
    _types_file: Path | None
    _h5: object = field(repr=False, default=None)
    _attributes: _Attributes = field(repr=False, default=None)

    @property
    def node_type_id(self) -> np.ndarray:
        return self._attributes.type_ids

    def attribute(self, name: str, ids=None, default=None) -> np.ndarray:
        """Values of ``name`` for node ``ids`` (all if None); HDF5 wins over the types table."""
        index = np.arange(self.size) if ids is None else np.asarray(ids, dtype=np.int64)
        return self._attributes.get(name, index, default)

    @cached_property
    def positions(self) -> np.ndarray:
        """(size, 3) soma positions in µm (x, y, z; a 2-D ``positions`` dataset too); zeros if none."""
        names = self.attribute_names
        if {"x", "y", "z"} <= names or {"x", "y"} <= names:
            z = self.attribute("z", default=0.0) if "z" in names else np.zeros(self.size)
            return np.column_stack([self.attribute("x"), self.attribute("y"), z]).astype(float)
        if "positions" in names:
            return np.asarray(self.attribute("positions"), dtype=float).reshape(self.size, -1)[:, :3]
        return np.zeros((self.size, 3))

    @cached_property
    def rotation_z(self) -> np.ndarray:
        """Rotation about z (radians) per node; zeros if none."""
        return self.attribute("rotation_angle_zaxis", default=0.0).astype(float)


@dataclass
class EdgeSelection:
    """Edges of one edge population: ids (sorted) and their attributes as arrays."""

    population: str
    ids: np.ndarray
    source: np.ndarray
    target: np.ndarray
    edge_type_id: np.ndarray
    attributes: dict


@dataclass
class EdgePopulation(_Tables):
    """One edge population between ``source`` and ``target`` node populations."""

    name: str
    size: int
    source: str
    target: str
    _file: Path
    _types_file: Path | None
    _h5: object = field(repr=False, default=None)
    _attributes: _Attributes = field(repr=False, default=None)

    def afferent(self, node_ids) -> np.ndarray:
        """Sorted ids of the edges onto ``node_ids`` (read through the index when there is one)."""
        node_ids = np.unique(np.asarray(node_ids, dtype=np.int64))
        pop = self._h5
        index = pop.get("indices/target_to_source")
        if index is not None:
            ranges_name = "node_id_to_ranges" if "node_id_to_ranges" in index else "node_id_to_range"
            if ranges_name in index and "range_to_edge_id" in index:
                n2r = index[ranges_name]
                node_ids = node_ids[node_ids < len(n2r)]
                if len(node_ids) == 0:
                    return np.zeros(0, dtype=np.int64)
                node_ranges = _take(n2r, node_ids)
                r2e = index["range_to_edge_id"]
                out = []
                for lo, hi in node_ranges:
                    if hi > lo:
                        for a, b in r2e[int(lo):int(hi)]:
                            out.append(np.arange(a, b, dtype=np.int64))
                return np.unique(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)
        log.debug("%s: no target_to_source index; scanning target_node_id", self._file)
        return np.flatnonzero(np.isin(pop["target_node_id"][:], node_ids)).astype(np.int64)

    def select(self, ids=None, attributes=None) -> EdgeSelection:
        """Edges ``ids`` (all if None) with ``attributes`` (all known if None)."""
        pop = self._h5
        ids = np.arange(self.size, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        names = self.attribute_names if attributes is None else attributes
        values = {}
        for name in names:
            try:
                values[name] = self._attributes.get(name, ids)
            except KeyError:
                pass
        return EdgeSelection(self.name, ids, _take(pop["source_node_id"], ids).astype(np.int64),
                             _take(pop["target_node_id"], ids).astype(np.int64),
                             self._attributes.type_ids[ids] if len(ids) else np.zeros(0, dtype=np.int64), values)


class Circuit:
    """A SONATA circuit: every node and edge population of its config, and its components.

    Parameters
    ----------
    path : path-like
        A circuit directory (holding ``circuit_config.json``), a ``circuit_config.json``, or a
        ``simulation_config.json``.

    Attributes
    ----------
    config_path : Path
    directory : Path
        Folder of the circuit config.
    nodes, edges : dict
        Population name -> :class:`NodePopulation` / :class:`EdgePopulation`, in config order.
    components : dict
        ``morphologies_dir``, ``biophysical_neuron_models_dir``, ... resolved to paths.
    livn : dict or None
        The ``livn`` block of a circuit livn built (MEA, noise, provenance), with paths resolved.
    simulation : dict or None
        The simulation config, when ``path`` was one (its paths resolved).
    """

    def __init__(self, path: str | os.PathLike):
        self._files = []
        path = Path(path)
        if path.is_dir():
            for candidate in ("circuit_config.json", "simulation_config.json", "config.json"):
                if (path / candidate).is_file():
                    path = path / candidate
                    break
        if not path.is_file():
            raise CircuitError([(str(path), "not a SONATA circuit: no circuit_config.json or simulation_config.json")])
        self.simulation = None
        config = self._load_json(path)
        if "run" in config or "inputs" in config or ("network" in config and "networks" not in config):
            self.simulation = _expand_all(config, path.parent)
            self.simulation_path = path.absolute()
            network = config.get("network")
            if network and "networks" not in config:
                path = Path(_expand(config, path.parent, network))
                config = self._load_json(path)
        self.config_path = path.absolute()
        self.directory = self.config_path.parent
        self.config = config
        if "networks" not in config:
            raise CircuitError([(str(path), "no 'networks' block: not a SONATA circuit config")])
        self.components = {k: Path(_expand(config, self.directory, v)) for k, v in (config.get("components") or {}).items()
                           if isinstance(v, str)}
        livn = config.get("livn")
        self.livn = _expand_all(livn, self.directory, config) if livn else None
        self._files = []
        self.nodes: dict[str, NodePopulation] = {}
        self.edges: dict[str, EdgePopulation] = {}
        problems = []
        for entry in config["networks"].get("nodes", []):
            problems += self._open_nodes(entry)
        for entry in config["networks"].get("edges", []):
            problems += self._open_edges(entry)
        if not problems:
            problems += self._consistency()
        if problems:
            self.close()
            raise CircuitError(problems)

    @staticmethod
    def _load_json(path: Path) -> dict:
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise CircuitError([(str(path), f"not valid JSON: {err}")]) from None

    def _open(self, path: Path):
        import h5py

        try:
            handle = h5py.File(path, "r")
        except OSError as err:  # truncated, not HDF5, unreadable
            raise CircuitError([(str(path), f"cannot read this HDF5 file ({err}); rebuild the circuit")]) from None
        self._files.append(handle)
        return handle

    def _open_entry(self, entry: dict, kind: str):
        """(HDF5 file, its path, types table, types path, problems) of a networks.nodes/edges entry."""
        try:
            path = Path(_expand(self.config, self.directory, entry[f"{kind}_file"]))
        except KeyError:
            return None, None, {}, None, [(str(self.config_path), f"a networks.{kind} entry has no {kind}_file")]
        key = f"{kind[:-1]}_types_file"
        types_path = Path(_expand(self.config, self.directory, entry[key])) if entry.get(key) else None
        problems = [(str(self.config_path), f"{p} does not exist") for p in (path, types_path)
                    if p is not None and not p.is_file()]
        if problems:
            return None, path, {}, types_path, problems
        try:
            h5 = self._open(path)
        except CircuitError as err:
            return None, path, {}, types_path, err.problems
        types = read_types_csv(types_path, f"{kind[:-1]}_type_id") if types_path else {}
        return h5, path, types, types_path, []

    def _open_nodes(self, entry: dict) -> list:
        h5, path, types, types_path, problems = self._open_entry(entry, "nodes")
        if h5 is None:
            return problems
        declared = entry.get("populations") or {}
        for name in h5.get("nodes", {}):
            pop = h5[f"nodes/{name}"]
            type_ids = pop["node_type_id"][:].astype(np.int64)
            unknown = set(np.unique(type_ids).tolist()) - set(types) if types_path else set()
            if unknown:
                problems.append((str(types_path), f"node population {name}: node_type_id(s) {sorted(unknown)} "
                                                  f"are not in the node types table"))
            attributes = _Attributes(pop, type_ids, types, "node_type_id", "node_group_id", "node_group_index")
            kind = (declared.get(name) or {}).get("type")
            if kind is None:
                try:
                    models = set(attributes.get("model_type", np.arange(len(type_ids))).tolist())
                except KeyError:
                    models = set()
                kind = models.pop() if len(models) == 1 else "biophysical"
            self.nodes[name] = NodePopulation(name, len(type_ids), kind, path, types_path, pop, attributes)
        return problems

    def _open_edges(self, entry: dict) -> list:
        h5, path, types, types_path, problems = self._open_entry(entry, "edges")
        if h5 is None:
            return problems
        for name in h5.get("edges", {}):
            pop = h5[f"edges/{name}"]

            def population_of(dataset):
                value = pop[dataset].attrs.get("node_population")
                return value.decode() if isinstance(value, bytes) else (str(value) if value is not None else None)

            source, target = population_of("source_node_id"), population_of("target_node_id")
            if source is None or target is None:
                problems.append((str(path), f"edge population {name}: source_node_id/target_node_id carry no "
                                            f"'node_population' attribute"))
                continue
            type_ids = pop["edge_type_id"][:].astype(np.int64)
            attributes = _Attributes(pop, type_ids, types, "edge_type_id", "edge_group_id", "edge_group_index")
            self.edges[name] = EdgePopulation(name, len(type_ids), source, target, path, types_path, pop, attributes)
        return problems

    def _consistency(self) -> list:
        """Edges must connect nodes that exist (a config pointing at another circuit's files)."""
        problems = []
        for name, pop in self.edges.items():
            for end, population in (("source", pop.source), ("target", pop.target)):
                nodes = self.nodes.get(population)
                if nodes is None:
                    problems.append((str(pop._file), f"edge population {name}: its {end} node population "
                                                     f"{population!r} is not in the circuit"))
                    continue
                index = pop._h5.get(f"indices/{'target_to_source' if end == 'target' else 'source_to_target'}")
                ranges = None if index is None else (index.get("node_id_to_ranges") or index.get("node_id_to_range"))
                if ranges is not None and len(ranges) > nodes.size:
                    problems.append((str(pop._file), f"edge population {name}: indexes {len(ranges)} {end} nodes but "
                                                     f"{population} has {nodes.size}: the nodes and edges files do "
                                                     f"not belong together"))
        return problems

    def close(self) -> None:
        for handle in self._files:
            try:
                handle.close()
            except Exception:  # noqa: BLE001 - closing an already closed file
                pass
        self._files = []

    def __del__(self):
        self.close()

    def __repr__(self) -> str:
        return f"Circuit({str(self.config_path)!r})"

    # -- the livn block, and what a circuit without it lacks -------------------------------
    @property
    def name(self) -> str:
        if self.livn and self.livn.get("name"):
            return self.livn["name"]
        return self.directory.name

    @cached_property
    def electrodes(self) -> np.ndarray:
        """(channels, 3) electrode centres in µm; (0, 3) for a circuit without an MEA."""
        if not self.livn or not self.livn.get("stimulation_electrodes"):
            return np.zeros((0, 3))
        return np.loadtxt(self.livn["stimulation_electrodes"], skiprows=1, ndmin=2)[:, :3]

    # -- spike inputs of virtual nodes (from a simulation config) -------------------------
    def spike_inputs(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """population -> (node ids, times ms) of the SONATA spike-train inputs of the simulation
        config; a population it gives none for takes the trains livn built for it (the livn
        block's ``inputs``), if any."""
        out = {}
        from .reports import read_spike_report_all

        for name, spec in ((self.simulation or {}).get("inputs") or {}).items():
            if spec.get("input_type") != "spikes":
                continue
            module = spec.get("module", "sonata")
            if module not in ("sonata", "h5", "hdf5"):
                raise CircuitError([(str(self.simulation_path), f"inputs.{name}: spike module {module!r} is not "
                                                                f"supported (supported: sonata, h5)")])
            for population, (ids, times) in read_spike_report_all(spec["input_file"]).items():
                old = out.get(population)
                if old is not None:
                    ids, times = np.concatenate([old[0], ids]), np.concatenate([old[1], times])
                out[population] = (ids, times)
        for population, path in ((self.livn or {}).get("inputs") or {}).items():
            if population not in out:
                out[population] = read_spike_report_all(path).get(population, (np.zeros(0, np.int64), np.zeros(0)))
        return out

    @property
    def run_settings(self) -> dict:
        """The simulation config's ``run`` block ({} if none)."""
        return dict((self.simulation or {}).get("run") or {})


def _expand(config: dict, base: Path, value: str) -> str:
    """A path of ``config`` with its manifest applied, absolute (relative to ``base``)."""
    manifest = dict(config.get("manifest") or {})
    manifest.setdefault("$BASE_DIR", ".")
    # BMTK's special variable for the config's own folder, and its ${VAR} spelling
    value = value.replace("${configdir}", str(base))
    for _ in range(len(manifest) + 1):
        for key, replacement in manifest.items():
            replacement = replacement.replace("${configdir}", str(base))
            value = value.replace("${" + key[1:] + "}", replacement).replace(key, replacement)
    path = Path(value)
    return str(path if path.is_absolute() else (base / path).resolve())


def _expand_all(block, base: Path, config: dict | None = None):
    """Paths in a JSON block (strings with a '$' or ending in a known extension) resolved."""
    config = config if config is not None else (block if isinstance(block, dict) else {})
    if isinstance(block, dict):
        return {k: (v if k == "manifest" else _expand_all(v, base, config)) for k, v in block.items()}
    if isinstance(block, list):
        return [_expand_all(v, base, config) for v in block]
    if isinstance(block, str) and ("$" in block or block.endswith((".h5", ".csv", ".json", ".nml", ".swc", ".yaml"))):
        return _expand(config, base, block)
    return block

