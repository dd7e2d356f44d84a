"""The operator's ``/calendar`` page: per creator and day, what the server will post.

The source is the server's own queue, nothing else: the posts made with ``POST /api/v1/posts``
that are not cancelled and that the journal does not hold in a final state (published, sent to
the inbox, failed, uncertain — the worker never takes those again), and the entries of each
manifest queued with ``POST /api/v1/runs`` that has not run yet (once run, a manifest is not
run again by the server, so what it deferred is not scheduled). The journal supplies what
already went out (each accepted init counts toward the caps). The days, the cap rule and the
room are :func:`orchestrator.calendar.build_calendar`'s, the very computation ``calendar
MANIFEST`` shows on a terminal, with the caps the server's worker applies.

This module reads only: it sends nothing, writes nothing, and shows no token or upload URL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from orchestrator.calendar import Calendar, PlannedPost, build_calendar, review_of
from orchestrator.errors import UsageError
from orchestrator.manifest import Mode, check_manifest
from orchestrator.scheduler import RunOptions, journal_keys
from orchestrator.scheduler.gates import DAY
from orchestrator.store.journal import DONE_STATES, EntryState, Journal
from orchestrator.store.review import ReviewStore
from orchestrator.web import WebServices, services
from orchestrator.web.operator import login_required
from orchestrator.web.worker import FINAL_STATES, ApiDrain, post_record, run_manifest_path
from orchestrator.web.worker import run_folder as _run_folder

blueprint = Blueprint("calendar_page", __name__)

DEFAULT_DAYS = 14
MAX_DAYS = 62


@dataclass(frozen=True)
class WebCalendar:
    """The calendar, and what could not be put on it (each note says why)."""

    calendar: Calendar
    posts: int
    """Open posts of the API queue considered."""
    runs: int
    """Queued manifests of ``POST /runs`` considered."""
    notes: tuple[str, ...]


def read_web_calendar(found: WebServices, *, days: int, tz: tzinfo) -> WebCalendar:
    """The server's queue as a calendar of ``days`` days in ``tz`` (reads only)."""
    clock = found.clock
    journal = Journal(found.tokens.database, found.tokens.cipher, clock=clock, run_id="calendar")
    reviews = ReviewStore(found.tokens.database, clock=clock)
    planned: list[PlannedPost] = []
    notes: list[str] = []
    open_posts = found.posts.open_posts()
    for post in open_posts:
        record = post_record(journal, post.id)
        try:
            planned.append(
                _planned_post(
                    post.id,
                    json.loads(post.entry),
                    record_final=(
                        record is not None
                        and record.state in FINAL_STATES
                        and record.state is not EntryState.DECLINED
                    ),
                    review=review_of(record, reviews),
                )
            )
        except (ValueError, TypeError, KeyError):
            notes.append(f"post {post.id}: its entry cannot be read; it is not shown")
    queued = ApiDrain(found.settings, found.tokens, clock=clock).queued_runs()
    for run_id in queued:
        path = run_manifest_path(_run_folder(found.settings, run_id))
        if path is None:
            continue
        checked = check_manifest(path)
        if checked.manifest is None or checked.problems:
            notes.append(
                f"run {run_id}: its manifest has {len(checked.problems)} problem(s) now "
                "(a video gone?); the run will report them"
            )
            continue
        entries = checked.manifest.entries
        for entry, key in zip(entries, journal_keys(entries, journal), strict=True):
            record = journal.get(key.identity)
            planned.append(
                PlannedPost(
                    user_id=entry.user_id,
                    mode=entry.mode,
                    entry=f"{run_id} {entry.id or entry.location}",
                    publish_at=None if entry.publish_at is None else entry.publish_at.timestamp(),
                    done=record is not None and record.state in DONE_STATES,
                    review=review_of(record, reviews),
                )
            )
    # Creators in a stable order (by open_id): posts queued in the same instant would otherwise
    # be ordered by their random ids. The sort is stable, so each creator keeps queue order.
    planned.sort(key=lambda post: post.user_id)
    now = clock.time()
    midnight = datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    since = midnight.timestamp() - DAY
    users = list(dict.fromkeys(post.user_id for post in planned))
    inits = {
        (user, mode): journal.init_times(user, str(mode), since) for user in users for mode in Mode
    }
    caps = RunOptions()  # the worker runs with the default caps
    calendar = build_calendar(
        planned,
        inits,
        now=now,
        days=days,
        tz=tz,
        daily_direct_cap=caps.daily_direct_cap,
        pending_inbox_cap=caps.pending_inbox_cap,
    )
    return WebCalendar(calendar, posts=len(open_posts), runs=len(queued), notes=tuple(notes))


def _planned_post(
    post_id: str, entry: Any, *, record_final: bool, review: str | None = None
) -> PlannedPost:
    """A post of the API queue: its entry JSON was validated when it was accepted."""
    if not isinstance(entry, dict):
        raise TypeError("not an entry")
    publish_at = entry.get("publish_at")
    moment = None
    if isinstance(publish_at, str) and publish_at.strip():
        parsed = datetime.fromisoformat(publish_at.strip().replace("Z", "+00:00"))
        moment = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return PlannedPost(
        user_id=str(entry["user_id"]),
        mode=Mode(entry.get("mode") or Mode.DIRECT.value),
        entry=f"post {post_id}",
        publish_at=moment,
        done=record_final,
        review=review,
    )


def _days_of(value: str | None) -> int:
    if value is None or not value.strip():
        return DEFAULT_DAYS
    if not value.strip().isdigit() or not 1 <= int(value) <= MAX_DAYS:
        raise UsageError(f"days must be a number from 1 to {MAX_DAYS}")
    return int(value)


def _zone_of(value: str | None) -> tzinfo:
    from orchestrator.manifest.folder import timezone_named

    return timezone_named(value.strip() if value and value.strip() else "UTC")


@blueprint.get("/calendar")
@login_required
def calendar() -> ResponseReturnValue:
    try:
        days = _days_of(request.args.get("days"))
        zone = _zone_of(request.args.get("tz"))
    except UsageError as exc:
        return render_template("calendar.html", view=None, problem=str(exc), hint=exc.hint), 400
    view = read_web_calendar(services(), days=days, tz=zone)
    return render_template(
        "calendar.html",
        view=view,
        by_user=_by_user(view.calendar),
        problem=None,
        days=days,
        zone=view.calendar.timezone,
        modes=Mode,
    )


def _by_user(calendar: Calendar) -> Sequence[tuple[str, Sequence[Any]]]:
    """The calendar's days grouped per creator, in the calendar's order."""
    grouped: dict[str, list[Any]] = {}
    for day in calendar.days:
        grouped.setdefault(day.user_id, []).append(day)
    return list(grouped.items())
