"""Simulator targets: translations of the same NeuroML models and SONATA circuit."""
