"""A circuit as a NeuroML2 network plus a LEMS simulation that jNeuroML runs.

``export_network(system, directory)`` writes

- ``components/``: the cells' NeuroML files with everything they include (channels, pools),
  the noise ComponentType, as the circuit holds them;
- ``synapses.nml``: each synapse type (``expTwoSynapse``, or ``blockingPlasticSynapse`` with
  its Mg2+ block and/or Tsodyks–Markram ``plasticityMechanism``) with its unit conductance;
- ``<name>.net.nml``: one population per cell type (``populationList``, an instance per cell
  at its soma position, µm), one projection per (source type, target type, synapse) with a
  ``connectionWD`` per edge (segment and fraction along it, weight in multiples of the
  synapse's unit conductance, delay), and the OU noise conductances as ``inputList``s;
- ``LEMS_<name>.xml``: the noise components (instances of a custom ComponentType cannot
  live in a ``.nml`` file that validates: sonata-notes.md), the simulation (length, step)
  and an event output file of every cell's spikes (``spikes.dat``: time in s, cell index).

Cell indices in the NeuroML network are livn's gids: population ``P`` instance ``i`` is the
i-th cell of type P in gid order, and the LEMS spike file lists gids.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

NEUROML_NS = "http://www.neuroml.org/schema/neuroml2"
LEMS_INCLUDES = ("Cells.xml", "Networks.xml", "Simulation.xml")


class ExportError(ValueError):
    """What the exporter cannot express in NeuroML (e.g. virtual spike-input populations)."""


def export_network(system, directory, duration: float = 1000.0, dt: float = 0.025, params: dict | None = None) -> Path:
    """Write ``system`` as a NeuroML2 network and LEMS simulation into the new folder ``directory``.

    Parameters
    ----------
    system : livn.system.System
    directory : path-like
        Created; must not exist (livn never writes into a folder it did not make).
    duration, dt : float
        The LEMS simulation's length and step, ms.
    params : dict, optional
        Weights and noise (``default_params()`` names); the defaults when None.

    Returns
    -------
    Path
        The LEMS file (``LEMS_<name>.xml``) to run, e.g. ``pynml LEMS_EI2.xml -neuron -run``.
    """
    directory = Path(directory)
    if directory.exists():
        raise FileExistsError(f"{directory} exists: choose a new folder")
    for name, value in (("duration", duration), ("dt", dt)):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number of ms > 0, found {value!r}")
    model = system.network
    other = [f"{p.name} ({'spike inputs' if p.kind == 'virtual' else 'IntFire1 point processes'})"
             for p in model.populations.values() if p.kind != "biophysical"]
    if other:
        raise ExportError(f"{system.name}: populations {', '.join(other)} have no NeuroML export yet")
    params = model.check_params({**model.default_params(), **(params or {})})
    scratch = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        lems = _write(system, model, scratch, duration, dt, params)
        os.replace(scratch, directory)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return directory / lems


def _write(system, model, out: Path, duration: float, dt: float, params: dict) -> str:
    components = system.directory / "components"
    shutil.copytree(components, out / "components")

    def local(path) -> str:
        return Path(os.path.relpath(Path(path).resolve(), components.resolve())).as_posix()

    # cell types: NeuroML population per distinct cell, instances in gid order
    gids = model.biophysical_gids
    cell_of = np.array([id(model.cell_of(g)) for g in gids])
    cells = list(dict.fromkeys(model.cell_of(g) for g in gids))
    population = {id(c): c.id for c in cells}
    index = np.empty(model.num_cells, dtype=np.int64)
    for c in cells:
        members = gids[cell_of == id(c)]
        index[members] = np.arange(len(members))
    label = np.empty(model.num_cells, dtype=object)
    label[gids] = [population[i] for i in cell_of]
    segments = {c.id: _segments_of(c) for c in cells}

    synapse_names = model.synapse_names
    elements = [_synapse_element(model.synapses[s]) for s in synapse_names]
    # the schema wants the elements of a type together, types in its order (SynapseTypes)
    order = ("<expOneSynapse", "<expTwoSynapse", "<blockingPlasticSynapse")
    elements.sort(key=lambda e: next(k for k, tag in enumerate(order) if e.startswith(tag)))
    (out / "synapses.nml").write_text(_document("livn_synapses", "".join(elements)))

    scale = model.conductance_scale(params)
    lines = [f'<include href="components/{local(c.source)}"/>' for c in cells]
    lines.append('<include href="synapses.nml"/>')
    if model.noise:
        lines.append(f'<include href="components/{local(model.noise_type.file)}"/>')
    temperature = model.temperature
    network_type = f' type="networkWithTemperature" temperature="{temperature}degC"' if temperature is not None else ""
    lines.append(f'<network id="{system.name}"{network_type}>')
    positions = system.coordinates
    for c in cells:
        members = gids[cell_of == id(c)]
        lines.append(f'<population id="{c.id}" component="{c.id}" size="{len(members)}" type="populationList">')
        for k, g in enumerate(members.tolist()):
            x, y, z = positions[g][:3]
            lines.append(f'<instance id="{k}"><location x="{x:.6g}" y="{y:.6g}" z="{z:.6g}"/></instance>')
        lines.append("</population>")

    edges = model.afferent(gids)
    conductance = scale[edges.group] * edges.relative  # µS
    key = np.array([f"{label[s]}|{label[t]}|{synapse_names[k]}" for s, t, k in
                    zip(edges.source.tolist(), edges.target.tolist(), edges.synapse.tolist())], dtype=object)
    for name in dict.fromkeys(key.tolist()):
        pre, post, synapse = name.split("|")
        lines.append(f'<projection id="{pre}_to_{post}_{synapse}" presynapticPopulation="{pre}" '
                     f'postsynapticPopulation="{post}" synapse="{synapse}">')
        unit = model.synapses[synapse].gbase
        for k, e in enumerate(np.flatnonzero(key == name).tolist()):
            segment, fraction = _locate(segments[post], int(edges.section[e]), float(edges.x[e]))
            lines.append(f'<connectionWD id="{k}" preCellId="../{pre}/{index[edges.source[e]]}/{pre}" '
                         f'postCellId="../{post}/{index[edges.target[e]]}/{post}" postSegmentId="{segment}" '
                         f'postFractionAlong="{fraction:.6g}" weight="{conductance[e] / unit:.9g}" '
                         f'delay="{edges.delay[e]:.9g}ms"/>')
        lines.append("</projection>")

    noise_components = []
    for source in model.noise:
        g0, sigma = params[f"noise.{source.kind}.g0"], params[f"noise.{source.kind}.sigma"]
        for c in cells:
            members = [g for g in gids[cell_of == id(c)].tolist() if model.noise_on(g)]
            sections = c.sections_in(source.group)
            if not members or not sections:
                continue
            # one component per cell type: noise given per area has a conductance per cell type
            component = f"noise_{source.kind}" + (f"_{c.id}" if source.per_area else "")
            scale = model.noise_scale(c, source)
            definition = (f'<{model.noise_type.name} id="{component}" g0="{g0 * scale * 1000:.9g}nS" '
                          f'sigma="{sigma * scale * 1000:.9g}nS" tau="{source.tau:.9g}ms" erev="{source.erev:.9g}mV"/>')
            if definition not in noise_components:
                noise_components.append(definition)
            segment, fraction = _locate(segments[c.id], sections[0], 0.5)
            lines.append(f'<inputList id="{component}_{c.id}" population="{c.id}" component="{component}">')
            for k, g in enumerate(members):
                lines.append(f'<input id="{k}" target="../{c.id}/{index[g]}/{c.id}" destination="synapses" '
                             f'segmentId="{segment}" fractionAlong="{fraction:.6g}"/>')
            lines.append("</inputList>")
    lines.append("</network>")
    (out / f"{system.name}.net.nml").write_text(_document(system.name, "\n".join(lines)))

    selections = "".join(f'<EventSelection id="{g}" select="{label[g]}/{index[g]}/{label[g]}" eventPort="spike"/>'
                         for g in gids.tolist())
    lems = f"LEMS_{system.name}.xml"
    (out / lems).write_text(
        "<Lems>\n" + f'<Target component="sim_{system.name}"/>\n'
        + "".join(f'<Include file="{f}"/>\n' for f in LEMS_INCLUDES)
        + (f'<Include file="components/{local(model.noise_type.file)}"/>\n' if model.noise else "")
        + "\n".join(noise_components) + "\n"
        + f'<Include file="{system.name}.net.nml"/>\n'
        + f'<Simulation id="sim_{system.name}" length="{duration:.9g}ms" step="{dt:.9g}ms" target="{system.name}" '
          f'seed="{model.seed}">\n'
        + f'<EventOutputFile id="spikes" fileName="spikes.dat" format="TIME_ID">{selections}</EventOutputFile>\n'
        + "</Simulation>\n</Lems>\n")
    return lems


def _document(name: str, body: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<neuroml xmlns="{NEUROML_NS}" '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id={quoteattr(name)}>\n{body}\n</neuroml>\n')


def _synapse_element(synapse) -> str:
    """A livn synapse as NeuroML (conductance in nS, times in ms, voltages in mV): a
    ``blockingPlasticSynapse`` holds the Mg2+ block and the Tsodyks–Markram
    ``plasticityMechanism`` (the schema's order: plasticity first), whichever it has."""
    common = (f'id="{synapse.id}" gbase="{synapse.gbase * 1000:.9g}nS" erev="{synapse.erev:.9g}mV" '
              f'tauDecay="{synapse.tau_decay:.9g}ms"')
    plasticity = synapse.plasticity
    if synapse.kind not in ("exp2", "exp2_block"):
        raise ExportError(f"synapse {synapse.id}: kind {synapse.kind!r} has no NeuroML export")
    if synapse.kind == "exp2" and plasticity is None:
        if synapse.tau_rise <= 0:
            return f"<expOneSynapse {common}/>\n"
        return f'<expTwoSynapse {common} tauRise="{synapse.tau_rise:.9g}ms"/>\n'
    children = ""
    if plasticity is not None:
        children += (f'<plasticityMechanism type="{plasticity.mechanism}" initReleaseProb="{plasticity.release:.9g}" '
                     f'tauRec="{plasticity.tau_rec:.9g}ms"'
                     + (f' tauFac="{plasticity.tau_fac:.9g}ms"' if plasticity.facilitates else "") + "/>")
    if synapse.kind == "exp2_block":
        children += (f'<blockMechanism type="voltageConcDepBlockMechanism" species="mg" '
                     f'blockConcentration="{synapse.block_concentration:.9g}mM" '
                     f'scalingConc="{synapse.block_scaling_conc:.9g}mM" '
                     f'scalingVolt="{synapse.block_scaling_volt:.9g}mV"/>')
    return f'<blockingPlasticSynapse {common} tauRise="{synapse.tau_rise:.9g}ms">{children}</blockingPlasticSynapse>\n'


def _segments_of(cell) -> list:
    """Per section of ``cell``: its NeuroML segments as (id, length µm), proximal to distal."""
    from neuroml.loaders import read_neuroml2_file

    document = read_neuroml2_file(cell.source, include_includes=False)
    (nml_cell,) = [c for c in document.cells if c.id == cell.id]
    groups = {g.id: g for g in nml_cell.morphology.segment_groups}
    out = []
    for section in cell.sections:
        if section.name not in groups:
            raise ExportError(f"{cell.source}: no segment group {section.name!r} for section {section.index} "
                              f"(livn names a section after the unbranched group it was read from)")
        ids = nml_cell.get_all_segments_in_group(section.name)
        out.append([(int(s), float(nml_cell.get_segment_length(s))) for s in ids])
    return out


def _locate(sections: list, section: int, x: float) -> tuple[int, float]:
    """(segment id, fraction along it) of position ``x`` (0-1) on ``section``."""
    pieces = sections[section]
    lengths = np.array([length for _, length in pieces])
    total = lengths.sum()
    if len(pieces) == 1 or total == 0:
        return pieces[0][0], x
    ends = np.cumsum(lengths) / total
    k = min(int(np.searchsorted(ends, x)), len(pieces) - 1)
    start = ends[k - 1] if k else 0.0
    return pieces[k][0], float((x - start) / (ends[k] - start)) if ends[k] > start else 0.0
