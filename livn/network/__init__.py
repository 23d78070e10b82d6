"""The simulator-neutral network model, built from a SONATA circuit alone."""

from .model import Connections, NetworkError, NetworkModel, NoiseSource, Population, WeightGroup

__all__ = ["NetworkModel", "NetworkError", "Connections", "NoiseSource", "Population", "WeightGroup"]
