"""Load a predefined system and look at it (no simulation)."""

from livn.system import System, predefined

path = predefined("EI2")  # built from the shipped spec on first use, then cached
system = System(path)
print(system.num_neurons)  # 100
print(system.populations)  # ['EXC', 'INH']
print(system.weight_names)  # tunable weight parameters
print(system.summary())  # neuron and projection counts
