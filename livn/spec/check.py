"""Validate a spec file and turn it into a :class:`SystemSpec`: schema, then meaning.

Every problem is collected; nothing stops at the first.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

from .model import (MEA, Delay, GaussianKernel, Layer, Noise, OUConductance, PoissonDrive, Population,
                    Projection, Receptor, SynapseSite, SystemSpec, ThetaModulation)
from .neuroml import SEGMENT_GROUPS, cell_groups, closure, read_neuroml
from .problems import Problem, SpecError, relative_name
from .schema import schema_problems
from .source import Document, load_document
from .units import UnitError, parse_quantity

#: the largest length a spec may give (µm; 1 m) and the most MEA channels livn simulates
MAX_LENGTH = 1e6
MAX_CHANNELS = 65536
MAX_RESISTIVITY = 1e4  # Ω·m

_PROJECTION = re.compile(r"^\s*(\w+)\s*->\s*(\w+)\s*$")
_WEIGHT = re.compile(r"^\s*(\w+)\s*->\s*(\w+)\s*\.\s*(\w+)\s*$")


#: default length of the spike trains a build writes for a virtual population (ms)
DEFAULT_DRIVE_DURATION = 10_000.0


def load_spec(path, scale: float = 1.0) -> SystemSpec:
    """Load and validate the spec at ``path``.

    Parameters
    ----------
    path : path-like
    scale : float
        The fraction of the system to build, in (0, 1]: the culture's area and every cell
        count scale by it (each per-layer count rounded half to even, at least one cell per
        population); densities, layer depths and synapses per cell stay as the spec gives them.

    Raises
    ------
    SpecError
        Listing every problem found, each with file, line and path.
    """
    spec, problems = check_spec(path, scale)
    if spec is None or any(p.severity == "error" for p in problems):
        raise SpecError(problems)
    return spec


def neuroml_problems(spec: SystemSpec) -> list[Problem]:
    """Every problem of the spec's NeuroML models, read as strictly as a target reads them
    (quantities with their dimensions, supported elements, ids), with file and line."""
    from ..neuroml import NeuroMLError, read_cell, read_noise_type, read_synapse

    problems = []

    def attempt(read, *args):
        try:
            read(*args)
        except NeuroMLError as err:
            problems.extend(Problem(relative_name(Path(f)), line, "", message) for f, line, message in err.problems)

    for population in spec.simulated:
        attempt(read_cell, population.cell, population.cell_id)
    for receptor in spec.receptors:
        attempt(read_synapse, receptor.model, receptor.component_id)
    if spec.noise is not None:
        attempt(read_noise_type, spec.noise.model)
    unique = list(dict.fromkeys(problems))
    return unique


def scale_problems(path, scale) -> list[Problem]:
    """The problem with a ``scale`` argument, if any (expected a finite number in (0, 1])."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) \
            or not 0 < scale <= 1:
        return [Problem(str(path), None, "scale", f"expected scale to be a number in (0, 1] (the fraction of the "
                                                  f"system to build, e.g. 0.002), found {scale!r}")]
    return []


def check_spec(path, scale: float = 1.0) -> tuple[SystemSpec | None, list[Problem]]:
    """Validate ``path`` at ``scale``; return the spec (None if it has errors) and all problems found."""
    path = Path(path).resolve()
    bad_scale = scale_problems(relative_name(path), scale)
    if bad_scale:
        return None, bad_scale
    doc = load_document(path)
    if doc.problems and doc.data is None:
        return None, doc.problems
    if doc.data is None and not doc.problems:
        return None, [doc.problem((), "the file is empty; expected a spec (a mapping with format, name, culture, ...)")]
    if not isinstance(doc.data, dict):
        return None, doc.problems + [doc.problem((), f"expected a mapping at the top of the file, found {type(doc.data).__name__}")]
    problems = list(doc.problems) + schema_problems(doc)
    broken = {p.path for p in problems}
    checker = _Meaning(doc, broken, float(scale))
    spec = checker.build()
    problems += checker.problems
    if spec is not None:
        problems += neuroml_problems(spec)
    # a value the schema already rejected is not reported twice
    seen, unique = set(), []
    for p in problems:
        if (p.file, p.path, p.message) not in seen:
            seen.add((p.file, p.path, p.message))
            unique.append(p)
    unique.sort(key=lambda p: (p.file != doc.name, p.file, p.line or 0, p.path))
    if any(p.severity == "error" for p in unique):
        return None, unique
    return spec, unique


class _Meaning:
    """Semantic checks on a schema-checked document, building the model as it goes."""

    def __init__(self, doc: Document, broken: set, scale: float = 1.0):
        self.doc = doc
        layers = self.doc.data.get("culture", {}).get("layers") if isinstance(self.doc.data.get("culture"), dict) else None
        # a layer with wrong bounds is still a layer: other entries naming it are not wrong too
        self.layer_names = [n for n in layers] if isinstance(layers, dict) else []
        self.skipped: set = set()  # populations the schema rejected: what refers to them is not checked
        self.scale = scale
        self.broken = broken
        self.problems: list[Problem] = []
        self.neuroml: dict = {}

    # -- helpers -------------------------------------------------------------------------
    def error(self, key, message):
        self.problems.append(self.doc.problem(key, message))

    def ok(self, key) -> bool:
        """True if the schema found nothing wrong at or below ``key``."""
        dotted = self.doc.problem(key, "").path
        return not any(b == dotted or b.startswith(dotted + ".") or b.startswith(dotted + "[") for b in self.broken)

    def get(self, *key, default=None):
        value = self.doc.data
        for part in key:
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and isinstance(part, int) and part < len(value):
                value = value[part]
            else:
                return default
        return value

    def quantity(self, key, dimension, positive=False, nonnegative=False) -> float | None:
        value = self.get(*key)
        if value is None or not self.ok(key):
            return None
        try:
            number = parse_quantity(value, dimension)
        except UnitError as err:
            self.error(key, str(err))
            return None
        if positive and not number > 0:
            self.error(key, f"expected a {dimension} > 0, found {value!r}")
            return None
        if nonnegative and number < 0:
            self.error(key, f"expected a {dimension} ≥ 0, found {value!r}")
            return None
        if dimension == "length" and abs(number) > MAX_LENGTH:
            self.error(key, f"expected a length of at most {MAX_LENGTH / 1e6:g} m (a culture, an electrode array), "
                            f"found {value!r}")
            return None
        return number

    def file(self, key, kind) -> Path | None:
        """Resolve a referenced file against the spec's folder; report if it is missing."""
        value = self.get(*key)
        if not isinstance(value, str) or not self.ok(key):
            return None
        target = (self.doc.path.parent / value).resolve()
        if not target.is_file():
            self.error(key, f"{kind} file {value!r} not found (looked at {relative_name(target)})")
            return None
        return target

    def neuroml_file(self, key, kind):
        target = self.file(key, kind)
        if target is None:
            return None, None
        problems: list = []
        info = read_neuroml(target, problems, self.neuroml)
        self.problems += problems
        return target, info

    # -- sections ------------------------------------------------------------------------
    def build(self) -> SystemSpec | None:
        size = [self.quantity(("culture", "size", i), "length", positive=True) for i in range(2)]
        # a scaled system keeps the culture's shape and its cell densities
        size = [None if x is None else x * math.sqrt(self.scale) for x in size]
        thickness = self.quantity(("culture", "thickness"), "length", nonnegative=True) or 0.0
        layers = self.layers()
        if layers and self.get("culture", "thickness") is not None:
            self.error(("culture", "thickness"), "give either 'thickness' or 'layers', not both (the layers set the "
                                                 "culture's depth)")
        if layers:
            thickness = max(layer.z1 for layer in layers)
        populations = self.populations(layers)
        receptors = self.receptors()
        kernel = self.kernel(("connectivity", "kernel"))
        delay = Delay(self.quantity(("connectivity", "delay", "velocity"), "velocity", positive=True),
                      self.quantity(("connectivity", "delay", "min"), "time", nonnegative=True),
                      self.quantity(("connectivity", "delay", "synaptic"), "time", nonnegative=True) or 0.0)
        projections = self.projections(populations, receptors, kernel)
        noise = self.noise(populations)
        mea = self.mea(size)
        weights = self.weights(projections)
        temperature = self.temperature()
        if any(p.severity == "error" for p in self.problems) or self.broken:
            return None
        files = [self.doc.path]
        for path in self.neuroml:
            for f in closure(path, self.neuroml):
                if f not in files:
                    files.append(f)
        return SystemSpec(
            path=self.doc.path, name=self.get("name"), description=self.get("description", default=""),
            seed=self.get("seed"), size=tuple(size), thickness=thickness,
            populations=tuple(populations.values()), receptors=tuple(receptors.values()),
            projections=tuple(projections), delay=delay, noise=noise, mea=mea,
            weights=tuple(weights), files=tuple(files), layers=tuple(layers), scale=self.scale,
            temperature=temperature)

    def temperature(self) -> float | None:
        if self.get("culture", "temperature") is None:
            return None
        value = self.quantity(("culture", "temperature"), "temperature")
        if value is not None and not 0 <= value <= 50:
            self.error(("culture", "temperature"), f"expected a temperature at which neurons live, 0-50 degC, "
                                                   f"found {self.get('culture', 'temperature')!r}")
            return None
        return value

    def range(self, key) -> tuple | None:
        """A [from, to] length pair with from < to."""
        low, high = (self.quantity(key + (i,), "length", nonnegative=True) for i in range(2))
        if low is None or high is None:
            return None
        if not low < high:
            self.error(key, f"expected [from, to] with from < to, found {self.get(*key)!r}")
            return None
        return low, high

    def layers(self) -> list:
        data = self.get("culture", "layers")
        if not isinstance(data, dict) or not self.ok(("culture", "layers")):
            return []
        out = []
        for name in data:
            bounds = self.range(("culture", "layers", name))
            if bounds is None:
                continue
            if out and bounds[0] < out[-1].z1:
                self.error(("culture", "layers", name), f"layer {name} [{bounds[0]:g}, {bounds[1]:g}] um overlaps or "
                                                        f"precedes layer {out[-1].name} [{out[-1].z0:g}, {out[-1].z1:g}] "
                                                        f"um; list layers in order of depth, without overlap")
                continue
            out.append(Layer(name, *bounds))
        return out

    def populations(self, layers: list) -> dict:
        data = self.get("populations", default={})
        if not isinstance(data, dict):
            return {}
        neurons = self.get("culture", "neurons")
        # a population the schema rejected is left out; the others are still checked
        entries = {name: p for name, p in data.items() if isinstance(p, dict) and self.ok(("populations", name))}
        complete = len(entries) == len(data)  # sums over populations mean something only then
        self.skipped = set(data) - set(entries)
        counts = {name: p.get("count") for name, p in entries.items()}
        fractions = {name: p.get("fraction") for name, p in entries.items()}
        if any(f is not None for f in fractions.values()) and any(f is None for f in fractions.values()):
            self.error(("populations",), "give every population a 'fraction', or none ('count' or 'layers'), not a mix")
            return {}
        if fractions and all(f is not None for f in fractions.values()):
            total = sum(fractions.values())
            if not isinstance(neurons, int):
                self.error(("culture",), "populations given as fractions need culture.neurons (the total)")
            elif complete and not math.isclose(total, 1.0, abs_tol=1e-9):
                parts = " + ".join(f"{n} {f:g}" for n, f in fractions.items())
                self.error(("populations",), f"population fractions must sum to 1, found {total:g} ({parts})")
            elif self.ok(("culture", "neurons")):
                counts = _apportion(neurons, fractions)
                for name, count in counts.items():
                    if count < 1:
                        self.error(("populations", name, "fraction"),
                                   f"fraction {fractions[name]:g} of {neurons} neurons leaves no cell in {name}")
                scaled = max(len(fractions), round(neurons * self.scale))
                counts = _apportion(scaled, fractions) if scaled != neurons else counts
        else:
            per_layer = {name: self.layer_counts(name, entry.get("layers"), layers) for name, entry in entries.items()}
            for name, split in per_layer.items():
                if split is not None:
                    counts[name] = sum(n for _, n in split)
            simulated = {n: c for n, c in counts.items() if "drive" not in entries[n] and isinstance(c, int)}
            if complete and isinstance(neurons, int) and self.ok(("culture", "neurons")) \
                    and sum(simulated.values()) != neurons:
                parts = " + ".join(f"{n} {c}" for n, c in simulated.items())
                self.error(("culture", "neurons"), f"expected the simulated populations' counts to sum to "
                                                   f"culture.neurons = {neurons}, found {sum(simulated.values())} ({parts})")
            for name, split in per_layer.items():
                if split is not None:
                    per_layer[name] = _scale_layers(split, self.scale)
                    counts[name] = sum(n for _, n in per_layer[name])
                elif isinstance(counts.get(name), int):
                    counts[name] = max(1, round(counts[name] * self.scale))
        out = {}
        for name, entry in entries.items():
            key = ("populations", name)
            drive = self.drive(key + ("drive",)) if "drive" in entry else None
            path, cell_id = None, None
            if "cell" in entry:
                path, info = self.neuroml_file(key + ("cell",), "cell")
                if info is not None:
                    if len(info.cells) != 1:
                        self.error(key + ("cell",), f"expected the file to define exactly one <cell>, found {len(info.cells)}")
                    else:
                        cell_id = next(iter(info.cells))
            self.file(key + ("morphology",), "morphology")
            split = ()
            if "layers" in entry:
                split = tuple(per_layer.get(name) or ())
            elif layers and "count" in entry:
                self.error(key, f"the culture has layers ({', '.join(l.name for l in layers)}): give {name}'s cells "
                                f"per layer ('layers: {{{layers[0].name}: N}}') rather than a 'count'")
            counts_by_layer = entry.get("layers") if isinstance(entry.get("layers"), dict) else {}
            occupied = {layer for layer, n in counts_by_layer.items() if n}
            if set(counts_by_layer) - set(self.layer_names):
                occupied = None  # the counts name an unknown layer (reported): depths are not checked against them
            depth = self.depth(key, entry.get("depth"), layers, occupied)
            extent = None
            if "axon_extent" in entry and self.ok(key + ("axon_extent",)):
                extent = tuple(self.quantity(key + ("axon_extent", i), "length", positive=True) for i in range(2))
            sites = self.synapse_sites(key, entry.get("synapses"), layers, path, cell_id)
            if sites and "drive" in entry:
                self.error(key + ("synapses",), f"{name} is a virtual population (spike sources): it has no synapses")
            out[name] = Population(name, counts.get(name) or 0, path, cell_id, entry.get("role"), 0,
                                   layers=split, depth=depth, drive=drive, axon_extent=extent, synapses=sites)
        # gids: simulated populations first, in spec order, then the virtual ones
        first = 0
        for population in sorted(out.values(), key=lambda p: p.virtual):
            out[population.name] = replace(population, first_gid=first)
            first += population.count
        return out

    def synapse_sites(self, key, data, layers: list, cell: Path | None, cell_id: str | None) -> tuple:
        if not isinstance(data, dict) or not self.ok(key + ("synapses",)):
            return ()
        known = set(self.layer_names) or {layer.name for layer in layers}
        groups = None
        if cell is not None and cell_id is not None and self.neuroml.get(cell) is not None:
            groups = cell_groups(cell, cell_id, self.neuroml)
        out = []
        for site, mean in data.items():
            where = key + ("synapses", site)
            parts = site.split("/")
            group, layer, kind = parts[0], (parts[1] if len(parts) == 3 else None), parts[-1]
            group = SEGMENT_GROUPS.get(group, group)
            if layer is not None and layer not in known:
                self.error(where, f"unknown layer {layer!r}; the culture's layers: {', '.join(sorted(known)) or 'none'}")
                continue
            if groups is not None and group not in groups:
                self.error(where, f"the cell has no segment group {group!r} (its groups: {', '.join(sorted(groups))})")
                continue
            out.append(SynapseSite(group, layer, kind, float(mean)))
        return tuple(out)

    def layer_counts(self, name: str, data, layers: list) -> list | None:
        """[(layer, count)] in the culture's layer order; None (and problems) if not given or wrong."""
        key = ("populations", name, "layers")
        if not isinstance(data, dict) or not self.ok(key):
            return None
        known = list(self.layer_names)
        if not layers:
            self.error(key, "cells are given per layer, but the culture has no 'layers'")
            return None
        valid = True
        for layer in data:
            if layer not in known:
                valid = False
                self.error(key + (layer,), f"unknown layer {layer!r}; the culture's layers: {', '.join(known)}")
        if valid and not any(data.values()):
            self.error(key, f"expected at least one cell in some layer, found none")
            valid = False
        return [(layer, data.get(layer, 0)) for layer in known if data.get(layer)] if valid else None

    def depth(self, key, data, layers: list, occupied: set) -> tuple:
        if not isinstance(data, dict) or not self.ok(key + ("depth",)):
            return ()
        by_name = {layer.name: layer for layer in layers}
        out = []
        for name in data:
            where = key + ("depth", name)
            if name in self.layer_names and name not in by_name:
                continue  # the layer itself is wrong, and reported
            if name not in by_name:
                self.error(where, f"unknown layer {name!r}; the culture's layers: {', '.join(by_name) or 'none'}")
                continue
            if occupied is not None and name not in occupied:
                self.error(where, f"a depth range for layer {name}, where the population has no cells")
                continue
            bounds = self.range(where)
            layer = by_name[name]
            if bounds is None:
                continue
            if bounds[0] < layer.z0 or bounds[1] > layer.z1:
                self.error(where, f"expected a range within layer {name} [{layer.z0:g}, {layer.z1:g}] um, found "
                                  f"[{bounds[0]:g}, {bounds[1]:g}] um")
                continue
            out.append((name, *bounds))
        return tuple(out)

    def drive(self, key) -> PoissonDrive | None:
        if not self.ok(key):
            return None
        rate = self.quantity(key + ("poisson", "rate"), "frequency", nonnegative=True)
        theta = None
        if self.get(*key, "poisson", "theta") is not None:
            where = key + ("poisson", "theta")
            frequency = self.quantity(where + ("frequency",), "frequency", positive=True)
            phase = self.quantity(where + ("phase",), "angle") if self.get(*where, "phase") is not None else 0.0
            theta = ThetaModulation(frequency, self.get(*where, "depth"), phase)
        duration = DEFAULT_DRIVE_DURATION
        if self.get(*key, "duration") is not None:
            duration = self.quantity(key + ("duration",), "time", positive=True)
        if rate is not None and duration is not None and rate * duration / 1e3 > 1e5:
            self.error(key, f"a train of {rate:g} Hz for {duration:g} ms has ~{rate * duration / 1e3:.3g} spikes per "
                            f"cell; expected at most 1e5 (a shorter duration or a lower rate)")
        return PoissonDrive(rate, theta, duration)

    def receptors(self) -> dict:
        data = self.get("receptors", default={})
        out = {}
        for name in data if isinstance(data, dict) else []:
            path, info = self.neuroml_file(("receptors", name, "model"), "synapse model")
            component, kinetics = None, ()
            if info is not None:
                if len(info.synapses) != 1:
                    self.error(("receptors", name, "model"),
                               f"expected the file to define exactly one synapse, found {len(info.synapses)}")
                else:
                    component = info.synapses[0]
                    kinetics = self._kinetics(("receptors", name, "model"), info.synapse_attributes[component])
            g = self.quantity(("receptors", name, "unit_conductance"), "conductance", positive=True)
            out[name] = Receptor(name, path, component, g, kinetics)
        return out

    def _kinetics(self, key, attributes: dict) -> tuple:
        """(tau_rise ms, tau_decay ms, erev mV) of a NeuroML synapse element."""
        values = []
        for attribute, dimension, default in (("tauRise", "time", "0ms"), ("tauDecay", "time", None),
                                              ("erev", "voltage", None)):
            text = attributes.get(attribute, default)
            try:
                values.append(parse_quantity(text, dimension))
            except UnitError as err:
                self.error(key, f"synapse {attributes.get('id')!r} attribute {attribute}: {err}")
                return ()
        return tuple(values)

    def kernel(self, key) -> GaussianKernel | None:
        if self.get(*key) is None or not self.ok(key):
            return None
        sigma = self.quantity(key + ("gaussian", "sigma"), "length", positive=True)
        p_max, cutoff = self.get(*key, "gaussian", "p_max"), self.get(*key, "gaussian", "cutoff")
        if isinstance(p_max, (int, float)) and isinstance(cutoff, (int, float)) and cutoff >= p_max:
            self.error(key + ("gaussian", "cutoff"), f"expected a cutoff below p_max = {p_max:g}, found {cutoff:g} (no pair could connect)")
        return GaussianKernel(sigma, p_max, cutoff)

    def _cell_groups(self, population: Population | None) -> set | None:
        if population is None or population.cell is None:
            return None
        info = self.neuroml.get(population.cell)
        if info is None or population.cell_id not in info.cells:
            return None
        return cell_groups(population.cell, population.cell_id, self.neuroml)

    def projections(self, populations, receptors, kernel) -> list:
        data = self.get("connectivity", "projections", default={})
        out, names = [], {}
        for label, entry in data.items() if isinstance(data, dict) else []:
            key = ("connectivity", "projections", label)
            match = _PROJECTION.match(label)
            if not match or not isinstance(entry, dict):
                continue
            source, target = match.groups()
            if {source, target} & self.skipped:
                names[f"{source}->{target}"] = label
                continue
            if f"{source}->{target}" in names:
                self.error(key, f"projection {source} -> {target} is defined twice (also as {names[f'{source}->{target}']!r})")
                continue
            names[f"{source}->{target}"] = label
            valid = True
            for end in (source, target):
                if end not in populations:
                    valid = False
                    self.error(key, f"unknown population {end!r}; defined populations: {', '.join(populations) or 'none'}")
            if target in populations and populations[target].virtual:
                valid = False
                self.error(key, f"{target} is a virtual population (spike sources, 'drive'): it cannot receive connections")
            for i, r in enumerate(entry.get("receptors") or []):
                if not isinstance(r, str):
                    valid = False
                    self.error(key + ("receptors", i), f"expected a receptor name, found {r!r}")
                    continue
                if r not in receptors:
                    valid = False
                    self.error(key + ("receptors", i), f"unknown receptor {r!r}; defined receptors: {', '.join(receptors) or 'none'}")
            onto = entry.get("onto")
            groups = self._cell_groups(populations.get(target))
            if groups is not None and isinstance(onto, str) and onto in SEGMENT_GROUPS and SEGMENT_GROUPS[onto] not in groups:
                self.error(key + ("onto",), f"cell of {target} has no segment group {SEGMENT_GROUPS[onto]!r} for synapses onto the {onto}")
            own = None
            if "onto" in entry:
                own = self.kernel(key + ("kernel",)) if "kernel" in entry else kernel
                if own is None and self.ok(key):
                    valid = False
                    self.error(key, "a projection 'onto' a group needs a kernel (here or connectivity.kernel)")
            sites = self.projection_sites(key, entry.get("sites"), populations.get(source), populations.get(target))
            if sites is None:
                valid = False
            units = []
            for receptor, text in (entry.get("unit_conductance") or {}).items():
                if receptor not in (entry.get("receptors") or []):
                    valid = False
                    self.error(key + ("unit_conductance", receptor), f"receptor {receptor!r} is not one of this "
                                                                     f"projection's receptors")
                    continue
                g = self.quantity(key + ("unit_conductance", receptor), "conductance", positive=True)
                if g is not None:
                    units.append((receptor, g))
            if valid:
                out.append(Projection(source, target, tuple(entry.get("receptors") or ()), onto, own,
                                      sites=tuple(sites or ()), unit_conductances=tuple(units)))
        self.site_coverage(populations, out)
        return out

    def projection_sites(self, key, data, source: Population | None, target: Population | None) -> list | None:
        """[(group, layer or None, proportion)]; None (and problems) if a site is not the target's."""
        if data is None:
            return []
        if not isinstance(data, dict) or source is None or target is None:
            return None
        if source.axon_extent is None:
            self.error(key + ("sites",), f"synapses by site draw their sources within the source's axon extent: "
                                         f"give {source.name} an 'axon_extent'")
        kind = "exc" if source.role == "excitatory" else "inh"
        offered = {(s.group, s.layer) for s in target.synapses if s.kind == kind}
        out = []
        for site, proportion in data.items():
            parts = site.split("/")
            group, layer = SEGMENT_GROUPS.get(parts[0], parts[0]), (parts[1] if len(parts) == 2 else None)
            if (group, layer) not in offered:
                names = ", ".join(sorted("/".join(p for p in pair if p) for pair in offered)) or "none"
                self.error(key + ("sites", site), f"{target.name} has no {kind} synapse site {site!r} (its {kind} "
                                                  f"sites: {names}); add it to populations.{target.name}.synapses")
                out = None
                continue
            if out is not None:
                out.append((group, layer, float(proportion)))
        return out

    def site_coverage(self, populations: dict, projections: list) -> None:
        """Warn where a site's proportions do not sum to 1 (they are normalised) or no projection
        supplies it (its synapses are not made)."""
        if self.skipped:
            return  # projections of a rejected population are missing: the sums would mislead
        for target in populations.values():
            for site in target.synapses:
                total = sum(p for projection in projections if projection.target == target.name
                            and ("exc" if populations[projection.source].role == "excitatory" else "inh") == site.kind
                            for group, layer, p in projection.sites if (group, layer) == (site.group, site.layer))
                where = ("populations", target.name, "synapses", self._site_key(target.name, site))
                if total == 0 and site.mean > 0:
                    self.problems.append(self.doc.problem(where, f"no projection supplies site {site.name} of "
                                                                 f"{target.name}: its synapses are not made", "warning"))
                elif total and not math.isclose(total, 1.0, abs_tol=1e-6):
                    self.problems.append(self.doc.problem(where, f"the proportions of the projections onto site "
                                                                 f"{site.name} of {target.name} sum to {total:g}; "
                                                                 f"they are normalised to 1", "warning"))

    def _site_key(self, population: str, site: SynapseSite) -> str:
        """The key the spec wrote for ``site`` (the group may be an alias such as 'soma')."""
        for key in self.get("populations", population, "synapses", default={}) or {}:
            parts = key.split("/")
            if (SEGMENT_GROUPS.get(parts[0], parts[0]), parts[1] if len(parts) == 3 else None, parts[-1]) == \
                    (site.group, site.layer, site.kind):
                return key
        return site.name

    def noise(self, populations) -> Noise | None:
        if self.get("noise") is None or not self.ok(("noise",)):
            return None
        model, _ = self.neuroml_file(("noise", "model"), "noise model")
        # every g0 and sigma a conductance (µS on each cell) or every one a density (scaled by
        # the membrane area it goes onto): one meaning for the tunable noise.<kind>.g0/sigma
        dimensions = {("noise", kind, field): _noise_dimension(self.get("noise", kind, field))
                      for kind in ("excitatory", "inhibitory") for field in ("g0", "sigma")}
        per_area = "conductance density" in dimensions.values()
        if per_area and "conductance" in dimensions.values():
            for key, dimension in dimensions.items():
                if dimension == "conductance":
                    self.error(key, f"expected a conductance density like the other noise g0/sigma (e.g. "
                                    f"'0.035 mS/cm2'), found {self.get(*key)!r}: write all four per area or "
                                    f"all four as conductances")
            return None
        parts = {}
        for kind in ("excitatory", "inhibitory"):
            key = ("noise", kind)
            onto = self.get(*key, "onto")
            for population in populations.values():
                if population.virtual:
                    continue
                groups = self._cell_groups(population)
                if groups is not None and isinstance(onto, str) and onto in SEGMENT_GROUPS and SEGMENT_GROUPS[onto] not in groups:
                    self.error(key + ("onto",), f"cell of {population.name} has no segment group {SEGMENT_GROUPS[onto]!r}")
            parts[kind] = OUConductance(
                onto,
                self.quantity(key + ("g0",), dimensions[key + ("g0",)], nonnegative=True),
                self.quantity(key + ("sigma",), dimensions[key + ("sigma",)], nonnegative=True),
                self.quantity(key + ("tau",), "time", positive=True),
                self.quantity(key + ("erev",), "voltage"))
        return Noise(model, parts["excitatory"], parts["inhibitory"], per_area)

    def mea(self, size) -> MEA | None:
        if self.get("mea") is None or not self.ok(("mea",)):
            return None
        pitch = self.quantity(("mea", "pitch"), "length", positive=True)
        radius = self.quantity(("mea", "electrode_radius"), "length", positive=True)
        offset = self.quantity(("mea", "offset"), "length", nonnegative=True)
        recording = self.quantity(("mea", "recording_radius"), "length", positive=True)
        rho = self.quantity(("mea", "resistivity"), "resistivity", positive=True) if self.get("mea", "resistivity") else 3.5
        if rho is not None and rho > MAX_RESISTIVITY:
            self.error(("mea", "resistivity"), f"expected the extracellular medium's resistivity (0.5-10 ohm m for "
                                               f"saline and tissue), at most {MAX_RESISTIVITY:g} ohm m; found "
                                               f"{self.get('mea', 'resistivity')!r}")
            rho = None
        grid = self.get("mea", "grid")
        if pitch is None or None in size:
            return None
        if grid == "fit":
            side = min(size)
            n = 1
            while 2 * n * pitch <= side:
                n *= 2
            grid = (n, n)
        else:
            grid = tuple(grid)
        if grid[0] * grid[1] > MAX_CHANNELS:
            self.error(("mea", "grid"), f"a {grid[0]} x {grid[1]} grid has {grid[0] * grid[1]} electrodes; livn "
                                        f"simulates at most {MAX_CHANNELS} channels (a larger pitch, or a smaller grid)")
            return None
        if self.get("mea", "grid") != "fit":
            for axis, (count, extent) in enumerate(zip((grid[1], grid[0]), size)):
                if (count - 1) * pitch > extent:
                    self.error(("mea", "grid"), f"a grid of {count} electrodes at {pitch:g} um pitch spans "
                                                f"{(count - 1) * pitch:g} um, more than the culture's {extent:g} um")
        return MEA(pitch, grid, radius, offset, recording, rho)

    def weights(self, projections) -> list:
        data = self.get("defaults", "weights", default={})
        if not isinstance(data, dict):
            return []
        wanted = [f"{p.name}.{r}" for p in projections for r in p.receptors]
        found = {}
        for label, value in data.items():
            match = _WEIGHT.match(str(label))
            name = "{}->{}.{}".format(*match.groups()) if match else None
            if match and set(match.groups()[:2]) & self.skipped:
                continue
            if name not in wanted:
                self.error(("defaults", "weights", label),
                           f"{label!r} names no projection receptor; expected one of: {', '.join(wanted)}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                self.error(("defaults", "weights", label), f"expected a weight: a finite number >= 0 (multiples of "
                                                           f"the receptor's unit conductance), found {value!r}")
                continue
            found[name] = value
        missing = [w for w in wanted if w not in found]
        if missing:
            self.error(("defaults", "weights"), f"missing default weight(s) for {', '.join(missing)}")
        return [(w, float(found[w])) for w in wanted if w in found]


def _scale_layers(split: list, scale: float) -> list:
    """Per-layer counts × scale, each rounded half to even; at least one cell, in the most
    populated layer (the first of equals)."""
    if scale == 1.0:
        return list(split)
    scaled = [(layer, round(count * scale)) for layer, count in split]
    if not any(n for _, n in scaled):
        top = max(range(len(split)), key=lambda i: (split[i][1], -i))
        scaled[top] = (split[top][0], 1)
    return [(layer, n) for layer, n in scaled if n]


def _noise_dimension(text) -> str:
    """"conductance density" for a quantity written per area ("0.035 mS/cm2"), else "conductance"."""
    return "conductance density" if isinstance(text, str) and ("/" in text or "_per_" in text) else "conductance"


def _apportion(total: int, fractions: dict) -> dict:
    """Split ``total`` cells by ``fractions`` (largest remainder), counts summing to ``total``."""
    exact = {name: f * total for name, f in fractions.items()}
    counts = {name: math.floor(x) for name, x in exact.items()}
    for name in sorted(exact, key=lambda n: counts[n] - exact[n])[: total - sum(counts.values())]:
        counts[name] += 1
    return counts
