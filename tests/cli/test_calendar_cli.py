"""`calendar MANIFEST`: per creator and day, what is scheduled, what the journal says went
out, and the room under the caps; a table, or `--json` for scripts."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.clock import ManualClock
from orchestrator.config import Settings
from orchestrator.secret import Secret
from orchestrator.store.journal import EntryMeta, Journal
from orchestrator.store.tokens import TokenStore
from orchestrator.tiktok.chunks import MIN_CHUNK, plan_chunks
from orchestrator.upload import Initialised, Published
from tests.support import media_factory as mf

NOW = datetime(2026, 12, 14, 10, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
URL = Secret("http://upload.example/upload/?upload_id=1&upload_token=T")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, size in (("a", 2048), ("b", 3000), ("c", 4000), ("d", 5000)):
        (tmp_path / f"{name}.mp4").write_bytes(mf.mp4(mdat_bytes=size))
    (tmp_path / "m.yaml").write_text(
        textwrap.dedent(
            """
            version: 1
            defaults: {user_id: creator-a}
            entries:
              - {id: posted, video_path: a.mp4}
              - {id: now-1, video_path: b.mp4}
              - {id: now-2, video_path: c.mp4}
              - {id: tomorrow, video_path: d.mp4, publish_at: "2026-12-15T18:00:00+01:00"}
            """
        ),
        encoding="utf-8",
    )
    # The run's clock, fixed: the calendar's "today" does not depend on when the test runs.
    monkeypatch.setattr("orchestrator.cli.calendar.SystemClock", lambda: ManualClock(NOW))
    return tmp_path


def seed_posted(home: Path) -> None:
    """The journal of a run an hour ago that published the entry `posted`."""
    clock = ManualClock(NOW - 3_600)
    with TokenStore.open(Settings(home=home), clock=clock) as store:
        journal = Journal(store.database, store.cipher, clock=clock, run_id="earlier")
        meta = EntryMeta("posted", "posted", "creator-a", "direct", "file", "a.mp4", "d", "f")
        journal.begin(meta)
        plan = plan_chunks(MIN_CHUNK, MIN_CHUNK)
        journal.record("posted", "creator-a", Initialised("p-1", URL, 1e12, plan))
        journal.record("posted", "creator-a", Published(("post-1",)))


def calendar(project: Path, *extra: str) -> Any:
    args = ["--home", str(project / "home"), "calendar", str(project / "m.yaml")]
    return CliRunner().invoke(cli, [*args, "--tz", "Europe/Berlin", *extra], catch_exceptions=False)


def test_json_shows_sent_scheduled_room_and_the_post_over_the_cap(project: Path) -> None:
    """Cap 2 with one init journalled today: one due post fits, the other is over the cap;
    tomorrow's post is on tomorrow's row; the posted entry is done, not scheduled."""
    seed_posted(project / "home")
    result = calendar(project, "--json", "--days", "3", "--daily-cap", "2")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["timezone"] == "Europe/Berlin"
    assert shown["done"] == 1
    today, tomorrow, _after = shown["days"]
    assert today["date"] == "2026-12-14"
    assert today["sent"] == {"direct": 1, "inbox": 0}
    assert [(p["entry"], p["due_now"], p["over_cap"]) for p in today["scheduled"]] == [
        ("now-1", True, None),
        ("now-2", True, "daily_cap"),
    ]
    assert today["room"] == {"direct": 0, "inbox": 5}
    assert today["over_cap"] == 1
    assert [(p["entry"], p["due"]) for p in tomorrow["scheduled"]] == [
        ("tomorrow", "2026-12-15T18:00:00+01:00")
    ]


def test_table_marks_the_over_cap_day(project: Path) -> None:
    """The terminal table names each post and flags the one a run would defer."""
    seed_posted(project / "home")
    result = calendar(project, "--daily-cap", "2")
    assert result.exit_code == 0, result.output
    assert "Mon 2026-12-14" in result.output
    assert "now now-2 OVER CAP: daily_cap" in result.output
    assert "18:00 tomorrow" in result.output
    assert "1 post(s) over a cap" in result.output


def test_without_a_journal_everything_is_scheduled_and_the_home_is_not_created(
    project: Path,
) -> None:
    """A fresh home: nothing sent, every entry scheduled, no state database made."""
    result = calendar(project, "--json")
    assert result.exit_code == 0, result.output
    today = json.loads(result.output)["days"][0]
    assert [p["entry"] for p in today["scheduled"]] == ["posted", "now-1", "now-2"]
    assert not (project / "home").exists()


def test_an_invalid_manifest_or_timezone_exits_2(project: Path) -> None:
    """Problems are listed as `validate` lists them; a bad --tz names the fix."""
    (project / "m.yaml").write_text("version: 1\nentries:\n  - {user_id: a, mode: sometimes}\n")
    result = calendar(project)
    assert result.exit_code == 2
    assert "entries[0].mode" in result.output
    result = CliRunner().invoke(cli, ["calendar", str(project / "m.yaml"), "--tz", "Mars/Olympus"])
    assert result.exit_code == 2
    assert "not a known timezone" in result.output


def seed_reviews(home: Path) -> None:
    """`now-1` waits for its creator's review; `now-2` was declined by its creator."""
    from orchestrator.store.review import ReviewItem, ReviewStore

    clock = ManualClock(NOW - 600)
    with TokenStore.open(Settings(home=home), clock=clock) as store:
        reviews = ReviewStore(store.database, clock=clock)
        for name, video in (("now-1", "b.mp4"), ("now-2", "c.mp4")):
            meta = EntryMeta(name, name, "creator-a", "direct", "file", video, "d", "f")
            item = ReviewItem(name, "creator-a", "file", (video,), "", 3.0, "f")
            reviews.await_review(meta, item)
        assert reviews.decline("now-2", "creator-a", "not this one")


def test_json_shows_posts_awaiting_review_and_declined_outside_the_caps(project: Path) -> None:
    """A post awaiting its creator's review is not due and a declined one is not counted: with
    one init sent and cap 2, today still has room for 1 and nothing is over the cap."""
    seed_posted(project / "home")
    seed_reviews(project / "home")
    result = calendar(project, "--json", "--days", "2", "--daily-cap", "2")
    assert result.exit_code == 0, result.output
    today = json.loads(result.output)["days"][0]
    by_entry = {post["entry"]: post for post in today["scheduled"]}
    assert by_entry["now-1"]["review"] == "awaiting_review"
    assert by_entry["now-1"]["due_now"] is False
    assert by_entry["now-2"]["review"] == "declined"
    assert by_entry["now-2"]["over_cap"] is None
    assert today["over_cap"] == 0
    assert today["room"]["direct"] == 1


def test_table_says_awaiting_review_and_declined(project: Path) -> None:
    """The terminal table names both review states instead of a due time."""
    seed_reviews(project / "home")
    result = calendar(project, "--days", "2")
    assert result.exit_code == 0, result.output
    assert "now-1 AWAITING REVIEW" in result.output
    assert "now-2 DECLINED by the creator" in result.output
    assert "now now-1" not in result.output
