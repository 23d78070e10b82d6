"""Brian2 simulation of a translated livn network: self-contained (numpy, brian2; no livn import).

``livn compile --target brian2`` copies this file and ``gid_normal.py`` beside a
``model.json`` + ``arrays.npz`` (the translator's description) and a ``run.py``; livn's
in-process Env uses the same class. Units: ms, mV, nA, µS; electrode currents µA.
"""

from __future__ import annotations

import json
from pathlib import Path

import brian2 as b2
import numpy as np

# Every object this runtime makes goes into its Network; Brian2 still warns, object by object,
# when a simulation is closed before its first run (e.g. gymnasium's check_env), which says
# nothing to a livn user.
b2.BrianLogger.suppress_name("unused_brian_object")

try:  # inside livn
    from ..gid_normal import C_SOURCE, gid_normal
except ImportError:  # a compiled directory: gid_normal.py sits beside this file
    from gid_normal import C_SOURCE, gid_normal


class PreparedNetwork(b2.Network):
    """A Brian2 Network that prepares each object once, not before every ``run`` call.

    Brian2's ``Network.before_run`` regenerates every object's code objects on each call
    (namespace resolution, hashing of every variable for its caches) and re-sorts every
    synaptic queue, and ``Network.run`` starts with a full ``gc.collect()``: on EI2 that is
    ~0.3 s per call whatever its length, 7× the work of a 10 ms step loop. Between two calls
    this runtime changes only values (weights, noise, clamps, the field), never equations,
    delays or the time step, so the code objects and queues of the first preparation stay
    valid: later calls prepare only objects added since (a stimulus operation, a monitor).
    After ``restore`` (a reset to t = 0) the code objects' per-run blocks run again (they set
    up the emptied synaptic queues), without generating the code objects again. The collection only served Brian2's warning about objects never added
    to a network, which this runtime silences (every object it makes is added); Brian2 skips
    it when that warning is off from 2.10 (brian-team/brian2#1861), 2.9 is the newest release
    for Python 3.11, so it is skipped here for this network's runs.
    """

    #: run steps through :func:`_direct_run` and later calls through :meth:`_continue` (False:
    #: Brian2's own call paths, the same computation; for comparison)
    direct = True

    def __init__(self, *objects, **keywords):
        super().__init__(*objects, **keywords)
        self._prepared = {}
        self._restored = False
        self._sorted = None

    def add(self, *objects):
        self._sorted = None
        super().add(*objects)

    def remove(self, *objects):
        self._sorted = None
        super().remove(*objects)

    def _objects(self) -> list:
        """``sorted_objects``, computed again only after ``add``/``remove`` (Brian2 sorts the
        whole schedule on every access, three times per run call)."""
        if self._sorted is None:
            self._sorted = self.sorted_objects
        return self._sorted

    def before_run(self, run_namespace):
        objects = self._objects()
        if not self._prepared:
            super().before_run(run_namespace)
        else:
            self._stopped = False
            b2.Network._globally_stopped = False
            for obj in objects:
                if not obj.active:
                    continue
                if self._prepared.get(id(obj)) is not obj:
                    obj.before_run(run_namespace)
                    if obj._network is None:
                        obj._network = self.id
                elif self._restored:
                    # the per-run blocks of the existing code objects: after a restore the
                    # synaptic queues are empty and must be set up again (initialise_queue)
                    for code_object in obj._code_objects:
                        code_object.before_run()
        self._prepared = {id(obj): obj for obj in objects}
        self._restored = False
        for obj in objects:
            if obj.active and obj._code_objects:  # from its current code objects, every call
                direct = _direct_run(obj) if self.direct else None
                if direct is not None:
                    obj.run = direct
                else:
                    vars(obj).pop("run", None)

    def restore(self, *args, **keywords):
        self._restored = True
        super().restore(*args, **keywords)

    def run(self, duration, *args, **keywords):
        if self.direct and self._prepared and not args and set(keywords) <= {"namespace"}:
            objects = self._objects()
            clocks = {obj.clock for obj in objects}
            if len(clocks) == 1:
                self._continue(duration, clocks.pop(), objects, keywords.get("namespace"))
                return
        import brian2.core.network as network_module

        collector, network_module.gc = network_module.gc, _NoCollection
        try:
            super().run(duration, *args, **keywords)
        finally:
            network_module.gc = collector

    def _continue(self, duration, clock, objects, namespace):
        """A run after the first on one clock: what ``Network.run`` does for it (interval,
        preparation, the step loop, ``after_run``) without its per-call extras — the
        collection, the debug messages that format the times in units (~1 ms per call), the
        schedule sorted three times, Brian2's NaN warning (the runtime checks finiteness
        itself and raises), reports and profiling (those calls take Brian2's path)."""
        if duration < 0:
            raise ValueError(f"a run's duration must not be negative, not {duration}")
        t_end = self.t + duration
        clock.set_interval(self.t, t_end)
        self.before_run(namespace)
        steps = [obj.run for obj in objects if obj.active]
        timestep, t, dt = (clock.variables[name].get_value() for name in ("timestep", "t", "dt"))
        end = clock._i_end
        b2.Network._globally_running = True
        try:
            while timestep[0] < end and not self._stopped and not b2.Network._globally_stopped:
                self.t_ = t[0]
                for step in steps:
                    step()
                timestep[0] += 1
                t[0] = timestep[0] * dt[0]
        finally:
            b2.Network._globally_running = False
        self.t_ = clock.t_ if self._stopped or b2.Network._globally_stopped else float(t_end)
        for obj in objects:
            if obj.active:
                obj.after_run()


def _direct_run(obj):
    """``obj.run`` for a time step without Brian2's per-call layers (``BrianObject.run`` ->
    ``CodeObject.__call__`` -> ``run`` -> ``run_block``): each code object's compiled ``run``
    block is called with its namespace, refreshed as ``update_namespace`` does. The same code
    runs in the same order; on EI2 this is 14 % of a step (20 code objects per step). None when a
    code object is not compiled Cython (numpy code generation keeps Brian2's own path)."""
    blocks = [code_object.compiled_code.get("run") for code_object in obj._code_objects]
    if not all(block is None or hasattr(block, "main") for block in blocks):
        return None
    steps = [(code_object, block.main) for code_object, block in zip(obj._code_objects, blocks) if block is not None]

    def run():
        for code_object, main in steps:
            namespace = code_object.namespace
            for name, value in code_object.nonconstant_values:
                namespace[name] = value()
            try:
                main(namespace)
            except Exception as exc:
                raise b2.BrianObjectException(f"An exception occured during the execution of the 'run' block of "
                                              f"code object '{code_object.name}'.\n", obj) from exc
    return run


class _NoCollection:
    """Stands in for the ``gc`` module inside ``brian2.core.network`` during a run."""

    @staticmethod
    def collect(*args):
        return 0


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


def load(directory) -> tuple[dict, dict]:
    """(description, arrays) saved by ``livn compile --target brian2`` in ``directory``."""
    directory = Path(directory)
    description = json.loads((directory / "model.json").read_text())
    with np.load(directory / "arrays.npz") as data:
        arrays = {k.replace("__", "/"): data[k] for k in data.files}
    return description, arrays



#: NEURON's IntFire1 (see livn.targets.brian2.translate)
POINT_EQUATIONS = """dm/dt = -m/tau : 1 (unless refractory)
tau : second (constant)
refrac : second (constant)"""

def _plastic_synapse(plasticity: dict) -> tuple[str, str, str, str]:
    """(equations of the plasticity state, on_pre lines before the event, on_pre lines after it,
    the release probability: a name or a number) of a synapse type with Tsodyks–Markram plasticity
    (NeuroML tsodyksMarkramDepMechanism / tsodyksMarkramDepFacMechanism).

    The state is per synapse: R, u and the time of its previous event. At an event R (and u)
    first recover exactly over the time since then (event-driven: nothing is integrated per
    step), the event adds w·u·R, then R depresses and u facilitates: NeuroML's order (see
    livn.neuroml.reader.Plasticity). ``plasticity``: release (U), tau_rec and tau_fac (ms; 0:
    depression only)."""
    U, tau_rec, tau_fac = plasticity["release"], plasticity["tau_rec"], plasticity["tau_fac"]
    equations = "R_syn : 1\ntlast_syn : second"
    before = f"R_syn = 1 - (1 - R_syn)*exp(-(t - tlast_syn)/({tau_rec!r}*ms))\n"
    if tau_fac <= 0:
        return equations, before, f"R_syn = R_syn*(1 - {U!r})\ntlast_syn = t", repr(U)
    equations += "\nu_syn : 1"
    before += f"u_syn = {U!r} + (u_syn - {U!r})*exp(-(t - tlast_syn)/({tau_fac!r}*ms))\n"
    after = f"R_syn = R_syn*(1 - u_syn)\nu_syn = u_syn + {U!r}*(1 - u_syn)\ntlast_syn = t"
    return equations, before, after, "u_syn"


class Simulation:
    """A Brian2 network of a translated livn network.

    Parameters
    ----------
    description, arrays
        From livn's Brian2 translator (or :func:`load`).
    dt : float
        Integration step, ms.
    codegen : str
        Brian2 code generation target ("cython" compiles once and caches; "numpy" never compiles).
    copies : int
        Independent copies of the network simulated side by side in the same groups (a batch of
        trials: one step costs little more than for one copy, since the per-object overhead is
        shared). Copy b's cells have the gids ``gid + b * num_cells`` and its electrodes the
        stimulus columns ``b * channels ... (b + 1) * channels - 1``; every copy draws the
        original gid's noise, so a copy runs exactly what a one-copy network runs. Only networks
        of single- or two-compartment cells (no SpatialNeuron, point-process or virtual cells).
    """

    def __init__(self, description: dict, arrays: dict, dt: float = 0.025, codegen: str = "cython",
                 builders: dict | None = None, copies: int = 1):
        self.model, self.arrays = description, arrays
        self._builders = builders or {}
        self.dt = dt
        self.copies = int(copies)
        if self.copies > 1:
            other = sorted({e["kind"] for e in description["groups"].values()} - {"cells"})
            if other:
                raise ValueError(f"copies > 1 needs a network of 'cells' groups only; this one has {', '.join(other)}")
        b2.prefs.codegen.target = codegen
        b2.prefs.logging.file_log = False
        # one clock: every object steps together; a fixed name keeps the generated code (and
        # Brian2's compiled cache) the same for every Env
        self.clock = b2.Clock(dt * b2.ms, name="livn_clock")
        self.num_cells = int(description["num_cells"])
        self.names = description["group_names"]
        self.groups, self.gids = {}, {}
        # (Synapses, its weight variable, weight group per synapse, relative weight per synapse)
        self._synapses = []
        self.network = PreparedNetwork()
        self._build_groups()
        self._build_synapses()
        self.params = dict(description["defaults"])
        self.set_params(self.params)
        self._start_noise_at_mean()
        self._spike_monitors = None
        self._recorders = {}
        self._runs = 0
        self._checkpoint = None
        self.network.store("initial")

    # -- construction --------------------------------------------------------------------
    def _build_groups(self):
        noise = self.model.get("noise") or {}
        gid_normal = gid_normal_function(self.model.get("seed", 0))
        for name in self.names:
            entry = self.model["groups"][name]
            gids = self.arrays[f"gids/{name}"]
            self.gids[name] = gids
            if entry["kind"] == "virtual":
                group = b2.SpikeGeneratorGroup(len(gids) * entry.get("copies", 1), self.arrays[f"input_index/{name}"],
                                               self.arrays[f"input_time/{name}"] * b2.ms, name=f"inputs_{name}",
                                               clock=self.clock)
                self.groups[name] = group
                self.network.add(group)
                continue
            if entry["kind"] == "point":
                group = b2.NeuronGroup(len(gids), POINT_EQUATIONS, threshold="m > 1", reset="m = 0",
                                       refractory="refrac", method="exact", name=f"points_{name}", clock=self.clock)
                group.tau = self.arrays[f"tau/{name}"] * b2.ms
                group.refrac = self.arrays[f"refrac/{name}"] * b2.ms
                self.groups[name] = group
                self.network.add(group)
                continue
            if entry["kind"] == "spatial":
                group = self._builders[name](len(gids), self.clock, {"gid_normal": gid_normal})
                group.gid = np.repeat(gids, entry["n"])
                self._noise_updates(group, name, entry, noise)
                self.groups[name] = group
                self.network.add(group)
                continue
            equations = entry["equations"]
            for kind in entry["noise"]:
                equations += f"\ng0_noise_{kind} : siemens (shared)\nsigma_noise_{kind} : siemens (shared)"
            self.gids[name] = np.concatenate([gids + copy * self.num_cells for copy in range(self.copies)])
            group = b2.NeuronGroup(len(gids) * self.copies, equations, threshold=entry["threshold"], refractory=entry["refractory"],
                                   method="rk4", name=f"population_{name}", namespace={"gid_normal": gid_normal},
                                   clock=self.clock)
            group.gid = np.tile(gids, self.copies)  # the noise's key: the same in every copy
            for var, value in entry["initial"].items():
                unit = b2.mV if var.startswith("v_") else (b2.siemens if var[:2] in ("A_", "B_") else 1)
                setattr(group, var, value * unit)
            self._noise_updates(group, name, entry, noise)
            self.groups[name] = group
            self.network.add(group)

    def _noise_updates(self, group, name: str, entry: dict, noise: dict):
        """The exact Ornstein–Uhlenbeck update (Gillespie 1996), stable for any dt; the normal
        numbers come from each cell's own stream keyed by (seed, gid, kind, step)."""
        if not entry["noise"]:
            return
        updates = []
        for kind in entry["noise"]:
            ou = noise[kind]
            decay = float(np.exp(-self.dt / ou["tau_ms"]))
            spread = float(np.sqrt(1 - decay**2))
            updates.append(
                f"g_noise_{kind} = g0_noise_{kind} + (g_noise_{kind} - g0_noise_{kind})*{decay!r} "
                f"+ sigma_noise_{kind}*{spread!r}*gid_normal(gid, {ou['stream']}, int(t/dt + 0.5))")
        group.run_regularly("\n".join(updates), when="start", name=f"noise_{name}")

    def _build_synapses(self):
        a = self.arrays
        n = len(a["conn/source_group"])
        if n == 0:
            return
        spatial = np.array([self.model["groups"][n]["kind"] == "spatial" for n in self.names])
        # a SpatialNeuron takes every compartment's events through one Synapses object per synapse type
        compartment_key = np.where(spatial[a["conn/target_group"]], -1, a["conn/compartment"])
        keys = np.stack([a["conn/synapse"], a["conn/source_group"], a["conn/target_group"], compartment_key], 1)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(unique) + 1))
        bundles = {}
        for k, (syn, source, target, comp) in enumerate(unique.tolist()):
            bundles.setdefault((source, target, comp), []).append((syn, order[bounds[k]:bounds[k + 1]]))
        for k, ((source, target, comp), types) in enumerate(bundles.items()):
            for j, part in enumerate(self._merged(types) if self.merge else [[t] for t in types]):
                self._add_synapses(f"edges_{k}_{j}", source, target, part)

    #: one Synapses object for the synapse types of a projection that share their connections
    #: and plasticity (AMPA and NMDA of EXC -> EXC): one event queue and one code object per
    #: step instead of one per type (False: one object per type, the same computation)
    merge = True

    def _merged(self, types: list) -> list:
        """``types`` [(synapse type, connection indices)] of one (source, target, compartment)
        split into lists whose members make identical connections (source, target, delay: the
        connection indices of each aligned to the first's order) with the same plasticity."""
        a = self.arrays
        kind = self.model["groups"][self.names[int(a["conn/target_group"][types[0][1][0]])]]["kind"]
        if kind == "point":
            return [[t] for t in types]

        def connections(members):
            return (a["conn/source_index"][members], a["conn/target_index"][members], a["conn/delay"][members])

        def plasticity(syn):
            return self.model["synapses"][self.model["synapse_names"][syn]].get("plasticity")

        parts = []
        for syn, members in types:
            for part in parts:
                first = part[0][1]
                if len(first) != len(members) or plasticity(part[0][0]) != plasticity(syn):
                    continue
                mine, theirs = np.lexsort(connections(members)), np.lexsort(connections(first))
                if all(np.array_equal(x[mine], y[theirs]) for x, y in zip(connections(members), connections(first))):
                    aligned = np.empty_like(members)
                    aligned[theirs] = members[mine]
                    part.append((syn, aligned))
                    break
            else:
                parts.append([(syn, members)])
        return parts

    def _add_synapses(self, name: str, source: int, target: int, types: list):
        """One Synapses object from group ``source`` to ``target`` carrying ``types``
        [(synapse type, connection indices)], whose connections are the same, one for one."""
        a = self.arrays
        members = types[0][1]
        target_name = self.names[target]
        entry = self.model["groups"][target_name]
        synapse_names = self.model["synapse_names"]
        weights = ["w"] if len(types) == 1 else [f"w_{synapse_names[syn]}" for syn, _ in types]
        equations = "\n".join(f"{w} : siemens" for w in weights)
        plasticity = None
        if entry["kind"] == "point":  # an event adds its weight (w in µS units, a pure number here)
            targets = a["conn/target_index"][members]
            on_pre = "m_post += int(not_refractory_post)*w/usiemens"
        else:
            if entry["kind"] == "spatial":
                targets = (a["conn/target_index"][members] * entry["n"]
                           + np.asarray(entry["index"])[a["conn/compartment"][members]])
            else:
                targets = a["conn/target_index"][members]
            syn_name = synapse_names[types[0][0]]
            plasticity = self.model["synapses"][syn_name].get("plasticity")
            before = after = ""
            release = None
            if plasticity is not None:
                state, before, after, release = _plastic_synapse(plasticity)
                equations += "\n" + state
                after = "\n" + after
            lines = []
            for (syn, _), w in zip(types, weights):
                syn_name = synapse_names[syn]
                variable = syn_name if entry["kind"] == "spatial" else f"{syn_name}_{entry['compartments'][int(a['conn/compartment'][members[0]])]}"
                increment = f"{w}*{self.model['synapses'][syn_name]['peak_factor']!r}"
                if release is not None:
                    increment += f"*{release}*R_syn"
                lines.append(f"B_{variable}_post += {increment}")
                if self.model["synapses"][syn_name]["tau_rise"] > 0:
                    lines.append(f"A_{variable}_post += {increment}")
            on_pre = before + "\n".join(lines) + after
        obj = b2.Synapses(self.groups[self.names[source]], self.groups[target_name], equations,
                          on_pre=on_pre, name=name, namespace={}, clock=self.clock)
        source_entry = self.model["groups"][self.names[source]]
        sources = a["conn/source_index"][members]
        if source_entry["kind"] == "spatial":  # a spike of cell k comes from its soma compartment
            sources = sources * source_entry["n"] + source_entry["soma"]
        copies = source_entry.get("copies", 1)
        expanded = [m for _, m in types]
        if copies > 1:  # every copy of a virtual node (see the translator) makes the connection
            expanded, targets = [np.repeat(m, copies) for m in expanded], np.repeat(targets, copies)
            sources = np.repeat(sources, copies) * copies + np.tile(np.arange(copies), len(members))
        if self.copies > 1:  # copy b connects its own cells: indices shifted by b group sizes
            shift = np.repeat(np.arange(self.copies), len(expanded[0]))
            expanded = [np.tile(m, self.copies) for m in expanded]
            sources = np.tile(sources, self.copies) + shift * len(self.arrays[f"gids/{self.names[source]}"])
            targets = np.tile(targets, self.copies) + shift * len(self.arrays[f"gids/{target_name}"])
        obj.connect(i=sources, j=targets)
        obj.delay = a["conn/delay"][expanded[0]] * b2.ms
        if plasticity is not None:  # NeuroML's OnStart: resources full, release probability U
            obj.R_syn = 1.0
            if plasticity["tau_fac"] > 0:
                obj.u_syn = plasticity["release"]
        for w, m in zip(weights, expanded):
            self._synapses.append((obj, w, a["conn/weight_group"][m], a["conn/relative"][m]))
        self.network.add(obj)

    # -- parameters ----------------------------------------------------------------------
    def set_params(self, params: dict):
        """Weights (× the group's unit conductance) and noise ("noise.<kind>.g0"/"sigma", µS, or
        mS/cm² scaled by each group's membrane area); values are checked by the caller (livn's
        network model), names here."""
        valid = set(self.model["defaults"])
        unknown = sorted(set(params) - valid)
        if unknown:
            raise KeyError(f"unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
        self.params.update({k: float(v) for k, v in params.items()})
        for name, value in params.items():
            if name.startswith("noise."):
                _, kind, field = name.split(".")
                for group_name, group in self.groups.items():
                    entry = self.model["groups"][group_name]
                    if kind in entry.get("noise", ()):
                        scale = entry.get("noise_scale", {}).get(kind, 1.0)
                        setattr(group, f"{'g0' if field == 'g0' else 'sigma'}_noise_{kind}",
                                float(value) * scale * b2.usiemens)
        if any(not n.startswith("noise.") for n in params):
            weights = self.model["weights"]
            scale = np.array([self.params[n] * u for n, u in zip(weights["names"], weights["units"])])
            for obj, variable, group, relative in self._synapses:
                setattr(obj, variable, scale[group] * relative * b2.usiemens)
        if float(self.network.t / b2.ms) == 0 and hasattr(self, "_runs"):
            self._start_noise_at_mean()  # before the first step: the noise starts at its (new) mean

    def _start_noise_at_mean(self):
        for name, group in self.groups.items():
            for kind in self.model["groups"][name].get("noise", ()):
                setattr(group, f"g_noise_{kind}", getattr(group, f"g0_noise_{kind}"))

    def _cells(self):
        return [n for n in self.names if self.model["groups"][n]["kind"] in ("cells", "spatial")]

    def _spiking(self):
        """Groups whose spikes are reported: cells with a membrane and point-process cells."""
        return [n for n in self.names if self.model["groups"][n]["kind"] in ("cells", "spatial", "point")]

    def _spatial(self, name: str) -> bool:
        return self.model["groups"][name]["kind"] == "spatial"

    # -- recording -----------------------------------------------------------------------
    def record_spikes(self):
        if self._spike_monitors is None:
            # named, not Brian2's numbered default: the generated code contains the name, so a
            # monitor made again by clear() finds its compiled code instead of compiling anew
            self._spike_monitors = {n: b2.SpikeMonitor(self.groups[n], name=f"spikes_{n}") for n in self._spiking()}
            self.network.add(*self._spike_monitors.values())
        self._spike_counts = {n: 0 for n in self._spike_monitors}

    def record(self, gids, variable: str, dt: float | None = None):
        """Record ``variable`` ("v": membrane potential, mV; "i_membrane": transmembrane current,
        nA) of every compartment of ``gids`` every ``dt`` ms."""
        if variable in self._recorders:
            if float(self.network.t / b2.ms) != 0:
                raise RuntimeError(f"{variable} recording is already set up; call clear() to start over")
            old, _, _ = self._recorders.pop(variable)  # before the first run: the new selection replaces it
            self.network.remove(*[m[0] for m in old.values()])
        gids = np.asarray(gids, dtype=np.int64)
        monitors = {}
        prefix = "v_" if variable == "v" else "im_"
        # at the network's step a monitor shares its clock: one clock keeps later run calls on
        # PreparedNetwork's short path
        timing = {"clock": self.clock} if dt is None or dt == self.dt else {"dt": dt * b2.ms}
        for name in self._cells():
            own = self.gids[name]
            local = np.flatnonzero(np.isin(own, gids))
            if len(local) and self._spatial(name):
                if variable != "v":
                    raise ValueError(f"the Brian2 target does not record membrane currents of multi-compartment "
                                     f"(SpatialNeuron) cells ({name}); record them on NEURON")
                entry = self.model["groups"][name]
                index = (local[:, None] * entry["n"] + np.asarray(entry["index"])[None, :]).ravel()
                monitor = b2.StateMonitor(self.groups[name], "v", record=index, name=f"record_{prefix}{name}", **timing)
                monitors[name] = [monitor, own[local], 0, None]
                self.network.add(monitor)
            elif len(local):
                variables = [f"{prefix}{c}" for c in self.model["groups"][name]["compartments"]]
                monitor = b2.StateMonitor(self.groups[name], variables, record=local, name=f"record_{prefix}{name}",
                                          **timing)
                monitors[name] = [monitor, own[local], 0, variables]
                self.network.add(monitor)
        self._recorders[variable] = (monitors, np.array(gids), dt)

    # -- running -------------------------------------------------------------------------
    def _stimulation(self, stimulus):
        """A network operation applying electrode currents (µA, shape (samples, channels) at dt)."""
        change = np.flatnonzero(np.any(np.diff(stimulus, axis=0, prepend=np.zeros((1, stimulus.shape[1]))) != 0, axis=1))
        updates = {int(k): stimulus[k] for k in change}
        updates.setdefault(len(stimulus), np.zeros(stimulus.shape[1]))
        start = int(round(float(self.network.t / b2.ms) / self.dt))
        fields = {n: self.arrays[f"field/{n}"] for n in self._cells()}

        def apply(t):
            step = int(round(float(t / b2.ms) / self.dt)) - start
            current = updates.get(step)
            if current is None:
                return
            for name, transfer in fields.items():
                # (copies * cells, compartments) mV; copy b sees its own block of channels
                ve = np.einsum("nkc,bc->bnk", transfer, current.reshape(self.copies, -1)).reshape(-1, transfer.shape[1])
                entry = self.model["groups"][name]
                if entry["kind"] == "spatial":
                    # the equivalent axial currents (nA), L·Ve per cell, in Brian2's compartment order
                    axial = ve @ np.asarray(entry["laplacian"]).T
                    flat = np.empty(axial.size)
                    n = entry["n"]
                    for k in range(axial.shape[0]):
                        flat[k * n + np.asarray(entry["index"])] = axial[k]
                    self.groups[name].I_field = flat * b2.nA
                    continue
                for k, comp in enumerate(entry["compartments"]):
                    setattr(self.groups[name], f"Ve_{comp}", ve[:, k] * b2.mV)

        return b2.NetworkOperation(apply, clock=self.clock, when="start", name=f"stimulation_{self._runs}")

    def run(self, duration: float, stimulus=None, inject=None):
        """Advance by ``duration`` ms (checked by the caller); return what was recorded during this call.

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
        gids, times : spikes of this call, sorted by time (ms)
        recordings : {variable: {gid: (compartments, samples) array}}
        """
        self._runs += 1
        extra = []
        if stimulus is not None and len(stimulus):
            extra.append(self._stimulation(np.asarray(stimulus, dtype=float)))
        injected = []
        for gid, current in (inject or {}).items():
            for name in self._cells():
                hit = np.flatnonzero(self.gids[name] == int(gid))
                if len(hit):
                    index = int(hit[0])
                    if self._spatial(name):
                        index = index * self.model["groups"][name]["n"] + self.model["groups"][name]["soma"]
                    self.groups[name].I_inject[index] = current * b2.nA
                    injected.append((name, index))
        self.network.add(*extra)
        try:
            self.network.run(duration * b2.ms, namespace={})
        finally:
            self.network.remove(*extra)
            for name, local in injected:
                self.groups[name].I_inject[local] = 0 * b2.nA
            if extra:
                for name in self._cells():
                    if self._spatial(name):
                        self.groups[name].I_field = 0 * b2.nA
                        continue
                    for comp in self.model["groups"][name]["compartments"]:
                        setattr(self.groups[name], f"Ve_{comp}", 0 * b2.mV)
        self._check_finite()
        return self._collect()

    def _check_finite(self):
        """Raise if the integration diverged (Brian2 itself only logs a warning and runs on)."""
        for name in self._cells():
            group = self.groups[name]
            names = ["v"] if self._spatial(name) else [v for v in group.variables if v.startswith("v_")]
            for var in names:
                bad = np.flatnonzero(~np.isfinite(np.asarray(getattr(group, var)[:])))
                if self._spatial(name):
                    bad = np.unique(bad // self.model["groups"][name]["n"])
                if len(bad):
                    gids = self.gids[name][bad].tolist()
                    raise FloatingPointError(
                        f"the integration diverged before t = {float(self.network.t / b2.ms):g} ms: {var} of "
                        f"{len(bad)} {name} cell(s) (gids {gids[:10]}{' ...' if len(bad) > 10 else ''}) is not finite; "
                        f"a smaller dt (or the NEURON backend, whose integration is implicit) would be stable")

    def _collect(self):
        gids, times = np.zeros(0, dtype=np.int64), np.zeros(0)
        if self._spike_monitors is not None:
            g, t = [], []
            for name, monitor in self._spike_monitors.items():
                done = self._spike_counts[name]
                index = np.asarray(monitor.i[done:], dtype=np.int64)
                if self._spatial(name):
                    index = index // self.model["groups"][name]["n"]
                g.append(self.gids[name][index])
                t.append(np.asarray(monitor.t[done:] / b2.ms))
                self._spike_counts[name] = monitor.num_spikes
            gids, times = np.concatenate(g).astype(np.int64), np.concatenate(t)
            order = np.lexsort((gids, times))
            gids, times = gids[order], times[order]
        recordings = {}
        for variable, (monitors, _, _) in self._recorders.items():
            unit = b2.mV if variable == "v" else b2.nA
            out = {}
            for name, entry in monitors.items():
                monitor, own, done, variables = entry
                if variables is None:  # a SpatialNeuron: rows are (cell, compartment) in livn order
                    values = np.asarray(monitor.v[:, done:] / unit).reshape(len(own), -1, monitor.v.shape[1] - done)
                else:
                    values = np.stack([np.asarray(getattr(monitor, v)[:, done:] / unit) for v in variables], axis=1)
                entry[2] = done + values.shape[2]
                for row, gid in enumerate(own.tolist()):
                    out[gid] = values[row]
            recordings[variable] = out
        return gids, times, recordings

    def clear(self):
        """Back to time 0 and the initial state; recordings emptied (noise streams are keyed by
        step, so the same parameters give the same run again)."""
        spikes = self._spike_monitors is not None
        recorders = {k: (gids, dt) for k, (_, gids, dt) in self._recorders.items()}
        for monitors, _, _ in self._recorders.values():
            self.network.remove(*[m[0] for m in monitors.values()])
        if spikes:
            self.network.remove(*self._spike_monitors.values())
        self._spike_monitors, self._recorders, self._checkpoint = None, {}, None
        self.network.restore("initial")
        params, self.params = self.params, dict(self.model["defaults"])
        self.set_params(params)
        self._start_noise_at_mean()
        if spikes:
            self.record_spikes()
        for variable, (gids, dt) in recorders.items():
            self.record(gids, variable, dt)

    def checkpoint(self):
        """Remember the current state (time, every variable, the synaptic queues, what the
        recorders hold) for :meth:`rewind`; one checkpoint at a time."""
        self.network.store("checkpoint")
        self._checkpoint = (dict(self.params), dict(getattr(self, "_spike_counts", {})),
                            {k: [m[2] for m in monitors.values()] for k, (monitors, _, _) in self._recorders.items()})

    def rewind(self):
        """Back to the last :meth:`checkpoint`: the same steps then give the same run again
        (the noise is keyed by step). Recordings must be those of the checkpoint."""
        if self._checkpoint is None:
            raise RuntimeError("rewind() needs a checkpoint() first")
        params, counts, done = self._checkpoint
        if set(counts) != set(getattr(self, "_spike_counts", {})) or set(done) != set(self._recorders):
            raise RuntimeError("the recordings changed since the checkpoint; checkpoint() again")
        self.network.restore("checkpoint")
        self.params = dict(params)
        self._spike_counts = dict(counts)
        for variable, (monitors, _, _) in self._recorders.items():
            for entry, count in zip(monitors.values(), done[variable]):
                entry[2] = count

