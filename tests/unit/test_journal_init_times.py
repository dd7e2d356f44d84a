"""The caps check's count of a user's inits: the same answer as ever, at a cost that does not
grow with what other users did (issue 14, item 9)."""

from __future__ import annotations

from orchestrator.clock import ManualClock
from orchestrator.secret import Secret
from orchestrator.store.journal import EntryMeta, Journal
from orchestrator.tiktok.chunks import MIN_CHUNK, plan_chunks
from orchestrator.upload import Deferred, Failed, Initialised, Published

PLAN = plan_chunks(MIN_CHUNK, MIN_CHUNK)
URL = Secret("http://upload.example/upload/?upload_id=1&upload_token=T")
DAY = 86_400.0


def entry(identity: str, user: str, mode: str = "direct", kind: str = "file") -> EntryMeta:
    return EntryMeta(identity, None, user, mode, kind, "a.mp4", "d", "f")


def initialised(journal: Journal, m: EntryMeta) -> None:
    journal.begin(m)
    journal.record(m.identity, m.user_id, Initialised("pub-" + m.identity, URL, 1e12, PLAN))


def reference(journal: Journal, user_id: str, mode: str, since: float) -> list[float]:
    """The question asked plainly: every Initialised event of the user's rows in that mode."""
    times = [
        at
        for record in journal.history()
        if record.user_id == user_id and record.mode == mode
        for at, event, _detail in journal.events(record.identity)
        if event == "Initialised" and at >= since
    ]
    return sorted(times)


def test_init_times_agree_with_the_event_log_for_every_user_mode_and_window(
    journal: Journal, clock: ManualClock
) -> None:
    """Several users, both modes, restarted uploads, failures, deferrals, old inits: each
    user's count is exactly that user's Initialised events in that mode since the cut-off."""
    users = [f"user-{n}" for n in range(4)]
    for step in range(60):
        user = users[step % 4]
        mode = "inbox" if step % 3 == 0 else "direct"
        m = entry(f"e{step}", user, mode, kind="video_url" if step % 7 == 0 else "file")
        initialised(journal, m)
        if step % 5 == 0:  # a new upload URL after the old one died: a second init
            clock.advance(30)
            journal.record(m.identity, user, Initialised("again-" + m.identity, URL, 1e12, PLAN))
        if step % 4 == 1:
            journal.record(m.identity, user, Published(("post",)))
        if step % 6 == 2:
            journal.record(m.identity, user, Failed("internal", "x", retryable=True))
        if step % 9 == 4:
            journal.settle(entry(f"never-{step}", user, mode), Deferred("cap"))
        clock.advance(2_000)  # the whole run spans more than a day
    now = clock.time()
    for user in [*users, "nobody"]:
        for mode in ("direct", "inbox"):
            for since in (0.0, now - DAY, now - 3_600, now + 1):
                expected = reference(journal, user, mode, since)
                assert journal.init_times(user, mode, since) == expected, (user, mode, since)
    assert journal.init_times("user-1", "direct", now - DAY)  # the window is not empty


def vm_steps(journal: Journal, user_id: str, since: float) -> int:
    """SQLite virtual-machine instructions one ``init_times`` call runs: a cost that, unlike
    a stopwatch, does not depend on the machine or its load."""
    connection = journal._database.connection()  # type: ignore[attr-defined]
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    connection.set_progress_handler(count, 1)
    try:
        journal.init_times(user_id, "direct", since)
    finally:
        connection.set_progress_handler(None, 1)
    return steps


def test_a_users_cap_check_costs_the_same_however_busy_the_other_users_are(
    journal: Journal, clock: ManualClock
) -> None:
    """The check for one user reads that user's rows, not every user's inits of the day: ten
    times the other users' work leaves its cost where it was (it once grew with the run)."""
    for n in range(5):
        initialised(journal, entry(f"mine-{n}", "me"))
    since = clock.time() - DAY
    for n in range(30):
        initialised(journal, entry(f"theirs-{n}", f"other-{n % 5}"))
    quiet = vm_steps(journal, "me", since)
    for n in range(30, 300):
        initialised(journal, entry(f"theirs-{n}", f"other-{n % 5}"))
    busy = vm_steps(journal, "me", since)
    assert len(journal.init_times("me", "direct", since)) == 5
    assert busy <= quiet * 1.2, (quiet, busy)
