"""Datasets made by ``livn systems sample``, read back as a pandas DataFrame (one row per trial)."""

from __future__ import annotations

import os
from pathlib import Path


def load(source, **config):
    """Read a sampled dataset.

    Parameters
    ----------
    source : str or path-like
        A dataset's run directory (what ``livn systems sample`` printed), or a system
        (predefined name, spec file, circuit) whose dataset of the given configuration
        (default: the standard one, ``livn systems sample SYSTEM --launch``) is in the cache.
    **config
        Fields of :class:`livn.tools.sample.SampleConfig` naming a non-default dataset.

    Returns
    -------
    pandas.DataFrame
        One row per trial, ordered by ``trial``; columns as the dataset card
        (``README.md`` beside the data) lists them, with units.

    Raises
    ------
    FileNotFoundError
        When the dataset is not there, saying the command that makes it.
    """
    import pandas as pd

    from .tools.sample import SampleConfig, dataset_directory

    path = Path(source)
    if (path / "config.json").is_file() and (path / "trials").is_dir():
        folder = path / "trials"
    else:
        if config and set(config) - set(SampleConfig.__dataclass_fields__):
            unknown = sorted(set(config) - set(SampleConfig.__dataclass_fields__))
            raise TypeError(f"unknown configuration field(s) {', '.join(unknown)}; "
                            f"valid: {', '.join(SampleConfig.__dataclass_fields__)}")
        if path.is_dir() and not (path / "circuit_config.json").exists() and not os.path.exists(path / "config.json"):
            raise FileNotFoundError(f"{path} is not a dataset (no config.json and trials/ in it)")
        run, _ = dataset_directory(str(source), SampleConfig(**config))
        folder = run.path / "trials"
        if not any(folder.glob("trials-*.parquet")):
            options = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in config.items())
            raise FileNotFoundError(f"no dataset of {source} with this configuration in the cache ({run.path}); "
                                    f"make it with: livn systems sample {source} {options + ' ' if options else ''}--launch")
    table = pd.read_parquet(folder)
    return table.sort_values("trial", ignore_index=True)
