"""livn: declarative neuronal cultures on multi-electrode arrays.

specs/ (YAML + NeuroML2) -> validated spec -> SONATA circuit -> NEURON / Brian2 simulation.
"""

from .env import Env, make
from .system import System, predefined

__version__ = "0.1.0"
__all__ = ["Env", "make", "System", "predefined", "__version__"]
