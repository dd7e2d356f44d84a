"""The ``calendar`` use case: per creator and local day, what a manifest schedules, what the
journal says already went out, and the room left under the daily direct-post cap and the
pending-inbox cap.

Each entry the journal does not hold as done is due at its ``publish_at``, or now when it has
none or that moment has passed (the next run takes it). Walking the due entries in time order,
each is put to :func:`orchestrator.scheduler.gates.cap_verdict` — the very rule a run applies —
with the journal's inits of the last 24 h and the entries before it that the cap let through:
an entry the run would defer is marked ``over_cap`` with the cap's code, before any run defers
it. ``sent`` counts the inits the journal recorded on the day (TikTok counts each accepted
init toward the caps); ``room`` is what each cap has left at the day's last post (or at the
day's end): the cap less the inits, sent or planned, of the 24 h before that moment.

:func:`build_calendar` is pure (tests give it times); :func:`read_calendar` reads the manifest
and the journal (never writes, never sends a request).

Creator review (``review: creator``): a post the journal holds ``awaiting_review`` without the
creator's confirmation is shown as ``awaiting_review`` — no run posts it until the creator
answers, so it is neither due nor counted against a cap; once confirmed it is due like any other
post. A post its creator declined is shown as ``declined`` and never counted against a cap.

What this module must not do: decide caps itself (gates.py does), print (the CLI renders).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.clock import Clock
from orchestrator.config import Settings
from orchestrator.manifest import Mode
from orchestrator.scheduler.gates import DAY, cap_verdict

if TYPE_CHECKING:
    from orchestrator.store.journal import JournalRecord
    from orchestrator.store.review import ReviewStore


@dataclass(frozen=True)
class PlannedPost:
    """An entry as the calendar sees it: whose, which cap, when due (None: now), done or not."""

    user_id: str
    mode: Mode
    entry: str
    """The entry's ``id``, or its location in the manifest."""
    publish_at: float | None
    done: bool = False
    review: str | None = None
    """``awaiting_review`` (waits for its creator's answer) or ``declined``; None: a run may
    post it when due."""


@dataclass(frozen=True)
class CalendarPost:
    """A post due on a calendar day."""

    entry: str
    mode: Mode
    due: datetime
    """When a run may post it, in the calendar's timezone (now, for one already due)."""
    due_now: bool
    over_cap: str | None
    """``daily_cap`` or ``pending_inbox_cap`` when a run would defer it; None: room for it."""
    review: str | None = None
    """``awaiting_review`` or ``declined``: no run posts it (``due_now`` is then False), and it
    takes no room under the caps."""


@dataclass(frozen=True)
class CalendarDay:
    """One creator's local day: its posts, the inits the journal recorded on it (``sent``),
    and each cap's room at its last post or its end (``room``)."""

    user_id: str
    day: date
    posts: tuple[CalendarPost, ...]
    sent: Mapping[Mode, int]
    room: Mapping[Mode, int]

    @property
    def over_cap(self) -> int:
        return sum(1 for post in self.posts if post.over_cap is not None)


@dataclass(frozen=True)
class Calendar:
    """Every creator's days from today, in the manifest's user order, then by day."""

    timezone: str
    generated_at: datetime
    daily_direct_cap: int
    pending_inbox_cap: int
    days: tuple[CalendarDay, ...]
    later: int = 0
    """Entries due after the last day shown."""
    done: int = 0
    """Entries the journal holds as published or sent to the inbox (not shown)."""

    def caps(self) -> Mapping[Mode, int]:
        return {Mode.DIRECT: self.daily_direct_cap, Mode.INBOX: self.pending_inbox_cap}


def build_calendar(
    posts: Sequence[PlannedPost],
    journal_inits: Mapping[tuple[str, Mode], Sequence[float]],
    *,
    now: float,
    days: int,
    tz: tzinfo,
    daily_direct_cap: int,
    pending_inbox_cap: int,
) -> Calendar:
    """The calendar of ``days`` local days from today (pure)."""
    today = datetime.fromtimestamp(now, tz).date()
    shown = [today + timedelta(days=offset) for offset in range(days)]
    end = _start_of(today + timedelta(days=days), tz).timestamp()
    users = list(dict.fromkeys(post.user_id for post in posts))
    inits = {key: sorted(times) for key, times in journal_inits.items()}
    sent: dict[tuple[str, date, Mode], int] = defaultdict(int)
    for (user, mode), times in inits.items():
        for moment in times:
            sent[(user, datetime.fromtimestamp(moment, tz).date(), mode)] += 1
    due_posts: dict[tuple[str, date], list[CalendarPost]] = defaultdict(list)
    pending = [post for post in posts if not post.done]
    later = 0
    for post in sorted(pending, key=lambda p: max(now, p.publish_at or now)):
        due = max(now, post.publish_at or now)
        if due >= end:
            later += 1
            continue
        local = datetime.fromtimestamp(due, tz)
        if post.review is not None:
            due_posts[(post.user_id, local.date())].append(
                CalendarPost(
                    entry=post.entry,
                    mode=post.mode,
                    due=local,
                    due_now=False,
                    over_cap=None,
                    review=post.review,
                )
            )
            continue
        times = inits.setdefault((post.user_id, post.mode), [])
        verdict = cap_verdict(
            post.mode,
            times,
            now=due,
            daily_direct_cap=daily_direct_cap,
            pending_inbox_cap=pending_inbox_cap,
        )
        if verdict is None:
            times.append(due)  # the run's init: it fills the window for the posts after it
        due_posts[(post.user_id, local.date())].append(
            CalendarPost(
                entry=post.entry,
                mode=post.mode,
                due=local,
                due_now=due == now,
                over_cap=None if verdict is None else verdict.error.code,
            )
        )
    caps = {Mode.DIRECT: daily_direct_cap, Mode.INBOX: pending_inbox_cap}
    rows = []
    for user in users:
        for day in shown:
            counts = {mode: sent[(user, day, mode)] for mode in Mode}
            posts_of_day = due_posts[(user, day)]
            # The caps are rolling 24 h windows: the room is what is left at the day's last
            # post (or at its end), counting the inits, sent or planned, of the 24 h before.
            counted = [post for post in posts_of_day if post.review is None]
            moment = (
                max(post.due for post in counted).timestamp()
                if counted
                else _start_of(day + timedelta(days=1), tz).timestamp() - 1
            )
            used = {
                mode: sum(1 for t in inits.get((user, mode), ()) if moment - DAY <= t <= moment)
                for mode in Mode
            }
            rows.append(
                CalendarDay(
                    user_id=user,
                    day=day,
                    posts=tuple(due_posts[(user, day)]),
                    sent=counts,
                    room={mode: max(0, caps[mode] - used[mode]) for mode in Mode},
                )
            )
    return Calendar(
        timezone=str(getattr(tz, "key", None) or tz),
        generated_at=datetime.fromtimestamp(now, tz),
        daily_direct_cap=daily_direct_cap,
        pending_inbox_cap=pending_inbox_cap,
        days=tuple(rows),
        later=later,
        done=sum(1 for post in posts if post.done),
    )


def review_of(record: JournalRecord | None, reviews: ReviewStore) -> str | None:
    """A journalled post's review standing for the calendar: ``declined``, ``awaiting_review``
    while its creator has not confirmed it, or None (a confirmed post is due as any other)."""
    from orchestrator.store.journal import EntryState

    if record is None:
        return None
    if record.state is EntryState.DECLINED:
        return EntryState.DECLINED.value
    if record.state is EntryState.AWAITING_REVIEW and reviews.consent(record.identity) is None:
        return EntryState.AWAITING_REVIEW.value
    return None


def _start_of(day: date, tz: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def read_calendar(
    settings: Settings,
    manifest_path: Path,
    *,
    clock: Clock,
    days: int,
    tz: tzinfo,
    daily_direct_cap: int,
    pending_inbox_cap: int,
) -> Calendar:
    """The calendar of a manifest against the home's journal (reads only).

    Raises ManifestError as ``validate`` does. A home without a state database has sent
    nothing (and is not created).
    """
    from orchestrator.runner import check_with_journal
    from orchestrator.scheduler.plan import journal_keys
    from orchestrator.store.backend import is_shared
    from orchestrator.store.db import DB_FILENAME
    from orchestrator.store.journal import DONE_STATES, Journal
    from orchestrator.store.review import ReviewStore
    from orchestrator.store.tokens import TokenStore

    manifest, _notes = check_with_journal(settings, manifest_path, clock=clock)
    now = clock.time()
    since = _start_of(datetime.fromtimestamp(now, tz).date(), tz).timestamp() - DAY
    done: list[bool] = [False] * len(manifest.entries)
    review: list[str | None] = [None] * len(manifest.entries)
    inits: dict[tuple[str, Mode], Sequence[float]] = {}
    if is_shared(settings) or (settings.home / DB_FILENAME).exists():
        with TokenStore.open(settings, clock=clock, create=False) as store:
            journal = Journal(store.database, store.cipher, clock=clock, run_id="calendar")
            reviews = ReviewStore(store.database, clock=clock)
            for index, key in enumerate(journal_keys(manifest.entries, journal)):
                record = journal.get(key.identity)
                done[index] = record is not None and record.state in DONE_STATES
                review[index] = review_of(record, reviews)
            for user in manifest.users:
                for mode in Mode:
                    inits[(user, mode)] = journal.init_times(user, str(mode), since)
    posts = [
        PlannedPost(
            user_id=entry.user_id,
            mode=entry.mode,
            entry=entry.id or entry.location,
            publish_at=None if entry.publish_at is None else entry.publish_at.timestamp(),
            done=done[index],
            review=review[index],
        )
        for index, entry in enumerate(manifest.entries)
    ]
    return build_calendar(
        posts,
        inits,
        now=now,
        days=days,
        tz=tz,
        daily_direct_cap=daily_direct_cap,
        pending_inbox_cap=pending_inbox_cap,
    )
