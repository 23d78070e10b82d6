"""Quantities written with units in a spec ("200 um", "0.25 m/s"), in livn's canonical units.

Canonical units at every boundary: µm, ms, µm/ms, µS, mS/cm², mV, µA, mM, Ω·m, Hz, rad, °C.
"""

from __future__ import annotations

import math
import re

#: dimension -> {unit symbol: factor to the canonical unit}
UNITS: dict[str, dict[str, float]] = {
    "length": {"um": 1.0, "µm": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6, "nm": 1e-3},
    "time": {"ms": 1.0, "s": 1e3, "us": 1e-3, "µs": 1e-3},
    "velocity": {"um/ms": 1.0, "µm/ms": 1.0, "mm/ms": 1e3, "m/s": 1e3, "mm/s": 1.0, "um/s": 1e-3},
    "conductance": {"uS": 1.0, "µS": 1.0, "nS": 1e-3, "mS": 1e3, "S": 1e6, "pS": 1e-6},
    "conductance density": {"mS/cm2": 1.0, "mS_per_cm2": 1.0, "uS/cm2": 1e-3, "µS/cm2": 1e-3, "S/m2": 0.1,
                            "pS/um2": 0.1, "pS/µm2": 0.1},
    "voltage": {"mV": 1.0, "V": 1e3, "uV": 1e-3, "µV": 1e-3},
    "current": {"uA": 1.0, "µA": 1.0, "nA": 1e-3, "pA": 1e-6, "mA": 1e3},
    "concentration": {"mM": 1.0, "uM": 1e-3, "µM": 1e-3, "M": 1e3},
    "resistivity": {"ohm m": 1.0, "ohm*m": 1.0, "Ohm m": 1.0, "ohm cm": 1e-2, "Ohm cm": 1e-2},
    "frequency": {"Hz": 1.0, "kHz": 1e3, "1/s": 1.0},
    "angle": {"rad": 1.0, "deg": math.pi / 180},
    "temperature": {"degC": 0.0, "K": -273.15},  # offsets, not factors: see parse_quantity
}

CANONICAL = {"length": "µm", "time": "ms", "velocity": "µm/ms", "conductance": "µS",
             "conductance density": "mS/cm2",
             "voltage": "mV", "current": "µA", "concentration": "mM", "resistivity": "Ω·m",
             "frequency": "Hz", "angle": "rad", "temperature": "degC"}

_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S.*?)\s*$")


class UnitError(ValueError):
    """A quantity could not be read as the expected dimension."""


def parse_quantity(text: object, dimension: str) -> float:
    """Read ``text`` (e.g. ``"200 um"``) as a ``dimension`` and return it in canonical units.

    Raises
    ------
    UnitError
        With a message saying what was expected and what was found.
    """
    units = UNITS[dimension]
    expected = f"a {dimension} with a unit ({', '.join(sorted(set(units)))})"
    if not isinstance(text, str):
        raise UnitError(f"expected {expected}, found {text!r} (a bare number: write the unit)")
    match = _QUANTITY.match(text)
    if not match:
        raise UnitError(f"expected {expected}, found {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    if unit not in units:
        raise UnitError(f"expected {expected}, found unit {unit!r} in {text!r}")
    value = value + units[unit] if dimension == "temperature" else value * units[unit]
    if not math.isfinite(value):
        raise UnitError(f"expected a finite {dimension}, found {text!r}")
    return value


def format_quantity(value: float, dimension: str) -> str:
    """Write ``value`` (canonical units) back as a quantity string, e.g. ``"200 um"``."""
    unit = {"µm": "um", "µm/ms": "um/ms", "µS": "uS", "µA": "uA", "Ω·m": "ohm m"}.get(
        CANONICAL[dimension], CANONICAL[dimension])
    return f"{value:g} {unit}"
