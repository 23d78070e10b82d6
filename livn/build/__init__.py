"""Build: placement, connectivity, MEA layout, and the SONATA writer."""

from .circuit import BUILD_FORMAT, build_circuit

__all__ = ["build_circuit", "BUILD_FORMAT"]
