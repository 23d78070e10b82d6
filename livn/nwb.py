"""Results as NWB (Neurodata Without Borders) files, through pynwb.

One file holds what a run produced, in the places NWB readers look:

- ``units``: one row per simulated cell (silent ones too) with its spike times (s), and the
  columns ``gid``, ``population`` and the soma position ``x``, ``y``, ``z`` (µm);
- ``acquisition/MEA``: the MEA channel potentials as an ``ElectricalSeries`` (data in µV,
  ``conversion`` 1e-6 to volts) over an electrodes table with each channel's position (µm,
  ``rel_x``/``rel_y``/``rel_z`` within the array), when membrane currents were recorded;
- ``acquisition/membrane_potential``: soma potentials of the recorded cells (mV, conversion
  1e-3), one column per cell (the gids in the description), when voltages were recorded;
- ``stimulus/MEA_stimulus``: the electrode currents the run applied (µA, conversion 1e-6 to
  amperes), one column per channel.

Times are seconds from the start of the simulation (NWB's unit), so a run that continued an
earlier one starts at ``result.start / 1000``.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def write_nwb(path, result, system, stimulus=None, session_start_time: datetime | None = None) -> Path:
    """Write ``result`` of a run of ``system`` to a new NWB file at ``path``.

    Parameters
    ----------
    path : path-like
        The file to create (``.nwb``); an existing file is never replaced.
    result : livn.result.Result
        What :meth:`livn.env.Env.run` returned.
    system : livn.system.System
        The system that ran (positions, populations, electrodes).
    stimulus : array, optional
        Electrode currents in µA, shape (samples, channels), one sample per ``result.dt`` ms
        from ``result.start`` (what was given to ``Env.run``); ``result.stimulus`` when None.
    session_start_time : datetime, optional
        Timezone-aware; default now (UTC).

    Returns
    -------
    Path
        ``path``. The file appears whole or not at all (written beside it, then renamed).
    """
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.ecephys import ElectricalSeries
    from pynwb.file import Subject

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists: livn does not replace a file it did not just write; "
                              f"choose another path or remove it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent} is not a folder")
    if session_start_time is None:
        session_start_time = datetime.now(timezone.utc)
    elif session_start_time.tzinfo is None:
        raise ValueError("session_start_time must be timezone-aware (e.g. datetime.now(timezone.utc))")
    stimulus = getattr(result, "stimulus", None) if stimulus is None else stimulus
    seconds = result.start / 1000.0
    identity = f"{system.name}|{system.directory}|{result.start}|{result.duration}|{session_start_time.isoformat()}"
    nwb = NWBFile(
        session_description=f"livn simulation of {system.name}: {result.duration:g} ms from t = {result.start:g} ms",
        identifier=hashlib.sha256(identity.encode()).hexdigest()[:32],
        session_start_time=session_start_time,
        experiment_description=f"simulation of the {system.name} circuit with livn",
        keywords=["simulation", "livn", system.name], source_script="livn", source_script_file_name="livn",
        notes=f"circuit: {system.directory}",
        # a simulated circuit has no animal behind it: sex unknown, no age or species to state
        subject=Subject(subject_id=system.name, sex="U",
                        description=f"simulated circuit {system.name} (livn), not an animal"))

    if result.it is not None:
        _units(nwb, system, result.it, result.t, result.dt)
    if result.mp is not None and len(system.electrodes):
        rate = 1000.0 / result.dt_im
        electrodes = _electrodes(nwb, system)
        nwb.add_acquisition(ElectricalSeries(
            name="MEA", data=np.asarray(result.mp, dtype=np.float64).T, electrodes=electrodes,
            rate=rate, starting_time=seconds, conversion=1e-6,
            description="MEA channel potentials: point-source sum over the recorded compartments (µV)"))
    if result.v is not None and len(result.v):
        nwb.add_acquisition(TimeSeries(
            name="membrane_potential", data=np.asarray(result.v, dtype=np.float64).T, unit="volts",
            conversion=1e-3, rate=1000.0 / result.dt_v, starting_time=seconds,
            description=f"soma membrane potential (mV); columns are the cells of gids {result.iv.tolist()}"))
    if stimulus is not None:
        stimulus = np.asarray(stimulus, dtype=np.float64)
        if stimulus.ndim != 2 or stimulus.shape[1] != system.num_channels:
            raise ValueError(f"stimulus must have shape (samples, {system.num_channels} channels), "
                             f"found {stimulus.shape}")
        dt = result.dt
        if dt is None or not dt > 0:
            raise ValueError(f"the stimulus needs the run's step (result.dt, ms), found {dt!r}")
        nwb.add_stimulus(TimeSeries(
            name="MEA_stimulus", data=stimulus, unit="amperes", conversion=1e-6, rate=1000.0 / dt,
            starting_time=seconds, description="current applied to each MEA channel (µA)"))

    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.nwb")
    try:
        with NWBHDF5IO(str(partial), "w") as io:
            io.write(nwb)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _units(nwb, system, gids: np.ndarray, times: np.ndarray, dt: float | None) -> None:
    """One unit per simulated cell, spike times in seconds (resolution: the step ``dt``, ms),
    with gid, population and position."""
    from pynwb.misc import Units

    nwb.units = Units(name="units", description="simulated cells, silent ones included",
                      resolution=dt / 1000.0 if dt else None)
    nwb.add_unit_column(name="gid", description="livn cell id")
    nwb.add_unit_column(name="population", description="population (cell type) of the cell")
    for axis in "xyz":
        nwb.add_unit_column(name=axis, description=f"soma {axis} position (µm)")
    order = np.argsort(gids, kind="stable")
    gids, times = np.asarray(gids)[order], np.asarray(times, dtype=np.float64)[order]
    coordinates = system.coordinates
    for population in system.populations:
        for gid in system.gids(population).tolist():
            lo, hi = np.searchsorted(gids, [gid, gid + 1])
            x, y, z = (float(c) for c in coordinates[gid][:3])
            nwb.add_unit(spike_times=times[lo:hi] / 1000.0, gid=gid, population=population, x=x, y=y, z=z, id=gid)


def _electrodes(nwb, system):
    """The MEA as a device, one electrode group, and a table row per channel (µm)."""
    device = nwb.create_device(name="MEA", description="planar multi-electrode array under the culture (livn)")
    group = nwb.create_electrode_group(name="MEA", description="channel positions in µm (rel_x, rel_y, rel_z)",
                                       location=system.name, device=device)
    for channel, (x, y, z) in enumerate(np.asarray(system.electrodes, dtype=float)[:, :3]):
        nwb.add_electrode(group=group, location=system.name, rel_x=x, rel_y=y, rel_z=z, id=channel)
    return nwb.create_electrode_table_region(list(range(system.num_channels)), "every MEA channel")
