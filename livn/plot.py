"""Pictures of a circuit for a person to look at."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .system import System


def _pyplot():
    """pyplot drawing into files only (no display), chosen when a picture is made, not at import."""
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _role(system: System, population: str) -> str:
    return ((system.livn.get("populations") or {}).get(population) or {}).get("role", "")


def _save(fig, path) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_circuit(system: System, path: Path) -> Path:
    """Draw the culture (cells, electrodes, recording radii) and connection probability
    against distance (measured vs the circuit's kernel) into a PNG at ``path``.

    A circuit without livn's culture, MEA and connectivity rules gets the cells only."""
    from .spec.model import GaussianKernel

    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.5))
    colours = {"excitatory": "tab:red", "inhibitory": "tab:blue"}
    for name in system.populations:
        xy = system.coordinates[system.gids(name)]
        left.scatter(xy[:, 0], xy[:, 1], s=max(2, 400 / np.sqrt(system.num_neurons)),
                     c=colours.get(_role(system, name), None), label=f"{name} ({len(xy)})", alpha=0.8)
    mea = system.livn.get("mea")
    if mea and system.num_channels:
        for x, y, _ in system.electrodes:
            left.add_patch(plt.Circle((x, y), mea["recording_radius_um"], fill=False, color="0.6", lw=0.6))
        left.scatter(system.electrodes[:, 0], system.electrodes[:, 1], marker="s", s=12, c="k",
                     label=f"electrodes ({system.num_channels})")
    size = (system.livn.get("culture") or {}).get("size_um")
    title = f"{system.name}: {system.num_neurons} neurons" + (f" on a {mea['grid'][0]}×{mea['grid'][1]} MEA" if mea else "")
    left.set(xlabel="x (µm)", ylabel="y (µm)", aspect="equal", title=title)
    if size:
        left.set(xlim=(0, size[0]), ylim=(0, size[1]))
    left.legend(loc="upper right", fontsize=8, framealpha=0.9)

    projections = system.livn.get("projections") or {}
    for name in projections:
        centres, probability, _ = system.connection_probability(name)
        right.plot(centres, probability, "o", ms=4, label=f"{name} measured")
    if projections:
        rule = next(iter(projections.values()))["kernel"]
        kernel = GaussianKernel(rule["sigma_um"], rule["p_max"], rule["cutoff"])
        d = np.linspace(0, kernel.max_distance * 1.05, 200)
        right.plot(d, kernel.probability(d), "k-", lw=1.5,
                   label=f"kernel: p_max {kernel.p_max:g}, σ {kernel.sigma:g} µm, cutoff {kernel.cutoff:g}")
    right.set(xlabel="soma distance (µm)", ylabel="connection probability", ylim=(0, 1),
              title="Connectivity against distance")
    right.legend(fontsize=8)
    return _save(fig, path)


def plot_activity(system: System, it: np.ndarray, t: np.ndarray, path: Path, title: str = "",
                  duration: float | None = None) -> Path:
    """Raster by population, population rate (5 ms bins) and spikes per MEA channel, as a PNG.

    Times in ms; ``duration`` (ms) sets the time axis (default: the last spike).
    """
    from .io import channel_spikes

    plt = _pyplot()
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=False, gridspec_kw={"height_ratios": [3, 1, 2]})
    raster, rate, channels = axes
    colours = {"excitatory": "tab:red", "inhibitory": "tab:blue"}
    if duration is None:
        duration = max(float(t.max()) if len(t) else 0.0, 1.0)
    for name in system.populations:
        mask = np.isin(it, system.gids(name))
        raster.plot(t[mask], it[mask], "|", ms=2, color=colours.get(_role(system, name), None),
                    label=f"{name} ({mask.sum()} spikes)")
    raster.set(ylabel="gid", xlim=(0, duration), title=title or f"{system.name}: {len(it)} spikes")
    raster.legend(loc="upper right", fontsize=8)
    bins = np.arange(0, duration + 5, 5.0)
    rate.plot(bins[:-1], np.histogram(t, bins)[0] / (system.num_neurons * 0.005), color="k", lw=0.8)
    rate.set(ylabel="rate (Hz)", xlabel="time (ms)", xlim=(0, duration))
    per_channel = channel_spikes(it, t, system.channel_members) if system.num_channels else []
    for channel, times in enumerate(per_channel):
        channels.plot(times, np.full(len(times), channel), "|", ms=3, color="0.2")
    channels.set(ylabel="MEA channel", xlabel="time (ms)", xlim=(0, duration), ylim=(-0.5, len(per_channel) - 0.5))
    channels.yaxis.get_major_locator().set_params(integer=True)
    return _save(fig, path)


def _log_binned(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probability per unit value of whole numbers >= 1 in logarithmic bins: (centres, density)."""
    edges = np.unique(np.floor(np.logspace(0, np.log10(values.max() + 1), 25)))
    counts = np.histogram(values, edges)[0]
    keep = counts > 0
    centres = np.sqrt(edges[:-1] * np.maximum(edges[1:] - 1, edges[:-1]))
    return centres[keep], counts[keep] / (np.diff(edges)[keep] * len(values))


def _avalanche_panel(axis, values: np.ndarray, fit, symbol: str, xlabel: str) -> None:
    """Distribution of avalanche sizes or durations on log-log axes, with the fitted power law
    (normalised to the fraction of avalanches in its tail)."""
    from scipy.special import zeta

    if not len(values):
        axis.text(0.5, 0.5, "no avalanches", ha="center", va="center", transform=axis.transAxes)
        axis.set(xlabel=xlabel)
        return
    centres, density = _log_binned(values)
    axis.loglog(centres, density, "o", ms=4, color="0.2", label=f"{len(values)} avalanches")
    if fit.fitted:
        x = np.unique(np.geomspace(fit.xmin, values.max(), 50).round())
        # discrete power law: p(x) = x^-a / zeta(a, xmin) on the tail
        y = fit.tail / fit.count * x ** -fit.exponent / zeta(fit.exponent, fit.xmin)
        label = f"{symbol} = {fit.exponent:.2f} from {fit.xmin:g}" + ("" if fit.preferred else " (not preferred)")
        axis.loglog(x, y, "-", color="tab:red", lw=1.5, label=label)
    axis.set(xlabel=xlabel, ylabel="probability")
    axis.legend(fontsize=8)


def plot_dynamics(system: System, dynamics, path: Path, title: str = "") -> Path:
    """The spontaneous run of :func:`livn.protocols.measure` as a PNG at ``path``: raster by
    population and population rate (5 ms bins) over the measured window, network bursts
    shaded; avalanche sizes and durations with their fitted power laws."""
    if dynamics.spikes is None:
        raise ValueError("dynamics holds no spikes (expected the Dynamics of livn.protocols.measure, "
                         "found spikes=None)")
    it, t = (np.asarray(a) for a in dynamics.spikes)
    start, stop = dynamics.transient, dynamics.duration
    plt = _pyplot()
    fig = plt.figure(figsize=(13, 7.5))
    grid = fig.add_gridspec(2, 3, height_ratios=[2, 1])
    raster = fig.add_subplot(grid[0, :2])
    rate = fig.add_subplot(grid[1, :2], sharex=raster)
    sizes, durations = fig.add_subplot(grid[0, 2]), fig.add_subplot(grid[1, 2])
    colours = {"excitatory": "tab:red", "inhibitory": "tab:blue"}
    shown = (t >= start) & (t < stop)
    for name in system.populations:
        mask = shown & np.isin(it, system.gids(name))
        raster.plot(t[mask], it[mask], "|", ms=2, color=colours.get(_role(system, name), None),
                    label=f"{name} ({mask.sum()} spikes)")
    raster.set(ylabel="gid", xlim=(start, stop), title=title or f"{system.name}: spontaneous activity")
    raster.legend(loc="upper right", fontsize=8)
    bins = np.arange(start, stop + 2.5, 5.0)
    rate.plot(bins[:-1], np.histogram(t, bins)[0] / (system.num_neurons * 0.005), color="k", lw=0.8)
    bursts = dynamics.bursts
    if bursts is not None:
        for k, (first, last) in enumerate(zip(bursts.start, bursts.end)):
            for axis in (raster, rate):
                axis.axvspan(first, last, color="tab:orange", alpha=0.3, lw=0,
                             label=f"network bursts ({bursts.count})" if k == 0 and axis is rate else None)
        if bursts.count:
            rate.legend(loc="upper right", fontsize=8)
    rate.set(ylabel="rate (Hz)", xlabel="time (ms)", xlim=(start, stop))
    avalanches = dynamics.avalanches
    if avalanches is None:
        for axis in (sizes, durations):
            axis.text(0.5, 0.5, "no MEA channel events", ha="center", va="center", transform=axis.transAxes)
    else:
        _avalanche_panel(sizes, avalanches.sizes, avalanches.size_fit, "τ", "avalanche size (events)")
        _avalanche_panel(durations, avalanches.durations, avalanches.duration_fit, "α",
                         f"avalanche duration (bins of {avalanches.bin:.2f} ms)")
        sizes.set_title("Avalanches of the MEA channels' events", fontsize=10)
    return _save(fig, path)
