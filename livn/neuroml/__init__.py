"""NeuroML2, read strictly: channels, synapses, the noise ComponentType, and cells as section
trees (from NeuroML morphology or SWC). A leaf package: the spec validator, the builder, the
network model and the targets all read NeuroML through it."""

from .cell import Cell, ChannelDensity, Compartment, ConcentrationModel, Section, Species, read_cell, read_swc
from .reader import (Channel, Gate, NeuroMLError, NoiseType, Plasticity, Rate, Synapse, UnsupportedNeuroML,
                     document, read_channel, read_noise_type, read_synapse)

__all__ = ["Cell", "ChannelDensity", "Compartment", "ConcentrationModel", "Section", "Species", "read_cell", "read_swc",
           "Channel", "Gate", "NeuroMLError", "NoiseType", "Plasticity", "Rate", "Synapse", "UnsupportedNeuroML",
           "document", "read_channel", "read_noise_type", "read_synapse"]
