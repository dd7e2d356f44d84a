"""Entries matched to what the journal already knows (issue 13 §1): an ``id`` added to a posted
entry adopts its record, and a posted entry's deleted video does not block the manifest."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from tests.support.run_support import (
    Served,
    assert_published_once,
    completed_by_digest,
)

USER = "sandbox-user-1"


def statuses(served: Served, report: str) -> list[str]:
    entries: list[dict[str, Any]] = json.loads((served.folder / report).read_text())["entries"]
    return [entry["status"] for entry in entries]


def test_ids_added_to_posted_legacy_entries_adopt_their_records(served: Served) -> None:
    """Legacy manifest posted, then the same entries as a v1 manifest with ids: validate and
    --dry-run say each adopts the journal record, the run reports already_done, and TikTok saw
    exactly one post per video."""
    a, digest_a = served.clip("a.mp4")
    b, digest_b = served.clip("b.mp4")
    legacy = served.folder / "legacy.json"
    legacy.write_text(
        json.dumps(
            [
                {"user_id": USER, "video_path": a.name, "description": "a"},
                {"user_id": USER, "video_path": b.name, "description": "b"},
            ]
        )
    )
    first = served.invoke("run", str(legacy), "--no-progress", "--report", "first.json")
    assert first.exit_code == 0, first.output
    assert statuses(served, "first.json") == ["published", "published"]

    with_ids = served.manifest(
        [
            {"id": "post-a", "user_id": USER, "video_path": a.name, "description": "a"},
            {"id": "post-b", "user_id": USER, "video_path": b.name, "description": "b"},
        ]
    )
    checked = served.invoke("validate", str(with_ids))
    assert checked.exit_code == 0, checked.output
    assert checked.stderr.count("already done (adopted the journal record of sha256:") == 2
    dry = served.invoke("run", str(with_ids), "--dry-run", "--report", "dry.json")
    assert dry.exit_code == 0, dry.output
    assert dry.stderr.count("already done (adopted the journal record of sha256:") == 2
    assert statuses(served, "dry.json") == ["already_done", "already_done"]

    second = served.invoke("run", str(with_ids), "--no-progress", "--report", "second.json")
    assert second.exit_code == 0, second.output
    assert statuses(served, "second.json") == ["already_done", "already_done"]
    assert served.sandbox.calls("video_init") == 2
    assert_published_once(served.sandbox, [digest_a, digest_b])


def test_two_ids_for_one_posted_video_do_not_both_adopt_it(served: Served) -> None:
    """A posted legacy entry, then two ids for that same video (a deliberate second post):
    the first adopts the record, the second is posted; never both skipped."""
    a, digest_a = served.clip("a.mp4")
    legacy = served.folder / "legacy.json"
    legacy.write_text(json.dumps([{"user_id": USER, "video_path": a.name}]))
    assert served.invoke("run", str(legacy), "--no-progress", "--report", "1.json").exit_code == 0
    twice = served.manifest(
        [
            {"id": "first", "user_id": USER, "video_path": a.name},
            {"id": "again", "user_id": USER, "video_path": a.name},
        ]
    )
    result = served.invoke("run", str(twice), "--no-progress", "--report", "2.json")
    assert result.exit_code == 0, result.output
    assert statuses(served, "2.json") == ["already_done", "published"]
    assert completed_by_digest(served.sandbox) == Counter({digest_a: 2})


def test_an_id_already_in_the_journal_wins_over_content(served: Served) -> None:
    """An id the journal knows is that record, even if its content matches another one."""
    a, _ = served.clip("a.mp4")
    legacy = served.folder / "legacy.json"
    legacy.write_text(json.dumps([{"user_id": USER, "video_path": a.name}]))
    assert served.invoke("run", str(legacy), "--no-progress", "--report", "1.json").exit_code == 0
    # Post it under its own id too (a legacy record and an id record for one video).
    both = served.manifest(
        [
            {"user_id": USER, "video_path": a.name},
            {"id": "own", "user_id": USER, "video_path": a.name},
        ]
    )
    result = served.invoke("run", str(both), "--no-progress", "--report", "2.json")
    assert result.exit_code == 0, result.output
    assert statuses(served, "2.json") == ["already_done", "published"]
    again = served.manifest([{"id": "own", "user_id": USER, "video_path": a.name}])
    result = served.invoke("run", str(again), "--no-progress", "--report", "3.json")
    assert result.exit_code == 0, result.output
    assert "adopted" not in result.stderr
    assert statuses(served, "3.json") == ["already_done"]
    assert served.sandbox.calls("video_init") == 2


@pytest.mark.parametrize("with_id", [True, False], ids=["id", "legacy"])
def test_a_posted_entrys_deleted_video_is_a_note_and_the_others_run(
    served: Served, with_id: bool
) -> None:
    """The video of an entry the journal holds as published is deleted: validate and run
    note it, the entry reports already_done and the new entry is posted (exit 0)."""
    a, digest_a = served.clip("a.mp4")
    b, digest_b = served.clip("b.mp4")
    ids = {"id": "post-a"} if with_id else {}
    old = [{**ids, "user_id": USER, "video_path": a.name}]
    first = served.invoke("run", str(served.manifest(old)), "--no-progress", "--report", "1.json")
    assert first.exit_code == 0, first.output
    a.unlink()
    manifest = served.manifest([*old, {"user_id": USER, "video_path": b.name}])
    checked = served.invoke("validate", str(manifest))
    assert checked.exit_code == 0, checked.output
    assert "file not found, but the journal has this entry posted" in checked.stderr
    result = served.invoke("run", str(manifest), "--no-progress", "--report", "2.json")
    assert result.exit_code == 0, result.output
    assert "file not found, but the journal has this entry posted" in result.stderr
    assert statuses(served, "2.json") == ["already_done", "published"]
    assert_published_once(served.sandbox, [digest_a, digest_b])


def test_a_deleted_video_without_a_journal_record_still_rejects_the_manifest(
    served: Served,
) -> None:
    """A missing file the journal knows nothing of is still a problem: exit 2, nothing sent."""
    b, _ = served.clip("b.mp4")
    assert served.invoke("run", str(served.manifest([{"user_id": USER, "video_path": b.name}])))
    manifest = served.manifest(
        [
            {"id": "never-posted", "user_id": USER, "video_path": "gone.mp4"},
            {"user_id": USER, "video_path": b.name},
        ]
    )
    calls = served.sandbox.calls()
    result = served.invoke("run", str(manifest), "--no-progress")
    assert result.exit_code == 2
    assert "gone.mp4" in result.stderr
    assert served.sandbox.calls() == calls
