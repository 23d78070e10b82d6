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
