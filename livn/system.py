"""Systems: a built SONATA circuit (:class:`System`) and the predefined ones (:func:`predefined`)."""

from __future__ import annotations

import hashlib
import os
from functools import cached_property
from pathlib import Path

import numpy as np
import platformdirs
from filelock import FileLock

from .build import BUILD_FORMAT
from .build.output import verify
from .build.mea import channel_members
from .resources import predefined_names, spec_path
from .spec import SpecError, SystemSpec, load_spec
from .spec.problems import Problem


def build_circuit(spec: SystemSpec, output: Path, owned: bool = False) -> Path:
    """:func:`livn.build.circuit.build_circuit`, imported when a build is needed (it needs libsonata)."""
    from .build.circuit import build_circuit as build

    return build(spec, output, owned=owned)


def cache_root() -> Path:
    """Where predefined systems are built: ``$LIVN_CACHE`` or the user cache directory."""
    return Path(os.environ.get("LIVN_CACHE") or platformdirs.user_cache_dir("livn")).absolute()


def content_hash(spec: SystemSpec) -> str:
    """SHA-256 of the build format, the spec's scale (if not 1), the spec and every file it
    references (by relative path)."""
    digest = hashlib.sha256(f"livn-build-format-{BUILD_FORMAT}\n".encode())
    if spec.scale != 1.0:
        digest.update(f"scale={spec.scale!r}\n".encode())
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


def check_scale(scale) -> float:
    """``scale`` as a float, or ValueError saying what is expected."""
    from .spec.check import scale_problems

    problems = scale_problems("scale", scale)
    if problems:
        raise ValueError(problems[0].message)
    return float(scale)


def predefined(name: str, scale: float = 1.0) -> Path:
    """Path of the circuit of predefined system ``name``, built from its shipped spec on first use.

    See :func:`built` for the cache.

    Parameters
    ----------
    name : str
        A predefined system, e.g. "EI2" or "CA1".
    scale : float
        The fraction of the system to build, in (0, 1]: area and cell counts scale by it;
        densities, layers and synapses per cell stay (e.g. ``predefined("CA1", scale=0.002)``).
    """
    if name not in predefined_names():
        raise ValueError(f"unknown system {name!r}; predefined systems: {', '.join(predefined_names())}")
    return built(spec_path(name), scale)


def built(path: str | os.PathLike, scale: float = 1.0) -> Path:
    """Path of the circuit of the spec at ``path`` (at ``scale``), built on first use.

    The circuit is cached under :func:`cache_root`, keyed by a hash of the spec and every file
    it references, so editing any of them gives a new build. Concurrent callers wait on a
    file lock; a build appears in the cache only once complete (atomic rename).

    Raises
    ------
    SpecError
        With every problem of the spec.
    """
    scale = check_scale(scale)
    spec = load_spec(Path(path), scale)
    label = spec.name if scale == 1.0 else f"{spec.name}-scale{scale:g}"
    target = cache_root() / "systems" / f"{label}-{content_hash(spec)[:16]}"
    from .build.parallel import World

    world = World()
    if world.size > 1:
        # under mpiexec every rank takes part in the build (it is collective); rank 0 holds the
        # lock against other jobs
        if world.bcast(not _intact(target) if world.rank == 0 else None):
            target.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(target) + ".lock") if world.rank == 0 else None
            if lock is not None:
                lock.acquire()
            try:
                build_circuit(spec, target, owned=True)
            finally:
                if lock is not None:
                    lock.release()
        return target
    if _intact(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not _intact(target):
            if target.exists():
                import warnings

                warnings.warn(f"the cached circuit {target} is damaged ({'; '.join(verify(target)[:3])}): "
                              f"building it again", RuntimeWarning, stacklevel=2)
            build_circuit(spec, target, owned=True)
    return target


def resolve_circuit(target: str | os.PathLike, scale: float = 1.0) -> Path:
    """The circuit of a predefined system's name, a spec file (both built on first use) or a
    circuit directory / configuration file (as it is)."""
    if isinstance(target, str) and target in predefined_names() and not os.path.exists(target):
        return predefined(target, scale)
    if str(target).endswith((".yaml", ".yml")) and os.path.isfile(target):
        return built(target, scale)
    if scale != 1.0:
        raise ValueError(f"scale={scale:g} applies to a predefined system or a spec (built at that scale); "
                         f"{str(target)!r} is a circuit, built already")
    if not os.path.exists(target):
        raise ValueError(f"{target}: no such circuit or spec file, and not a predefined system "
                         f"({', '.join(predefined_names())})")
    return Path(target)


def _intact(directory: Path) -> bool:
    """A cache entry is trusted only when every file it was written with is there, at its size."""
    return (directory / "circuit_config.json").is_file() and verify(directory) == []


class System:
    """A SONATA circuit: populations, positions, connections, parameters and (if livn built it) the MEA.

    Works from the circuit alone: a circuit another tool wrote (e.g. BMTK's NetworkBuilder)
    loads too; what it lacks (an MEA, livn's connectivity rules) is reported when asked for.

    Parameters
    ----------
    path : path-like
        A circuit directory, its ``circuit_config.json``, or a ``simulation_config.json``
        (whose spike inputs then drive the virtual nodes), e.g. ``predefined("EI2")``.

    Examples
    --------
    >>> system = System(predefined("EI2"))
    >>> system.num_neurons
    100
    """

    def __init__(self, path: str | os.PathLike):
        from .network.model import NetworkModel
        from .sonata import Circuit

        self.circuit = Circuit(path)
        self.config_path = self.circuit.config_path
        self.directory = self.circuit.directory
        self.config = self.circuit.config
        self.livn = self.circuit.livn or {}
        self.network = NetworkModel(self.circuit)

    def __repr__(self) -> str:
        return f"System({str(self.directory)!r})"

    @cached_property
    def content_key(self) -> str:
        """SHA-256 identifying what the circuit holds (the same for a rebuild of the same spec).

        From livn's manifest when livn built the circuit (each file's digest; a file too large
        to hash there by its size; a YAML spec by its data, so that editing a comment, as
        ``tune --promote`` and users do, keeps the key of a tuning study or a dataset);
        otherwise from the configuration and every nodes/edges file it names, read in full.
        """
        import json

        import yaml

        from .build.output import read_manifest

        digest = hashlib.sha256()
        files = read_manifest(self.directory)
        if files is not None:
            for name, facts in sorted(files.items()):
                identity = facts.get("sha256", facts["size"])
                if name.endswith((".yaml", ".yml")) and (self.directory / name).is_file():
                    data = yaml.safe_load((self.directory / name).read_text())
                    identity = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
                digest.update(f"{name}\0{identity}\0".encode())
            return digest.hexdigest()
        paths = {self.config_path}
        for kind in ("nodes", "edges"):
            for entry in self.config.get("networks", {}).get(kind, []):
                paths.update(Path(self.directory, entry[key]) for key in entry if key.endswith("_file"))
        for path in sorted(p for p in paths if p.is_file()):
            digest.update(path.name.encode() + b"\0")
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()

    # -- populations ---------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.network.name

    @property
    def num_neurons(self) -> int:
        """Number of simulated cells (biophysical and point process)."""
        return int(len(self.network.simulated_gids))

    @cached_property
    def _labels(self) -> np.ndarray:
        labels = np.empty(self.network.num_cells, dtype=object)
        for pop in self.network.populations.values():
            labels[pop.offset:pop.offset + pop.size] = pop.labels
        return labels

    @property
    def populations(self) -> list[str]:
        """Names of the simulated cell populations (``pop_name``), in gid order."""
        labels = self._labels[self.network.simulated_gids]
        return list(dict.fromkeys(labels.tolist()))

    def gids(self, population: str | None = None) -> np.ndarray:
        """Gids of ``population`` (a ``pop_name`` or a node population; all simulated cells if None)."""
        if population is None:
            return self.network.simulated_gids
        if population in self.network.populations:
            return self.network.populations[population].gids
        hits = np.flatnonzero(self._labels == population)
        if len(hits) == 0:
            known = list(dict.fromkeys(self._labels.tolist())) + list(self.network.populations)
            raise KeyError(f"no population {population!r}; known: {', '.join(known)}")
        return hits

    @cached_property
    def coordinates(self) -> np.ndarray:
        """Soma positions in µm, shape (cells, 3); row i is gid i."""
        return np.concatenate([p.positions for p in self.network.populations.values()])

    # -- parameters ----------------------------------------------------------------------
    @property
    def weight_names(self) -> list[str]:
        """Tunable synaptic weights, "SOURCE->TARGET.SYNAPSE" (multiples of the unit conductance)."""
        return self.network.weight_names

    def default_params(self) -> dict[str, float]:
        """The defaults: every weight, and the noise g0/sigma in µS ("noise.excitatory.g0", ...)."""
        return self.network.default_params()

    # -- connections ---------------------------------------------------------------------
    @property
    def num_edges(self) -> int:
        """Edges of every edge population (their sizes; the edges are not read)."""
        return int(sum(pop.size for pop in self.circuit.edges.values()))

    @cached_property
    def edges(self) -> dict[str, np.ndarray]:
        """Every edge (all edge populations): ``source``, ``target`` (gids), ``projection``,
        ``receptor`` (synapse type), ``syn_weight`` (µS), ``delay`` (ms), ``distance`` (µm, NaN if unknown)."""
        out = {k: [] for k in ("source", "target", "edge_type_id", "projection", "receptor", "syn_weight", "delay",
                               "distance", "afferent_section_id")}
        for name, pop in self.circuit.edges.items():
            sel = pop.select(None, [a for a in ("syn_weight", "delay", "distance", "afferent_section_id")
                                    if a in pop.attribute_names])
            n = len(sel.ids)
            source_pop, target_pop = self.network.populations[pop.source], self.network.populations[pop.target]
            info = self.network._edge_info[name]
            out["source"].append(sel.source + source_pop.offset)
            out["target"].append(sel.target + target_pop.offset)
            out["edge_type_id"].append(sel.edge_type_id)
            groups = np.array([info[t]["group"] if t in info else "?" for t in sel.edge_type_id.tolist()], dtype=object)
            out["projection"].append(np.array([g.rsplit(".", 1)[0] for g in groups], dtype=object))
            out["receptor"].append(np.array([g.rsplit(".", 1)[-1] for g in groups], dtype=object))
            for key, fill in (("syn_weight", np.nan), ("delay", np.nan), ("distance", np.nan),
                              ("afferent_section_id", -1)):
                dtype = np.int64 if key == "afferent_section_id" else float
                out[key].append(sel.attributes[key].astype(dtype) if key in sel.attributes else np.full(n, fill, dtype))
        return {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in out.items()}

    def _projection(self, projection: str) -> dict:
        rules = (self.livn.get("projections") or {}).get(projection)
        if rules is None:
            raise KeyError(f"no connectivity rule for projection {projection!r} in this circuit "
                           f"(known: {', '.join(self.livn.get('projections') or {}) or 'none: not built by livn'})")
        return rules

    def connections(self, projection: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(source gids, target gids, distances µm) of ``projection`` ("EXC->INH"), one per
        connected pair (a pair carries one edge per receptor)."""
        e = self.edges
        receptors = self._projection(projection)["receptors"] if projection in (self.livn.get("projections") or {}) \
            else sorted(set(e["receptor"][e["projection"] == projection].tolist()))
        mask = (e["projection"] == projection) & (e["receptor"] == receptors[0]) if receptors else e["projection"] == ""
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

        from .spec.model import GaussianKernel

        kernel = self._projection(projection)["kernel"]
        kernel = GaussianKernel(kernel["sigma_um"], kernel["p_max"], kernel["cutoff"])
        source, target = projection.split("->")
        edges = np.linspace(0.0, kernel.max_distance, bins + 1)
        source_gids, target_gids = self.gids(source), self.gids(target)
        pairs = cKDTree(self.coordinates[target_gids]).sparse_distance_matrix(
            cKDTree(self.coordinates[source_gids]), kernel.max_distance, output_type="ndarray")
        distance = pairs["v"][target_gids[pairs["i"]] != source_gids[pairs["j"]]]
        candidates = np.histogram(distance, edges)[0]
        connected = np.histogram(self.connections(projection)[2], edges)[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            probability = np.where(candidates > 0, connected / candidates, np.nan)
        return (edges[:-1] + edges[1:]) / 2, probability, candidates

    @property
    def theta_frequency(self) -> float | None:
        """The frequency (Hz) of the theta modulation the input drives share, None without one
        (or when the drives disagree: then no single rhythm to measure locking to)."""
        drives = (self.livn.get("drives") or {}).values()
        frequencies = {d["poisson"]["theta"]["frequency_hz"] for d in drives if (d.get("poisson") or {}).get("theta")}
        return frequencies.pop() if len(frequencies) == 1 else None

    # -- MEA -----------------------------------------------------------------------------
    @property
    def electrodes(self) -> np.ndarray:
        """Electrode centres in µm, shape (channels, 3); row i is channel i ((0, 3) without an MEA)."""
        return self.circuit.electrodes

    @property
    def num_channels(self) -> int:
        return len(self.electrodes)

    @cached_property
    def channel_members(self) -> list[np.ndarray]:
        """For each channel, the gids within the recording radius (x-y) of its electrode."""
        mea = self.livn.get("mea") or {}
        cells = self.gids()
        members = channel_members(self.electrodes, self.coordinates[cells], mea.get("recording_radius_um", 60.0))
        return [cells[m] for m in members]

    # -- summary -------------------------------------------------------------------------
    def summary(self) -> str:
        """A readable account of the circuit: populations, projections, distances, MEA."""
        livn = self.livn
        culture = livn.get("culture", {})
        size = culture.get("size_um")
        where = f" in a {size[0]:g} x {size[1]:g} um culture (seed {livn.get('seed')})" if size else ""
        lines = [f"System {self.name}: {self.num_neurons} neurons{where}", f"  circuit: {self.directory}", "",
                 "Populations"]
        roles = livn.get("populations") or {}
        for p in self.populations:
            count = len(self.gids(p))
            extra = f", {roles[p]['role']}, cell {roles[p]['cell']}" if p in roles else ""
            lines.append(f"  {p:<8} {count:>7} cells  ({count / max(self.num_neurons, 1):.0%}{extra})")
        for pop in self.network.populations.values():
            if pop.kind == "virtual":
                lines.append(f"  {pop.name:<8} {pop.size:>7} virtual nodes (spike inputs)")
        e = self.edges
        lines += ["", "Projections   connections  mean in-degree  distance mean/median/max (um)  delay min/max (ms)  synapses"]
        projections = list(dict.fromkeys(e["projection"].tolist()))
        total = 0
        for name in projections:
            source, target, distance = self.connections(name)
            total += len(source)
            n_target = max(len(np.unique(target)), 1)
            try:
                n_target = len(self.gids(name.split("->")[1]))
            except KeyError:
                pass
            known = distance[np.isfinite(distance)]
            stats = (f"{known.mean():6.1f} / {np.median(known):6.1f} / {known.max():6.1f}" if len(known) else "     -")
            delay = e["delay"][e["projection"] == name]
            receptors = "+".join(dict.fromkeys(e["receptor"][e["projection"] == name].tolist()))
            lines.append(f"  {name:<10} {len(source):>12} {len(source) / n_target:>15.1f}  {stats:>30}  "
                         f"{np.nanmin(delay):7.3f} / {np.nanmax(delay):6.3f}    {receptors}")
        lines.append(f"  {'total':<10} {total:>12} {total / max(self.num_neurons, 1):>15.1f}")
        mea = livn.get("mea")
        if mea and self.num_channels:
            counts = np.array([len(m) for m in self.channel_members])
            covered = len(np.unique(np.concatenate(self.channel_members + [np.array([], dtype=int)])))
            lines += ["", f"MEA: {self.num_channels} channels ({mea['grid'][0]} x {mea['grid'][1]}, pitch "
                          f"{mea['pitch_um']:g} um, electrode radius {mea['electrode_radius_um']:g} um, offset "
                          f"{mea['offset_um']:g} um)",
                      f"  cells per channel within {mea['recording_radius_um']:g} um: mean {counts.mean():.1f}, "
                      f"min {counts.min()}, max {counts.max()}; cells on no channel: {self.num_neurons - covered}"]
        else:
            lines += ["", "MEA: none (this circuit has no livn MEA block)"]
        params = self.default_params()
        lines += ["", "Default parameters"] + [f"  {k:<24} {v:g}" for k, v in params.items()]
        return "\n".join(lines)
