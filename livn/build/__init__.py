"""Build: placement, connectivity, MEA layout, and the SONATA writer.

``build_circuit`` is imported on first use (the writer needs libsonata)."""

#: bumped whenever the circuit layout or the build algorithm changes (invalidates caches)
BUILD_FORMAT = 4

__all__ = ["build_circuit", "BUILD_FORMAT"]


def __getattr__(name):
    if name == "build_circuit":
        from .circuit import build_circuit

        return build_circuit
    raise AttributeError(f"module 'livn.build' has no attribute {name!r}")
