"""jNeuroML references of the CA1 construct probe (tests/data/ca1_probe; docs/ca1-neuroml-probe.md):
somatic spike times of the probe cells (LEMS_probe.xml) and of livn's extra cells
(livn/extra.cell.nml, driven by :func:`extra_harness` like the probe), each cell under a step of
AMPLITUDES from STEP[0] to STEP[1] ms, TSTOP ms at TEMPERATURE, from jNeuroML's NEURON export
switched to CVODE at TOLERANCE (run by :mod:`jneuroml`).

The stored "cvode" blocks carry :func:`inputs_hash` of the files they were made from and the
versions of the tools (both pinned): tests/test_neuroml_ca1.py checks that they belong to the
current files and tools, and ``python tests/data/ca1_probe/regenerate.py`` makes them again
(~2 CPU minutes).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

import jneuroml
from reference_cells import NS, dumps, versions, write_atomically

PROBE = Path(__file__).resolve().parent / "data" / "ca1_probe"
EXTRA = PROBE / "livn" / "extra.cell.nml"
EXTRA_REFERENCE = PROBE / "livn" / "reference_spikes.json"
PROBE_REFERENCE = PROBE / "reference_spikes.json"
JNEUROML_TIMEOUT = 1200  # s, each jNeuroML or NEURON command

TEMPERATURE = 36.0  # degC, CA1's (and the probe harness's network temperature)
AMPLITUDES = (0.2, 0.4)  # nA
STEP = (50.0, 350.0)  # ms
TSTOP = 400.0  # ms
TOLERANCE = 1e-8  # CVODE abs and rel


def inputs_hash() -> str:
    """SHA-256 over every NeuroML and LEMS file of the probe folder (the extra cells' harness is
    generated from the constants above, which the stored blocks record)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in PROBE.rglob("*") if p.suffix in (".nml", ".xml")):
        digest.update(path.relative_to(PROBE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def tools() -> dict:
    """The versions the references depend on: pyNeuroML (with its jNeuroML jar) and NEURON."""
    return {k: v for k, v in versions().items() if k in ("pyNeuroML", "NEURON")}


def extra_harness(folder: Path, cell_ids: list) -> str:
    """LEMS and network files driving ``cell_ids`` (of extra.cell.nml) like the probe harness."""
    pops, inputs, selections = [], [], []
    for k, cid in enumerate(cell_ids):
        pops.append(f'<population id="pop_{cid}" component="{cid}" type="populationList" size="2">'
                    '<instance id="0"><location x="0" y="0" z="0"/></instance>'
                    '<instance id="1"><location x="100" y="0" z="0"/></instance></population>')
        for j in range(len(AMPLITUDES)):
            inputs.append(f'<inputList id="in_{cid}_{j}" population="pop_{cid}" component="step{j}"><input id="0" '
                          f'target="../pop_{cid}/{j}/{cid}" destination="synapses" segmentId="0" fractionAlong="0.5"/>'
                          f'</inputList>')
            selections.append(f'<EventSelection id="{2 * k + j}" select="pop_{cid}/{j}/{cid}" eventPort="spike"/>')
    pulses = "".join(f'<pulseGenerator id="step{j}" delay="{STEP[0]}ms" duration="{STEP[1] - STEP[0]}ms" '
                     f'amplitude="{a}nA"/>' for j, a in enumerate(AMPLITUDES))
    (folder / "extra.net.nml").write_text(
        f'<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="extra_net"><include href="extra.cell.nml"/>'
        f'{pulses}<network id="extra_net" type="networkWithTemperature" temperature="{TEMPERATURE}degC">'
        f'{"".join(pops)}{"".join(inputs)}</network></neuroml>')
    (folder / "LEMS_extra.xml").write_text(
        f'<Lems><Target component="sim"/><Include file="Cells.xml"/><Include file="Networks.xml"/>'
        f'<Include file="Simulation.xml"/><Include file="extra.net.nml"/>'
        f'<Simulation id="sim" length="{TSTOP}ms" step="0.025ms" target="extra_net" seed="1">'
        f'<EventOutputFile id="spikes" fileName="extra.spikes" format="ID_TIME">{"".join(selections)}'
        f'</EventOutputFile></Simulation></Lems>')
    return "LEMS_extra.xml"


def cvode_spikes(folder: Path, lems: str, cell_ids: list) -> dict:
    """Export ``lems`` with jNeuroML, switch the run to CVODE at TOLERANCE, run; cell -> spikes
    (ms, one list per amplitude)."""
    script = jneuroml.export_neuron(lems, folder, JNEUROML_TIMEOUT)
    jneuroml.use_cvode(script, TOLERANCE)
    jneuroml.compile_and_run(script, JNEUROML_TIMEOUT)
    spikes = np.loadtxt(next(folder.glob("*.spikes")), ndmin=2)
    return {cid: [np.round(np.sort(spikes[spikes[:, 0] == 2 * k + j, 1] * 1e3), 4).tolist()
                  for j in range(len(AMPLITUDES))] for k, cid in enumerate(cell_ids)}


def extra_cells() -> list:
    """The ids of the cells in extra.cell.nml."""
    return [cell.get("id") for cell in ET.parse(EXTRA).getroot().findall("nml:cell", NS)]


def regenerate(root: Path) -> dict:
    """Run both harnesses from a copy of the probe folder in ``root``; {reference file: spikes}."""
    folder = root / "ca1_probe"
    shutil.copytree(PROBE, folder)
    probe_ids = list(json.loads(PROBE_REFERENCE.read_text())["cvode"]["spikes_ms"])
    extra_ids = extra_cells()
    jneuroml.run([str(jneuroml.PYNML), "-validate", "extra.cell.nml"], folder / "livn", JNEUROML_TIMEOUT)
    return {PROBE_REFERENCE: cvode_spikes(folder, "LEMS_probe.xml", probe_ids),
            EXTRA_REFERENCE: cvode_spikes(folder / "livn", extra_harness(folder / "livn", extra_ids), extra_ids)}


def write(path: Path, spikes: dict) -> None:
    """Store ``spikes`` as the "cvode" block of the reference file ``path`` with the inputs'
    hash and the tools' versions; its other content is kept."""
    data = json.loads(path.read_text())
    data["tools"] = {**data.get("tools", {}), **tools()}
    data.update({"amplitudes_nA": list(AMPLITUDES), "step_ms": list(STEP), "tstop_ms": TSTOP})
    data["cvode"].update({"abs_tol": TOLERANCE, "rel_tol": TOLERANCE, "inputs_sha256": inputs_hash(),
                          "spikes_ms": spikes})
    write_atomically(path, dumps(data) + "\n")
