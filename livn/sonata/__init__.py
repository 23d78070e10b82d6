"""SONATA: the one circuit reader (any node/edge populations, types tables, virtual nodes,
spike inputs) and the spike/compartment reports livn writes."""

from .circuit import Circuit, CircuitError, EdgePopulation, EdgeSelection, NodePopulation
from .reports import read_spike_report, read_spike_report_all, write_compartment_report, write_spike_report

__all__ = ["Circuit", "CircuitError", "NodePopulation", "EdgePopulation", "EdgeSelection", "read_spike_report",
           "read_spike_report_all", "write_spike_report", "write_compartment_report"]
