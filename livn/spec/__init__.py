"""Specs: load YAML with line numbers, validate against schemas and meaning, typed model."""

from .check import check_spec, load_spec
from .model import (MEA, Delay, GaussianKernel, Noise, OUConductance, Population, Projection,
                    Receptor, SystemSpec)
from .problems import Problem, SpecError

__all__ = ["check_spec", "load_spec", "SystemSpec", "Population", "Receptor", "Projection",
           "GaussianKernel", "Delay", "Noise", "OUConductance", "MEA", "Problem", "SpecError"]
