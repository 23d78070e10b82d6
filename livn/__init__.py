"""livn: declarative neuronal cultures on multi-electrode arrays.

specs/ (YAML + NeuroML2) -> validated spec -> SONATA circuit -> NEURON / Brian2 simulation.
"""

from .system import System, predefined

__version__ = "0.1.0"
__all__ = ["System", "predefined", "__version__"]
