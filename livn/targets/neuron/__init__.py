"""NEURON target: NMODL generated from the NeuroML models (``nmodl``) and two-compartment
cells built from the simulator-neutral model (``cell``)."""
