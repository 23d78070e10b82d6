"""Rebuild BallStick by hand in NEURON and compare its spike times with jNeuroML's export.

    python tests/data/ballstick/check_neuron.py [cache_dir]

Builds (mechanisms: the .mod files jNeuroML generated for Na_RS, Kd_RS, Leak; somatic IClamp at
soma(0.5); CVODE atol = rtol = 1e-9; spikes = NetCon on soma(0.5) at 0 mV):
  sections  one section per unbranched SWC run, pt3d as in make_cell.py (= jNeuroML's hoc)
  import3d  NEURON's Import3d_SWC_read + Import3d_GUI.instantiate on ballstick.swc (BMTK style)
  Ldiam     section L and a single diam (= NEURON's diam averaged over the section) instead of pt3d
  nseg1     'sections' with nseg = 1 everywhere (jNeuroML's default without numberInternalDivisions)
and prints the largest spike-time difference (ms) with the jNeuroML reference.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent.parent)]
from make_cell import RA, CM, nseg, read_swc, sections  # noqa: E402
from reference_cells import (BALLSTICK_AMPLITUDES, CVODE_TOL, STEP_DELAY, STEP_DURATION, TSTOP,  # noqa: E402
                             VENV_BIN, jneuroml_ballstick_spikes)


def build(h, variant):
    pts = read_swc(HERE / "ballstick.swc")
    secs = sections(pts)
    if variant == "import3d":
        h.load_file("import3d.hoc")
        reader = h.Import3d_SWC_read()
        reader.input(str(HERE / "ballstick.swc"))
        h.Import3d_GUI(reader, 0).instantiate(None)
        made = {"soma": h.soma[0]}
        made.update({f"dend_{k}": s for k, s in enumerate(h.dend)})
        made.update({f"axon_{k}": s for k, s in enumerate(h.axon)})
    else:
        made = {}
        for name, typ, chain, par in secs:
            sec = made[name] = h.Section(name=name)
            _, d0 = nseg(pts, (name, typ, chain, par))
            for xyz, d in [(pts[par]["xyz"], d0)] + [(pts[i]["xyz"], pts[i]["d"]) for i in chain]:
                sec.pt3dadd(*xyz, d)
        for name, typ, chain, par in secs:
            if name == "soma":
                continue
            parent = next(s for s in secs if par in s[2]) if pts[par]["parent"] != -1 else None
            made[name].connect(made[parent[0]](1) if parent else made["soma"](0))
        if variant == "Ldiam":
            for sec in made.values():
                L, area = sec.L, sum(seg.area() for seg in sec)
                sec.pt3dclear(); sec.L = L; sec.diam = area / (np.pi * L)  # same total area
    for name, typ, chain, par in secs:
        sec = made[name]
        sec.nseg = 1 if variant == "nseg1" else nseg(pts, (name, typ, chain, par))[0]
        sec.Ra, sec.cm = RA, CM
        sec.insert("Leak")
        for seg in sec:
            seg.gmax_Leak, seg.e_Leak = 5e-5, -65.0
        if typ == 1:
            sec.insert("Na_RS"); sec.insert("Kd_RS")
            for seg in sec:
                seg.gmax_Na_RS, seg.gmax_Kd_RS, seg.ena, seg.ek = 0.056, 0.03, 50.0, -90.0
    return made


def run(variant, amps, mech_dir):
    code = f"""
import sys, numpy as np
from neuron import h
h.nrn_load_dll({str(mech_dir / 'x86_64' / 'libnrnmech.so')!r})
sys.path[:0] = [{str(HERE)!r}]
from check_neuron import build
made = build(h, {variant!r})
h.load_file('stdrun.hoc')
soma = made['soma']
stim = h.IClamp(soma(0.5)); stim.delay = {STEP_DELAY}; stim.dur = {STEP_DURATION}
cv = h.CVode(); cv.active(1); cv.atol({CVODE_TOL}); cv.rtol({CVODE_TOL})
rec = h.Vector(); nc = h.NetCon(soma(0.5)._ref_v, None, sec=soma); nc.threshold = 0; nc.record(rec)
for amp in {list(amps)!r}:
    stim.amp = amp; h.finitialize(-70); h.continuerun({TSTOP})
    print('SPIKES', amp, *rec.to_python())
if {variant!r} == 'import3d':
    for s in h.allsec():
        print('GEOM', s.name(), s.parentseg(), round(s.L, 4), s.nseg,
              [(round(s.x3d(i), 3), round(s.y3d(i), 3), round(s.diam3d(i), 3)) for i in range(s.n3d())])
"""
    out = subprocess.run([str(VENV_BIN / "python"), "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    out = out.stdout
    return out


def main():
    cache = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ballstick_jnml")
    ref = {a: jneuroml_ballstick_spikes(a, cache) for a in BALLSTICK_AMPLITUDES}
    mech_dir = cache / "ballstick_check_mechs"
    if not (mech_dir / "x86_64" / "libnrnmech.so").exists():
        shutil.rmtree(mech_dir, ignore_errors=True)
        mech_dir.mkdir(parents=True)
        for mod in ("Na_RS", "Kd_RS", "Leak"):
            shutil.copy2(cache / "ballstick_jnml_run" / "tests" / "data" / "ballstick" / f"{mod}.mod", mech_dir)
        subprocess.run([str(VENV_BIN / "nrnivmodl")], cwd=mech_dir, capture_output=True, check=True)
    for variant in ("sections", "import3d", "Ldiam", "nseg1"):
        out = run(variant, BALLSTICK_AMPLITUDES, mech_dir)
        for line in out.splitlines():
            if line.startswith("SPIKES"):
                amp, *t = line.split()[1:]
                t, r = np.array(t, float), ref[float(amp)]
                diff = f"max |dt| = {np.abs(t - r).max():.4f} ms" if len(t) == len(r) else "count differs"
                print(f"{variant:9s} {amp} nA: {len(t)} spikes (jNeuroML {len(r)}), {diff}")
            elif line.startswith("GEOM"):
                print("   ", line)


if __name__ == "__main__":
    main()
