"""Simulator targets, by name: each translates the same network model (NeuroML cells, SONATA
circuit) for one simulator. A new target is a package here plus a line in :data:`REGISTRY`."""

from __future__ import annotations

from importlib import import_module

#: target name -> "module:attribute" of its :class:`~livn.targets.base.Target` instance
REGISTRY = {
    "brian2": "livn.targets.brian2.target:TARGET",
    "neuron": "livn.targets.neuron.target:TARGET",
}

DEFAULT = "brian2"


def target_names() -> list[str]:
    return list(REGISTRY)


def get_target(name: str):
    """The registered target ``name``; ValueError naming the registered ones otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"unknown target {name!r}; registered targets: {', '.join(REGISTRY)}")
    module, attribute = REGISTRY[name].split(":")
    return getattr(import_module(module), attribute)
