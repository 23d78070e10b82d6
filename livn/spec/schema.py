"""Check a document against livn's JSON Schemas (2020-12), as problems a person can act on."""

from __future__ import annotations

import json
from functools import lru_cache

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from ..resources import resource_dir
from .source import Document


@lru_cache(maxsize=None)
def validator(name: str = "system") -> Draft202012Validator:
    """The validator for ``schemas/<name>.schema.json``, with the other schemas resolvable."""
    resources = {}
    for path in resource_dir("schemas").glob("*.schema.json"):
        schema = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(schema)
        resources[schema["$id"]] = resource
        resources[path.name] = resource
    registry = Registry().with_resources(resources.items())
    root = json.loads((resource_dir("schemas") / f"{name}.schema.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(root)
    return Draft202012Validator(root, registry=registry)


def describe(value) -> str:
    """How a found value is named in messages."""
    if isinstance(value, bool):
        return f"the boolean {value}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if value is None:
        return "nothing (null)"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "text", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "nothing"}


def schema_problems(doc: Document, name: str = "system") -> list:
    """Every schema violation in ``doc``, one problem each, located by path and line."""
    problems = []
    for error in validator(name).iter_errors(doc.data):
        key = tuple(error.absolute_path)
        kind, schema, value = error.validator, error.schema, error.instance
        expected = schema.get("x-expected") if isinstance(schema, dict) else None
        if kind == "required":
            missing = [k for k in error.validator_value if isinstance(value, dict) and k not in value]
            for k in missing:
                problems.append(doc.problem(key, f"missing required key {k!r}" +
                                            (f" under {key[-1]!r}" if key else " at the top level")))
            continue
        if kind == "additionalProperties" and isinstance(value, dict):
            allowed = sorted(schema.get("properties", {}))
            for k in value:
                if k not in allowed:
                    problems.append(doc.problem(key + (k,), f"unknown key {k!r}; expected one of: {', '.join(allowed)}"))
            continue
        if kind == "propertyNames":
            bad = error.instance if isinstance(error.instance, str) else None
            what = error.validator_value.get("x-expected", f"a name matching {error.validator_value.get('pattern')}")
            subject = f"key {bad!r}" if bad else "a key"
            problems.append(doc.problem(key, f"{subject} is not valid: expected {what}"))
            continue
        if expected and kind in ("type", "pattern", "const", "oneOf", "enum"):
            message = f"expected {expected}, found {describe(value)}"
        elif kind == "type":
            types = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
            message = f"expected {' or '.join(_TYPE_NAMES.get(t, t) for t in types)}, found {describe(value)}"
        elif kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
            sign = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<"}[kind]
            message = f"expected a value {sign} {error.validator_value}, found {value!r}"
        elif kind in ("enum", "const"):
            options = error.validator_value if kind == "enum" else [error.validator_value]
            message = f"expected one of {', '.join(repr(o) for o in options)}, found {describe(value)}"
        elif kind in ("minItems", "maxItems"):
            message = f"expected {'at least' if kind == 'minItems' else 'at most'} {error.validator_value} item(s), found {len(value)}"
        elif kind == "minProperties":
            message = f"expected at least {error.validator_value} entry(ies), found none"
        elif kind == "uniqueItems":
            message = f"expected no repeated items, found {value!r}"
        elif kind == "pattern":
            message = f"expected text matching {error.validator_value!r}, found {describe(value)}"
        else:
            message = error.message
        problems.append(doc.problem(key, message))
    return problems
