"""livn: declarative neuronal cultures on multi-electrode arrays.

specs/ (YAML + NeuroML2) -> validated spec -> SONATA circuit -> network model -> NEURON / Brian2.

The top-level names are imported on first use, so ``import livn.spec`` stays light (no
HDF5, no simulator).
"""

__version__ = "0.1.0"
__all__ = ["Env", "make", "System", "predefined", "__version__"]


def __getattr__(name):
    if name in ("Env", "make"):
        from . import env

        return getattr(env, name)
    if name in ("System", "predefined"):
        from . import system

        return getattr(system, name)
    raise AttributeError(f"module 'livn' has no attribute {name!r}")
