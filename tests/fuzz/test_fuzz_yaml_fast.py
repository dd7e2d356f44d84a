"""Fuzzing the fast YAML reading against the full one: for any document or YAML text, the
same data, the same problems (issue 14, item 10)."""

from __future__ import annotations

import math
from typing import Any

import yaml
from hypothesis import given

from orchestrator.manifest import documents as reading
from tests.fuzz.test_fuzz_manifest import FUZZ, documents, yaml_texts


def _same(left: Any, right: Any) -> bool:
    # NaN is not equal to itself; repr keeps 1, 1.0 and True apart.
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    if isinstance(left, dict) and isinstance(right, dict):
        return list(left) == list(right) and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_same, left, right))
    return type(left) is type(right) and repr(left) == repr(right)


def _compare(text: str) -> None:
    fast = reading._parse_yaml(text, reading.Document())
    full = reading._parse_yaml_with_lines(text, reading.Document())
    assert fast.failed == full.failed
    assert fast.problems == full.problems
    if not full.failed:
        assert _same(fast.data, full.data)


@FUZZ
@given(document=documents)
def test_fast_and_full_yaml_readings_agree_on_any_document(document: Any) -> None:
    """Any dumped document reads to the same data either way."""
    _compare(yaml.safe_dump(document, allow_unicode=True))


@FUZZ
@given(text=yaml_texts)
def test_fast_and_full_yaml_readings_agree_on_any_text(text: str) -> None:
    """YAML text with tags, anchors, merge keys and broken syntax: same data, same problems."""
    _compare(text)
