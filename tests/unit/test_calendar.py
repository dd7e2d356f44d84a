"""The calendar's arithmetic: due days in the local timezone, the journal's inits as sent, and
the posts a run would defer marked by the caps' own rule."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from orchestrator.calendar import PlannedPost, build_calendar
from orchestrator.manifest import Mode

BERLIN = ZoneInfo("Europe/Berlin")
# Monday 2026-12-14 10:00 in Berlin.
NOW = datetime(2026, 12, 14, 10, 0, tzinfo=BERLIN).timestamp()
HOUR = 3_600.0


def at(day: int, hour: int) -> float:
    return datetime(2026, 12, day, hour, 0, tzinfo=BERLIN).timestamp()


def test_posts_fall_on_their_local_day_and_past_ones_are_due_now() -> None:
    """23:30 UTC is the next day in Berlin; a past publish_at and none are due now; a post
    beyond the window counts as later; a done one is not shown."""
    posts = [
        PlannedPost("a", Mode.DIRECT, "late-utc", datetime(2026, 12, 14, 23, 30).replace(
            tzinfo=ZoneInfo("UTC")).timestamp()),
        PlannedPost("a", Mode.DIRECT, "overdue", at(13, 18)),
        PlannedPost("a", Mode.DIRECT, "unscheduled", None),
        PlannedPost("a", Mode.DIRECT, "next-month", at(31, 18) + 30 * 24 * HOUR),
        PlannedPost("a", Mode.DIRECT, "posted", None, done=True),
    ]  # fmt: skip
    calendar = build_calendar(
        posts, {}, now=NOW, days=3, tz=BERLIN, daily_direct_cap=15, pending_inbox_cap=5
    )
    days = {day.day.isoformat(): day for day in calendar.days}
    assert list(days) == ["2026-12-14", "2026-12-15", "2026-12-16"]
    assert [p.entry for p in days["2026-12-14"].posts] == ["overdue", "unscheduled"]
    assert all(p.due_now for p in days["2026-12-14"].posts)
    assert [p.entry for p in days["2026-12-15"].posts] == ["late-utc"]
    assert days["2026-12-15"].posts[0].due.hour == 0
    assert calendar.later == 1
    assert calendar.done == 1


def test_over_cap_posts_are_marked_and_room_counts_sent_and_planned() -> None:
    """Cap 3, two inits journalled this morning: one more fits today, the next is over the
    cap until 24 h after the first init; inbox has its own cap."""
    journal = {("a", Mode.DIRECT): [at(14, 8), at(14, 9)], ("a", Mode.INBOX): [at(14, 9)]}
    posts = [
        PlannedPost("a", Mode.DIRECT, "fits", at(14, 12)),
        PlannedPost("a", Mode.DIRECT, "too-many", at(14, 18)),
        PlannedPost("a", Mode.DIRECT, "tomorrow", at(15, 9)),  # 8:00's init has left the window
        PlannedPost("a", Mode.INBOX, "draft", at(14, 20)),
        PlannedPost("b", Mode.DIRECT, "other-creator", at(14, 18)),
    ]
    calendar = build_calendar(
        posts, journal, now=NOW, days=2, tz=BERLIN, daily_direct_cap=3, pending_inbox_cap=1
    )
    today, tomorrow, b_today, b_tomorrow = calendar.days
    assert [(p.entry, p.over_cap) for p in today.posts] == [
        ("fits", None),
        ("too-many", "daily_cap"),
        ("draft", "pending_inbox_cap"),
    ]
    assert today.sent == {Mode.DIRECT: 2, Mode.INBOX: 1}
    assert today.room == {Mode.DIRECT: 0, Mode.INBOX: 0}
    assert today.over_cap == 2
    assert [(p.entry, p.over_cap) for p in tomorrow.posts] == [("tomorrow", None)]
    # At 9:00 tomorrow the window holds yesterday's 9:00 and 12:00 inits and this one.
    assert tomorrow.room[Mode.DIRECT] == 0
    assert b_tomorrow.room[Mode.DIRECT] == 3
    assert b_today.user_id == "b"
    assert [(p.entry, p.over_cap) for p in b_today.posts] == [("other-creator", None)]
