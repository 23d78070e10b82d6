"""A network model as a NEURON network, distributed over MPI ranks with ParallelContext.

Cells are dealt to ranks by compartment count, heaviest first (:mod:`.balance`), virtual nodes
round-robin by gid (a relay replaying the node's spike train); every connection is a ``gid_connect`` NetCon onto the target cell's
point process of that synapse type on that segment; the OU noise of a cell draws the
counter-based numbers keyed by (seed, gid, kind, step) that the Brian2 target draws too
(:mod:`livn.targets.gid_normal`). What a cell computes therefore does not depend on the
number of ranks: spikes are identical on 1, 2 or 3 ranks.

NEURON has one set of gids and one simulation per process: building a second network closes
the first (with a warning), and any later use of the first raises an error that says so;
:meth:`Network.close` frees one explicitly.

Units: ms, mV, nA, µS, µm; electrode currents µA.
"""

from __future__ import annotations

import weakref

import numpy as np

from ...network.model import NetworkModel
from .cell import NeuronCell, _h, set_integration, set_temperature
from . import balance, wiring
from .nmodl import load_mechanisms, network_mechanisms

_ACTIVE: list = []
#: cells whose connections are read and wired together (CA1: ~40,000 connections per cell)
CONNECT_BLOCK = 64  # weak reference to the network alive in this process


def _release(pc) -> None:
    """Detach a dying network from NEURON (gids, spike recording) before its objects are freed:
    ParallelContext keeps raw pointers to the spike vectors."""
    pc.gid_clear()


class NetworkClosedError(RuntimeError):
    """This NEURON network was closed (or replaced by a newer one in the process)."""


class Network:
    """The NEURON network of a :class:`~livn.network.model.NetworkModel`.

    Parameters
    ----------
    model : NetworkModel
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
        segment) or "currents" (the equivalent axial currents per segment, exact for a
        grounded medium; what the Brian2 target does; works with Crank–Nicolson).
    coreneuron : bool
        Integrate with CoreNEURON (mechanisms compiled with ``nrnivmodl -coreneuron`` once):
        the same spikes, faster on large networks. Runs without stimulation or current
        injection only.

    Attributes
    ----------
    costs : numpy.ndarray
        Compartments of each biophysical cell (gid order).
    owner : numpy.ndarray
        The rank simulating each biophysical cell.
    loads : numpy.ndarray
        Compartments per rank (imbalance: ``loads.max() / loads.mean()``).
    """

    def __init__(self, model: NetworkModel, dt: float = 0.025, secondorder: int | None = None,
                 extracellular: bool = True, field: str = "currents", coreneuron: bool = False):
        h = _h()
        previous = _ACTIVE[0]() if _ACTIVE else None
        if previous is not None:
            import warnings

            warnings.warn(f"a new NEURON network replaces the one of {previous.model.name} in this process (NEURON "
                          f"runs one network per process); the earlier Env is closed", RuntimeWarning, stacklevel=4)
            previous.close(reason="it was replaced by a newer NEURON network in this process (NEURON runs one "
                                  "network per process)")
        self._closed = None
        self.h, self.model, self.dt = h, model, dt
        if field not in ("extracellular", "currents"):
            raise ValueError(f"field must be 'extracellular' or 'currents', not {field!r}")
        self.field = field
        self.extracellular = extracellular and field == "extracellular"
        if coreneuron and len(model.virtual_gids):
            raise ValueError("CoreNEURON runs of circuits with virtual nodes (spike inputs) are not supported; "
                             "use coreneuron=False")
        if coreneuron and self.extracellular:
            raise ValueError("CoreNEURON has no extracellular mechanism: build with extracellular=False")
        self.coreneuron = coreneuron
        if secondorder is None:
            secondorder = 0 if self.extracellular else 2
        self.pc = h.ParallelContext()
        self.pc.gid_clear()
        self.rank, self.ranks = int(self.pc.id()), int(self.pc.nhost())
        self.mechanisms = load_mechanisms(network_mechanisms(model), coreneuron=coreneuron)
        set_temperature(model.temperature, model.cells)  # NEURON's celsius: the network temperature
        # the bin queue files a spike's ~100 events in constant time (EI4's onset surge: 211 -> 160 s
        # per simulated second on one rank, the same spikes); not for IntFire1 (see set_integration)
        set_integration("fixed", dt=dt, secondorder=secondorder,
                        bin_queue=not coreneuron and not len(model.point_gids))
        if coreneuron:
            h.CVode().cache_efficient(1)  # CoreNEURON takes the model from NEURON's sorted memory
        self.cells: dict[int, NeuronCell] = {}
        self._stims: dict[int, tuple] = {}
        self._build_cells()
        self._build_points()
        self._build_virtual()
        self._connect()
        self.pc.set_maxstep(10)
        self._spike_times, self._spike_gids = h.Vector(), h.Vector()
        self.pc.spike_record(-1, self._spike_times, self._spike_gids)
        self._spikes_read = 0
        self._transfer = {gid: model.field_transfer(gid) for gid in self.cells} if len(model.electrodes) else {}
        self.params = model.default_params()
        self._recorders: dict = {}
        self._read = 0
        self._started = False
        self.set_params(self.params)
        self._initialise()
        _ACTIVE[:] = [weakref.ref(self)]
        self._finalizer = weakref.finalize(self, _release, self.pc)
        from .parallel import exit_together

        exit_together()

    # -- construction --------------------------------------------------------------------
    def _balance(self):
        """Compartments per cell and the rank of each (every rank computes the same)."""
        model = self.model
        gids = np.asarray(model.biophysical_gids, dtype=np.int64)
        per_cell = np.array([sum(s.nseg for s in cell.sections) for cell in model.cells], dtype=float)
        self.costs = np.zeros(len(gids))
        for pop in model.populations.values():
            if pop.kind == "biophysical":
                mine = (gids >= pop.offset) & (gids < pop.offset + pop.size)
                self.costs[mine] = per_cell[pop.cell_index[gids[mine] - pop.offset]]
        self.owner = balance.assign(self.costs, self.ranks)
        self.loads = balance.loads(self.costs, self.owner, self.ranks)
        return gids[self.owner == self.rank].tolist()

    def _build_cells(self):
        model = self.model
        for gid in self._balance():
            cell = NeuronCell(model.cell_of(gid), self.mechanisms, gid=gid, extracellular=self.extracellular)
            if model.noise_on(gid):
                for source in model.noise:
                    scale = model.noise_scale(cell.ir, source)
                    cell.noise_scale[source.kind] = scale
                    cell.add_noise(source.kind, self.mechanisms.noise.name, source.group, source.g0 * scale,
                                   source.sigma * scale, source.tau, source.erev, ids=(model.seed, gid, source.stream))
            self.pc.set_gid2node(gid, self.rank)
            self.pc.cell(gid, cell.spike_detector())
            self.cells[gid] = cell

    def _build_points(self):
        """NEURON's IntFire1 per point-process cell, dealt round-robin by gid (each costs
        little next to a cell with a membrane)."""
        h, self.artificial = self.h, {}
        for pop in self.model.populations.values():
            if pop.kind != "point":
                continue
            for k, gid in enumerate(pop.gids.tolist()):
                if gid % self.ranks != self.rank:
                    continue
                cell = h.IntFire1()
                cell.tau, cell.refrac = float(pop.point["tau"][k]), float(pop.point["refrac"][k])
                self.pc.set_gid2node(gid, self.rank)
                self.pc.cell(gid, h.NetCon(cell, None))
                self.artificial[gid] = cell

    def _build_virtual(self):
        """A relay per virtual node; its spike train (on the step grid, as the Brian2 target
        delivers it) is scheduled as events after each initialisation."""
        h, inputs = self.h, self.model.spike_inputs
        for gid in (int(g) for g in self.model.virtual_gids if int(g) % self.ranks == self.rank):
            relay = getattr(h, self.mechanisms.relay.name)()
            self.pc.set_gid2node(gid, self.rank)
            self.pc.cell(gid, h.NetCon(relay, None))
            times = np.round(inputs.get(gid, np.zeros(0)) / self.dt) * self.dt
            self._stims[gid] = (relay, h.NetCon(None, relay), times)

    def _schedule_inputs(self):
        for _, source, times in self._stims.values():
            for t in times.tolist():
                source.event(t)

    def _connect(self):
        """The NetCons, reading the connections a block of cells at a time (CA1 has ~40,000
        per pyramidal cell: the whole rank's at once would take gigabytes)."""
        self._wiring = wiring.Wiring(self.h, self.pc, self.cells, self.model.synapse_names, self.mechanisms,
                                     self.artificial)
        gids = sorted([*self.cells, *self.artificial])
        for start in range(0, len(gids), CONNECT_BLOCK):
            self._wiring.add(self.model.afferent(gids[start:start + CONNECT_BLOCK]))

    def _initialise(self):
        for cell in self.cells.values():
            for sec in cell.sections:
                sec.v = cell.ir.v_init
        self.h.finitialize()  # no argument: every cell starts at its own initMembPotential
        self._schedule_inputs()
        self._spikes_read = 0

    # -- parameters ----------------------------------------------------------------------
    def set_params(self, params: dict):
        """Weights and noise by the names of ``model.default_params()`` (see :mod:`livn.network.model`)."""
        self._check_open()
        params = self.model.check_params(params)
        self.params.update(params)
        for name, value in params.items():
            if name.startswith("noise."):
                _, kind, field = name.split(".")
                for cell in self.cells.values():
                    if kind in cell.noise:
                        setattr(cell.noise[kind], field, value * cell.noise_scale[kind])
        if any(not n.startswith("noise.") for n in params):
            self._wiring.reweight(self.model.conductance_scale(self.params))
        if not self._started:
            self._initialise()  # before the first step: the noise starts at its (new) mean

    # -- recording -----------------------------------------------------------------------
    def record(self, gids, variable: str, dt: float | None = None):
        """Record ``variable`` ("v": membrane potential, mV; "i_membrane": transmembrane
        current, nA) of every compartment of ``gids`` every ``dt`` ms; before the first run only."""
        self._check_open()
        h = self.h
        if self._started:
            raise RuntimeError("recordings must be set up before the first run (or after clear())")
        if variable == "i_membrane":
            h.CVode().use_fast_imem(1)
        every = dt or self.dt
        vectors = {}
        for gid in (int(g) for g in gids):
            cell = self.cells.get(gid)
            if cell is None:
                continue
            per = []
            for seg in cell.segments:
                vec = h.Vector()
                vec.record(seg._ref_v if variable == "v" else seg._ref_i_membrane_, every)
                per.append(vec)
            vectors[gid] = per
        self._recorders[variable] = (vectors, every)
        self._initialise()  # NEURON starts recording vectors at finitialize

    # -- running -------------------------------------------------------------------------
    def _apply_field(self, currents):
        for gid, transfer in self._transfer.items():
            self.cells[gid].set_field(transfer @ currents)

    def run(self, duration: float, stimulus=None, inject=None):
        """Advance every rank by ``duration`` ms (collective); stimulus in µA, (samples, channels)
        at dt (checked by the caller); ``inject``: gid -> somatic current clamp (nA) held during
        this call.

        Returns (gids, times, recordings) gathered on every rank: spikes of this call sorted by
        time, and {variable: {gid: (compartments, samples) array}}.
        """
        self._check_open()
        h, pc = self.h, self.pc
        if self.coreneuron and (stimulus is not None or inject):
            raise ValueError("a CoreNEURON network runs without stimulus or current injection; "
                             "build it with coreneuron=False to stimulate")
        self._started = True
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
            channels = stimulus.shape[1]
            stimulus = np.vstack([stimulus, np.zeros((1, channels))])
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
        if self._stims:  # the relays of virtual nodes spike too: report cells only
            cells = ~np.isin(gids, list(self._stims))
            gids, times = gids[cells], times[cells]
        recordings = {}
        end = None
        for variable, (vectors, every) in self._recorders.items():
            # samples before the current time; the one at it opens the next run (as in Brian2)
            end = int(round(self.h.t / every))
            recordings[variable] = {gid: np.array([np.array(v.to_python())[self._read:end] for v in per])
                                    for gid, per in vectors.items()}
        if end is not None:
            self._read = end
        if self.ranks > 1:
            gathered = self.pc.py_allgather((gids, times, recordings))
            gids = np.concatenate([g for g, _, _ in gathered])
            times = np.concatenate([t for _, t, _ in gathered])
            recordings = {var: {k: v for _, _, part in gathered for k, v in part.get(var, {}).items()}
                          for var in self._recorders}
        order = np.lexsort((gids, times))
        return gids[order], times[order], recordings

    def clear(self):
        """Back to t = 0 and the initial state (recordings emptied)."""
        self._check_open()
        self._spike_times.resize(0)
        self._spike_gids.resize(0)
        for vectors, _ in self._recorders.values():
            for per in vectors.values():
                for vec in per:
                    vec.resize(0)
        self._read = 0
        if self._transfer:
            self._apply_field(np.zeros(len(self.model.electrodes)))
        self._initialise()
        self._started = False

    def _check_open(self):
        if self._closed:
            raise NetworkClosedError(f"this NEURON network of {self.model.name} is closed: {self._closed}")

    def close(self, reason: str = "close() was called"):
        """Free this network's cells and gids, so another network can be built in the process."""
        if _ACTIVE and _ACTIVE[0]() is self:
            _ACTIVE.clear()
        self._closed = reason
        self._finalizer()
        for vectors, _ in self._recorders.values():
            for per in vectors.values():
                for vec in per:
                    vec.play_remove()  # a recording left registered would write into freed memory
        # drop every NEURON object of this network now: sections left behind would be simulated
        # with the next network, and NetCons would point at gids that no longer exist
        self._wiring = None
        self.cells = {}
        self._stims = {}
        self._recorders = {}
        self._transfer = {}
        import gc

        gc.collect()
