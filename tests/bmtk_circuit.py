"""A small circuit made the way a BMTK user makes one: a test fixture for reading foreign SONATA.

Everything here goes through BMTK's own tools, with their defaults:

* ``bmtk.builder.NetworkBuilder`` builds and saves the two node populations and the two edge
  populations (``net.save(...)``; gzip-compressed HDF5, BMTK's default);
* ``bmtk.utils.reports.spike_trains.PoissonSpikeGenerator`` writes the SONATA spike input;
* ``bmtk.utils.sim_setup.build_env_bionet`` writes ``circuit_config.json``,
  ``simulation_config.json``, ``config.json``, ``node_sets.json``, ``run_bionet.py`` and the
  ``components/`` tree.

The circuit (``seed`` changes positions, connectivity, per-edge weights and input spikes):

* ``cortex`` (biophysical): 24 ``Exc`` cells (``nml:EXC.cell.nml``) and 6 ``Inh`` cells
  (``nml:INH.cell.nml``), node ids 0-23 and 24-29, per-node x/y/z (uniform in a 200 x 200 um
  square, z = 0). Per type: ``model_type``, ``model_template``, ``pop_name``, ``ei`` and
  ``morphology`` (``EXC.swc`` / ``INH.swc``: BioNet's ``nml:`` loader ignores the NeuroML
  morphology and builds the cell with ``h.Biophys1(<swc>)``, so a BMTK user must give one;
  the SWC files are written here from the NeuroML geometry, soma and one dendrite).
* ``inputs`` (virtual): 20 nodes, ``model_type`` ``virtual``, ``pop_name`` ``input``.
* ``inputs -> cortex``: every cortex cell gets 5 distinct random inputs (one synapse each), two
  edge types (target ``pop_name`` Exc / Inh) with ``exp2syn``, ``AMPA_ExcToExc.json``, ``delay``
  2.0 ms and ``syn_weight`` per type (CSV): 0.005 uS onto Exc, 0.001 uS onto Inh;
  ``target_sections`` ['somatic'], ``distance_range`` [0.0, 1e20]. Checked in NEURON (livn's
  two-compartment cells, these input trains, seed 1, no recurrent edges): 3-7 spikes per Exc cell
  and 11-17 per Inh cell in 500 ms.
* ``cortex -> cortex`` (p = 0.2, no autapses):
  Exc -> all: ``AMPA_ExcToExc.json``, ``syn_weight`` 0.001 uS per type (CSV), ``delay`` per edge
  (HDF5) = 1 ms + distance / (200 um/ms); ``target_sections`` ['basal'], ``distance_range``
  [0.0, 1e20].
  Inh -> all: ``GABA_InhToExc.json``, ``syn_weight`` per edge (HDF5), uniform 0.002-0.004 uS,
  ``delay`` 1.0 ms per type (CSV); ``target_sections`` ['somatic'], ``distance_range``
  [0.0, 1e20].
* input spikes: Poisson, 20 Hz, 0-500 ms, one train per ``inputs`` node, in
  ``inputs/inputs_spikes.h5`` (BMTK's default gzip compression).
* run: tstop 500 ms, dt 0.025 ms.

Deterministic: the same seed gives the same HDF5 data, CSVs and configs. Two things in BMTK's own
output are not reproducible and are normalised here after BMTK wrote them: the column order of
the node/edge types CSVs (BMTK builds it from a Python ``set``, so it follows PYTHONHASHSEED) and
the order of ``components`` keys and of ``networks.nodes``/``networks.edges`` in
``circuit_config.json`` (BMTK lists them in ``os.listdir``/``os.walk`` order). ``config.json``
(BMTK's top-level file) holds absolute paths; nothing else does.

Run ``python tests/bmtk_circuit.py`` to build one into a temporary folder and print a summary.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np

SPECS = Path(__file__).resolve().parent.parent / "specs"

N_EXC, N_INH, N_INPUTS = 24, 6, 20
INPUTS_PER_CELL = 5
P_RECURRENT = 0.2
SIDE_UM = 200.0
RATE_HZ, TSTOP_MS, DT_MS = 20.0, 500.0, 0.025

W_INPUT_US = {"Exc": 0.005, "Inh": 0.001}  # inputs -> cortex, per type (CSV)
W_EXC_US = 0.001  # Exc -> cortex, per type (CSV)
W_INH_RANGE_US = (0.002, 0.004)  # Inh -> cortex, per edge (HDF5)
INPUT_DELAY_MS, INH_DELAY_MS = 2.0, 1.0
EXC_DELAY_BASE_MS, CONDUCTION_UM_PER_MS = 1.0, 200.0

SYNAPSES = {
    "AMPA_ExcToExc.json": {"level_of_detail": "exp2syn", "tau1": 1.0, "tau2": 3.0, "erev": 0.0},
    "GABA_InhToExc.json": {"level_of_detail": "exp2syn", "tau1": 0.5, "tau2": 8.0, "erev": -75.0},
    # events onto bionet's IntFire1 cells: weight x sign added to the cell's state
    "instantaneousExc.json": {"sign": 1},
    "instantaneousInh.json": {"sign": -1},
}

# with points=True: N_POINTS IntFire1 cells (tau, refrac in seconds, bionet's units); weights are
# increments of the cell's state (threshold 1), except lif -> Exc (µS, AMPA)
N_POINTS = 20
INTFIRE1 = {"tau": 0.02, "refrac": 0.003}
W_POINT_INPUT, W_EXC_TO_POINT, W_INH_TO_POINT = 0.4, 0.1, 0.3
W_POINT_TO_EXC_US = 0.002

# SWC (id type x y z radius parent) of the NeuroML geometry: a 40 x 40 um soma (one-point soma,
# radius 20, which NEURON's Import3d turns into the same cylinder) and one dendrite.
SWC = {
    "EXC.swc": [(1, 1, 0.0, 20.0, 0.0, 20.0, -1), (2, 3, 0.0, 40.0, 0.0, 3.0, 1),
                (3, 3, 0.0, 306.67, 0.0, 3.0, 2)],
    "INH.swc": [(1, 1, 0.0, 20.0, 0.0, 20.0, -1), (2, 3, 0.0, 40.0, 0.0, 1.0, 1),
                (3, 3, 0.0, 240.0, 0.0, 1.0, 2)],
}

# Columns that BMTK always writes first; the rest are sorted (see the module docstring).
_FIRST_COLUMNS = ("node_type_id", "edge_type_id", "target_query", "source_query")


def make_bmtk_circuit(directory: Path, seed: int = 1, *, compression: str | None = "gzip",
                      points: bool = False, with_cortex: bool = True) -> Path:
    """Build the circuit with BMTK's tools into ``directory``.

    Returns the path of ``simulation_config.json`` (which names ``circuit_config.json`` under
    ``"network"``). ``compression`` is passed to BMTK's writers: "gzip" (BMTK's default, what
    users get) or None for uncompressed HDF5. ``points`` adds the ``lif`` population of
    bionet's point-process cells (see :data:`N_POINTS`); ``with_cortex=False`` leaves out the
    ``cortex`` cells (a circuit bionet itself can run: it cannot load livn's ``nml:`` cells).
    """
    from bmtk.builder import NetworkBuilder
    from bmtk.utils.reports.spike_trains import PoissonSpikeGenerator
    from bmtk.utils.sim_setup import build_env_bionet

    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    network_dir = directory / "network"
    components = directory / "components"
    comp = compression if compression is not None else "none"

    # BMTK's builder and spike generator draw from numpy's global RNG; keep the caller's state.
    global_state = np.random.get_state()
    try:
        np.random.seed(seed)
        positions_rng, inputs_rng, recurrent_rng, weights_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))

        # -- nodes -----------------------------------------------------------------------
        cortex = NetworkBuilder("cortex")
        for n, pop_name, ei, cell in ((N_EXC, "Exc", "e", "EXC"), (N_INH, "Inh", "i", "INH")):
            xy = positions_rng.uniform(0.0, SIDE_UM, size=(n, 2))
            cortex.add_nodes(
                N=n, x=xy[:, 0], y=xy[:, 1], z=np.zeros(n),
                pop_name=pop_name, ei=ei, model_type="biophysical",
                model_template=f"nml:{cell}.cell.nml", morphology=f"{cell}.swc",
            )

        inputs = NetworkBuilder("inputs")
        inputs.add_nodes(N=N_INPUTS, model_type="virtual", pop_name="input")
        networks = [cortex, inputs] if with_cortex else [inputs]
        if points:
            networks.append(_add_points(cortex if with_cortex else None, inputs, positions_rng, recurrent_rng))

        if with_cortex:
            _add_cortex_edges(cortex, inputs, inputs_rng, recurrent_rng, weights_rng)

        for net in networks:
            net.build()
        for net in networks:
            net.save(output_dir=str(network_dir), compression=comp)

        # -- spike input --------------------------------------------------------------------
        spikes_file = directory / "inputs" / "inputs_spikes.h5"
        psg = PoissonSpikeGenerator(population="inputs", seed=seed)
        psg.add(node_ids=list(range(N_INPUTS)), firing_rate=RATE_HZ, times=(0.0, TSTOP_MS / 1000.0))
        psg.to_sonata(str(spikes_file), compression=comp)
    finally:
        np.random.set_state(global_state)

    # -- configs and components, as `python -m bmtk.utils.sim_setup ... bionet` does ------------
    build_env_bionet(
        base_dir=str(directory), network_dir=str(network_dir), components_dir=str(components),
        tstop=TSTOP_MS, dt=DT_MS, spikes_inputs=[("inputs", str(spikes_file))],
        include_examples=False, compile_mechanisms=False, config_file="config.json",
        overwrite_config=True,
    )

    _add_components(components)
    if points:
        point_models = components / "point_neuron_models"
        point_models.mkdir(exist_ok=True)
        (point_models / "IntFire1_exc.json").write_text(json.dumps(INTFIRE1) + "\n")
    _normalise(directory, network_dir)
    return directory / "simulation_config.json"


def _add_cortex_edges(cortex, inputs, inputs_rng, recurrent_rng, weights_rng) -> None:
    """inputs -> cortex and cortex -> cortex (see the module docstring)."""
    # -- inputs -> cortex: INPUTS_PER_CELL distinct random sources per target -----------
    def pick_inputs(sources, target):
        chosen = inputs_rng.choice(len(sources), size=INPUTS_PER_CELL, replace=False)
        nsyns = np.zeros(len(sources), dtype=int)
        nsyns[chosen] = 1
        return nsyns

    for pop_name, weight in W_INPUT_US.items():
        inputs.add_edges(
            source=inputs.nodes(), target=cortex.nodes(pop_name=pop_name),
            connection_rule=pick_inputs, iterator="all_to_one",
            syn_weight=weight, delay=INPUT_DELAY_MS,
            target_sections=["somatic"], distance_range=[0.0, 1e20],
            dynamics_params="AMPA_ExcToExc.json", model_template="exp2syn",
        )

    # -- cortex -> cortex -----------------------------------------------------------
    def random_connection(source, target, p):
        if source.node_id == target.node_id:
            return 0
        return int(recurrent_rng.random() < p)

    def delay_by_distance(source, target):
        d = np.hypot(source["x"] - target["x"], source["y"] - target["y"])
        return EXC_DELAY_BASE_MS + d / CONDUCTION_UM_PER_MS

    def random_inh_weight(source, target):
        return weights_rng.uniform(*W_INH_RANGE_US)

    exc = cortex.add_edges(
        source={"ei": "e"}, target=cortex.nodes(),
        connection_rule=random_connection, connection_params={"p": P_RECURRENT},
        syn_weight=W_EXC_US, target_sections=["basal"], distance_range=[0.0, 1e20],
        dynamics_params="AMPA_ExcToExc.json", model_template="exp2syn",
    )
    exc.add_properties("delay", rule=delay_by_distance, dtypes=np.float64)

    inh = cortex.add_edges(
        source={"ei": "i"}, target=cortex.nodes(),
        connection_rule=random_connection, connection_params={"p": P_RECURRENT},
        delay=INH_DELAY_MS, target_sections=["somatic"], distance_range=[0.0, 1e20],
        dynamics_params="GABA_InhToExc.json", model_template="exp2syn",
    )
    inh.add_properties("syn_weight", rule=random_inh_weight, dtypes=np.float64)


def _add_points(cortex, inputs, positions_rng, recurrent_rng):
    """The ``lif`` population (N_POINTS bionet IntFire1 cells) and its edges: inputs -> lif,
    lif -> cortex (AMPA), cortex -> lif (instantaneous, Exc +, Inh -)."""
    from bmtk.builder import NetworkBuilder

    lif = NetworkBuilder("lif")
    xy = positions_rng.uniform(0.0, SIDE_UM, size=(N_POINTS, 2))
    lif.add_nodes(N=N_POINTS, x=xy[:, 0], y=xy[:, 1], z=np.zeros(N_POINTS), pop_name="LIF", ei="e",
                  model_type="point_process", model_template="nrn:IntFire1", dynamics_params="IntFire1_exc.json")

    def pick(sources, target):
        chosen = recurrent_rng.choice(len(sources), size=INPUTS_PER_CELL, replace=False)
        nsyns = np.zeros(len(sources), dtype=int)
        nsyns[chosen] = 1
        return nsyns

    def sparse(source, target, p):
        return int(recurrent_rng.random() < p)

    inputs.add_edges(source=inputs.nodes(), target=lif.nodes(), connection_rule=pick, iterator="all_to_one",
                     syn_weight=W_POINT_INPUT, delay=INPUT_DELAY_MS, dynamics_params="instantaneousExc.json")
    if cortex is None:
        lif.add_edges(source=lif.nodes(), target=lif.nodes(), connection_rule=sparse,
                      connection_params={"p": P_RECURRENT}, syn_weight=W_EXC_TO_POINT, delay=INH_DELAY_MS,
                      dynamics_params="instantaneousExc.json")
        return lif
    lif.add_edges(source=lif.nodes(), target=cortex.nodes(pop_name="Exc"), connection_rule=sparse,
                  connection_params={"p": P_RECURRENT}, syn_weight=W_POINT_TO_EXC_US, delay=INPUT_DELAY_MS,
                  target_sections=["somatic"], distance_range=[0.0, 1e20],
                  dynamics_params="AMPA_ExcToExc.json", model_template="exp2syn")
    for ei, weight, params in (("e", W_EXC_TO_POINT, "instantaneousExc.json"),
                               ("i", W_INH_TO_POINT, "instantaneousInh.json")):
        cortex.add_edges(source={"ei": ei}, target=lif.nodes(), connection_rule=sparse,
                         connection_params={"p": P_RECURRENT}, syn_weight=weight, delay=INH_DELAY_MS,
                         dynamics_params=params)
    return lif


def _add_components(components: Path) -> None:
    """Put the NeuroML templates, SWC morphologies and synapse JSONs where the configs point."""
    cells = components / "biophysical_neuron_models"
    channels = components / "channels"  # EXC/INH.cell.nml include ../channels/*.nml
    channels.mkdir(parents=True, exist_ok=True)
    for name in ("EXC.cell.nml", "INH.cell.nml"):
        shutil.copyfile(SPECS / "cells" / name, cells / name)
    for path in sorted((SPECS / "channels").glob("*.nml")):
        shutil.copyfile(path, channels / path.name)
    for name, rows in SWC.items():
        lines = [f"{i} {t} {x:g} {y:g} {z:g} {r:g} {p}" for i, t, x, y, z, r, p in rows]
        (components / "morphologies" / name).write_text("\n".join(lines) + "\n")
    for name, params in SYNAPSES.items():
        (components / "synaptic_models" / name).write_text(json.dumps(params, indent=2) + "\n")


def _normalise(directory: Path, network_dir: Path) -> None:
    """Make BMTK's hash- and filesystem-order-dependent output reproducible (content unchanged)."""
    for path in sorted(network_dir.glob("*_types.csv")):
        with path.open(newline="") as f:
            rows = list(csv.reader(f, delimiter=" "))
        header = rows[0]
        first = [c for c in _FIRST_COLUMNS if c in header]
        order = first + sorted(c for c in header if c not in _FIRST_COLUMNS)
        index = [header.index(c) for c in order]
        with path.open("w", newline="") as f:
            writer = csv.writer(f, delimiter=" ")
            for row in rows:
                writer.writerow([row[i] for i in index])

    circuit_path = directory / "circuit_config.json"
    circuit = json.loads(circuit_path.read_text())
    circuit["components"] = dict(sorted(circuit["components"].items()))  # os.listdir order
    networks = circuit["networks"]
    for key in ("nodes", "edges", "gap_juncs"):
        if key in networks:
            networks[key] = sorted(networks[key], key=lambda entry: json.dumps(entry, sort_keys=True))
    circuit_path.write_text(json.dumps(circuit, indent=2))

    # build_env_bionet ties the two configs together only through config.json; BMTK also
    # accepts (and SONATA specifies) "network" inside the simulation config itself.
    simulation_path = directory / "simulation_config.json"
    simulation = json.loads(simulation_path.read_text())
    simulation["network"] = "$BASE_DIR/circuit_config.json"
    simulation_path.write_text(json.dumps(simulation, indent=2))


def _summary(simulation_config: Path) -> str:
    import h5py

    root = simulation_config.parent
    out = [f"simulation config: {simulation_config}"]
    for path in sorted((root / "network").glob("*.h5")) + [root / "inputs" / "inputs_spikes.h5"]:
        with h5py.File(path, "r") as h5:
            for kind in ("nodes", "edges", "spikes"):
                for pop, grp in h5.get(kind, {}).items():
                    if kind == "nodes":
                        n = len(grp["node_id"])
                    elif kind == "edges":
                        n = len(grp["source_node_id"])
                    else:
                        n = len(grp["timestamps"])
                    out.append(f"  {path.relative_to(root)}: /{kind}/{pop}: {n}")
    for path in sorted((root / "network").glob("*.csv")):
        out.append(f"  {path.relative_to(root)}: {path.read_text().splitlines()[0]}")
    with h5py.File(root / "network" / "inputs_cortex_edges.h5", "r") as h5:
        targets = h5["edges/inputs_to_cortex/target_node_id"][:]
        out.append(f"  inputs per cortex cell: {sorted(set(np.bincount(targets).tolist()))}")
    return "\n".join(out)


if __name__ == "__main__":
    import hashlib
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        first = make_bmtk_circuit(Path(tmp) / "a", seed=1)
        second = make_bmtk_circuit(Path(tmp) / "b", seed=1)
        print(_summary(first))

        def digest(folder: Path) -> dict:
            return {
                str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "config.json"
            }

        a, b = digest(first.parent), digest(second.parent)
        same = a == b
        print(f"  same seed, same bytes (all files but config.json): {same}")
        if not same:
            print("  differ:", [k for k in a if a[k] != b.get(k)])
