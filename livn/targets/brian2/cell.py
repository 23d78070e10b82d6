"""One NeuroML cell in Brian2 under a somatic current clamp (for conformance and f–I curves)."""

from __future__ import annotations

import brian2 as b2
import numpy as np

from ...neuroml.cell import Cell
from .translate import cell_equations


def current_clamp(cell: Cell, amplitude: float, delay: float, duration: float, tstop: float,
                  dt: float = 0.025, codegen: str = "numpy", method: str = "rk4") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inject ``amplitude`` nA into the soma from ``delay`` for ``duration`` ms; run to ``tstop`` ms.

    ``method`` is the Brian2 integration method (the networks use "rk4": at dt = 0.025 ms it matches NEURON with CVODE within 0.05 ms, where exponential Euler drifts by tens of ms over 1 s).

    Returns
    -------
    t : ndarray
        Sample times, ms.
    v : ndarray
        Soma membrane potential, mV.
    spikes : ndarray
        Upward crossings of the cell's spike threshold, ms.
    """
    model = cell_equations(cell, {}, {})
    b2.prefs.codegen.target = codegen
    network = b2.Network()
    group = b2.NeuronGroup(1, model["equations"].replace("gid : integer (constant)", ""), threshold=model["threshold"], refractory=model["refractory"],
                           method=method, namespace={}, dt=dt * b2.ms, name="cell")
    for name, value in model["initial"].items():
        setattr(group, name, value * b2.mV if name.startswith("v_") else value)
    soma = f"v_{model['compartments'][0]}"
    # fixed names: the same probe again reuses its compiled code (Brian2's numbered default names
    # change with the objects alive in the process, and the generated code contains them)
    spikes = b2.SpikeMonitor(group, name="cell_spikes")
    trace = b2.StateMonitor(group, soma, record=0, dt=dt * b2.ms, name="cell_soma")
    network.add(group, spikes, trace)
    network.run(delay * b2.ms, namespace={})
    group.I_inject = amplitude * b2.nA
    network.run(duration * b2.ms, namespace={})
    group.I_inject = 0 * b2.nA
    if tstop > delay + duration:
        network.run((tstop - delay - duration) * b2.ms, namespace={})
    return np.asarray(trace.t / b2.ms), np.asarray(getattr(trace, soma)[0] / b2.mV), np.asarray(spikes.t / b2.ms)
