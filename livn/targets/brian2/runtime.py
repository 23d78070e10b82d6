"""Brian2 simulation of a livn circuit: self-contained (numpy, h5py, brian2; no livn import).

``livn compile --target brian2`` copies this file, ``circuit.py`` and ``gid_normal.py`` beside a ``model.json``
and ``run.py``; livn's in-process Env uses the same class. Units: ms, mV, µA (electrode
currents), µS.
"""

from __future__ import annotations

import json
from pathlib import Path

import brian2 as b2
import numpy as np

try:  # inside livn
    from ..circuit import Circuit, field_transfer, write_spike_report  # noqa: F401 (re-exported)
    from ..gid_normal import C_SOURCE, gid_normal
except ImportError:  # a compiled directory: circuit.py and gid_normal.py sit beside this file
    from circuit import Circuit, field_transfer, write_spike_report  # noqa: F401
    from gid_normal import C_SOURCE, gid_normal

_CYTHON_NORMAL = '''
cdef extern from *:
    """%(c_source)s"""
    double livn_gid_normal(unsigned long long seed, unsigned long long gid, unsigned long long stream,
                           unsigned long long step) nogil

cdef double gid_normal(int gid, int stream, int step):
    return livn_gid_normal(%(seed)dULL, <unsigned long long>gid, <unsigned long long>stream,
                           <unsigned long long>step)
'''


def gid_normal_function(seed: int) -> b2.Function:
    """A Brian2 function ``gid_normal(gid, stream, step)``: the standard normal number of
    :mod:`gid_normal` for (seed, gid, stream, step) — a counter-based stream per cell, so a
    cell's noise does not depend on the other cells or on the order of evaluation, and equals
    the NEURON target's."""
    seed = int(seed)

    def numpy_normal(gid, stream, step):
        return gid_normal(seed, gid, stream, step)

    function = b2.Function(numpy_normal, arg_units=[1, 1, 1], return_unit=1, arg_types=["integer"] * 3,
                           return_type="float", stateless=True)
    function.implementations.add_implementation(
        "cython", _CYTHON_NORMAL % {"seed": seed, "c_source": C_SOURCE}, name="gid_normal")
    function.implementations.add_implementation("numpy", numpy_normal, name="gid_normal")
    return function


class Simulation:
    """A Brian2 network of a livn circuit.

    Parameters
    ----------
    model : dict or path
        The model description (``model.json``) from livn's Brian2 translator.
    circuit : path
        The SONATA circuit directory.
    dt : float
        Integration step, ms.
    codegen : str
        Brian2 code generation target ("cython" compiles once and caches; "numpy" never compiles).
    """

    def __init__(self, model, circuit, dt: float = 0.025, codegen: str = "cython"):
        if not isinstance(model, dict):
            model = json.loads(Path(model).read_text())
        self.model = model
        self.circuit = Circuit(circuit)
        self.dt = dt
        b2.prefs.codegen.target = codegen
        b2.prefs.logging.file_log = False
        b2.defaultclock.dt = dt * b2.ms
        self.num_neurons = len(self.circuit.positions)
        self.groups, self.synapses, self._weight_edges = {}, {}, {}
        self.network = b2.Network()
        self._build_groups()
        self._build_synapses()
        self._field = self._field_transfer()
        self.params = dict(model["defaults"])
        self.set_params(self.params)
        self._start_noise_at_mean()
        self._spike_monitors, self._voltage_monitor, self._voltage_gids = None, None, None
        self._runs = 0
        self.network.store("initial")

    # -- construction --------------------------------------------------------------------
    def _build_groups(self):
        noise = self.model.get("noise")
        gid_normal = gid_normal_function(self.model.get("seed", 0))
        for name, pop in self.model["populations"].items():
            equations = pop["equations"]
            if noise:
                for kind in noise:
                    equations += f"\ng0_noise_{kind} : siemens (shared)\nsigma_noise_{kind} : siemens (shared)"
            group = b2.NeuronGroup(pop["count"], equations, threshold=pop["threshold"], refractory=pop["refractory"],
                                   method="rk4", name=f"population_{name}", namespace={"gid_normal": gid_normal})
            for var, value in pop["initial"].items():
                unit = b2.mV if var.startswith("v_") else (b2.siemens if var[:2] in ("A_", "B_") else 1)
                setattr(group, var, value * unit)
            if noise:
                # exact Ornstein–Uhlenbeck update (Gillespie 1996), stable for any dt; the normal
                # numbers come from each cell's own stream keyed by (seed, gid, kind, step)
                updates = []
                for stream, (kind, ou) in enumerate(sorted(noise.items())):
                    decay = float(np.exp(-self.dt / ou["tau_ms"]))
                    spread = float(np.sqrt(1 - decay**2))
                    updates.append(
                        f"g_noise_{kind} = g0_noise_{kind} + (g_noise_{kind} - g0_noise_{kind})*{decay!r} "
                        f"+ sigma_noise_{kind}*{spread!r}*gid_normal(i + {pop['first_gid']}, {stream}, "
                        f"int(t/dt + 0.5))")
                group.run_regularly("\n".join(updates), when="start", name=f"noise_{name}")
            self.groups[name] = group
            self.network.add(group)

    def _population_of(self, gids):
        for name, pop in self.model["populations"].items():
            if gids.min() >= pop["first_gid"] and gids.max() < pop["first_gid"] + pop["count"]:
                return name, gids - pop["first_gid"]
        raise ValueError("edges of one type must connect one population to one population")

    def _build_synapses(self):
        c = self.circuit
        receptors = self.model["receptors"]
        for type_id, row in c.edge_types.items():
            mask = c.edge_type == type_id
            if not mask.any():
                continue
            receptor = row["receptor"]
            factor = receptors[receptor]["peak_factor"]
            source_name, i = self._population_of(c.source[mask])
            target_name, j = self._population_of(c.target[mask])
            on_pre = f"B_{receptor}_post += w*{factor!r}"
            if receptors[receptor]["tau_rise"] > 0:
                on_pre += f"\nA_{receptor}_post += w*{factor!r}"
            syn = b2.Synapses(self.groups[source_name], self.groups[target_name], "w : siemens", on_pre=on_pre,
                              name=f"edges_{type_id}", namespace={})
            syn.connect(i=i, j=j)
            syn.delay = c.delay[mask] * b2.ms
            name = f"{row['projection']}.{receptor}"
            self.synapses[type_id] = syn
            self._weight_edges.setdefault(name, []).append((syn, c.syn_weight[mask]))
            self.network.add(syn)

    def _field_transfer(self):
        c = self.circuit
        return {name: field_transfer(c, pop["first_gid"], pop["count"], pop["centres_um"],
                                     self.model["mea"]["resistivity_ohm_m"])
                for name, pop in self.model["populations"].items()}

    # -- parameters ----------------------------------------------------------------------
    def set_params(self, params: dict):
        """Set weights ("SOURCE->TARGET.RECEPTOR", multiples of the unit conductance) and noise
        ("noise.excitatory.g0" etc., µS). Unknown names are an error listing the valid ones."""
        valid = set(self.model["defaults"])
        unknown = sorted(set(params) - valid)
        if unknown:
            raise KeyError(f"unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
        for name, value in params.items():
            self.params[name] = float(value)
            if name.startswith("noise."):
                _, kind, field = name.split(".")
                for group in self.groups.values():
                    setattr(group, f"{'g0' if field == 'g0' else 'sigma'}_noise_{kind}", float(value) * b2.usiemens)
            else:
                default = self.model["defaults"][name]
                for syn, base in self._weight_edges.get(name, []):
                    # per-edge weights keep their spread; the parameter scales them
                    scale = float(value) / default if default else 0.0
                    if not default:
                        base = np.full(len(base), self.model["weights"][name]["unit_conductance_uS"])
                        scale = float(value)
                    syn.w = base * scale * b2.usiemens
        if float(self.network.t / b2.ms) == 0 and hasattr(self, "_runs"):
            self._start_noise_at_mean()  # before the first step: the noise starts at its (new) mean

    def _start_noise_at_mean(self):
        for kind in self.model.get("noise") or {}:
            for group in self.groups.values():
                setattr(group, f"g_noise_{kind}", getattr(group, f"g0_noise_{kind}"))

    # -- recording -----------------------------------------------------------------------
    def record_spikes(self):
        if self._spike_monitors is None:
            self._spike_monitors = {n: b2.SpikeMonitor(g) for n, g in self.groups.items()}
            self.network.add(*self._spike_monitors.values())
        self._spike_counts = {n: 0 for n in self.groups}

    def record_voltage(self, gids=None, dt: float | None = None):
        """Record every compartment's membrane potential of ``gids`` (all if None) every ``dt`` ms."""
        if self._voltage_monitor is not None:
            raise RuntimeError("voltage recording is already set up; call clear() to start over")
        gids = np.arange(self.num_neurons) if gids is None else np.asarray(gids, dtype=int)
        self._voltage_gids, self._voltage_dt, self._voltage_monitor = gids, dt, {}
        for name, pop in self.model["populations"].items():
            local = gids[(gids >= pop["first_gid"]) & (gids < pop["first_gid"] + pop["count"])] - pop["first_gid"]
            if len(local):
                variables = [f"v_{c}" for c in pop["compartments"]]
                monitor = b2.StateMonitor(self.groups[name], variables, record=local, dt=(dt or self.dt) * b2.ms)
                self._voltage_monitor[name] = (monitor, local + pop["first_gid"])
                self.network.add(monitor)
        self._voltage_samples = {n: 0 for n in self._voltage_monitor}

    # -- running -------------------------------------------------------------------------
    def _stimulation(self, stimulus, steps):
        """A network operation applying electrode currents (µA, shape (samples, channels) at dt)."""
        stimulus = np.asarray(stimulus, dtype=float)
        if stimulus.ndim != 2 or stimulus.shape[1] != len(self.circuit.electrodes):
            raise ValueError(f"stimulus must have shape (samples, {len(self.circuit.electrodes)} channels), "
                             f"found {stimulus.shape}")
        stimulus = stimulus[:steps]
        change = np.flatnonzero(np.any(np.diff(stimulus, axis=0, prepend=np.zeros((1, stimulus.shape[1]))) != 0, axis=1))
        updates = {int(k): stimulus[k] for k in change}
        if len(stimulus) < steps:
            updates.setdefault(len(stimulus), np.zeros(stimulus.shape[1]))
        start = int(round(float(self.network.t / b2.ms) / self.dt))
        groups, transfer = self.groups, self._field

        def apply(t):
            step = int(round(float(t / b2.ms) / self.dt)) - start
            current = updates.get(step)
            if current is None:
                return
            for name, group in groups.items():
                soma, dend = transfer[name]
                names = self.model["populations"][name]["compartments"]
                setattr(group, f"Ve_{names[0]}", soma @ current * b2.mV)
                setattr(group, f"Ve_{names[1]}", dend @ current * b2.mV)

        return b2.NetworkOperation(apply, dt=self.dt * b2.ms, when="start", name=f"stimulation_{self._runs}")

    def run(self, duration: float, stimulus=None, inject=None):
        """Advance by ``duration`` ms; return what was recorded during this call.

        Parameters
        ----------
        duration : float
            ms.
        stimulus : array, optional
            Electrode currents in µA, shape (samples, channels), one sample per dt from now.
        inject : dict, optional
            gid -> somatic current clamp (nA) held during this call.

        Returns
        -------
        it, t : spike gids and times (ms) | None
        iv, v : voltage gids and soma potentials (mV, [rows, samples]) | None
        """
        self._runs += 1
        extra = []
        if stimulus is not None:
            extra.append(self._stimulation(stimulus, int(round(duration / self.dt))))
        injected = []
        for gid, current in (inject or {}).items():
            name, local = self._population_of(np.array([gid]))
            self.groups[name].I_inject[int(local[0])] = current * b2.nA
            injected.append((name, int(local[0])))
        self.network.add(*extra)
        try:
            self.network.run(duration * b2.ms, namespace={})
        finally:
            self.network.remove(*extra)
            for name, local in injected:
                self.groups[name].I_inject[local] = 0 * b2.nA
        self._check_finite()
        return self._collect()

    def _check_finite(self):
        """Raise if the integration diverged (Brian2 itself only logs a warning and runs on)."""
        for name, group in self.groups.items():
            for var in (v for v in group.variables if v.startswith("v_")):
                bad = np.flatnonzero(~np.isfinite(np.asarray(getattr(group, var)[:])))
                if len(bad):
                    gids = (bad + self.model["populations"][name]["first_gid"]).tolist()
                    raise FloatingPointError(
                        f"the integration diverged before t = {float(self.network.t / b2.ms):g} ms: {var} of "
                        f"{len(bad)} {name} cell(s) (gids {gids[:10]}{' ...' if len(bad) > 10 else ''}) is not finite; "
                        f"a smaller dt (or the NEURON backend, whose integration is implicit) would be stable")

    def _collect(self):
        it = t = iv = v = None
        if self._spike_monitors is not None:
            gids, times = [], []
            for name, monitor in self._spike_monitors.items():
                first = self.model["populations"][name]["first_gid"]
                done = self._spike_counts[name]
                gids.append(np.asarray(monitor.i[done:]) + first)
                times.append(np.asarray(monitor.t[done:] / b2.ms))
                self._spike_counts[name] = monitor.num_spikes
            it, t = np.concatenate(gids).astype(np.int64), np.concatenate(times)
            order = np.lexsort((it, t))
            it, t = it[order], t[order]
        if self._voltage_monitor:
            rows, values = [], []
            for name, (monitor, gids) in self._voltage_monitor.items():
                done = self._voltage_samples[name]
                soma = self.model["populations"][name]["compartments"][0]
                values.append(np.asarray(getattr(monitor, f"v_{soma}")[:, done:] / b2.mV))
                rows.append(gids)
                self._voltage_samples[name] = values[-1].shape[1] + done
            order = np.argsort(np.concatenate(rows))
            iv, v = np.concatenate(rows)[order], np.concatenate(values)[order]
        return it, t, iv, v

    def clear(self):
        """Back to time 0 and the initial state; recordings emptied (noise streams are keyed by
        step, so the same parameters give the same run again)."""
        spikes = self._spike_monitors is not None
        voltage = None
        if self._voltage_monitor is not None:
            voltage = (self._voltage_gids, self._voltage_dt)
            self.network.remove(*[m for m, _ in self._voltage_monitor.values()])
        if spikes:
            self.network.remove(*self._spike_monitors.values())
        self._spike_monitors = self._voltage_monitor = None
        self.network.restore("initial")
        params, self.params = self.params, dict(self.model["defaults"])
        self.set_params(params)
        self._start_noise_at_mean()
        if spikes:
            self.record_spikes()
        if voltage is not None:
            self.record_voltage(*voltage)
