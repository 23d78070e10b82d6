"""Validate a spec file and turn it into a :class:`SystemSpec`: schema, then meaning.

Every problem is collected; nothing stops at the first.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from .model import (MEA, Delay, GaussianKernel, Noise, OUConductance, Population, Projection,
                    Receptor, SystemSpec)
from .neuroml import SEGMENT_GROUPS, closure, read_neuroml
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


def load_spec(path) -> SystemSpec:
    """Load and validate the spec at ``path``.

    Raises
    ------
    SpecError
        Listing every problem found, each with file, line and path.
    """
    spec, problems = check_spec(path)
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

    for population in spec.populations:
        attempt(read_cell, population.cell, population.cell_id)
    for receptor in spec.receptors:
        attempt(read_synapse, receptor.model, receptor.component_id)
    if spec.noise is not None:
        attempt(read_noise_type, spec.noise.model)
    unique = list(dict.fromkeys(problems))
    return unique


def check_spec(path) -> tuple[SystemSpec | None, list[Problem]]:
    """Validate ``path``; return the spec (None if it has errors) and all problems found."""
    path = Path(path).resolve()
    doc = load_document(path)
    if doc.problems and doc.data is None:
        return None, doc.problems
    if doc.data is None and not doc.problems:
        return None, [doc.problem((), "the file is empty; expected a spec (a mapping with format, name, culture, ...)")]
    if not isinstance(doc.data, dict):
        return None, doc.problems + [doc.problem((), f"expected a mapping at the top of the file, found {type(doc.data).__name__}")]
    problems = list(doc.problems) + schema_problems(doc)
    broken = {p.path for p in problems}
    checker = _Meaning(doc, broken)
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

    def __init__(self, doc: Document, broken: set):
        self.doc = doc
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
        thickness = self.quantity(("culture", "thickness"), "length", nonnegative=True) or 0.0
        populations = self.populations()
        receptors = self.receptors()
        kernel = self.kernel(("connectivity", "kernel"))
        delay = Delay(self.quantity(("connectivity", "delay", "velocity"), "velocity", positive=True),
                      self.quantity(("connectivity", "delay", "min"), "time", nonnegative=True))
        projections = self.projections(populations, receptors, kernel)
        noise = self.noise(populations)
        mea = self.mea(size)
        weights = self.weights(projections)
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
            weights=tuple(weights), files=tuple(files))

    def populations(self) -> dict:
        data = self.get("populations", default={})
        if not isinstance(data, dict) or not self.ok(("populations",)):
            return {}
        neurons = self.get("culture", "neurons")
        counts = {name: p.get("count") for name, p in data.items() if isinstance(p, dict)}
        fractions = {name: p.get("fraction") for name, p in data.items() if isinstance(p, dict)}
        if any(c is not None for c in counts.values()) and any(f is not None for f in fractions.values()):
            self.error(("populations",), "give every population a 'count' or every one a 'fraction', not a mix")
            return {}
        if all(f is not None for f in fractions.values()):
            total = sum(fractions.values())
            if not math.isclose(total, 1.0, abs_tol=1e-9):
                parts = " + ".join(f"{n} {f:g}" for n, f in fractions.items())
                self.error(("populations",), f"population fractions must sum to 1, found {total:g} ({parts})")
            elif isinstance(neurons, int) and self.ok(("culture", "neurons")):
                counts = _apportion(neurons, fractions)
                for name, count in counts.items():
                    if count < 1:
                        self.error(("populations", name, "fraction"),
                                   f"fraction {fractions[name]:g} of {neurons} neurons leaves no cell in {name}")
        elif isinstance(neurons, int) and sum(counts.values()) != neurons:
            parts = " + ".join(f"{n} {c}" for n, c in counts.items())
            self.error(("culture", "neurons"), f"expected the population counts to sum to culture.neurons = {neurons}, "
                                               f"found {sum(counts.values())} ({parts})")
        out, first = {}, 0
        for name, entry in data.items():
            path, info = self.neuroml_file(("populations", name, "cell"), "cell")
            cell_id = None
            if info is not None:
                if len(info.cells) != 1:
                    self.error(("populations", name, "cell"), f"expected the file to define exactly one <cell>, found {len(info.cells)}")
                else:
                    cell_id = next(iter(info.cells))
            self.file(("populations", name, "morphology"), "morphology")
            out[name] = Population(name, counts.get(name) or 0, path, cell_id, entry.get("role"), first)
            first += counts.get(name) or 0
        return out

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
        return info.cells[population.cell_id]

    def projections(self, populations, receptors, kernel) -> list:
        data = self.get("connectivity", "projections", default={})
        out, names = [], {}
        for label, entry in data.items() if isinstance(data, dict) else []:
            key = ("connectivity", "projections", label)
            match = _PROJECTION.match(label)
            if not match or not isinstance(entry, dict):
                continue
            source, target = match.groups()
            if f"{source}->{target}" in names:
                self.error(key, f"projection {source} -> {target} is defined twice (also as {names[f'{source}->{target}']!r})")
                continue
            names[f"{source}->{target}"] = label
            valid = True
            for end in (source, target):
                if end not in populations:
                    valid = False
                    self.error(key, f"unknown population {end!r}; defined populations: {', '.join(populations) or 'none'}")
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
            if groups is not None and onto in SEGMENT_GROUPS and SEGMENT_GROUPS[onto] not in groups:
                self.error(key + ("onto",), f"cell of {target} has no segment group {SEGMENT_GROUPS[onto]!r} for synapses onto the {onto}")
            own = self.kernel(key + ("kernel",)) if "kernel" in entry else kernel
            if valid:
                out.append(Projection(source, target, tuple(entry.get("receptors") or ()), onto, own))
        return out

    def noise(self, populations) -> Noise | None:
        if self.get("noise") is None or not self.ok(("noise",)):
            return None
        model, _ = self.neuroml_file(("noise", "model"), "noise model")
        parts = {}
        for kind in ("excitatory", "inhibitory"):
            key = ("noise", kind)
            onto = self.get(*key, "onto")
            for population in populations.values():
                groups = self._cell_groups(population)
                if groups is not None and onto in SEGMENT_GROUPS and SEGMENT_GROUPS[onto] not in groups:
                    self.error(key + ("onto",), f"cell of {population.name} has no segment group {SEGMENT_GROUPS[onto]!r}")
            parts[kind] = OUConductance(
                onto,
                self.quantity(key + ("g0",), "conductance", nonnegative=True),
                self.quantity(key + ("sigma",), "conductance", nonnegative=True),
                self.quantity(key + ("tau",), "time", positive=True),
                self.quantity(key + ("erev",), "voltage"))
        return Noise(model, parts["excitatory"], parts["inhibitory"])

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


def _apportion(total: int, fractions: dict) -> dict:
    """Split ``total`` cells by ``fractions`` (largest remainder), counts summing to ``total``."""
    exact = {name: f * total for name, f in fractions.items()}
    counts = {name: math.floor(x) for name, x in exact.items()}
    for name in sorted(exact, key=lambda n: counts[n] - exact[n])[: total - sum(counts.values())]:
        counts[name] += 1
    return counts
