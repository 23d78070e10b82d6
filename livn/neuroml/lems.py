"""The LEMS inside NeuroML, read strictly: SI quantities, dimensions, a restricted expression
language, and the custom ComponentTypes that define rates, steady states and time courses of
ion-channel gates.

Semantics are LEMS's (jLEMS, and jNeuroML's NEURON export, which translates the same
definitions): every quantity is a number in SI units carrying a dimension, and an expression
is evaluated on SI values. A custom type therefore sees the membrane potential ``v`` in volts,
``caConc`` in mol/m³ (= mM) and ``temperature`` in kelvin, and its exposure comes out in SI
(a rate in 1/s, a time in s), which livn converts to 1/ms and ms. jNeuroML's NEURON export
writes the same arithmetic in NEURON's coherent units (mV, ms, mM, K, pC/µmol,
fJ/(K·µmol)), so both give the same numbers up to rounding.

Expressions
-----------
A small recursive-descent parser turns an expression string into a tuple tree; nothing is
ever ``eval``-ed. Accepted: numbers (``1``, ``0.5``, ``.5``, ``1e-3``), names (``v``,
``caConc``, ``temperature``, the type's Constants, Parameters and derived variables),
``+ - * / ^`` (``^`` is right-associative and binds tighter than unary minus: ``-x^2`` is
``-(x^2)``), parentheses, the functions ``exp``, ``log`` (natural), ``sqrt``, ``abs``, and in
conditions the LEMS comparisons ``.gt. .lt. .geq. .leq. .eq. .neq.`` joined by ``.and.`` /
``.or.``. Anything else (another function, attribute access ``a.b``, quotes, ``__import__``,
an unknown name) is a :class:`~livn.neuroml.reader.NeuroMLError` naming the file, line and
column. Dimensions are checked: ``+``/``-``/comparisons need equal dimensions (a literal 0
matches any), ``exp``/``log`` and exponents need dimensionless arguments, a dimensional base
may only be raised to an integer literal, and every variable must have the dimension it
declares.

The tree has one meaning for both emitters: :meth:`CustomType.evaluate` (numpy, vectorised
over v and cai) and :meth:`CustomType.nmodl_function` (an NMODL FUNCTION).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

#: dimension name -> exponents of (kg, m, s, A, K, mol, cd)
DIMENSIONS = {
    "none": (0, 0, 0, 0, 0, 0, 0),
    "time": (0, 0, 1, 0, 0, 0, 0),
    "per_time": (0, 0, -1, 0, 0, 0, 0),
    "voltage": (1, 2, -3, -1, 0, 0, 0),
    "per_voltage": (-1, -2, 3, 1, 0, 0, 0),
    "conductance": (-1, -2, 3, 2, 0, 0, 0),
    "conductanceDensity": (-1, -4, 3, 2, 0, 0, 0),
    "capacitance": (-1, -2, 4, 2, 0, 0, 0),
    "specificCapacitance": (-1, -4, 4, 2, 0, 0, 0),
    "resistance": (1, 2, -3, -2, 0, 0, 0),
    "resistivity": (1, 3, -3, -2, 0, 0, 0),
    "charge": (0, 0, 1, 1, 0, 0, 0),
    "charge_per_mole": (0, 0, 1, 1, 0, -1, 0),
    "current": (0, 0, 0, 1, 0, 0, 0),
    "currentDensity": (0, -2, 0, 1, 0, 0, 0),
    "length": (0, 1, 0, 0, 0, 0, 0),
    "area": (0, 2, 0, 0, 0, 0, 0),
    "volume": (0, 3, 0, 0, 0, 0, 0),
    "concentration": (0, -3, 0, 0, 0, 1, 0),
    "substance": (0, 0, 0, 0, 0, 1, 0),
    "permeability": (0, 1, -1, 0, 0, 0, 0),
    "temperature": (0, 0, 0, 0, 1, 0, 0),
    "idealGasConstantDims": (1, 2, -2, 0, -1, -1, 0),
    "conductance_per_voltage": (-2, -4, 6, 3, 0, 0, 0),
    "rho_factor": (0, -1, -1, -1, 0, 1, 0),
}
NONE = DIMENSIONS["none"]

#: NeuroML unit symbol -> (dimension, factor to SI, offset to SI): SI = number·factor + offset
UNITS = {
    "": ("none", 1.0, 0.0),
    "s": ("time", 1.0, 0.0), "ms": ("time", 1e-3, 0.0), "us": ("time", 1e-6, 0.0),
    "min": ("time", 60.0, 0.0), "hour": ("time", 3600.0, 0.0),
    "per_s": ("per_time", 1.0, 0.0), "Hz": ("per_time", 1.0, 0.0), "per_ms": ("per_time", 1e3, 0.0),
    "kHz": ("per_time", 1e3, 0.0),
    "V": ("voltage", 1.0, 0.0), "mV": ("voltage", 1e-3, 0.0), "uV": ("voltage", 1e-6, 0.0),
    "per_V": ("per_voltage", 1.0, 0.0), "per_mV": ("per_voltage", 1e3, 0.0),
    "ohm": ("resistance", 1.0, 0.0), "kohm": ("resistance", 1e3, 0.0), "Mohm": ("resistance", 1e6, 0.0),
    "S": ("conductance", 1.0, 0.0), "mS": ("conductance", 1e-3, 0.0), "uS": ("conductance", 1e-6, 0.0),
    "nS": ("conductance", 1e-9, 0.0), "pS": ("conductance", 1e-12, 0.0),
    "S_per_m2": ("conductanceDensity", 1.0, 0.0), "mS_per_cm2": ("conductanceDensity", 10.0, 0.0),
    "S_per_cm2": ("conductanceDensity", 1e4, 0.0), "uS_per_cm2": ("conductanceDensity", 1e-2, 0.0),
    "F": ("capacitance", 1.0, 0.0), "uF": ("capacitance", 1e-6, 0.0), "nF": ("capacitance", 1e-9, 0.0),
    "pF": ("capacitance", 1e-12, 0.0),
    "F_per_m2": ("specificCapacitance", 1.0, 0.0), "uF_per_cm2": ("specificCapacitance", 1e-2, 0.0),
    "ohm_m": ("resistivity", 1.0, 0.0), "kohm_cm": ("resistivity", 10.0, 0.0), "ohm_cm": ("resistivity", 1e-2, 0.0),
    "C": ("charge", 1.0, 0.0),
    "C_per_mol": ("charge_per_mole", 1.0, 0.0), "nA_ms_per_amol": ("charge_per_mole", 1e6, 0.0),
    "pC_per_umol": ("charge_per_mole", 1e-6, 0.0),
    "A": ("current", 1.0, 0.0), "mA": ("current", 1e-3, 0.0), "uA": ("current", 1e-6, 0.0),
    "nA": ("current", 1e-9, 0.0), "pA": ("current", 1e-12, 0.0),
    "A_per_m2": ("currentDensity", 1.0, 0.0), "uA_per_cm2": ("currentDensity", 1e-2, 0.0),
    "mA_per_cm2": ("currentDensity", 10.0, 0.0),
    "m": ("length", 1.0, 0.0), "cm": ("length", 1e-2, 0.0), "mm": ("length", 1e-3, 0.0), "um": ("length", 1e-6, 0.0),
    "m2": ("area", 1.0, 0.0), "cm2": ("area", 1e-4, 0.0), "um2": ("area", 1e-12, 0.0),
    "m3": ("volume", 1.0, 0.0), "cm3": ("volume", 1e-6, 0.0), "litre": ("volume", 1e-3, 0.0),
    "um3": ("volume", 1e-18, 0.0),
    "mol_per_m3": ("concentration", 1.0, 0.0), "mol_per_cm3": ("concentration", 1e6, 0.0),
    "M": ("concentration", 1e3, 0.0), "mM": ("concentration", 1.0, 0.0), "uM": ("concentration", 1e-3, 0.0),
    "mol": ("substance", 1.0, 0.0),
    "m_per_s": ("permeability", 1.0, 0.0), "cm_per_s": ("permeability", 1e-2, 0.0),
    "um_per_ms": ("permeability", 1e-3, 0.0), "cm_per_ms": ("permeability", 10.0, 0.0),
    "K": ("temperature", 1.0, 0.0), "degC": ("temperature", 1.0, 273.15),
    "J_per_K_per_mol": ("idealGasConstantDims", 1.0, 0.0), "fJ_per_K_per_umol": ("idealGasConstantDims", 1e-9, 0.0),
    "S_per_V": ("conductance_per_voltage", 1.0, 0.0), "nS_per_mV": ("conductance_per_voltage", 1e-6, 0.0),
    "mol_per_m_per_A_per_s": ("rho_factor", 1.0, 0.0), "mol_per_cm_per_uA_per_ms": ("rho_factor", 1e11, 0.0),
    "umol_per_cm_per_nA_per_ms": ("rho_factor", 1e8, 0.0),
}

#: the kelvin value of 0 °C
ZERO_CELSIUS = 273.15

_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z_0-9]*)\s*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ExpressionError(ValueError):
    """An expression LEMS (or livn's subset of it) does not accept; ``column`` is 1-based or None."""

    def __init__(self, message: str, column: int | None = None):
        self.column = column
        super().__init__(message)


def si_value(text: str, dimension: str | None = None) -> tuple[float, str]:
    """(SI value, dimension name) of a LEMS quantity such as ``"96485.3C_per_mol"`` or ``"24degC"``.

    Raises ExpressionError if the text is not a number with a known unit, the value is not
    finite, or (with ``dimension``) the unit is of another dimension.
    """
    match = _QUANTITY.match(text or "")
    unit = UNITS.get(match.group(2)) if match else None
    if unit is None:
        expected = f"a {dimension} in one of {', '.join(u for u, d in UNITS.items() if d[0] == dimension) or '-'}" \
            if dimension else "a number and a NeuroML unit"
        raise ExpressionError(f"{text!r}: expected {expected}")
    value = float(match.group(1)) * unit[1] + unit[2]
    if not math.isfinite(value):
        raise ExpressionError(f"{text!r} is not finite")
    if dimension is not None and unit[0] != dimension and DIMENSIONS.get(unit[0]) != DIMENSIONS.get(dimension):
        raise ExpressionError(f"{text!r} is a {unit[0].replace('_', ' ')}, expected a {dimension.replace('_', ' ')}")
    return value, unit[0]


def dimension_name(exponents: tuple) -> str:
    """A readable name of a dimension vector (its NeuroML name if it has one)."""
    for name, value in DIMENSIONS.items():
        if value == exponents:
            return name
    symbols = ("kg", "m", "s", "A", "K", "mol", "cd")
    return "·".join(f"{s}^{e}" if e != 1 else s for s, e in zip(symbols, exponents) if e) or "none"


# -- the expression language -------------------------------------------------------------------
_TOKEN = re.compile(r"""\s*(?:
    (?P<num>(?:\d+(?:\.(?!(?:gt|lt|geq|leq|eq|neq|and|or)\.)\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<dot>\.(?:gt|lt|geq|leq|eq|neq|and|or)\.)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>[-+*/^(),])
)""", re.VERBOSE)

#: LEMS comparison -> the operator both emitters write
COMPARISONS = {".gt.": ">", ".lt.": "<", ".geq.": ">=", ".leq.": "<=", ".eq.": "==", ".neq.": "!="}
FUNCTIONS = ("exp", "log", "sqrt", "abs")
#: longest expression accepted (characters): a bound on parser recursion and work
MAX_EXPRESSION = 2000
MAX_DEPTH = 100


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, column) of every token; ExpressionError at the first character that is none."""
    out, at = [], 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            start = at + len(text[at:]) - len(text[at:].lstrip())
            raise ExpressionError(f"unexpected {text[start:start + 8]!r} (allowed: numbers, names, + - * / ^, "
                                  f"parentheses, {', '.join(FUNCTIONS)}, .gt. .lt. .geq. .leq. .eq. .neq. "
                                  f".and. .or.)", start + 1)
        kind = match.lastgroup
        out.append((kind, match.group(kind), match.start(kind) + 1))
        at = match.end()
    return out


class _Parser:
    """Recursive descent over the token list: or > and > comparison > sum > term > unary > power > atom."""

    def __init__(self, text: str):
        if len(text) > MAX_EXPRESSION:
            raise ExpressionError(f"expression longer than {MAX_EXPRESSION} characters")
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0
        self.depth = 0

    def peek(self):
        return self.tokens[self.at] if self.at < len(self.tokens) else ("end", "", len(self.text) + 1)

    def take(self, value: str | None = None):
        token = self.peek()
        if value is not None and token[1] != value:
            found = "the end" if token[0] == "end" else repr(token[1])
            raise ExpressionError(f"expected {value!r}, found {found}", token[2])
        self.at += 1
        return token

    def parse(self):
        node = self.disjunction()
        if self.peek()[0] != "end":
            token = self.peek()
            raise ExpressionError(f"unexpected {token[1]!r} after a complete expression", token[2])
        return node

    def _nested(self, method):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} levels", self.peek()[2])
        try:
            return method()
        finally:
            self.depth -= 1

    def disjunction(self):
        node = self.conjunction()
        while self.peek()[1] == ".or.":
            self.take()
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self):
        node = self.comparison()
        while self.peek()[1] == ".and.":
            self.take()
            node = ("and", node, self.comparison())
        return node

    def comparison(self):
        node = self.sum()
        token = self.peek()
        if token[1] in COMPARISONS:
            self.take()
            node = ("cmp", COMPARISONS[token[1]], node, self.sum())
            if self.peek()[1] in COMPARISONS:
                raise ExpressionError("comparisons cannot be chained; join them with .and. / .or.", self.peek()[2])
        return node

    def sum(self):
        node = self.term()
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            node = (op, node, self.term())
        return node

    def term(self):
        node = self.unary()
        while self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            node = (op, node, self.unary())
        return node

    def unary(self):
        if self.peek()[1] in ("-", "+"):
            op = self.take()[1]
            operand = self._nested(self.unary)
            return ("neg", operand) if op == "-" else operand
        return self.power()

    def power(self):
        node = self.atom()
        if self.peek()[1] == "^":
            self.take()
            node = ("^", node, self._nested(self.unary))
        return node

    def atom(self):
        kind, text, column = self.peek()
        if kind == "num":
            self.take()
            if not math.isfinite(float(text)):
                raise ExpressionError(f"the number {text} is not finite", column)
            return ("num", float(text))
        if kind == "name":
            self.take()
            if self.peek()[1] == "(":
                if text not in FUNCTIONS:
                    raise ExpressionError(f"unknown function {text!r} (allowed: {', '.join(FUNCTIONS)})", column)
                self.take("(")
                argument = self._nested(self.disjunction)
                if self.peek()[1] == ",":
                    raise ExpressionError(f"{text}() takes one argument", self.peek()[2])
                self.take(")")
                return ("call", text, argument)
            if text in FUNCTIONS:
                raise ExpressionError(f"{text} is a function: write {text}(...)", column)
            return ("var", text, column)
        if text == "(":
            self.take()
            node = self._nested(self.disjunction)
            self.take(")")
            return node
        found = "the end of the expression" if kind == "end" else repr(text)
        raise ExpressionError(f"expected a number, a name or '(', found {found}", column)


def parse(text: str):
    """The tree of expression ``text`` (see the module notes); ExpressionError if not accepted."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("empty expression")
    return _Parser(text).parse()


def names_in(node) -> set[str]:
    """The variable names a tree reads."""
    kind = node[0]
    if kind == "var":
        return {node[1]}
    if kind == "num":
        return set()
    if kind in ("neg",):
        return names_in(node[1])
    if kind == "call":
        return names_in(node[2])
    if kind == "cmp":
        return names_in(node[2]) | names_in(node[3])
    return names_in(node[1]) | names_in(node[2])


def substitute(node, values: dict):
    """The tree with the names in ``values`` replaced by those numbers (constants, parameters)."""
    kind = node[0]
    if kind == "var":
        return ("num", values[node[1]]) if node[1] in values else node
    if kind == "num":
        return node
    if kind == "neg":
        return ("neg", substitute(node[1], values))
    if kind == "call":
        return ("call", node[1], substitute(node[2], values))
    if kind == "cmp":
        return ("cmp", node[1], substitute(node[2], values), substitute(node[3], values))
    return (kind, substitute(node[1], values), substitute(node[2], values))


def _is_zero(node) -> bool:
    return node[0] == "num" and node[1] == 0.0


def dimension_of(node, dims: dict):
    """Dimension exponents of a numeric tree, or "bool" for a condition; ExpressionError if inconsistent.

    ``dims`` maps every name to its exponents. A literal 0 takes any dimension in +, - and
    comparisons (``caConcExt .gt. 0``); other literals are dimensionless.
    """
    kind = node[0]
    if kind == "num":
        return NONE
    if kind == "var":
        return dims[node[1]]
    if kind == "neg":
        return _numeric(node[1], dims)
    if kind == "call":
        inner = _numeric(node[2], dims)
        if node[1] in ("exp", "log") and inner != NONE:
            raise ExpressionError(f"{node[1]}() needs a dimensionless argument, found {dimension_name(inner)}")
        if node[1] == "sqrt":
            if any(e % 2 for e in inner):
                raise ExpressionError(f"sqrt() of a {dimension_name(inner)} has no dimension")
            return tuple(e // 2 for e in inner)
        return inner
    if kind in ("and", "or"):
        for side in node[1:]:
            if dimension_of(side, dims) != "bool":
                raise ExpressionError(f".{kind}. joins conditions (comparisons), found a number")
        return "bool"
    if kind == "cmp":
        a, b = _numeric(node[2], dims), _numeric(node[3], dims)
        if a != b and not (_is_zero(node[2]) or _is_zero(node[3])):
            raise ExpressionError(f"comparison of a {dimension_name(a)} with a {dimension_name(b)}")
        return "bool"
    a, b = _numeric(node[1], dims), _numeric(node[2], dims)
    if kind in ("+", "-"):
        if _is_zero(node[1]):
            return b
        if a != b and not _is_zero(node[2]):
            raise ExpressionError(f"'{kind}' of a {dimension_name(a)} and a {dimension_name(b)}")
        return a
    if kind == "*":
        return tuple(x + y for x, y in zip(a, b))
    if kind == "/":
        return tuple(x - y for x, y in zip(a, b))
    # power
    if b != NONE:
        raise ExpressionError(f"an exponent must be dimensionless, found {dimension_name(b)}")
    if a == NONE:
        return NONE
    exponent = node[2][1] if node[2][0] == "num" else (-node[2][1][1] if node[2][0] == "neg"
                                                        and node[2][1][0] == "num" else None)
    if exponent is None or exponent != int(exponent):
        raise ExpressionError(f"a {dimension_name(a)} can only be raised to an integer number")
    return tuple(int(x * exponent) for x in a)


def _numeric(node, dims):
    found = dimension_of(node, dims)
    if found == "bool":
        raise ExpressionError("a condition (comparison) where a number belongs")
    return found


def evaluate(node, env: dict):
    """The value of a tree with numpy (arrays broadcast); ``env`` maps names to SI values."""
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "var":
        return env[node[1]]
    if kind == "neg":
        return -evaluate(node[1], env)
    if kind == "call":
        x = evaluate(node[2], env)
        return {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs}[node[1]](x)
    if kind == "cmp":
        a, b = evaluate(node[2], env), evaluate(node[3], env)
        return {">": np.greater, "<": np.less, ">=": np.greater_equal, "<=": np.less_equal, "==": np.equal,
                "!=": np.not_equal}[node[1]](a, b)
    a, b = evaluate(node[1], env), evaluate(node[2], env)
    if kind == "and":
        return np.logical_and(a, b)
    if kind == "or":
        return np.logical_or(a, b)
    return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power}[kind](a, b)


def nmodl_number(x: float) -> str:
    """A float literal NMODL parses exactly (repr; negative values parenthesised)."""
    s = repr(float(x))
    if "inf" in s or "nan" in s:
        raise ExpressionError(f"cannot write the number {x!r} into NMODL")
    return f"({s})" if x < 0 or s.startswith("-") else s


def nmodl(node, names: dict) -> str:
    """NMODL text of a tree, fully parenthesised; ``names`` maps variable names to NMODL text."""
    kind = node[0]
    if kind == "num":
        return nmodl_number(node[1])
    if kind == "var":
        return names[node[1]]
    if kind == "neg":
        return f"(-{nmodl(node[1], names)})"
    if kind == "call":
        return f"{'fabs' if node[1] == 'abs' else node[1]}({nmodl(node[2], names)})"
    if kind == "cmp":
        return f"({nmodl(node[2], names)} {node[1]} {nmodl(node[3], names)})"
    if kind in ("and", "or"):
        return f"({nmodl(node[1], names)} {'&&' if kind == 'and' else '||'} {nmodl(node[2], names)})"
    if kind == "^":
        return f"pow({nmodl(node[1], names)}, {nmodl(node[2], names)})"
    return f"({nmodl(node[1], names)} {kind} {nmodl(node[2], names)})"


# -- custom gate ComponentTypes ----------------------------------------------------------------
#: base type -> (role, exposure, its dimension, whether caConc is available)
BASES = {
    "baseVoltageDepRate": ("rate", "r", "per_time", False),
    "baseVoltageConcDepRate": ("rate", "r", "per_time", True),
    "baseVoltageDepVariable": ("variable", "x", "none", False),
    "baseVoltageConcDepVariable": ("variable", "x", "none", True),
    "baseVoltageDepTime": ("time", "t", "time", False),
    "baseVoltageConcDepTime": ("time", "t", "time", True),
}
#: role -> factor from the SI exposure to livn's unit (1/s -> 1/ms, s -> ms, 1)
TO_LIVN = {"rate": 1e-3, "time": 1e3, "variable": 1.0}
#: the inputs a custom type reads: name -> (dimension, NMODL text in SI)
INPUTS = {"v": ("voltage", "(v*0.001)"), "caConc": ("concentration", "cai"),
          "temperature": ("temperature", f"(celsius + {ZERO_CELSIUS!r})")}
#: attributes a rate/variable/time-course element may carry as Parameter values (NeuroML schema)
PARAMETER_ATTRIBUTES = {"rate", "midpoint", "scale", "tau"}


@dataclass(frozen=True)
class Statement:
    """``name = value`` (``cases`` empty) or ``name = first value whose condition holds`` (a
    ConditionalDerivedVariable; condition None = otherwise; none holding gives 0).
    ``source`` is the LEMS text, kept for comments."""

    name: str
    value: tuple | None
    cases: tuple = ()
    source: str = ""


@dataclass(frozen=True)
class CustomType:
    """A custom rate, variable or time course as used by one gate element (Parameters bound).

    Attributes
    ----------
    name : str
        The ComponentType's name.
    role : str
        "rate" (1/ms), "variable" (dimensionless) or "time" (ms).
    statements : tuple
        :class:`Statement` in evaluation order, Constants and Parameters substituted (SI).
    output : str
        The statement that is the exposure.
    inputs : frozenset
        Which of v, caConc, temperature it reads.
    """

    name: str
    role: str
    statements: tuple
    output: str
    inputs: frozenset
    file: str = field(default="", compare=False)
    line: int | None = field(default=None, compare=False)

    def evaluate(self, v, cai=None, temperature=None):
        """The exposure at membrane potential ``v`` (mV), ``cai`` (mM) and ``temperature`` (°C),
        in livn's unit (1/ms, 1 or ms); arrays broadcast."""
        env = {"v": np.asarray(v, dtype=float) * 1e-3}
        if "caConc" in self.inputs:
            if cai is None:
                raise ValueError(f"ComponentType {self.name} depends on the calcium concentration: give cai (mM)")
            env["caConc"] = np.asarray(cai, dtype=float)
        if "temperature" in self.inputs:
            if temperature is None:
                raise ValueError(f"ComponentType {self.name} depends on the temperature: give it (degC)")
            env["temperature"] = np.asarray(temperature, dtype=float) + ZERO_CELSIUS
        with np.errstate(all="ignore"):
            for s in self.statements:
                if not s.cases:
                    env[s.name] = evaluate(s.value, env)
                    continue
                conditions = [np.ones((), bool) if c is None else evaluate(c, env) for c, _ in s.cases]
                values = [evaluate(x, env) for _, x in s.cases]
                shape = np.broadcast(*conditions, *values).shape
                env[s.name] = np.select([np.broadcast_to(c, shape) for c in conditions],
                                        [np.broadcast_to(x, shape) for x in values], default=0.0)
            out = np.asarray(env[self.output], dtype=float) * TO_LIVN[self.role]
        return out if out.ndim else float(out)

    def nmodl_function(self, name: str) -> str:
        """An NMODL ``FUNCTION name(v (mV))`` returning the exposure in livn's unit. It reads
        ``cai`` and ``celsius`` from the mechanism, which must declare them."""
        local = {s.name: f"l_{s.name}" for s in self.statements}
        names = {k: INPUTS[k][1] for k in self.inputs} | local
        lines = []
        for s in self.statements:
            lines.append(f"    : {s.name} = {s.source}" if s.source else f"    : {s.name}")
            if not s.cases:
                lines.append(f"    {local[s.name]} = {nmodl(s.value, names)}")
                continue
            if s.cases[0][0] is None:  # a single case without condition
                lines.append(f"    {local[s.name]} = {nmodl(s.cases[0][1], names)}")
                continue
            lines.append(f"    {local[s.name]} = 0")  # when no case holds (as the numpy evaluation)
            for k, (condition, value) in enumerate(s.cases):
                if condition is None:
                    lines.append("    } else {")
                else:
                    lines.append(f"    {'if' if k == 0 else '} else if'} {nmodl(condition, names)} {{")
                lines.append(f"        {local[s.name]} = {nmodl(value, names)}")
            lines.append("    }")
        unit = {"rate": "(/ms)", "time": "(ms)", "variable": ""}[self.role]
        scale = TO_LIVN[self.role]
        result = local[self.output] if scale == 1.0 else f"{local[self.output]}*{nmodl_number(scale)}"
        return (f"\nFUNCTION {name}(v (mV)) {unit}{{\n"
                f"    : NeuroML ComponentType {self.name} (SI inside, {self.role} out in livn units)\n"
                f"    LOCAL {', '.join(local.values())}\n" + "\n".join(lines) + f"\n    {name} = {result}\n}}\n")


def _local(element) -> str:
    from lxml import etree

    return etree.QName(element.tag).localname if isinstance(element.tag, str) else ""


def read_custom(component_type, use, role: str, problem) -> CustomType:
    """The custom type ``component_type`` (lxml element) as used by element ``use`` (its
    ``type`` attribute names the type; its rate/midpoint/scale/tau attributes bind Parameters).

    ``role`` is what the use needs ("rate", "variable", "time"); ``problem(element, message)``
    returns the exception to raise (with file and line).
    """
    name = component_type.get("name")
    base = component_type.get("extends")
    if base not in BASES:
        raise problem(component_type, f"ComponentType {name} extends {base!r}: livn reads custom gate types that "
                                       f"extend {', '.join(BASES)}")
    own_role, output, output_dim, with_ca = BASES[base]
    if own_role != role:
        raise problem(use, f"<{_local(use)} type={name!r}>: a {own_role} type ({base}) where a {role} belongs")
    values: dict = {}
    dims = {"v": DIMENSIONS["voltage"]}
    inputs = {"v"}
    declared = set()
    dynamics = None
    for child in component_type:
        tag = _local(child)
        if not tag or tag == "notes":
            continue
        child_name = child.get("name")
        if tag in ("Constant", "Parameter", "Requirement"):
            if not child_name or not _NAME.match(child_name):
                raise problem(child, f"ComponentType {name}: <{tag}> name {child_name!r} is not an identifier")
            if child_name in values or child_name in declared:
                raise problem(child, f"ComponentType {name}: {child_name} is declared twice")
            dimension = child.get("dimension")
            if dimension not in DIMENSIONS:
                raise problem(child, f"ComponentType {name}: {tag} {child_name} has dimension {dimension!r} "
                                     f"(known: {', '.join(DIMENSIONS)})")
        if tag == "Constant":
            try:
                values[child_name] = si_value(child.get("value"), dimension)[0]
            except ExpressionError as err:
                raise problem(child, f"ComponentType {name}: Constant {child_name}: {err}") from None
            dims[child_name] = DIMENSIONS[dimension]
        elif tag == "Parameter":
            if child_name not in PARAMETER_ATTRIBUTES:
                raise problem(child, f"ComponentType {name}: Parameter {child_name}: a gate element can only give "
                                     f"{', '.join(sorted(PARAMETER_ATTRIBUTES))} (NeuroML schema); use a Constant")
            if use.get(child_name) is None:
                raise problem(use, f"<{_local(use)} type={name!r}> needs the attribute {child_name} "
                                   f"(a Parameter of {name})")
            try:
                values[child_name] = si_value(use.get(child_name), dimension)[0]
            except ExpressionError as err:
                raise problem(use, f"<{_local(use)} type={name!r}> {child_name}: {err}") from None
            dims[child_name] = DIMENSIONS[dimension]
        elif tag == "Requirement":
            allowed = {"temperature": "temperature", "v": "voltage"} | ({"caConc": "concentration"} if with_ca else {})
            if allowed.get(child_name) != dimension:
                raise problem(child, f"ComponentType {name}: Requirement {child_name} ({dimension}) is not provided "
                                     f"to a gate type (available: "
                                     f"{', '.join(f'{k} ({d})' for k, d in allowed.items())})")
            declared.add(child_name)
        elif tag == "Dynamics":
            dynamics = child
        else:
            raise problem(child, f"ComponentType {name}: <{tag}> is not supported in a custom gate type (supported: "
                                 f"Constant, Parameter, Requirement, Dynamics)")
    unused = sorted(a for a in PARAMETER_ATTRIBUTES if use.get(a) is not None and a not in values)
    if unused:
        raise problem(use, f"<{_local(use)} type={name!r}> gives {', '.join(unused)}, which {name} does not declare "
                           f"as a Parameter")
    if with_ca:
        dims["caConc"] = DIMENSIONS["concentration"]
    if "temperature" in declared:
        dims["temperature"] = DIMENSIONS["temperature"]
    if dynamics is None:
        raise problem(component_type, f"ComponentType {name} has no <Dynamics>")
    raw = _read_dynamics(dynamics, name, problem, set(dims))
    exposed = [r for r in raw if r["exposure"] is not None]
    if len(exposed) != 1 or exposed[0]["exposure"] != output:
        raise problem(dynamics, f"ComponentType {name}: exactly one derived variable must have exposure="
                                f"{output!r} (the {role} of {base}), found "
                                f"{', '.join(repr(r['exposure']) for r in exposed) or 'none'}")
    statements = _order(raw, name, problem, dims)
    for r in raw:
        if r["element"] is exposed[0]["element"] and r["dimension"] != output_dim:
            raise problem(r["element"], f"ComponentType {name}: {r['name']} is the {role} and must have dimension "
                                        f"{output_dim}, declared {r['dimension']}")
    reads = set().union(*(set(_statement_names(s)) for s in statements)) if statements else set()
    for key in ("caConc", "temperature"):
        if key in reads:
            inputs.add(key)
    bound = tuple(Statement(s.name, substitute(s.value, values) if s.value is not None else None,
                            tuple((substitute(c, values) if c is not None else None, substitute(x, values))
                                  for c, x in s.cases), s.source) for s in statements)
    return CustomType(name, role, bound, exposed[0]["name"], frozenset(inputs),
                      component_type.getroottree().docinfo.URL, component_type.sourceline)


def _statement_names(s: Statement) -> set:
    if s.value is not None:
        return names_in(s.value)
    out = set()
    for c, x in s.cases:
        out |= names_in(x) | (names_in(c) if c is not None else set())
    return out


def _read_dynamics(dynamics, type_name: str, problem, reserved: set) -> list[dict]:
    """The derived variables of a <Dynamics> (parsed, unordered)."""
    out, seen = [], set(reserved)
    for child in dynamics:
        tag = _local(child)
        if not tag:
            continue
        if tag not in ("DerivedVariable", "ConditionalDerivedVariable"):
            raise problem(child, f"ComponentType {type_name}: <{tag}> is not supported in a gate type's Dynamics "
                                 f"(supported: DerivedVariable, ConditionalDerivedVariable)")
        name, dimension = child.get("name"), child.get("dimension", "none")
        if not name or not _NAME.match(name):
            raise problem(child, f"ComponentType {type_name}: {tag} name {name!r} is not an identifier")
        if name in seen:
            raise problem(child, f"ComponentType {type_name}: {name} is defined twice (or shadows a Constant, "
                                 f"Parameter or input)")
        seen.add(name)
        if dimension not in DIMENSIONS:
            raise problem(child, f"ComponentType {type_name}: {name} has dimension {dimension!r} "
                                 f"(known: {', '.join(DIMENSIONS)})")
        if child.get("select") is not None:
            raise problem(child, f"ComponentType {type_name}: {name}: select= paths are not supported")
        entry = {"name": name, "dimension": dimension, "exposure": child.get("exposure"), "element": child}
        if tag == "DerivedVariable":
            entry["value"], entry["cases"] = _parse_at(child, "value", type_name, problem), ()
            entry["source"] = child.get("value")
        else:
            cases = []
            for case in child:
                if not _local(case):
                    continue
                if _local(case) != "Case":
                    raise problem(case, f"ComponentType {type_name}: <{_local(case)}> in a ConditionalDerivedVariable "
                                        f"(expected <Case condition=... value=...>)")
                condition = _parse_at(case, "condition", type_name, problem) if case.get("condition") else None
                cases.append((condition, _parse_at(case, "value", type_name, problem), case))
            if not cases:
                raise problem(child, f"ComponentType {type_name}: ConditionalDerivedVariable {name} has no <Case>")
            if any(c is None for c, _, _ in cases[:-1]):
                raise problem(child, f"ComponentType {type_name}: {name}: only the last <Case> may have no condition")
            entry["value"], entry["cases"] = None, tuple(cases)
            entry["source"] = "; ".join(f"{c.get('condition') or 'otherwise'}: {c.get('value')}" for *_, c in cases)
        out.append(entry)
    return out


def _parse_at(element, attribute: str, type_name: str, problem):
    text = element.get(attribute)
    try:
        return parse(text or "")
    except ExpressionError as err:
        where = f" at column {err.column}" if err.column else ""
        raise problem(element, f"ComponentType {type_name}: {attribute}={text!r}{where}: {err}") from None


def _order(raw: list[dict], type_name: str, problem, dims: dict) -> tuple:
    """Statements in dependency order, every name resolved and every dimension checked."""
    by_name = {r["name"]: r for r in raw}
    order, state = [], {}

    def visit(name: str, trail: tuple):
        if state.get(name) == "done":
            return
        r = by_name[name]
        if state.get(name) == "active":
            raise problem(r["element"], f"ComponentType {type_name}: {' -> '.join(trail + (name,))} is circular")
        state[name] = "active"
        nodes = [r["value"]] if r["value"] is not None else [n for c, x, _ in r["cases"] for n in (c, x) if n is not None]
        for node in nodes:
            for used in sorted(names_in(node)):
                if used in by_name:
                    visit(used, trail + (name,))
                elif used not in dims:
                    hint = {"caConc": " (only in types extending a baseVoltageConcDep... type)",
                            "temperature": " (declare <Requirement name=\"temperature\" dimension=\"temperature\"/>)"}
                    raise problem(r["element"], f"ComponentType {type_name}: {name} uses {used!r}, which is not "
                                                f"defined{hint.get(used, '')}; known: "
                                                f"{', '.join(sorted(set(dims) | set(by_name)))}")
        _check_dimensions(r, type_name, problem, dims)
        dims[name] = DIMENSIONS[r["dimension"]]
        state[name] = "done"
        cases = tuple((c, x) for c, x, _ in r["cases"])
        order.append(Statement(name, r["value"], cases, r["source"]))

    for r in raw:
        visit(r["name"], ())
    return tuple(order)


def _check_dimensions(r: dict, type_name: str, problem, dims: dict):
    declared = DIMENSIONS[r["dimension"]]
    checks = [(r["value"], "value", r["element"])] if r["value"] is not None else []
    for condition, value, case in r["cases"]:
        checks.append((value, "value", case))
        if condition is not None:
            checks.append((condition, "condition", case))
    for node, what, element in checks:
        try:
            found = dimension_of(node, dims)
        except ExpressionError as err:
            raise problem(element, f"ComponentType {type_name}: {r['name']}: {what} {element.get(what)!r}: "
                                   f"{err}") from None
        if what == "condition":
            if found != "bool":
                raise problem(element, f"ComponentType {type_name}: {r['name']}: condition {element.get(what)!r} is "
                                       f"not a comparison")
        elif found == "bool":
            raise problem(element, f"ComponentType {type_name}: {r['name']}: value {element.get(what)!r} is a "
                                   f"condition, expected a {r['dimension']}")
        elif found != declared and not _is_zero(node):
            raise problem(element, f"ComponentType {type_name}: {r['name']} is declared {r['dimension']}, but "
                                   f"{element.get(what)!r} is a {dimension_name(found)}")
