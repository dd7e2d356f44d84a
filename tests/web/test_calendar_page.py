"""The operator's /calendar page: the server's queue (API posts, queued runs) per creator and
day, against the journal and the caps, escaped and readable on a phone.

The manual clock starts at 2027-01-15 08:00 UTC.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from orchestrator.clock import ManualClock
from orchestrator.config import Settings
from orchestrator.store.tokens import TokenStore
from orchestrator.store.web import WebPostStore
from orchestrator.web.worker import run_folder
from tests.support.run_support import make_clip


def queue_post(store: TokenStore, clock: ManualClock, entry: dict[str, Any]) -> str:
    """A post as POST /api/v1/posts stores it; its id."""
    body = json.dumps(entry, sort_keys=True)
    post, _made = WebPostStore(store.database, clock=clock).add(
        hashlib.sha256(body.encode()).hexdigest()[:32] + str(len(entry)),
        body_digest=hashlib.sha256(body.encode()).hexdigest(),
        entry=body,
    )
    return post.id


def direct(user: str, at: str | None = None, video: str = "/srv/v.mp4") -> dict[str, Any]:
    entry: dict[str, Any] = {"user_id": user, "video_path": video, "privacy_level": "SELF_ONLY"}
    if at is not None:
        entry["publish_at"] = at
    return entry


def row_of(page: str, day: str) -> str:
    """The table row of ``day`` (the first one on the page)."""
    found = re.search(rf"<tr[^>]*>\s*<td class=\"mono\">{day}</td>(.*?)</tr>", page, re.DOTALL)
    assert found, f"no row for {day}"
    return found.group(1)


def cells_of(row: str) -> list[str]:
    """The text of a row's cells after the day: scheduled, sent, room."""
    return [cell.strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.DOTALL)]


def test_the_calendar_needs_the_operators_login(client: FlaskClient) -> None:
    """Without a login /calendar redirects to the sign-in page, coming back after."""
    response = client.get("/calendar")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/calendar"


def test_api_posts_are_shown_per_creator_and_day(
    operator: FlaskClient, token_store: TokenStore, clock: ManualClock
) -> None:
    """Two creators' queued posts land on their days in their own tables: one due now (no
    publish_at), one tomorrow at 18:00; a cancelled post is not shown; each day says the room
    left under the caps; the navigation links the page."""
    now_id = queue_post(token_store, clock, direct("creator-a"))
    later_id = queue_post(token_store, clock, direct("creator-a", "2027-01-16T18:00:00Z", "/b"))
    other_id = queue_post(token_store, clock, direct("creator-b", "2027-01-17T09:30:00Z", "/c"))
    gone_id = queue_post(token_store, clock, direct("creator-b", "2027-01-16T10:00:00Z", "/d"))
    WebPostStore(token_store.database, clock=clock).cancel(gone_id)

    page = operator.get("/calendar?days=3").text

    assert "<h1>Calendar</h1>" in page
    assert 'href="/calendar"' in page
    section_a, section_b = page.split('<h2 class="mono">creator-b</h2>')
    assert '<h2 class="mono">creator-a</h2>' in section_a
    assert f"post {now_id}" in row_of(section_a, "2027-01-15")
    assert "now direct" in row_of(section_a, "2027-01-15")
    assert f'18:00 direct <span class="mono">post {later_id}</span>' in row_of(
        section_a, "2027-01-16"
    )
    assert cells_of(row_of(section_a, "2027-01-15"))[-1] == "14 direct, 5 inbox"
    assert f"post {other_id}" in row_of(section_b, "2027-01-17")
    assert gone_id not in page
    assert "over cap (" not in page


def test_a_post_the_worker_set_aside_is_not_on_the_calendar(
    operator: FlaskClient, token_store: TokenStore, clock: ManualClock
) -> None:
    """A post set aside (its video went away) leaves the calendar; the one kept stays."""
    kept_id = queue_post(token_store, clock, direct("creator-a", "2027-01-16T10:00:00Z", "/k"))
    gone_id = queue_post(token_store, clock, direct("creator-a", "2027-01-16T12:00:00Z", "/g"))
    posts = WebPostStore(token_store.database, clock=clock)
    assert posts.claim(gone_id, "serve", lease=60)
    assert posts.reject(gone_id, "serve", ["/g: no such file"])

    page = operator.get("/calendar?days=3").text

    assert f"post {kept_id}" in row_of(page, "2027-01-16")
    assert gone_id not in page


def test_a_day_over_the_daily_cap_marks_the_posts_the_run_would_defer(
    operator: FlaskClient, token_store: TokenStore, clock: ManualClock
) -> None:
    """Sixteen direct posts due at once for one creator (cap 15): exactly one is marked over
    cap with the cap's code, and the day has no room left."""
    for n in range(16):
        queue_post(token_store, clock, direct("busy", "2027-01-15T12:00:00Z", f"/v{n}.mp4"))

    page = operator.get("/calendar?days=1").text

    row = row_of(page, "2027-01-15")
    assert row.count("over cap (daily_cap)") == 1
    assert cells_of(row)[-1] == "0 direct, 5 inbox"


def test_days_follow_the_timezone_asked_for(
    operator: FlaskClient, token_store: TokenStore, clock: ManualClock
) -> None:
    """A post at 23:30 UTC is on the next day in Europe/Berlin, at 00:30."""
    queue_post(token_store, clock, direct("creator-a", "2027-01-15T23:30:00Z"))

    page = operator.get("/calendar?days=3&tz=Europe/Berlin").text

    assert "Europe/Berlin" in page
    assert "00:30 direct" in row_of(page, "2027-01-16")
    assert cells_of(row_of(page, "2027-01-15"))[0] == "-"


def test_what_a_creator_or_entry_says_is_escaped(
    operator: FlaskClient, token_store: TokenStore, clock: ManualClock
) -> None:
    """A user_id with markup is shown as text, never as HTML."""
    queue_post(token_store, clock, direct("<script>alert(1)</script>"))

    page = operator.get("/calendar").text

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_queued_run_s_entries_are_on_the_calendar(
    operator: FlaskClient, settings: Settings, tmp_path: Path
) -> None:
    """A manifest queued with POST /runs that has not run yet: its entries show under their
    creator with the run id; once the run has its report, they are no longer scheduled."""
    media = tmp_path / "media"
    media.mkdir()
    clip, _digest = make_clip(media, "a.mp4")
    folder = run_folder(settings, "api-0123456789abcdef")
    folder.mkdir(parents=True)
    entry = direct("creator-r", "2027-01-16T07:15:00Z", str(clip)) | {"id": "launch-teaser"}
    (folder / "manifest.json").write_text(json.dumps({"version": 1, "entries": [entry]}))

    page = operator.get("/calendar").text

    assert '<h2 class="mono">creator-r</h2>' in page
    assert "07:15 direct" in row_of(page, "2027-01-16")
    assert "api-0123456789abcdef launch-teaser" in page
    assert "1 queued run(s)" in page

    (folder / "report.json").write_text("{}")
    assert "launch-teaser" not in operator.get("/calendar").text


def test_bad_days_or_timezone_are_a_400_saying_what_to_write(operator: FlaskClient) -> None:
    """?tz=Mars/Base → 400 naming the timezone and how to write one; ?days=0 → 400."""
    response = operator.get("/calendar?tz=Mars/Base")
    assert response.status_code == 400
    assert "is not a known timezone" in response.text
    assert "Europe/Berlin" in response.text
    assert operator.get("/calendar?days=0").status_code == 400


def test_the_page_is_readable_on_a_phone(
    operator: FlaskClient, token_store: TokenStore, clock: ManualClock
) -> None:
    """The page has the viewport meta and each creator's table scrolls sideways inside its
    own box; with nothing queued it says so."""
    assert "Nothing is scheduled" in operator.get("/calendar").text
    queue_post(token_store, clock, direct("creator-a"))
    page = operator.get("/calendar").text
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in page
    assert '<h2 class="mono">creator-a</h2>\n<div class="scroll">\n<table>' in page


def test_posts_awaiting_review_and_declined_are_named_and_take_no_room(
    operator: FlaskClient, token_store: TokenStore, clock: ManualClock
) -> None:
    """A post waiting for its creator says "awaiting review" instead of a due time; a declined
    one says "declined"; neither takes room under the caps (15 direct left)."""
    from orchestrator.store.journal import EntryMeta
    from orchestrator.store.review import ReviewItem, ReviewStore

    waiting = queue_post(token_store, clock, direct("creator-a"))
    declined = queue_post(token_store, clock, direct("creator-a", video="/srv/w.mp4"))
    reviews = ReviewStore(token_store.database, clock=clock)
    for post_id in (waiting, declined):
        meta = EntryMeta(post_id, post_id, "creator-a", "direct", "file", "v.mp4", "d", "f")
        reviews.await_review(meta, ReviewItem(post_id, "creator-a", "file", ("v",), "", 3.0, "f"))
    assert reviews.decline(declined, "creator-a", "no")

    row = row_of(operator.get("/calendar?days=2").text, "2027-01-15")

    scheduled, _sent, room = cells_of(row)
    assert f'<strong>awaiting review</strong> direct <span class="mono">post {waiting}' in row
    assert f'<strong>declined</strong> direct <span class="mono">post {declined}' in row
    assert "now direct" not in scheduled
    assert room.startswith("15 direct")
