"""``livn systems generate_2d``: the spec of a new 2D excitatory/inhibitory culture.

The spec follows the schema and the models of the shipped EI systems (``specs/EI*.yaml``):
the same NeuroML cells, synapses and noise, which are copied beside it so the new folder is
complete and editable on its own. Its default weights and noise are EI3's (tuned on a
1000-neuron culture of the same density); ``livn systems tune`` adapts them to the new culture.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

#: the shipped system whose models and tuned defaults a generated culture starts from
TEMPLATE = "EI3"


@dataclass(frozen=True)
class Culture2D:
    """What ``generate_2d`` makes: a rectangular culture of EXC and INH cells on an MEA.

    Attributes
    ----------
    name : str
        Letters, digits, '_' or '-', starting with a letter.
    exc, inh : int
        Cells per population (exc >= 1, inh >= 0).
    width, height : float
        Culture size, µm.
    sigma : float
        Width of the Gaussian connection-probability kernel, µm.
    p_max : float
        Connection probability at distance 0, in (0, 1].
    cutoff : float
        Pairs whose probability is below this are never connected, in [0, p_max).
    velocity : float
        Axonal conduction velocity, µm/ms.
    pitch : float
        Electrode spacing, µm (the grid is the largest power-of-two square that fits).
    seed : int
        Placement, connectivity and noise seed, >= 0.
    """

    name: str
    exc: int = 400
    inh: int = 100
    width: float = 800.0
    height: float = 800.0
    sigma: float = 200.0
    p_max: float = 0.74
    cutoff: float = 0.1
    velocity: float = 250.0
    pitch: float = 100.0
    seed: int = 0

    def problems(self) -> list[str]:
        """Every option out of range, as messages (empty when the culture can be made)."""
        out = []
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", self.name):
            out.append(f"name: expected letters, digits, '_' or '-', starting with a letter, found {self.name!r}")
        for field, minimum in (("exc", 1), ("inh", 0), ("seed", 0)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                out.append(f"{field}: expected an integer >= {minimum}, found {value!r}")
        for field in ("width", "height", "sigma", "velocity", "pitch"):
            value = getattr(self, field)
            if not _finite(value) or value <= 0:
                out.append(f"{field}: expected a finite number > 0, found {value!r}")
        if not _finite(self.p_max) or not 0 < self.p_max <= 1:
            out.append(f"p_max: expected a probability in (0, 1], found {self.p_max!r}")
        elif not _finite(self.cutoff) or not 0 <= self.cutoff < self.p_max:
            out.append(f"cutoff: expected a probability in [0, p_max = {self.p_max:g}), found {self.cutoff!r}")
        if not out and min(self.width, self.height) < self.pitch:
            out.append(f"pitch: the culture ({self.width:g} x {self.height:g} um) must hold at least one electrode "
                       f"spacing of {self.pitch:g} um")
        return out

    @property
    def neurons(self) -> int:
        return self.exc + self.inh

    def spec_text(self) -> str:
        """The spec as commented YAML."""
        template = _template_spec()
        weights = "\n".join(f"    {name}: {value:g}" for name, value in template.weights
                            if self.inh or "INH" not in name)
        noise = template.noise
        unit = "mS/cm2" if noise.per_area else "uS"
        density = self.neurons / (self.width * self.height)
        grid = 2 ** int(math.floor(math.log2(min(self.width, self.height) / self.pitch + 1e-9) + 1e-9))
        inh_population = "" if not self.inh else f"""
  INH:
    count: {self.inh}
    cell: cells/INH.cell.nml      # two-compartment fast-spiking interneuron (NeuroML2)
    role: inhibitory"""
        projections = "    EXC -> EXC: {receptors: [AMPA, NMDA], onto: dendrite}"
        if self.inh:
            projections += """
    EXC -> INH: {receptors: [AMPA, NMDA], onto: dendrite}
    INH -> EXC: {receptors: [GABA_A], onto: soma}
    INH -> INH: {receptors: [GABA_A], onto: soma}"""
        return f"""# {self.name}: a {self.neurons}-neuron 2D culture ({self.exc} EXC / {self.inh} INH) on a {grid} x {grid} MEA.
#
# Written by `livn systems generate_2d`. Models and default weights/noise are those of the
# shipped {TEMPLATE} (specs/{TEMPLATE}.yaml, tuned on 1000 neurons at 1e-3 cells/um^2); this culture
# has {density:.3g} cells/um^2. Tune them for it with `livn systems tune {self.name}.yaml --launch`.
# Relative paths resolve against this file's folder.
format: livn/1
name: {self.name}
description: {self.neurons}-neuron 2D culture, {self.exc} EXC / {self.inh} INH, on a {grid} x {grid} MEA (generated)
seed: {self.seed}

culture:
  shape: rectangle
  size: [{self.width:g} um, {self.height:g} um]   # x, y; cells are placed uniformly at random, z = 0
  neurons: {self.neurons}

populations:
  EXC:
    count: {self.exc}
    cell: cells/EXC.cell.nml      # two-compartment pyramidal-like cell (NeuroML2)
    role: excitatory{inh_population}

receptors:                        # conductance of one edge = weight x unit_conductance
""" + "\n".join(f"  {r.name}: {{model: {_relative(r.model, template)}, unit_conductance: {r.unit_conductance:g} uS}}"
                for r in template.receptors if self.inh or r.name != "GABA_A") + f"""

connectivity:
  # p(d) = p_max exp(-d^2 / (2 sigma^2)); pairs with p < cutoff are never connected.
  kernel: {{gaussian: {{sigma: {self.sigma:g} um, p_max: {self.p_max:g}, cutoff: {self.cutoff:g}}}}}
  # Delay = distance / velocity + {TEMPLATE}'s synaptic latency, at least 0.05 ms.
  delay: {{velocity: {self.velocity:g} um/ms, synaptic: {template.delay.synaptic:g} ms, min: 0.05 ms}}
  projections:
{projections}

noise:
  # Ornstein-Uhlenbeck conductances (Destexhe et al. 2001), {TEMPLATE}'s tuned g0 and sigma.
  model: {_relative(noise.model, template)}
  excitatory: {{onto: {noise.excitatory.onto}, g0: {noise.excitatory.g0:g} {unit}, sigma: {noise.excitatory.sigma:g} {unit}, tau: {noise.excitatory.tau:g} ms, erev: {noise.excitatory.erev:g} mV}}
  inhibitory: {{onto: {noise.inhibitory.onto}, g0: {noise.inhibitory.g0:g} {unit}, sigma: {noise.inhibitory.sigma:g} {unit}, tau: {noise.inhibitory.tau:g} ms, erev: {noise.inhibitory.erev:g} mV}}

mea:
  pitch: {self.pitch:g} um
  grid: fit                       # largest power-of-two square that fits the culture: {grid} x {grid}
  electrode_radius: 15 um
  offset: 52 um                   # effective electrode-to-cell distance, sqrt(15^2 + 50^2) um
  recording_radius: 60 um         # a cell's spikes appear on every electrode this close (x-y)
  resistivity: 3.5 ohm m          # extracellular medium, for V_e = rho I / (4 pi r)

defaults:
  # A weight multiplies the receptor's unit conductance; {TEMPLATE}'s tuned values.
  weights:
{weights}
"""


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _template_spec():
    from ..resources import spec_path
    from ..spec import load_spec

    return load_spec(spec_path(TEMPLATE))


def _relative(path: Path, template) -> str:
    return Path(path).relative_to(template.base_directory).as_posix()


def planned_files(culture: Culture2D) -> dict[str, bytes]:
    """Relative path -> content of every file ``generate_2d`` writes: the spec and the NeuroML
    models it references (with the files they include)."""
    template = _template_spec()
    base = template.base_directory
    files = {f"{culture.name}.yaml": culture.spec_text().encode()}
    for path in sorted(template.files):
        if path.suffix not in (".yaml", ".yml"):
            files[path.relative_to(base).as_posix()] = path.read_bytes()
    if not culture.inh:
        files = {k: v for k, v in files.items() if "INH" not in k and "GABA_A" not in k}
    return files


def conflicts(directory: Path, files: dict[str, bytes]) -> list[str]:
    """The planned files that exist in ``directory`` with other content."""
    return [name for name, data in files.items()
            if (directory / name).exists() and (not (directory / name).is_file() or (directory / name).read_bytes() != data)]


def generate_2d(culture: Culture2D, directory) -> Path:
    """Write the culture's spec and models into ``directory``; return the spec's path.

    Nothing is written unless everything can be: an option out of range, a spec that does not
    validate, or a file of the same name with other content in ``directory`` is refused first
    (ValueError listing every problem). Files already there with the same content are kept.
    """
    from ..spec import SpecError, load_spec

    problems = culture.problems()
    if problems:
        raise ValueError("; ".join(problems))
    directory = Path(directory)
    files = planned_files(culture)
    clashes = conflicts(directory, files)
    if clashes:
        raise ValueError(f"{directory} already has {', '.join(clashes)} with other content: "
                         f"choose another folder or name (livn never overwrites files it did not write now)")
    with tempfile.TemporaryDirectory(prefix="livn-generate-") as scratch:
        for name, data in files.items():
            (Path(scratch) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(scratch) / name).write_bytes(data)
        try:
            load_spec(Path(scratch) / f"{culture.name}.yaml")
        except SpecError as err:  # options in range can still make a culture the spec refuses
            raise ValueError("the generated spec does not validate: " + "; ".join(
                p.message for p in err.problems)) from None
        for name in files:
            destination = directory / name
            if not destination.exists():
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(scratch) / name, destination)
    return directory / f"{culture.name}.yaml"


def option_names() -> list[str]:
    return [f.name for f in fields(Culture2D)]
