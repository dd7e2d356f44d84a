"""The schema layer: the shipped JSON Schema (draft 2020-12, ``schemas/manifest.schema.json``),
a fast validator for it, and each of its errors turned into ``location: what is wrong (line N);
fix: how to fix it``.

What this module must not do: check what a schema cannot say (checks.py does) or read files
other than the packaged schema.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import jsonschema.validators

from orchestrator.manifest.documents import Document
from orchestrator.manifest.model import DocPath, Problem


def manifest_schema() -> dict[str, Any]:
    """The shipped JSON Schema (draft 2020-12) of both manifest forms (a fresh copy)."""
    resource = resources.files("orchestrator").joinpath("schemas/manifest.schema.json")
    schema: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return schema


@cache
def _inlined_schema() -> dict[str, Any]:
    """The schema with every ``$ref`` replaced by its definition.

    Same meaning (the schema has no recursive references), but jsonschema no longer resolves a
    reference per value: that is what makes 10,000 entries validate in a fraction of a second.
    """
    schema = manifest_schema()
    definitions = schema["$defs"]

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            result = {key: inline(value) for key, value in node.items() if key != "$ref"}
            if "$ref" in node:
                reference = node["$ref"]
                if not reference.startswith("#/$defs/"):
                    raise ValueError(f"unsupported $ref {reference!r} in the manifest schema")
                return {**inline(definitions[reference.removeprefix("#/$defs/")]), **result}
            return result
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {key: inline(value) for key, value in schema.items() if key != "$defs"}


def manifest_validator() -> jsonschema.protocols.Validator:
    """A draft 2020-12 validator that remembers which (subschema, value) pairs passed.

    Entries repeat the same user_id, privacy_level, tags and paths thousands of times; validating
    each distinct pair once is exact (our subschemas depend on nothing but the value) and several
    times faster. So is checking a leaf subschema of only type/pattern/minLength (ids, free
    text) directly: a value that fails is still handed to jsonschema for its error.
    The memo lives as long as this validator: one check.
    """
    passed: set[tuple[int, object]] = set()
    quick_checks: dict[int, Callable[[Any, object], bool] | None] = {}

    def properties(
        validator: Any, properties: dict[str, Any], instance: Any, schema: Any
    ) -> Iterator[jsonschema.ValidationError]:
        if not validator.is_type(instance, "object"):
            return
        for name, value in instance.items():  # the value's own keys: usually few of many
            subschema = properties.get(name)
            if subschema is None:
                continue
            if id(subschema) not in quick_checks:
                quick_checks[id(subschema)] = _quick_check(subschema)
            quick = quick_checks[id(subschema)]
            if quick is not None and quick(validator, value):
                continue
            key = _memo_key(value)
            if key is not None and (id(subschema), key) in passed:
                continue
            errors = list(validator.descend(value, subschema, path=name, schema_path=name))
            if not errors and key is not None:
                passed.add((id(subschema), key))
            yield from errors

    cls = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator, {"properties": properties}
    )
    validator: jsonschema.protocols.Validator = cls(_inlined_schema())
    return validator


_ANNOTATIONS = frozenset({"description", "title", "x-fix", "$comment", "examples"})


def _quick_check(subschema: object) -> Callable[[Any, object], bool] | None:
    """A direct test for a leaf subschema asserting only ``type`` (one name), ``pattern`` and
    ``minLength``, with jsonschema's meaning (pattern: ``re.search``; lengths in code points);
    None for anything else."""
    if not isinstance(subschema, dict):
        return None
    assertions = set(subschema) - _ANNOTATIONS
    kind = subschema.get("type")
    if "type" not in assertions or not assertions <= {"type", "pattern", "minLength"}:
        return None
    if not isinstance(kind, str):
        return None
    pattern = re.compile(subschema["pattern"]) if "pattern" in subschema else None
    min_length: int = subschema.get("minLength", 0)

    def check(validator: Any, value: object) -> bool:
        if not validator.is_type(value, kind):
            return False
        if isinstance(value, str):
            if pattern is not None and pattern.search(value) is None:
                return False
            return len(value) >= min_length
        return True

    return check


def _memo_key(value: object) -> object:
    """A hashable stand-in for a scalar or a list of scalars (type included: True != 1)."""
    if value is None or isinstance(value, str | int | float | bool):
        return (type(value), value)
    if isinstance(value, list) and all(
        item is None or isinstance(item, str | int | float | bool) for item in value
    ):
        return (list, tuple((type(item), item) for item in value))
    return None


def schema_problems(error: jsonschema.ValidationError, document: Document) -> list[Problem]:
    path: DocPath = tuple(error.absolute_path)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    fix = schema.get("x-fix")
    instance = error.instance
    kind = error.validator
    expected: Any = error.validator_value
    if kind == "additionalProperties" and isinstance(instance, dict):
        allowed = sorted(schema.get("properties", {}))
        problems = []
        for key in instance:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            problems.append(
                document.problem(
                    (*path, key),
                    f"unknown field {key!r}",
                    f"did you mean {close[0]!r}?"
                    if close
                    else "remove it; allowed here: " + ", ".join(allowed),
                )
            )
        return problems
    if kind == "required" and isinstance(instance, dict):
        return [
            document.problem((*path, name), f"{name!r} is missing (required)", fix)
            for name in expected
            if name not in instance
        ]
    if kind == "enum":
        choices = [str(choice) for choice in expected]
        close = difflib.get_close_matches(str(instance).upper(), choices, n=1, cutoff=0.5)
        close = close or difflib.get_close_matches(str(instance).lower(), choices, n=1)
        message = f"{_short(instance)} is not one of {choices}"
        return [document.problem(path, message, f"did you mean {close[0]!r}?" if close else fix)]
    if kind == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else str(expected)
        shown = "" if instance is None else f" {_short(instance)}"
        message = f"expected {_a(wanted)}, got {_json_type(instance)}{shown}"
        if wanted == "string" and isinstance(instance, bool | int | float):
            # YAML reads 12345, 1e3, no, on... as numbers and booleans unless quoted.
            fix = "put the value in quotes so it is read as text"
        return [document.problem(path, message, fix)]
    if kind == "const":
        message = f"must be {expected!r}, got {_short(instance)}"
        return [document.problem(path, message, fix)]
    if kind == "pattern":
        return [document.problem(path, f"{_short(instance)} is not valid here", fix)]
    if kind == "minItems":
        return [document.problem(path, f"needs at least {expected} item(s)", fix)]
    if kind == "maxItems":
        count = len(instance) if isinstance(instance, list) else "too many"
        message = f"has {count} items; at most {expected} are allowed"
        return [document.problem(path, message, fix)]
    if kind == "minLength":
        return [document.problem(path, "must not be empty", fix)]
    if kind in ("minimum", "maximum"):
        bound = "at least" if kind == "minimum" else "at most"
        message = f"{_short(instance)} is out of range (must be {bound} {expected})"
        return [document.problem(path, message, fix)]
    return [document.problem(path, error.message, fix)]


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _a(noun: str) -> str:
    names = {"object": "a mapping (field: value)", "array": "a list", "integer": "a whole number"}
    if noun in names:
        return names[noun]
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "nothing (null)"
    return type(value).__name__
