"""The tools behind ``livn systems``: make a culture's spec (:mod:`.generate`), sample datasets
from a system (:mod:`.sample`), each keeping its configuration and result in a run directory
keyed by that configuration (:mod:`.rundir`)."""
