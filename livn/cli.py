"""The ``livn`` command: validate | build | inspect | systems."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from .resources import predefined_names


def _report(problems) -> None:
    for problem in problems:
        click.echo(str(problem), err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="livn")
def main() -> None:
    """livn: declarative neuronal cultures -> SONATA circuits -> simulations."""


@main.command()
@click.argument("targets", nargs=-1, required=True)
def validate(targets) -> None:
    """Check spec files (or predefined systems by name); report every problem at once.

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
        spec, problems = check_spec(path)
        _report(problems)
        if spec is None:
            errors = sum(p.severity == "error" for p in problems)
            click.echo(f"{path}: {errors} error(s)", err=True)
            failed = True
        else:
            click.echo(f"{path}: OK ({spec.num_neurons} neurons, {len(spec.populations)} populations, "
                       f"{len(spec.projections)} projections, {spec.mea.grid[0] * spec.mea.grid[1]} MEA channels)")
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("target")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Circuit directory to write (default: the user cache, as predefined() does).")
def build(target, output) -> None:
    """Build a spec (file or predefined name) into a SONATA circuit.

    The circuit is written to a temporary directory and renamed into place when complete:
    on error nothing is left at OUTPUT.
    """
    from .build import build_circuit
    from .spec import SpecError, load_spec
    from .system import System, predefined, resolve_spec

    start = time.perf_counter()
    try:
        if output is None and str(target) in predefined_names() and not Path(target).exists():
            path = predefined(str(target))
        else:
            spec = load_spec(resolve_spec(target))
            path = build_circuit(spec, output or Path(spec.name))
    except SpecError as err:
        _report(err.problems)
        click.echo(f"{target}: not built ({len(err.problems)} problem(s))", err=True)
        sys.exit(1)
    except FileExistsError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    system = System(path)
    edges = len(system.edges["source"])
    click.echo(f"built {system.name}: {system.num_neurons} neurons, {edges} edges, "
               f"{system.num_channels} MEA channels in {time.perf_counter() - start:.2f} s -> {path}")


@main.command()
@click.argument("target")
@click.option("--plot", type=click.Path(path_type=Path), help="Also draw the circuit into this PNG.")
def inspect(target, plot) -> None:
    """Summarise a circuit directory (or a predefined system, built if needed)."""
    from .spec import SpecError
    from .system import System, predefined

    path = Path(target)
    try:
        if not path.exists() and target in predefined_names():
            path = predefined(target)
        system = System(path)
    except (FileNotFoundError, ValueError, SpecError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(1)
    click.echo(system.summary())
    if plot is not None:
        from .plot import plot_circuit

        click.echo(f"\npicture: {plot_circuit(system, plot)}")


def _system(target: str):
    """A System from a circuit directory, or a predefined name (built if needed)."""
    from .system import System, predefined

    path = Path(target)
    if not path.exists() and target in predefined_names():
        path = predefined(target)
    return System(path)


@main.command("compile")
@click.argument("target")
@click.option("--target", "simulator", type=click.Choice(["brian2", "neuron"]), default="brian2", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
def compile_(target, simulator, output) -> None:
    """Compile a circuit (directory or predefined name) into a runnable simulation directory."""
    system = _system(target)
    if simulator == "neuron":
        from .targets.neuron.compile import compile_neuron

        path = compile_neuron(system, output)
        click.echo(f"compiled {system.name} for NEURON -> {path}\n  run it: mpiexec -n 2 python {path / 'run.py'}")
    else:
        from .targets.brian2.compile import compile_brian2

        path = compile_brian2(system, output)
        click.echo(f"compiled {system.name} for Brian2 -> {path}\n  run it: python {path / 'run.py'} --duration 1000")


@main.command()
@click.argument("target")
@click.option("--duration", type=float, default=1000.0, show_default=True, help="Simulated time, ms.")
@click.option("--backend", "--target", "backend", type=click.Choice(["brian2", "neuron"]), default=None,
              help="Default: $LIVN_BACKEND or brian2.")
@click.option("--ranks", type=int, default=1, show_default=True, help="MPI processes (NEURON only).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Folder for spikes.h5 (SONATA spike report) and raster.png (default: out/<system>-run).")
@click.option("--stimulate", type=float, default=None, metavar="UA",
              help="Biphasic pulses of this amplitude (µA) on every channel at --pulse-rate Hz.")
@click.option("--pulse-rate", type=float, default=10.0, show_default=True)
@click.option("--coreneuron", is_flag=True, help="NEURON backend: integrate with CoreNEURON (same spikes, faster).")
def run(target, duration, backend, ranks, output, stimulate, pulse_rate, coreneuron) -> None:
    """Simulate a system; write its spike report and a raster a person can look at."""
    import os
    import subprocess

    from .env import Env, _backend
    from .io import pulse_train
    from .measures import branching_ratio, mean_rate
    from .plot import plot_activity
    from .targets.circuit import read_spike_report, write_spike_report

    system = _system(target)
    output = output or Path("out") / f"{system.name}-run"
    output.mkdir(parents=True, exist_ok=True)
    backend = _backend(backend)
    if ranks > 1 or coreneuron:
        if backend != "neuron" or stimulate is not None:
            click.echo("error: --ranks > 1 and --coreneuron run the NEURON backend without stimulation "
                       f"(found backend {backend}{', --stimulate' if stimulate is not None else ''})", err=True)
            sys.exit(2)
        mpiexec = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(ranks)] if ranks > 1 else []
        command = mpiexec + [sys.executable, "-m", "livn.targets.neuron.run", str(system.directory),
                             "--duration", str(duration), "--output", str(output / "spikes.h5")]
        command += ["--coreneuron"] if coreneuron else []
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            click.echo(done.stdout[-3000:] + done.stderr[-3000:], err=True)
            sys.exit(1)
        it, t = read_spike_report(output / "spikes.h5", system.name)
        backend = f"{'coreneuron' if coreneuron else 'neuron'}, {ranks} MPI rank{'s' if ranks > 1 else ''}"
    else:
        env = Env(system, backend=backend)
        env.record_spikes()
        stimulus = None
        if stimulate is not None:
            stimulus = pulse_train(duration, range(system.num_channels), system.num_channels, stimulate, pulse_rate,
                                   dt=env.dt)
        start = time.perf_counter()
        it, t, *_ = env.run(duration, stimulus=stimulus)
        wall = time.perf_counter() - start
        write_spike_report(output / "spikes.h5", system.name, it, t)
    picture = plot_activity(system, it, t, output / "raster.png", duration=duration)
    click.echo(f"{system.name}: {duration:g} ms simulated in {wall:.1f} s wall ({backend})")
    for p in system.populations:
        click.echo(f"  {p}: {mean_rate(it, t, system.gids(p), 0, duration):.2f} Hz")
    click.echo(f"  branching ratio (4 ms bins): {branching_ratio(t, 0, duration):.2f}")
    click.echo(f"  spikes: {output / 'spikes.h5'}\n  raster: {picture}")


@main.command()
@click.argument("target")
@click.option("--duration", type=float, default=5500.0, show_default=True, help="ms per protocol")
@click.option("--transient", type=float, default=500.0, show_default=True, help="ms discarded")
@click.option("--backend", type=click.Choice(["brian2", "neuron"]), default=None)
def dynamics(target, duration, transient, backend) -> None:
    """Measure spontaneous and stimulated rates and the branching ratio of a system's defaults."""
    from .env import Env
    from .protocols import measure

    system = _system(target)
    click.echo(f"{system.name} ({system.num_neurons} neurons), default parameters")
    click.echo(measure(Env(system, backend=backend), duration, transient).report())


@main.group()
def systems() -> None:
    """Predefined systems and tools for custom ones."""


@systems.command("list")
def list_systems() -> None:
    """List the predefined systems shipped with livn."""
    from .resources import spec_path
    from .spec import load_spec

    for name in predefined_names():
        spec = load_spec(spec_path(name))
        click.echo(f"{name:<6} {spec.num_neurons:>7} neurons  {spec.description}")


if __name__ == "__main__":
    main()
