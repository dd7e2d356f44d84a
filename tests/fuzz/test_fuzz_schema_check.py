"""Fuzzing the compiled schema check against jsonschema: for any document, both call it valid or
both call it invalid, and the errors reported are jsonschema's (issue 14, item 10)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.manifest import schema
from tests.fuzz.test_fuzz_manifest import ENTRY_KEYS, FUZZ, documents, json_values

# Values the schema accepts for each field, and near misses it refuses.
_GOOD: dict[str, list[Any]] = {
    "id": ["post-00001", "a", "A.b_c-9", "x" * 128],
    "user_id": ["creator-1", "sandbox-user-1", "ü" * 256],
    "mode": ["direct", "inbox"],
    "privacy_level": ["SELF_ONLY", "PUBLIC_TO_EVERYONE", "FOLLOWER_OF_CREATOR"],
    "disable_comment": [True, False],
    "disable_duet": [True, False],
    "disable_stitch": [True, False],
    "is_aigc": [False],
    "brand_content_toggle": [True],
    "brand_organic_toggle": [False],
    "auto_add_music": [True],
    "review": ["creator"],
    "video_cover_timestamp_ms": [0, 1500, 2.0, 10**20],
    "publish_at": ["2026-11-22T18:00:00Z", "not a date", ""],
    "video_path": ["videos/clip-0.mp4", " "],
    "video_url": ["https://media.example.com/a.mp4", "https://h:443/?q=1"],
    "photo_urls": [["https://cdn.example.com/1.jpg"], ["https://c.example/x.webp"] * 35],
    "photo_cover_index": [0, 34, 3.0],
    "title": ["", "Launch day ✨"],
    "description": ["", "Daily clip #studio", "😀" * 1200],
    "tags": [[], ["daily", "#studio", "week1"]],
}
_NEAR_MISSES: list[Any] = [
    None,
    True,
    False,
    1,
    0,
    -1,
    1.0,
    1.5,
    35,
    float("nan"),
    float("inf"),
    "",
    "x\n",
    "two words",
    "#",
    "##a",
    "self_only",
    "Direct",
    "http://media.example.com/a.mp4",
    "https://bad host/",
    "x" * 129,
    "ü" * 257,
    [],
    ["a b"],
    ["https://cdn.example.com/1.jpg"] * 36,
    {},
    {"a": 1},
]
# Another field's good value is a natural near miss (a list where text belongs, ...).
_TRIED = _NEAR_MISSES + [value for values in _GOOD.values() for value in values]
_values = st.sampled_from(_TRIED) | json_values


@st.composite
def nearly_valid(draw: st.DrawFn) -> Any:
    """A valid manifest (either form), then most often one change that may break it."""
    legacy = draw(st.booleans())
    keys = ["user_id", "video_path", "description", "tags"] if legacy else ENTRY_KEYS
    rows = []
    for _ in range(draw(st.integers(1, 3))):
        names = draw(st.sets(st.sampled_from(keys)))
        row = {name: draw(st.sampled_from(_GOOD[name])) for name in sorted(names)}
        if legacy:
            row.setdefault("user_id", "creator-1")
            row.setdefault("video_path", "videos/clip-0.mp4")
        rows.append(row)
    document: Any = rows
    if not legacy:
        document = {"version": 1, "entries": rows}
        if draw(st.booleans()):
            document["defaults"] = {"disable_duet": True, "mode": "inbox"}
    document = copy.deepcopy(document)
    change = draw(st.sampled_from(["none", "set", "add", "drop", "top"]))
    row = draw(st.integers(0, len(rows) - 1))
    target = document[row] if legacy else document["entries"][row]
    if change == "set":
        target[draw(st.sampled_from(keys))] = draw(_values)
    elif change == "add":
        target[draw(st.sampled_from(["extra", "videopath", "Mode", *keys]))] = draw(_values)
    elif change == "drop" and target:
        del target[draw(st.sampled_from(sorted(target)))]
    elif change == "top" and not legacy:
        document[draw(st.sampled_from(["version", "entries", "defaults", "x"]))] = draw(_values)
    return document


def _agree(document: Any) -> bool:
    """Both give the same verdict and manifest_errors reports jsonschema's errors; the verdict."""
    errors = list(schema.manifest_validator().iter_errors(document))
    assert schema._compiled_check()(document) == (not errors)
    assert [e.message for e in schema.manifest_errors(document)] == [e.message for e in errors]
    return not errors


def _same_verdict(document: Any, validator: Any, check: schema.Check) -> bool:
    valid = next(iter(validator.iter_errors(document)), None) is None
    assert check(document) == valid, document
    return valid


@FUZZ
@given(document=nearly_valid())
def test_compiled_check_agrees_with_jsonschema_on_nearly_valid_manifests(document: Any) -> None:
    """Valid manifests and ones a single field breaks: the same verdict as jsonschema."""
    _agree(document)


@FUZZ
@given(document=documents)
def test_compiled_check_agrees_with_jsonschema_on_any_document(document: Any) -> None:
    """Any JSON-shaped document (mostly invalid): the same verdict as jsonschema."""
    _agree(document)


def test_compiled_check_agrees_with_jsonschema_on_every_field_and_near_miss() -> None:
    """Each field of an entry, of defaults and of a legacy entry set to each tried value (and
    each required field left out): the same verdict as jsonschema, every time."""
    entry = {"user_id": "creator-1", "video_path": "videos/clip-0.mp4"}
    validator, check = schema.manifest_validator(), schema._compiled_check()
    documents: list[Any] = [[{k: v for k, v in entry.items() if k != key}] for key in entry]
    for value in _TRIED:
        for key in [*ENTRY_KEYS, "extra"]:
            documents.append({"version": 1, "entries": [{**entry, key: value}]})
            documents.append({"version": 1, "defaults": {key: value}, "entries": [entry]})
        for key in ["user_id", "video_path", "description", "tags"]:
            documents.append([{**entry, key: value}])
        for key in ["version", "entries", "$schema"]:
            documents.append({"version": 1, "entries": [entry], key: value})
    verdicts = {_same_verdict(document, validator, check) for document in documents}
    assert verdicts == {True, False}


def test_the_benchmark_entry_is_vouched_for_without_jsonschema() -> None:
    """A valid manifest like the 10,000-entry benchmark's is found valid by the compiled check
    (else every valid manifest would pay for jsonschema again)."""
    entry = {
        "id": "post-00001",
        "user_id": "creator-1",
        "video_path": "videos/clip-1.mov",
        "description": "Daily clip number 1 — behind the scenes ✨",
        "tags": ["daily", "#studio", "week0"],
        "privacy_level": "SELF_ONLY",
        "mode": "inbox",
        "publish_at": "2026-11-22T18:00:00Z",
    }
    document = {"version": 1, "defaults": {"disable_duet": True}, "entries": [entry] * 3}
    assert _agree(document)
    assert schema._compiled_check()(document)


@pytest.mark.parametrize(
    "document",
    [
        {"version": True, "entries": [{"user_id": "u", "video_path": "v.mp4"}]},
        {"version": 1.0, "entries": [{"user_id": "u", "video_path": "v.mp4", "x": 1}]},
        [{"user_id": "u", "video_path": "v.mp4", "video_cover_timestamp_ms": float("nan")}],
        {"version": 1, "entries": [{"video_cover_timestamp_ms": float("nan")}]},
        {"version": 1, "entries": [{"id": "a\n"}]},
        {"version": 1, "entries": [{"photo_cover_index": True}]},
    ],
)
def test_compiled_check_agrees_with_jsonschema_on_edge_values(document: Any) -> None:
    """true is not 1, 1.0 is, NaN is no whole number, '$' does not match before a newline."""
    _agree(document)


def test_a_schema_keyword_the_check_does_not_know_sends_every_document_to_jsonschema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A future schema edit with a keyword the compiled check lacks: nothing is vouched for."""
    edited = copy.deepcopy(schema._inlined_schema())
    edited["else"]["properties"]["entries"]["uniqueItems"] = True
    monkeypatch.setattr(schema, "_inlined_schema", lambda: edited)
    assert not schema._compiled_check()({"version": 1, "entries": [{"user_id": "u"}]})
