"""The schema layer: the shipped JSON Schema (draft 2020-12, ``schemas/manifest.schema.json``),
a fast validator for it, and each of its errors turned into ``location: what is wrong (line N);
fix: how to fix it``.

What this module must not do: check what a schema cannot say (checks.py does) or read files
other than the packaged schema.
"""

from __future__ import annotations

import difflib
import json
import numbers
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


def manifest_errors(data: Any) -> Iterator[jsonschema.ValidationError]:
    """The schema's errors for ``data``: none at once for a valid document (the compiled check
    says so), else jsonschema's errors, which the messages are made from."""
    if _compiled_check()(data):
        return
    yield from manifest_validator().iter_errors(data)


Check = Callable[[object], bool]
"""Whether a value is valid against one (sub)schema."""


class _Uncompilable(Exception):
    """The schema uses a keyword or form the compiled check does not implement."""


def _compiled_check() -> Check:
    """The inlined schema as one function that answers only "valid?", with jsonschema's
    meaning (draft 2020-12, formats not asserted) and several times faster than jsonschema.

    It implements the keywords the manifest schema uses and nothing else: a schema using
    another (a future edit) gets a check that never vouches, so every document goes to
    jsonschema: slower, never wrong. tests/fuzz/test_fuzz_schema_check.py holds it to
    jsonschema's answer.
    """
    try:
        return _compile(_inlined_schema())
    except _Uncompilable:
        return lambda data: False


# Keywords with no say on validity: annotations, and ``format``, which jsonschema asserts only
# when given a format checker (manifest_validator gives none).
_NOT_ASSERTED = _ANNOTATIONS | {"$schema", "$id", "format"}
_COMPILED = frozenset(
    {"type", "pattern", "minLength", "enum", "const", "minimum", "maximum", "items"}
    | {"minItems", "maxItems", "properties", "required", "additionalProperties"}
    | {"if", "then", "else"}
)
_TYPES: dict[str, Check] = {  # jsonschema's draft 2020-12 type checker
    "array": lambda value: isinstance(value, list),
    "boolean": lambda value: isinstance(value, bool),
    "integer": lambda value: (
        (isinstance(value, int) and not isinstance(value, bool))
        or (isinstance(value, float) and value.is_integer())
    ),
    "null": lambda value: value is None,
    "number": lambda value: isinstance(value, numbers.Number) and not isinstance(value, bool),
    "object": lambda value: isinstance(value, dict),
    "string": lambda value: isinstance(value, str),
}


def _compile(schema: object) -> Check:
    """One subschema as a function; each keyword applies only to values of its type, as in
    jsonschema."""
    if not isinstance(schema, dict):
        raise _Uncompilable("a boolean schema")
    keywords = set(schema) - _NOT_ASSERTED
    unknown = keywords - _COMPILED
    if unknown:
        raise _Uncompilable(", ".join(sorted(unknown)))
    checks: list[Check] = []
    if "type" in keywords:
        checks.append(_type_check(schema["type"]))
    if keywords & {"pattern", "minLength"}:
        checks.append(_text_check(schema.get("pattern"), schema.get("minLength", 0)))
    if "enum" in keywords:
        checks.append(_enum_check(schema["enum"]))
    if "const" in keywords:
        checks.append(_const_check(schema["const"]))
    if keywords & {"minimum", "maximum"}:
        checks.append(_range_check(schema.get("minimum"), schema.get("maximum")))
    if keywords & {"items", "minItems", "maxItems"}:
        checks.append(_array_check(schema))
    if keywords & {"properties", "required", "additionalProperties"}:
        checks.append(_object_check(schema))
    if "if" in keywords:
        checks.append(_condition_check(schema))
    return _all_of(checks)


def _all_of(checks: list[Check]) -> Check:
    if not checks:
        return lambda value: True
    first, rest = checks[0], checks[1:]
    if not rest:
        return first
    others = _all_of(rest)
    return lambda value: first(value) and others(value)


def _type_check(kind: object) -> Check:
    kinds = [kind] if isinstance(kind, str) else kind
    if not isinstance(kinds, list) or not all(name in _TYPES for name in kinds):
        raise _Uncompilable(f"type {kind!r}")
    tests = [_TYPES[name] for name in kinds]
    if len(tests) == 1:
        return tests[0]
    return lambda value: any(test(value) for test in tests)


def _text_check(pattern: object, min_length: object) -> Check:
    if not (pattern is None or isinstance(pattern, str)) or type(min_length) is not int:
        raise _Uncompilable("pattern or minLength")
    search = re.compile(pattern).search if pattern is not None else None
    least = min_length

    def check(value: object) -> bool:
        if not isinstance(value, str):
            return True
        return (search is None or search(value) is not None) and len(value) >= least

    return check


def _enum_check(members: object) -> Check:
    # jsonschema compares text with ==, and text never equals a non-text value.
    if not isinstance(members, list) or not all(type(member) is str for member in members):
        raise _Uncompilable("an enum of other than text")
    allowed = frozenset(members)
    return lambda value: isinstance(value, str) and value in allowed


def _const_check(expected: object) -> Check:
    if type(expected) is str:
        return lambda value: isinstance(value, str) and value == expected
    if type(expected) is int:
        # jsonschema's equality keeps true/false apart from 1/0 and lets 1.0 equal 1.
        return lambda value: (
            isinstance(value, int | float) and not isinstance(value, bool) and value == expected
        )
    raise _Uncompilable(f"const {expected!r}")


def _range_check(minimum: object, maximum: object) -> Check:
    bounds = [bound for bound in (minimum, maximum) if bound is not None]
    if not all(type(bound) in (int, float) for bound in bounds):
        raise _Uncompilable("a bound that is not a number")
    is_number = _TYPES["number"]

    def check(value: Any) -> bool:
        if not is_number(value):
            return True
        # As jsonschema words it (a NaN is below and above nothing).
        too_low = minimum is not None and value < minimum
        return not too_low and not (maximum is not None and value > maximum)

    return check


def _array_check(schema: dict[str, Any]) -> Check:
    items = _compile(schema["items"]) if "items" in schema else None
    least, most = schema.get("minItems", 0), schema.get("maxItems")
    if type(least) is not int or not (most is None or type(most) is int):
        raise _Uncompilable("minItems or maxItems")

    def check(value: object) -> bool:
        if not isinstance(value, list):
            return True
        if len(value) < least or (most is not None and len(value) > most):
            return False
        return items is None or all(map(items, value))

    return check


def _object_check(schema: dict[str, Any]) -> Check:
    properties = {name: _compile(sub) for name, sub in schema.get("properties", {}).items()}
    required = tuple(schema.get("required", ()))
    additional = schema.get("additionalProperties", True)
    if additional is not True and additional is not False:
        raise _Uncompilable("additionalProperties other than true or false")
    closed = additional is False

    def check(value: object) -> bool:
        if not isinstance(value, dict):
            return True
        if not all(name in value for name in required):
            return False
        for name, item in value.items():
            sub = properties.get(name)
            if sub is None:
                if closed:
                    return False
            elif not sub(item):
                return False
        return True

    return check


def _condition_check(schema: dict[str, Any]) -> Check:
    condition = _compile(schema["if"])
    then = _compile(schema.get("then", {}))
    otherwise = _compile(schema.get("else", {}))
    return lambda value: then(value) if condition(value) else otherwise(value)


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
