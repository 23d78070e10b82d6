"""A livn circuit as a NEURON network, distributed over MPI ranks with ParallelContext.

Cells are dealt round-robin by gid (gid % ranks); every connection is a ``gid_connect``
NetCon onto the target cell's one point process per receptor; the OU noise of a cell draws
the counter-based numbers keyed by (seed, gid, kind, step) that the Brian2 target draws
too (:mod:`livn.targets.gid_normal`). What a cell computes therefore does not
depend on the number of ranks: spikes are identical on 1, 2 or 3 ranks.

Units: ms, mV, nA, µS, µm; electrode currents µA.
"""

from __future__ import annotations

import numpy as np

from ...spec import SystemSpec
from ..circuit import Circuit, field_transfer
from ..dynamics import read_cell
from .cell import NeuronCell, _h, set_integration
from .nmodl import load_mechanisms, system_mechanisms

#: where "onto" in a spec puts things on livn's two-compartment cells
ONTO = {"soma": "soma_group", "dendrite": "dendrite_group"}
NOISE_KINDS = ("excitatory", "inhibitory")


class Network:
    """The NEURON network of ``spec`` built from the SONATA circuit at ``circuit``.

    Parameters
    ----------
    spec : SystemSpec
    circuit : path
        The circuit directory.
    dt : float
        Fixed integration step, ms.
    secondorder : int, optional
        NEURON's ``secondorder``: 0 backward Euler, 2 Crank–Nicolson (second order: close to
        Brian2's RK4). Default: 2, except with the ``extracellular`` mechanism, where
        Crank–Nicolson rings after each jump of the extracellular potential (a stimulus
        pulse) and fires every cell, so backward Euler is used.
    extracellular : bool
        Insert NEURON's ``extracellular`` mechanism in every section (MEA stimulation with
        ``field="extracellular"``); it makes each step about four times as expensive, so
        runs without stimulation leave it out.
    field : str
        How the MEA field acts: "extracellular" (NEURON's mechanism: e_extracellular of each
        section) or "currents" (the equivalent for two compartments: the axial current
        g_c·(Ve_dend − Ve_soma) injected into the soma and taken from the dendrite, which is
        what the Brian2 target does; works with Crank–Nicolson).
    coreneuron : bool
        Integrate with CoreNEURON (in memory; mechanisms compiled with ``nrnivmodl -coreneuron``
        once): the same spikes, faster on large networks. Runs without stimulation or current
        injection only (each change of a stimulus would copy the model between the two engines).
    """

    def __init__(self, spec: SystemSpec, circuit, dt: float = 0.025, secondorder: int | None = None,
                 extracellular: bool = True, field: str = "extracellular", coreneuron: bool = False):
        h = _h()
        self.h, self.spec, self.dt = h, spec, dt
        if field not in ("extracellular", "currents"):
            raise ValueError(f"field must be 'extracellular' or 'currents', not {field!r}")
        self.field = field
        self.extracellular = extracellular and field == "extracellular"
        if coreneuron and self.extracellular:
            raise ValueError("CoreNEURON has no extracellular mechanism: build with extracellular=False")
        self.coreneuron = coreneuron
        if secondorder is None:
            secondorder = 0 if self.extracellular else 2
        self.pc = h.ParallelContext()
        self.pc.gid_clear()  # one network per process: a new one replaces the previous one
        self.rank, self.ranks = int(self.pc.id()), int(self.pc.nhost())
        self.circuit = Circuit(circuit, edges=False)  # each rank reads only its cells' afferent edges
        self.mechanisms = load_mechanisms(system_mechanisms(spec), coreneuron=coreneuron)
        set_integration("fixed", dt=dt, secondorder=secondorder)
        if coreneuron:
            h.CVode().cache_efficient(1)  # CoreNEURON takes the model from NEURON's sorted memory
        self.cells: dict[int, NeuronCell] = {}
        self._population_of: dict[int, str] = {}
        self._build_cells()
        self._netcons: dict[str, list] = {}
        self._connect()
        self.pc.set_maxstep(10)
        self._spike_times, self._spike_gids = h.Vector(), h.Vector()
        self.pc.spike_record(-1, self._spike_times, self._spike_gids)
        self._spikes_read = 0
        self._transfer = self._field_transfer()
        self.params = spec.default_params()
        self.set_params(self.params)
        self._voltage = None
        self._initialise()

    # -- construction --------------------------------------------------------------------
    def _build_cells(self):
        spec = self.spec
        receptors_onto = {p.name: {} for p in spec.populations}
        for proj in spec.projections:
            for r in proj.receptors:
                receptors_onto[proj.target][r] = ONTO[proj.onto]
        for pop in spec.populations:
            ir = read_cell(pop.cell, pop.cell_id)
            for gid in pop.gids:
                if gid % self.ranks != self.rank:
                    continue
                cell = NeuronCell(ir, self.mechanisms, gid=gid, extracellular=self.extracellular)
                for receptor, group in receptors_onto[pop.name].items():
                    cell.add_synapse(receptor, self.mechanisms.synapse(receptor), group)
                if spec.noise is not None:
                    for stream, kind in enumerate(NOISE_KINDS):
                        ou = getattr(spec.noise, kind)
                        cell.add_noise(kind, self.mechanisms.noise.name, ONTO[ou.onto], ou.g0, ou.sigma, ou.tau,
                                       ou.erev, ids=(spec.seed, gid, stream))
                self.pc.set_gid2node(gid, self.rank)
                self.pc.cell(gid, cell.spike_detector())
                self.cells[gid] = cell
                self._population_of[gid] = pop.name

    def _connect(self):
        import libsonata

        import h5py

        population = libsonata.EdgeStorage(str(self.circuit.edges_file)).open_population(self.circuit.edge_population)
        selection = population.afferent_edges(sorted(self.cells))
        with h5py.File(self.circuit.edges_file, "r") as h5:  # libsonata does not expose edge_type_id
            types = h5[f"edges/{self.circuit.edge_population}/edge_type_id"]
            edge_type = np.concatenate([types[a:b] for a, b in selection.ranges] or [np.zeros(0, dtype=np.int64)])
        # by edge type, then by edge id: the order (of NetCons, hence of simultaneous events)
        # is the same on any number of ranks
        order = np.lexsort((selection.flatten(), edge_type))
        source, target, edge_type, weight, delay = (
            np.asarray(x)[order] for x in (population.source_nodes(selection), population.target_nodes(selection),
                                           edge_type, population.get_attribute("syn_weight", selection),
                                           population.get_attribute("delay", selection)))
        for type_id, row in sorted(self.circuit.edge_types.items()):
            mask = edge_type == type_id
            name = f"{row['projection']}.{row['receptor']}"
            netcons = self._netcons.setdefault(name, [])
            synapse = row["receptor"]
            for s, t, w, d in zip(source[mask].tolist(), target[mask].tolist(), weight[mask].tolist(), delay[mask].tolist()):
                nc = self.pc.gid_connect(s, self.cells[t].synapses[synapse])
                nc.weight[0] = w
                nc.delay = d
                netcons.append((nc, w))

    def _field_transfer(self):
        """gid -> (mV per µA of each electrode at the soma, ... at the dendrite)."""
        out = {}
        for pop in self.spec.populations:
            gids = [g for g in pop.gids if g in self.cells]
            if not gids:
                continue
            ir = self.cells[gids[0]].ir
            centres = [c.centre for c in ir.compartments]
            per_compartment = field_transfer(self.circuit, pop.first_gid, pop.count, centres, self.spec.mea.resistivity)
            for gid in gids:
                out[gid] = [m[gid - pop.first_gid] for m in per_compartment]
        return out

    def _initialise(self):
        h = self.h
        for cell in self.cells.values():
            for sec in cell.sections.values():
                sec.v = cell.ir.v_init
        h.finitialize()  # no argument: every cell starts at its own initMembPotential
        self._spikes_read = 0

    # -- parameters ----------------------------------------------------------------------
    def set_params(self, params: dict):
        """Weights ("SOURCE->TARGET.RECEPTOR", × unit conductance) and noise ("noise.excitatory.g0", µS)."""
        defaults = self.spec.default_params()
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise KeyError(f"unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(defaults))}")
        for name, value in params.items():
            self.params[name] = float(value)
            if name.startswith("noise."):
                _, kind, field = name.split(".")
                for cell in self.cells.values():
                    setattr(cell.noise[kind], field, float(value))
            else:
                scale = float(value) / defaults[name] if defaults[name] else 0.0
                for nc, base in self._netcons.get(name, []):
                    nc.weight[0] = base * scale
        if self.h.t == 0 and hasattr(self, "_transfer"):
            self._initialise()  # before the first step: the noise starts at its (new) mean

    # -- recording -----------------------------------------------------------------------
    def record_voltage(self, gids=None, dt: float | None = None):
        """Record every section's potential of ``gids`` (all if None) every ``dt`` ms."""
        h = self.h
        wanted = range(len(self.circuit.positions)) if gids is None else gids
        self._voltage = {}
        for gid in wanted:
            cell = self.cells.get(int(gid))
            if cell is None:
                continue
            vectors = {}
            for comp in cell.ir.compartments:
                vec = h.Vector()
                vec.record(cell.sections[comp.segment_group](0.5)._ref_v, dt or self.dt)
                vectors[comp.name] = vec
            self._voltage[int(gid)] = vectors
        self._voltage_read = 0
        self._voltage_dt = dt or self.dt
        if self.h.t == 0:
            self._initialise()  # NEURON starts recording vectors at finitialize
        else:
            raise RuntimeError("record_voltage must be called before the first run (or after clear())")

    # -- running -------------------------------------------------------------------------
    def _apply_field(self, currents):
        for gid, (soma, dend) in self._transfer.items():
            self.cells[gid].set_field(float(soma @ currents), float(dend @ currents))

    def run(self, duration: float, stimulus=None, inject=None):
        """Advance every rank by ``duration`` ms (collective); stimulus in µA, (samples, channels)
        at dt; ``inject``: gid -> somatic current clamp (nA) held during this call.

        Returns (it, t, voltages) gathered on every rank: spike gids and times (ms) of this
        call sorted by time, and {gid: {section: mV array}} of the recorded cells.
        """
        h, pc = self.h, self.pc
        if self.coreneuron and (stimulus is not None or inject):
            raise ValueError("a CoreNEURON network runs without stimulus or current injection; "
                             "build it with coreneuron=False to stimulate")
        start = h.t
        stop = start + duration
        clamps = []
        for gid, amplitude in (inject or {}).items():
            if int(gid) in self.cells:
                clamp = h.IClamp(self.cells[int(gid)].soma(0.5))
                clamp.delay, clamp.dur, clamp.amp = start, duration, amplitude
                clamps.append(clamp)
        if stimulus is None:
            self._psolve(stop)
        else:
            if not self.extracellular and self.field == "extracellular":
                raise RuntimeError("this network was built without the extracellular mechanism: "
                                   "build it with extracellular=True to stimulate through the MEA")
            stimulus = np.asarray(stimulus, dtype=float)
            channels = len(self.circuit.electrodes)
            if stimulus.ndim != 2 or stimulus.shape[1] != channels:
                raise ValueError(f"stimulus must have shape (samples, {channels} channels), found {stimulus.shape}")
            steps = int(round(duration / self.dt))
            stimulus = np.vstack([stimulus[:steps], np.zeros((1, channels))])
            changes = np.flatnonzero(np.any(np.diff(stimulus, axis=0, prepend=np.zeros((1, channels))) != 0, axis=1))
            for k in changes:
                pc.psolve(min(start + k * self.dt, stop))
                self._apply_field(stimulus[k])
            pc.psolve(stop)
            self._apply_field(np.zeros(channels))
        del clamps
        return self._collect()

    def _psolve(self, stop: float):
        if not self.coreneuron:
            self.pc.psolve(stop)
            return
        from neuron import coreneuron

        if self.h.t == 0:
            # CoreNEURON refuses a model changed since finitialize (e.g. a previous network's
            # cells freed after this one was built); at t = 0 initialising again changes nothing
            self._initialise()
        coreneuron.enable, coreneuron.verbose = True, 0
        try:
            self.pc.psolve(stop)
        finally:
            coreneuron.enable = False

    def _collect(self):
        times = np.array(self._spike_times.to_python())[self._spikes_read:]
        gids = np.array(self._spike_gids.to_python(), dtype=np.int64)[self._spikes_read:]
        self._spikes_read = len(self._spike_times)
        voltages = {}
        if self._voltage:
            # samples before the current time; the one at it opens the next run (as in Brian2)
            end = int(round(self.h.t / self._voltage_dt))
            for gid, vectors in self._voltage.items():
                voltages[gid] = {name: np.array(vec.to_python())[self._voltage_read:end] for name, vec in vectors.items()}
            self._voltage_read = end
        if self.ranks > 1:
            gathered = self.pc.py_allgather((gids, times, voltages))
            gids = np.concatenate([g for g, _, _ in gathered])
            times = np.concatenate([t for _, t, _ in gathered])
            voltages = {k: v for _, _, part in gathered for k, v in part.items()}
        order = np.lexsort((gids, times))
        return gids[order], times[order], voltages

    def clear(self):
        """Back to t = 0 and the initial state (recordings emptied)."""
        self._spike_times.resize(0)
        self._spike_gids.resize(0)
        if self._voltage is not None:
            for vectors in self._voltage.values():
                for vec in vectors.values():
                    vec.resize(0)
        self._voltage_read = 0
        self._apply_field(np.zeros(len(self.circuit.electrodes)))
        self._initialise()
