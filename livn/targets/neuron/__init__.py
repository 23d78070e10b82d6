"""NEURON target: NMODL generated from the NeuroML models (``nmodl``) and two-compartment
cells built from the simulator-neutral model (``cell``)."""

import os

# NEURON's wheels start InterViews on import and, on a machine without a display (clusters,
# CI, containers), print "Warning: no DISPLAY environment variable" into every command's
# output. livn draws nothing with NEURON's GUI; a user's own setting wins.
os.environ.setdefault("NEURON_MODULE_OPTIONS", "-nogui")
