"""The ``livn`` command: validate | build | inspect | compile | run | dynamics | systems.

A user's mistake (a bad spec, a circuit livn cannot run, an argument out of range) is
reported as a message and exit status 1 (2 for a usage error), never as a traceback; set
``LIVN_DEBUG=1`` to see the traceback anyway.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import sys
import time
from pathlib import Path

import click

from .resources import predefined_names
from .targets import target_names


def _report(problems) -> None:
    for problem in problems:
        click.echo(str(problem), err=True)


def user_errors(command):
    """Report the errors a user can cause as messages (exit 1), with every problem listed."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from .env import TargetError
        from .network.model import NetworkError
        from .neuroml.reader import NeuroMLError
        from .sonata import CircuitError
        from .spec import SpecError

        try:
            return command(*args, **kwargs)
        except SpecError as err:
            _report(err.problems)
            click.echo(f"error: {len(err.problems)} problem(s) in the spec", err=True)
        except (CircuitError, NetworkError, NeuroMLError) as err:
            for entry in err.problems:
                file, *rest = entry
                line = rest[0] if len(rest) == 2 else None
                click.echo(f"{file}{':' + str(line) if line else ''}: error: {rest[-1]}", err=True)
            click.echo(f"error: {len(err.problems)} problem(s) in the circuit", err=True)
        except TargetError as err:
            _report(err.problems)
            click.echo(f"error: {str(err).splitlines()[0]}", err=True)
        # files, paths, arguments; FloatingPointError: a run whose state stopped being finite
        except (ValueError, KeyError, TypeError, OSError, RuntimeError, FloatingPointError) as err:
            if os.environ.get("LIVN_DEBUG"):
                raise
            message = err.args[0] if isinstance(err, KeyError) and err.args else err
            click.echo(f"error: {message}", err=True)
        except (click.ClickException, click.exceptions.Exit, KeyboardInterrupt, SystemExit):
            raise
        except Exception:
            import traceback

            traceback.print_exc()
            click.echo("error: this is a bug in livn, not in your input: please report it with the traceback above",
                       err=True)
            sys.exit(70)
        sys.exit(1)

    return wrapper


def _finite(minimum: float | None = None, strict: bool = True, maximum: float | None = None):
    """A click callback: a finite number (> minimum if strict, else >= minimum)."""

    def check(ctx, param, value):
        if value is None:
            return value
        bad = not math.isfinite(value)
        if minimum is not None:
            bad = bad or (value <= minimum if strict else value < minimum)
        if maximum is not None:
            bad = bad or value > maximum
        if bad:
            bound = [] if minimum is None else [f"{'>' if strict else '>='} {minimum:g}"]
            bound += [] if maximum is None else [f"<= {maximum:g}"]
            raise click.BadParameter(f"expected a finite number{' ' + ' and '.join(bound) if bound else ''}, "
                                     f"found {value}")
        return value

    return check


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="livn")
def main() -> None:
    """livn: declarative neuronal cultures -> SONATA circuits -> simulations."""


_SCALE = click.option("--scale", type=float, default=1.0, show_default=True, callback=_finite(0.0, maximum=1.0),
                      help="Fraction of a predefined system or spec to build: area and cell counts scale, "
                           "densities and synapses per cell stay (e.g. 0.002).")


@main.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("--target", "simulators", multiple=True, type=click.Choice(target_names()),
              help="Also report what this simulator target cannot run (repeatable).")
@_SCALE
def validate(targets, simulators, scale) -> None:
    """Check spec files (or predefined systems by name); report every problem at once.

    The NeuroML files are read as strictly as the YAML (units, ids, supported elements);
    with --target, everything that target cannot run is reported too, with file and line.
    Exit status 1 if any spec has an error.
    """
    from .spec import SpecError, check_spec
    from .system import resolve_spec

    failed = False
    for target in targets:
        try:
            path = resolve_spec(target)
        except SpecError as err:
            _report(err.problems)
            failed = True
            continue
        spec, problems = check_spec(path, scale)
        if spec is not None:
            problems = problems + _size_problems(spec) + _target_problems(spec, simulators)
        _report(problems)
        errors = sum(p.severity == "error" for p in problems)
        if spec is None or errors:
            click.echo(f"{path}: {errors} error(s)", err=True)
            failed = True
        else:
            checked = f"; runs on {', '.join(simulators)}" if simulators else ""
            click.echo(f"{path}: OK ({spec.num_neurons} neurons, {len(spec.populations)} populations, "
                       f"{len(spec.projections)} projections, {spec.mea.grid[0] * spec.mea.grid[1]} MEA channels{checked})")
    sys.exit(1 if failed else 0)


def _size_problems(spec) -> list:
    """A build that would not fit this machine (memory, or disk where ``livn build`` writes by
    default), as a problem: the builder's own check (livn.build.circuit.refuse_if_too_large)."""
    from .build.circuit import refuse_if_too_large
    from .spec import SpecError

    try:
        refuse_if_too_large(spec, Path.cwd() / spec.name)
    except SpecError as err:
        # an error, not a warning: a spec validate accepts must build here (`livn build`
        # refuses the same); the message names a scale that fits
        return list(err.problems)
    return []


def _target_problems(spec, simulators) -> list:
    """What each of ``simulators`` cannot run in ``spec``'s cells and synapses."""
    if not simulators:
        return []
    from .network.model import Components
    from .neuroml import read_cell, read_synapse
    from .spec.problems import relative_name
    from .targets import get_target

    cells = [read_cell(p.cell, p.cell_id) for p in spec.simulated]
    synapses = {r.name: read_synapse(r.model, r.component_id) for r in spec.receptors}
    components = Components(cells, synapses, str(spec.path), temperature=spec.temperature)
    problems = []
    for name in simulators:
        for problem in get_target(name).check(components):
            problems.append(type(problem)(relative_name(Path(problem.file.split(" + ")[0])), problem.line,
                                          f"target {name}", problem.message, problem.severity))
    return problems


@main.command()
@click.argument("target")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Circuit directory to write (default: the user cache, as predefined() does).")
@_SCALE
@user_errors
def build(target, output, scale) -> None:
    """Build a spec (file or predefined name) into a SONATA circuit.

    The circuit is written to a temporary directory and renamed into place when complete:
    on error nothing is left at OUTPUT.
    """
    from .build import build_circuit
    from .spec import load_spec
    from .system import System, predefined, resolve_spec

    start = time.perf_counter()
    if output is None and str(target) in predefined_names() and not Path(target).is_file():
        # a predefined system without -o goes to the cache, whatever folder of that name is here
        path = predefined(str(target), scale)
    else:
        spec = load_spec(resolve_spec(target), scale)
        path = build_circuit(spec, output or Path(spec.name if scale == 1.0 else f"{spec.name}-scale{scale:g}"))
    from .build.parallel import World

    if World().rank != 0:
        return  # under mpiexec, rank 0 reports
    system = System(path)
    edges = system.num_edges
    click.echo(f"built {system.name}: {system.num_neurons} neurons, {edges} edges, "
               f"{system.num_channels} MEA channels in {time.perf_counter() - start:.2f} s -> {path}")


def _system(target: str, scale: float = 1.0):
    """A System from a circuit (directory, circuit_config.json, simulation_config.json), a
    spec file or a predefined name (both built if needed, at ``scale``)."""
    from .system import System, resolve_circuit

    return System(resolve_circuit(target, scale))


@main.command()
@click.argument("target")
@click.option("--plot", type=click.Path(path_type=Path), help="Also draw the circuit into this PNG.")
@_SCALE
@user_errors
def inspect(target, plot, scale) -> None:
    """Summarise a circuit (directory, config file, or a predefined system, built if needed)."""
    system = _system(target, scale)
    click.echo(system.summary())
    if plot is not None:
        from .plot import plot_circuit

        click.echo(f"\npicture: {plot_circuit(system, plot)}")


def _checked(system, backend: str):
    """The target ``backend``, after checking it can run ``system`` (TargetError otherwise)."""
    from .env import TargetError
    from .targets import get_target

    target = get_target(backend)
    problems = target.check(system.network)
    if problems:
        raise TargetError(backend, problems)
    return target


@main.command("export")
@click.argument("circuit")
@click.option("--to", "fmt", type=click.Choice(["neuroml", "bmtk"]), required=True,
              help="neuroml: a NeuroML2 network and a LEMS simulation jNeuroML runs; bmtk: a simulation BMTK's "
                   "bionet runs (hoc templates, compiled mechanisms, simulation_config.json, run_bmtk.py).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="A new folder.")
@click.option("--duration", type=float, default=1000.0, show_default=True, callback=_finite(0.0),
              help="Length of the exported simulation, ms.")
@click.option("--dt", type=float, default=0.025, show_default=True, callback=_finite(0.0, maximum=1.0),
              help="Step of the exported simulation, ms.")
@click.option("--ecp", is_flag=True, help="bmtk: also record the MEA's recording electrodes with BMTK's "
                                           "extracellular module (output/ecp.h5).")
@_SCALE
@user_errors
def export(circuit, fmt, output, duration, dt, ecp, scale) -> None:
    """Write a circuit (directory, config file or predefined name) in another tool's format."""
    from .neuroml.export import export_network
    from .targets.neuron.bmtk import export_bmtk

    if ecp and fmt != "bmtk":
        raise click.UsageError("--ecp is an option of --to bmtk")
    system = _system(circuit, scale)
    if fmt == "bmtk":
        export_bmtk(system, output, duration=duration, dt=dt, ecp=ecp)
        click.echo(f"exported {system.name} for BMTK's bionet -> {output}\n  run it: cd {output} && python run_bmtk.py "
                   f"(or mpiexec -n 2 python run_bmtk.py); spikes in output/spikes.h5")
        return
    lems = export_network(system, output, duration=duration, dt=dt)
    click.echo(f"exported {system.name} as NeuroML2 -> {output}\n  run it: cd {output} && pynml {lems.name} -neuron "
               f"-run (on NEURON 9, first delete the two nrn_random declarations from the noise mods jNeuroML "
               f"writes: README, 'Interchange')")


@main.command("compile")
@click.argument("circuit")
@click.option("--target", "simulator", type=click.Choice(target_names()), default="brian2", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.option("--duration", type=float, default=1000.0, show_default=True, callback=_finite(0.0),
              help="Default simulated time of the compiled run, ms.")
@click.option("--dt", type=float, default=0.025, show_default=True, callback=_finite(0.0, maximum=1.0),
              help="Integration step, ms.")
@_SCALE
@user_errors
def compile_(circuit, simulator, output, duration, dt, scale) -> None:
    """Compile a circuit (directory, config file or predefined name) into a runnable directory."""
    system = _system(circuit, scale)
    target = _checked(system, simulator)
    path = target.compile(system.network, output, duration=duration, dt=dt)
    how = f"mpiexec -n 2 python {path / 'run.py'}" if target.parallel else f"python {path / 'run.py'}"
    click.echo(f"compiled {system.name} for {simulator} -> {path}\n  run it: {how}")


@main.command()
@click.argument("target")
@click.option("--duration", type=float, default=None, callback=_finite(0.0),
              help="Simulated time, ms (default: the simulation config's tstop, else 1000).")
@click.option("--backend", "--target", "backend", type=click.Choice(target_names()), default=None,
              help="Default: $LIVN_BACKEND or brian2.")
@click.option("--ranks", type=click.IntRange(min=1), default=1, show_default=True, help="MPI processes (NEURON only).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Folder for spikes.h5 (SONATA spike report) and raster.png (default: out/<system>-run).")
@click.option("--stimulate", type=float, default=None, metavar="UA", callback=_finite(0.0, strict=False),
              help="Biphasic pulses of this amplitude (µA) on every channel at --pulse-rate Hz.")
@click.option("--pulse-rate", type=float, default=10.0, show_default=True, callback=_finite(0.0, maximum=2000.0),
              help="Hz (> 0).")
@click.option("--coreneuron", is_flag=True, help="NEURON backend: integrate with CoreNEURON (same spikes, faster).")
@click.option("--voltage", "voltage_gids", default=None, metavar="GIDS",
              help="Also record every compartment's potential of these cells (e.g. 0,5,80 or 'all') into "
                   "voltage.h5 (SONATA compartment report, mV, every 0.1 ms).")
@click.option("--nwb", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
              help="Also write the run as a new NWB file: spikes per cell with positions and populations, the "
                   "stimulus, soma potentials of the --voltage cells and (one process only) the MEA channel "
                   "signals, sampled every 0.1 ms.")
@_SCALE
@user_errors
def run(target, duration, backend, ranks, output, stimulate, pulse_rate, coreneuron, voltage_gids, nwb, scale) -> None:
    """Simulate a system; write its spike report and a raster a person can look at."""
    from .env import _backend
    from .measures import mean_rate
    from .plot import plot_activity
    from .protocols import branching_line, spike_branching_ratio

    system = _system(target, scale)
    if duration is None:
        duration = float(system.circuit.run_settings.get("tstop", 1000.0))
    backend = _backend(backend)
    if (ranks > 1 or coreneuron) and (backend != "neuron" or stimulate is not None or voltage_gids):
        click.echo("error: --ranks > 1 and --coreneuron run the NEURON backend without stimulation or voltage "
                   f"recording (found backend {backend}{', --stimulate' if stimulate is not None else ''}"
                   f"{', --voltage' if voltage_gids else ''})", err=True)
        sys.exit(2)
    recorded = None
    if voltage_gids:
        try:
            recorded = None if voltage_gids == "all" else [int(g) for g in voltage_gids.split(",")]
        except ValueError:
            raise click.BadParameter(f"expected gids like 0,5,80 or 'all', found {voltage_gids!r}",
                                     param_hint="--voltage") from None
    if stimulate is not None and system.num_channels == 0:
        raise ValueError(f"--stimulate: {system.name} has no MEA (a circuit not built by livn)")
    if nwb is not None and (nwb.exists() or not nwb.parent.is_dir()):
        raise click.BadParameter(f"{nwb} exists (livn does not replace it)" if nwb.exists() else
                                 f"{nwb.parent} is not a folder", param_hint="--nwb")
    _checked(system, backend)
    output = output or Path("out") / f"{system.name}-run"
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    try:
        it, t, wall, backend = _simulate(system, output, duration, backend, ranks, coreneuron, voltage_gids, recorded,
                                         stimulate, pulse_rate, nwb)
    except BaseException:
        if created:  # a run that failed leaves no folder behind (livn made it: everything in it is livn's)
            shutil.rmtree(output, ignore_errors=True)
        raise
    picture = plot_activity(system, it, t, output / "raster.png", duration=duration)
    click.echo(f"{system.name}: {duration:g} ms simulated in {wall:.1f} s wall ({backend})")
    for p in system.populations:
        click.echo(f"  {p}: {mean_rate(it, t, system.gids(p), 0, duration):.2f} Hz")
    click.echo("  " + branching_line(spike_branching_ratio(t, 0, duration)).strip())
    click.echo(f"  spikes: {output / 'spikes.h5'}\n  raster: {picture}")


def _simulate(system, output, duration, backend, ranks, coreneuron, voltage_gids, recorded, stimulate, pulse_rate,
              nwb):
    """The simulation of ``livn run``: (spike gids, times, wall s, backend label); writes the reports."""
    import subprocess

    from .env import Env
    from .io import pulse_train
    from .nwb import write_nwb
    from .protocols import run_with_progress
    from .result import Result
    from .sonata import read_spike_report_all, write_spike_report
    from .targets.neuron.run import spikes_by_population

    if ranks > 1 or coreneuron:
        mpiexec = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks)] if ranks > 1 else []
        source = system.circuit.simulation_path if system.circuit.simulation else system.config_path
        command = mpiexec + [sys.executable, "-m", "livn.targets.neuron.run", str(source),
                             "--duration", str(duration), "--output", str(output / "spikes.h5")]
        command += ["--coreneuron"] if coreneuron else []
        start = time.perf_counter()
        click.echo(f"{system.name}: running {duration:g} ms on {ranks} MPI rank(s)...", err=True)
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            click.echo(done.stdout[-3000:] + done.stderr[-3000:], err=True)
            sys.exit(1)
        it, t = _gids_of(system, read_spike_report_all(output / "spikes.h5"))
        backend = f"{'coreneuron' if coreneuron else 'neuron'}, {ranks} MPI rank{'s' if ranks > 1 else ''}"
        if nwb is not None:
            write_nwb(nwb, Result(it=it, t=t, duration=duration, dt=0.025), system)  # run.py's default step
    else:
        env = Env(system, backend=backend)
        env.record_spikes()
        if voltage_gids:
            env.record_voltage(recorded, dt=0.1)
        if nwb is not None and system.num_channels:
            env.record_membrane_current(dt=0.1)
        stimulus = None
        if stimulate is not None:
            stimulus = pulse_train(duration, range(system.num_channels), system.num_channels, stimulate, pulse_rate,
                                   dt=env.dt)
        start = time.perf_counter()
        result = run_with_progress(env, duration, stimulus, system.name)
        wall = time.perf_counter() - start
        env.close()
        it, t = result.it, result.t
        write_spike_report(output / "spikes.h5", spikes_by_population(system.network, it, t))
        if voltage_gids:
            _write_voltages(system, result.voltages, output / "voltage.h5", dt=0.1)
        if nwb is not None:
            result.to_nwb(nwb)
    return it, t, wall, backend
    if voltage_gids and ranks == 1 and not coreneuron:
        click.echo(f"  voltage: {output / 'voltage.h5'}")
    if nwb is not None:
        click.echo(f"  NWB: {nwb}")


def _write_voltages(system, voltages: dict, path: Path, dt: float) -> None:
    """gid -> (compartments, samples) potentials as SONATA compartment reports, one per population."""
    import numpy as np

    from .sonata import write_compartment_report

    reports = {}
    for pop in system.network.populations.values():
        gids = [g for g in sorted(voltages) if pop.offset <= g < pop.offset + pop.size]
        if gids:
            node_ids = np.concatenate([np.full(len(voltages[g]), g - pop.offset) for g in gids])
            elements = np.concatenate([np.arange(len(voltages[g])) for g in gids])
            reports[pop.name] = (node_ids, elements, np.concatenate([voltages[g] for g in gids]).T)
    write_compartment_report(path, reports, 0.0, dt, "mV")


def _gids_of(system, reports):
    import numpy as np

    gids, times = [], []
    for name, (ids, t) in reports.items():
        pop = system.network.populations.get(name)
        if pop is not None:
            gids.append(ids + pop.offset)
            times.append(t)
    gids, times = (np.concatenate(gids), np.concatenate(times)) if gids else (np.zeros(0, int), np.zeros(0))
    order = np.lexsort((gids, times))
    return gids[order], times[order]


@main.command()
@click.argument("target")
@click.option("--duration", type=float, default=None, callback=_finite(0.0),
              help="ms per protocol [default: 7000; 1000 for systems of cells with more than two compartments, such as CA1, "
                   "where a simulated second costs minutes per hundred cells]")
@click.option("--transient", type=float, default=None, callback=_finite(0.0, strict=False),
              help="ms discarded (< duration) [default: 2000, while the depressing synapses settle after the onset; "
                   "200 for such trees; at most half the duration]")
@click.option("--backend", type=click.Choice(target_names()), default=None)
@click.option("--response", is_flag=True,
              help="Also run the stimulated protocol at 5, 10, 15, 20, 25 and 30 uA per channel (the range "
                   "`livn systems sample` draws from) and report the rate per amplitude and whether it is monotonic.")
@click.option("--plot", "picture", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="PNG",
              help="Also draw the spontaneous run into this PNG: raster, population rate with the detected network "
                   "bursts, avalanche sizes and durations with their fitted power laws.")
@_SCALE
@user_errors
def dynamics(target, duration, transient, backend, picture, scale, response) -> None:
    """Measure a system's defaults: spontaneous and stimulated rates; from the spontaneous run the
    branching ratio (multistep regression), neuronal avalanches and MEA channel and network bursts."""
    from .env import Env
    from .protocols import RESPONSE_AMPLITUDES, default_protocol, measure

    if duration is not None and transient is not None and transient >= duration:
        raise click.BadParameter(f"--transient ({transient:g} ms) must be shorter than --duration ({duration:g} ms)")
    system = _system(target, scale)
    default_duration, default_transient = default_protocol(system)
    duration = default_duration if duration is None else duration
    transient = min(default_transient, duration / 2) if transient is None else transient
    if transient >= duration:
        raise click.BadParameter(f"--transient ({transient:g} ms) must be shorter than --duration ({duration:g} ms)")
    if system.num_channels == 0:
        raise ValueError(f"{system.name} has no MEA: the stimulated protocol needs one")
    from .build.parallel import World

    env = Env(system, backend=backend)
    # under mpiexec every rank runs the same calls (the spikes are gathered); rank 0 reports
    lead = World().rank == 0
    if lead:
        click.echo(f"{system.name} ({system.num_neurons} neurons), default parameters, {env.backend}")
    measured = measure(env, duration, transient, response=RESPONSE_AMPLITUDES if response else ())
    if not lead:
        return
    click.echo(measured.report())
    if picture is not None:
        from .plot import plot_dynamics

        click.echo(f"picture: {plot_dynamics(system, measured, picture)}")


@main.group()
def systems() -> None:
    """Predefined systems and tools for custom ones."""


@systems.command("list")
def list_systems() -> None:
    """List the predefined systems shipped with livn."""
    from .resources import spec_path
    from .spec import SpecError, load_spec

    broken = False
    for name in predefined_names():
        try:
            spec = load_spec(spec_path(name))
        except SpecError as err:
            broken = True
            click.echo(f"{name:<6} {'':>7}          (its spec has {len(err.problems)} problem(s): "
                       f"`livn validate {name}` lists them)")
            continue
        inputs = sum(p.count for p in spec.virtual)
        click.echo(f"{name:<6} {spec.num_neurons:>7} neurons  {spec.description}"
                   + (f" (+ {inputs} input cells)" if inputs else ""))
    sys.exit(1 if broken else 0)


_LAUNCH = click.option("--launch", is_flag=True,
                       help="Do it. Without --launch the command prints what it would do and changes nothing.")


def _positive_int(minimum: int = 1):
    def check(ctx, param, value):
        if value is not None and value < minimum:
            raise click.BadParameter(f"expected an integer >= {minimum}, found {value}")
        return value

    return check


def _area(ctx, param, value):
    try:
        width, height = (float(part) for part in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT in um (e.g. 800x800), found {value!r}") from None
    if not all(math.isfinite(x) and x > 0 for x in (width, height)):
        raise click.BadParameter(f"expected a finite width and height > 0 um, found {value!r}")
    return width, height


@systems.command("generate_2d")
@click.argument("name")
@click.option("--exc", type=int, default=400, show_default=True, callback=_positive_int(1), help="Excitatory cells.")
@click.option("--inh", type=int, default=100, show_default=True, callback=_positive_int(0), help="Inhibitory cells.")
@click.option("--area", default="800x800", show_default=True, callback=_area,
              help="Culture size WIDTHxHEIGHT, um; cells are placed uniformly at random.")
@click.option("--sigma", type=float, default=200.0, show_default=True, callback=_finite(0.0),
              help="Width of the Gaussian connection-probability kernel, um.")
@click.option("--p-max", type=float, default=0.74, show_default=True, callback=_finite(0.0, maximum=1.0),
              help="Connection probability at distance 0.")
@click.option("--cutoff", type=float, default=0.1, show_default=True, callback=_finite(0.0, strict=False, maximum=1.0),
              help="Pairs less likely than this are never connected.")
@click.option("--velocity", type=float, default=250.0, show_default=True, callback=_finite(0.0),
              help="Axonal conduction velocity, um/ms (delay = distance / velocity).")
@click.option("--pitch", type=float, default=100.0, show_default=True, callback=_finite(0.0),
              help="Electrode spacing, um (grid: the largest power-of-two square that fits).")
@click.option("--seed", type=int, default=0, show_default=True, callback=_positive_int(0),
              help="Seed of placement, connectivity and noise.")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="Folder of the spec and its NeuroML models [default: ./NAME].")
@_LAUNCH
@user_errors
def generate_2d(name, exc, inh, area, sigma, p_max, cutoff, velocity, pitch, seed, output, launch) -> None:
    """Write the spec of a new 2D EXC/INH culture (the EI systems' models, copied beside it) and build it.

    Then `livn run FOLDER/NAME.yaml` or `make("FOLDER/NAME.yaml")` simulates it.
    """
    from .tools.generate import Culture2D, conflicts, generate_2d as generate, planned_files

    culture = Culture2D(name, exc, inh, area[0], area[1], sigma, p_max, cutoff, velocity, pitch, seed)
    problems = culture.problems()
    if problems:
        raise click.UsageError("; ".join(problems))
    folder = Path(output) if output is not None else Path(name)
    files = planned_files(culture)
    if not launch:
        click.echo(culture.spec_text())
        clashes = conflicts(folder, files)
        click.echo(f"# would write {folder / (name + '.yaml')} and {len(files) - 1} NeuroML file(s) beside it, "
                   f"then build it ({culture.neurons} neurons)" + (
                       f"; refused now: {', '.join(clashes)} exist(s) there with other content" if clashes else "")
                   + "\n# add --launch to do it", err=True)
        return
    from .system import System, built

    spec = generate(culture, folder)
    click.echo(f"wrote {spec} (+ models in {folder})")
    system = System(built(spec))
    click.echo(system.summary())
    click.echo(f"simulate it: livn run {spec}   or in Python: make({str(spec)!r})")


@systems.command("sample")
@click.argument("system")
@click.option("--trials", type=int, default=1000, show_default=True, callback=_positive_int(1),
              help="Trials the dataset should hold; those already there are kept.")
@click.option("--duration", type=float, default=500.0, show_default=True, callback=_finite(0.0),
              help="Recorded, stimulated part of a trial, ms.")
@click.option("--warmup", type=float, default=200.0, show_default=True, callback=_finite(0.0, strict=False),
              help="Unrecorded, unstimulated start of a trial, ms.")
@click.option("--seed", type=int, default=0, show_default=True, callback=_positive_int(0), help="Seed of the stimuli.")
@click.option("--amplitude", type=float, nargs=2, default=(5.0, 30.0), show_default=True,
              help="Range of a stimulated channel's amplitude, uA.")
@click.option("--rate", type=float, nargs=2, default=(2.0, 20.0), show_default=True,
              help="Range of a trial's pulse rate, Hz.")
@click.option("--voltage-dt", type=float, default=None, callback=_finite(0.0),
              help="Also store every cell's soma potential at this interval, ms.")
@click.option("--chunk", type=int, default=10, show_default=True, callback=_positive_int(1), help="Trials per file.")
@click.option("--backend", type=click.Choice(target_names()), default="brian2", show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, callback=_positive_int(1),
              help="Processes running trials at once (under mpiexec the ranks share the trials instead).")
@click.option("--batch", type=int, default=None, callback=_positive_int(1),
              help="Trials each worker simulates at once, as copies of the system (brian2; default 10, "
                   "at most --chunk; neuron: 1). The dataset is the same for any value.")
@click.option("--scale", type=float, default=1.0, show_default=True, callback=_finite(0.0, maximum=1.0),
              help="Fraction of a predefined system or spec.")
@_LAUNCH
@user_errors
def sample_command(system, trials, duration, warmup, seed, amplitude, rate, voltage_dt, chunk, backend, workers, batch,
                   scale, launch) -> None:
    """Make a dataset of responses to random MEA stimuli (Parquet, one row per trial), resumable.

    The dataset lives in a run directory keyed by the system and these options: the same
    command again finds it (and adds trials if --trials grew). Read it with
    livn.datasets.load(DIRECTORY) or pandas.read_parquet(DIRECTORY/trials).
    """
    from .system import resolve_circuit
    from .tools.sample import SampleConfig, dataset_directory, done_trials, pending_groups, sample

    config = SampleConfig(duration, warmup, seed, chunk, amplitude[0], amplitude[1], rate[0], rate[1], voltage_dt,
                          backend)
    problems = config.problems()
    if problems:
        raise click.UsageError("; ".join(problems))
    from .targets import get_target

    if batch is not None and batch > 1 and not get_target(backend).batches:
        raise click.UsageError(f"--batch {batch}: the {backend} target runs one trial at a time (batches: brian2)")
    circuit = resolve_circuit(system, scale)
    run, _ = dataset_directory(str(circuit), config)
    done = done_trials(run.path / "trials") & set(range(trials))
    if not launch:
        pending = sum(len(g) for g in pending_groups(trials, done, chunk))
        click.echo(f"dataset: {run.path}\n{len(done)} of {trials} trials there; would run {pending} "
                   f"({duration + warmup:g} ms each, {backend}, {workers} worker(s))\nadd --launch to do it")
        return
    path = sample(str(circuit), trials, config, workers=workers, batch=batch)
    click.echo(f"dataset: {path} ({len(done_trials(path / 'trials'))} trials; card: {path / 'README.md'})")


@systems.command("tune")
@click.argument("system")
@click.option("--trials", type=int, default=60, show_default=True, callback=_positive_int(1),
              help="Complete trials the study should hold; stored ones count.")
@click.option("--duration", type=float, default=5000.0, show_default=True, callback=_finite(0.0),
              help="Length of each protocol (spontaneous, stimulated) per trial, ms.")
@click.option("--transient", type=float, default=2000.0, show_default=True, callback=_finite(0.0, strict=False),
              help="Start of each protocol left out of the figures, ms (the onset's surge settles in ~2 s).")
@click.option("--factor", type=float, default=4.0, show_default=True, callback=_finite(1.0),
              help="Search each parameter log-uniformly within [default / factor, default x factor].")
@click.option("--param", "parameters", multiple=True,
              help="A parameter to search (repeatable; default: every weight and noise g0/sigma).")
@click.option("--targets", type=click.Path(dir_okay=False, exists=True), default=None,
              help="YAML of figure -> {target|range, scale} replacing the default targets.")
@click.option("--seed", type=int, default=0, show_default=True, callback=_positive_int(0), help="Seed of the sampler.")
@click.option("--backend", type=click.Choice(target_names()), default="brian2", show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, callback=_positive_int(1),
              help="Processes running trials at once on the shared study.")
@click.option("--promote", is_flag=True,
              help="Write the best parameters into the spec's defaults, with the measured figures beside them.")
@click.option("--scale", type=float, default=1.0, show_default=True, callback=_finite(0.0, maximum=1.0),
              help="Tune on this fraction of a predefined system or spec: area and cell counts scale, densities "
                   "and synapses per cell stay, so a patch of a large culture (e.g. EI4 at 0.1: 1,000 cells) "
                   "costs a tenth per trial. Check the promoted defaults at full size with `livn dynamics`.")
@_LAUNCH
@user_errors
def tune_command(system, trials, duration, transient, factor, parameters, targets, seed, backend, workers, promote,
                 scale, launch) -> None:
    """Search a system's weights and noise toward target dynamics (Optuna TPE; resumable).

    Default targets: spontaneous ~3 Hz with no population below 1.5 Hz, stimulated ~12 Hz,
    branching ratio ~1 (multistep regression), network bursts at 0.05-0.5 Hz with most
    channels taking part. The study lives in a run directory keyed by the system and these
    options.
    """
    import json as json_module

    from .tools.tune import TARGETS, TuneConfig, finished_trials, open_study, promote as write_spec, read_targets
    from .tools.tune import search_space, tune, tune_directory
    from .system import System, resolve_circuit, resolve_spec

    goals = {**TARGETS, **read_targets(targets)} if targets else TARGETS
    config = TuneConfig(duration, transient, factor, tuple(parameters), goals, seed, backend)
    problems = config.problems()
    if problems:
        raise click.UsageError("; ".join(problems))
    spec = None
    if promote:
        if not str(system).endswith((".yaml", ".yml")) and system not in predefined_names():
            raise click.UsageError(f"--promote writes into a spec: give a spec file or a predefined system, found {system}")
        spec = resolve_spec(system)
    circuit = resolve_circuit(system, scale)
    tuned = System(circuit)
    space = search_space(tuned.default_params(), config)
    run, _ = tune_directory(str(circuit), config)
    stored = len(finished_trials(open_study(run, config))) if (run.path / "study.db").exists() else 0
    if not launch:
        click.echo(f"study: {run.path}\n{stored} of {trials} trials there; would run {max(trials - stored, 0)} "
                   f"(up to {2 * duration:g} ms of simulation each, {backend}, {workers} worker(s), "
                   f"{tuned.num_neurons} neurons{f' (scale {scale:g})' if scale != 1.0 else ''})")
        for name, (low, high) in space.items():
            click.echo(f"  {name:<24} {low:.4g} .. {high:.4g}")
        click.echo("targets: " + json_module.dumps(goals))
        if promote:
            click.echo(f"then write the best into {spec}")
        click.echo("add --launch to do it")
        return
    path = tune(str(circuit), trials, config, workers=workers)
    result = json_module.loads((path / "result.json").read_text())
    click.echo(f"study: {path} ({result['trials']} trials, {result['pruned']} stopped after the spontaneous protocol: "
               f"they could not beat the best)\nbest trial {result['best_trial']}, loss {result['loss']:.4g}")
    for name, value in result["params"].items():
        click.echo(f"  {name:<24} {value:.4g}")
    click.echo("figures: " + ", ".join(f"{k} {v:.3g}" for k, v in result["figures"].items() if v is not None))
    if promote:
        click.echo(f"promoted into {write_spec(spec, result, path, scale)}")

if __name__ == "__main__":
    main()
