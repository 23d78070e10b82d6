"""Systems: a built SONATA circuit (:class:`System`) and the predefined ones (:func:`predefined`)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np
import platformdirs
from filelock import FileLock

from .build import BUILD_FORMAT, build_circuit
from .build.mea import channel_members
from .resources import predefined_names, spec_path
from .spec import SpecError, SystemSpec, load_spec
from .spec.problems import Problem


def cache_root() -> Path:
    """Where predefined systems are built: ``$LIVN_CACHE`` or the user cache directory."""
    return Path(os.environ.get("LIVN_CACHE") or platformdirs.user_cache_dir("livn")).absolute()


def content_hash(spec: SystemSpec) -> str:
    """SHA-256 of the build format, the spec and every file it references (by relative path)."""
    digest = hashlib.sha256(f"livn-build-format-{BUILD_FORMAT}\n".encode())
    base = spec.base_directory
    for path in sorted(spec.files, key=lambda p: p.relative_to(base).as_posix()):
        digest.update(path.relative_to(base).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def resolve_spec(target: str | os.PathLike) -> Path:
    """A spec file from a path or the name of a predefined system ("EI2")."""
    path = Path(target)
    if path.is_file():
        return path
    if str(target) in predefined_names():
        return spec_path(str(target))
    raise SpecError([Problem(str(target), None, "", f"no such spec file or predefined system; "
                                                    f"predefined systems: {', '.join(predefined_names())}")])


def predefined(name: str) -> Path:
    """Path of the circuit of predefined system ``name``, built from its shipped spec on first use.

    The circuit is cached under :func:`cache_root`, keyed by a hash of the spec and every file
    it references, so editing any of them gives a new build. Concurrent callers wait on a
    file lock; a build appears in the cache only once complete (atomic rename).
    """
    if name not in predefined_names():
        raise ValueError(f"unknown system {name!r}; predefined systems: {', '.join(predefined_names())}")
    spec = load_spec(spec_path(name))
    target = cache_root() / "systems" / f"{name}-{content_hash(spec)[:16]}"
    if (target / "circuit_config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "circuit_config.json").is_file():
            build_circuit(spec, target)
    return target


class System:
    """A built circuit: populations, positions, connections and MEA, read from SONATA.

    Parameters
    ----------
    path : path-like
        A circuit directory (or its ``circuit_config.json``), e.g. ``predefined("EI2")``.

    Examples
    --------
    >>> system = System(predefined("EI2"))
    >>> system.num_neurons
    100
    """

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        self.config_path = (path / "circuit_config.json" if path.is_dir() else path).absolute()
        if not self.config_path.is_file():
            raise FileNotFoundError(f"{path} is not a circuit: no circuit_config.json")
        self.directory = self.config_path.parent
        self.config = json.loads(self.config_path.read_text())
        livn = self.config.get("livn")
        if livn is None:
            raise ValueError(f"{self.config_path} was not built by livn (no 'livn' block)")
        self.spec: SystemSpec = load_spec(self._expand(livn["spec"]))
        network = self.config["networks"]
        self._nodes_file = self._expand(network["nodes"][0]["nodes_file"])
        self._node_population = next(iter(network["nodes"][0]["populations"]))
        self._edges_file = self._expand(network["edges"][0]["edges_file"])
        self._edge_population = next(iter(network["edges"][0]["populations"]))
        self._stimulation_electrodes = self._expand(livn["stimulation_electrodes"])

    def _expand(self, value: str) -> Path:
        manifest = self.config.get("manifest", {})
        for _ in range(len(manifest) + 1):
            for key, replacement in manifest.items():
                value = value.replace(key, replacement)
        return (self.directory / value).resolve()

    def __repr__(self) -> str:
        return f"System({str(self.directory)!r})"

    # -- populations ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def num_neurons(self) -> int:
        return self.spec.num_neurons

    @property
    def populations(self) -> list[str]:
        """Population names, in gid order."""
        return [p.name for p in self.spec.populations]

    def gids(self, population: str | None = None) -> np.ndarray:
        """Gids of ``population`` (all cells if None)."""
        if population is None:
            return np.arange(self.num_neurons)
        p = self.spec.population(population)
        return np.arange(p.first_gid, p.first_gid + p.count)

    @cached_property
    def coordinates(self) -> np.ndarray:
        """Soma positions in µm, shape (num_neurons, 3); row i is gid i."""
        with h5py.File(self._nodes_file, "r") as h5:
            group = h5[f"nodes/{self._node_population}/0"]
            return np.column_stack([group[axis][:] for axis in "xyz"]).astype(float)

    # -- parameters ----------------------------------------------------------------------
    @property
    def weight_names(self) -> list[str]:
        """Tunable synaptic weights, "SOURCE->TARGET.RECEPTOR" (multiples of the unit conductance)."""
        return self.spec.weight_names

    def default_params(self) -> dict[str, float]:
        """The tuned defaults: every weight, and the noise g0/sigma in µS ("noise.excitatory.g0", ...)."""
        return self.spec.default_params()

    # -- connections ---------------------------------------------------------------------
    @cached_property
    def edges(self) -> dict[str, np.ndarray]:
        """Every edge: ``source``, ``target`` (gids), ``edge_type_id``, ``projection``,
        ``receptor`` (names), ``syn_weight`` (µS), ``delay`` (ms), ``distance`` (µm)."""
        with h5py.File(self._edges_file, "r") as h5:
            pop = h5[f"edges/{self._edge_population}"]
            out = {"source": pop["source_node_id"][:].astype(np.int64),
                   "target": pop["target_node_id"][:].astype(np.int64),
                   "edge_type_id": pop["edge_type_id"][:].astype(np.int64)}
            for name in ("syn_weight", "delay", "distance", "afferent_section_id"):
                out[name] = pop["0"][name][:]
        types = self.edge_types
        lookup = {t["edge_type_id"]: t for t in types}
        ids = sorted(lookup)
        position = np.searchsorted(ids, out["edge_type_id"])
        out["projection"] = np.array([lookup[i]["projection"] for i in ids])[position]
        out["receptor"] = np.array([lookup[i]["receptor"] for i in ids])[position]
        return out

    @cached_property
    def edge_types(self) -> list[dict]:
        """Rows of the edge types CSV (edge_type_id, projection, receptor, ...)."""
        path = self._expand(self.config["networks"]["edges"][0]["edge_types_file"])
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter=" "))
        for row in rows:
            row["edge_type_id"] = int(row["edge_type_id"])
        return rows

    def connections(self, projection: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(source gids, target gids, distances µm) of ``projection`` ("EXC->INH"), one per
        connected pair (a pair carries one edge per receptor)."""
        e = self.edges
        first = next(r for r in self.spec.projections if r.name == projection).receptors[0]
        mask = (e["projection"] == projection) & (e["receptor"] == first)
        return e["source"][mask], e["target"][mask], e["distance"][mask].astype(float)

    def connection_probability(self, projection: str, bins: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Measured connection probability of ``projection`` against distance.

        Returns
        -------
        centres : ndarray
            Bin centres in µm, up to the kernel's cutoff distance.
        probability : ndarray
            Connected pairs / candidate pairs (no self-pairs) in each bin (NaN where empty).
        candidates : ndarray
            Number of candidate pairs in each bin.
        """
        from scipy.spatial import cKDTree

        proj = next(r for r in self.spec.projections if r.name == projection)
        edges = np.linspace(0.0, proj.kernel.max_distance, bins + 1)
        source_gids, target_gids = self.gids(proj.source), self.gids(proj.target)
        pairs = cKDTree(self.coordinates[target_gids]).sparse_distance_matrix(
            cKDTree(self.coordinates[source_gids]), proj.kernel.max_distance, output_type="ndarray")
        distance = pairs["v"][target_gids[pairs["i"]] != source_gids[pairs["j"]]]
        candidates = np.histogram(distance, edges)[0]
        connected = np.histogram(self.connections(projection)[2], edges)[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            probability = np.where(candidates > 0, connected / candidates, np.nan)
        return (edges[:-1] + edges[1:]) / 2, probability, candidates

    # -- MEA -----------------------------------------------------------------------------
    @cached_property
    def electrodes(self) -> np.ndarray:
        """Electrode centres in µm, shape (channels, 3); row i is channel i."""
        return np.loadtxt(self._stimulation_electrodes, skiprows=1, ndmin=2)[:, :3]

    @property
    def num_channels(self) -> int:
        return len(self.electrodes)

    @cached_property
    def channel_members(self) -> list[np.ndarray]:
        """For each channel, the gids within the recording radius (x-y) of its electrode."""
        return channel_members(self.electrodes, self.coordinates, self.spec.mea.recording_radius)

    # -- summary -------------------------------------------------------------------------
    def summary(self) -> str:
        """A readable account of the circuit: populations, projections, distances, MEA."""
        w, h = self.spec.size
        lines = [f"System {self.name}: {self.num_neurons} neurons in a {w:g} x {h:g} um culture (seed {self.spec.seed})",
                 f"  circuit: {self.directory}", "", "Populations"]
        for p in self.spec.populations:
            lines.append(f"  {p.name:<8} {p.count:>7} cells  ({p.count / self.num_neurons:.0%}, {p.role}, cell {p.cell_id})")
        lines += ["", "Projections   connections  mean in-degree  distance mean/median/max (um)  delay min/max (ms)  receptors"]
        for proj in self.spec.projections:
            source, target, distance = self.connections(proj.name)
            n_target = self.spec.population(proj.target).count
            delay = self.spec.delay.of(distance) if len(distance) else np.zeros(1)
            stats = (f"{distance.mean():6.1f} / {np.median(distance):6.1f} / {distance.max():6.1f}"
                     if len(distance) else "     -")
            lines.append(f"  {proj.name:<10} {len(source):>12} {len(source) / n_target:>15.1f}  {stats:>30}  "
                         f"{delay.min():7.3f} / {delay.max():6.3f}    {'+'.join(proj.receptors)}")
        total = sum(len(self.connections(p.name)[0]) for p in self.spec.projections)
        lines.append(f"  {'total':<10} {total:>12} {total / self.num_neurons:>15.1f}")
        mea = self.spec.mea
        counts = np.array([len(m) for m in self.channel_members])
        lines += ["", f"MEA: {self.num_channels} channels ({mea.grid[0]} x {mea.grid[1]}, pitch {mea.pitch:g} um, "
                      f"electrode radius {mea.electrode_radius:g} um, offset {mea.offset:g} um)",
                  f"  cells per channel within {mea.recording_radius:g} um: mean {counts.mean():.1f}, "
                  f"min {counts.min()}, max {counts.max()}; cells on no channel: "
                  f"{self.num_neurons - len(np.unique(np.concatenate(self.channel_members + [np.array([], dtype=int)])))}"]
        params = self.default_params()
        lines += ["", "Default parameters"] + [f"  {k:<24} {v:g}" for k, v in params.items()]
        return "\n".join(lines)
