"""Workers paused or cut off on a real PostgreSQL store: a worker stopped (SIGSTOP, as a VM pause
or a long GC does) inside an init past its lease, with or without its sessions terminated, and
workers whose idle sessions the server closes (``idle_session_timeout``) or whose transaction is
cut: every entry completes exactly once on the sandbox, and each worker's report says what it
did (a worker whose entry was taken over reports it as the other worker finished it).

The workers are real ``python -m orchestrator run`` processes; the sandbox's faults (a delayed
init answer) make a worker sit inside a request when it is stopped. Waits are bounded polls on
what the processes show (sandbox calls, queue rows), never sleeps in assertions.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from orchestrator import runner
from orchestrator.config import load_settings
from orchestrator.manifest import Entry
from orchestrator.runner import run_manifest, shared_run_id
from orchestrator.sandbox import Fault
from orchestrator.scheduler import RunOptions
from orchestrator.secret import Secret
from orchestrator.settings import RunSettings
from orchestrator.store.postgres import PostgresDatabase
from orchestrator.store.queue import WorkQueue, read_items
from orchestrator.tiktok.chunks import MIN_CHUNK
from tests.support.run_support import (
    TWO_CHUNKS,
    USERS,
    Child,
    Hooks,
    Served,
    completed_by_digest,
    wait_until,
)

pytestmark = pytest.mark.slow

LEASE = "2"
INIT_HELD = 5.0
"""Seconds the sandbox holds the paused worker's (accepted) init answer: longer than the lease."""


def _args(manifest: Path, report: str, *, chunk_size: int | None = None) -> list[str]:
    chunks = [] if chunk_size is None else ["--chunk-size", str(chunk_size)]
    return [
        "run",
        str(manifest),
        *chunks,
        "--jobs",
        "2",
        "--lease",
        LEASE,
        "--no-progress",
        "--report",
        report,
    ]


def _report(served: Served, name: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((served.folder / name).read_text())
    return report


def _one_video_each(served: Served, users: tuple[str, ...]) -> tuple[Path, list[str]]:
    entries, digests = [], []
    for user in users:
        path, digest = served.clip(f"{user}.mp4")
        digests.append(digest)
        entries.append({"id": f"{user}-clip", "user_id": user, "video_path": path.name})
    return served.manifest(entries), digests


def _terminate_sessions(pg_url: str) -> int:
    """Close every other session on the workers' database, as a server or pooler does."""
    with PostgresDatabase.open(Secret(pg_url)) as database:
        rows = database.fetch_all(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    return len(rows)


def _pause_inside_an_init_then_take_over(
    shared: tuple[Served, str], *, terminate: bool
) -> tuple[Child, Child, Served, list[str]]:
    """Worker A is stopped while TikTok holds its accepted init's answer; B starts, waits out
    A's lease and posts the entry; then A continues."""
    served, pg_url = shared
    manifest, digests = _one_video_each(served, USERS[:1])
    served.sandbox.schedule(Fault("video_init", call=1, kind="delay", seconds=INIT_HELD))
    a = served.spawn(*_args(manifest, "a.json"), name="a")
    wait_until("A's init", lambda: served.sandbox.calls("video_init") >= 1, timeout=30)
    a.process.send_signal(signal.SIGSTOP)
    try:
        if terminate:
            assert _terminate_sessions(pg_url) >= 1
        b = served.spawn(*_args(manifest, "b.json"), name="b")
        assert b.wait(timeout=60) == 0, b.stderr[-3000:]
    finally:
        a.process.send_signal(signal.SIGCONT)
    assert a.wait(timeout=60) == 0, a.stderr[-3000:]
    return a, b, served, digests


@pytest.mark.parametrize("terminate", [False, True], ids=["sigstop", "sigstop+terminate"])
def test_a_worker_paused_inside_an_init_past_its_lease_does_not_post_again(
    shared: tuple[Served, str],
    terminate: bool,
) -> None:
    """A paused past its lease (its sessions terminated or not): B takes the entry over and
    posts it; A, resuming with its init accepted, is refused that init's journal write and
    sends nothing more. One completed upload; B reports it published by itself, A as the run's
    result (no bytes, no attempt of its own), and says it lost the claim."""
    a, _b, served, digests = _pause_inside_an_init_then_take_over(shared, terminate=terminate)
    assert completed_by_digest(served.sandbox) == Counter(digests)
    assert served.sandbox.calls("video_init") == 2  # A's (orphaned: never completed) and B's
    assert served.sandbox.violations() == []
    [mine] = _report(served, "b.json")["entries"]
    assert (mine["status"], mine["attempts"]) == ("published", 1)
    [theirs] = _report(served, "a.json")["entries"]
    assert (theirs["status"], theirs["bytes"], theirs["attempts"]) == ("published", 0, 0)
    assert "no longer holds entry" in a.stderr


def test_idle_sessions_closed_by_the_server_do_not_let_two_workers_post(
    shared: tuple[Served, str],
) -> None:
    """With ``idle_session_timeout`` at 1 s every idle connection of the workers is closed while
    they wait on slow answers: workers reconnect, no creator is taken from a live worker, each
    entry completes once, and both reports show every entry done."""
    served, pg_url = shared
    with PostgresDatabase.open(Secret(pg_url)) as database:
        name = database.fetch_one("SELECT current_database()")[0]
        with database.transaction() as connection:
            connection.execute(f"ALTER DATABASE \"{name}\" SET idle_session_timeout = '1s'")
    entries, digests = [], []
    for user in USERS:
        for n in range(2):
            path, digest = served.clip(f"{user}-{n}.mp4")
            digests.append(digest)
            entries.append({"id": f"{user}-{n}", "user_id": user, "video_path": path.name})
    manifest = served.manifest(entries)
    for endpoint in ("video_init", "status"):
        served.sandbox.schedule(Fault(endpoint, call=None, kind="delay", seconds=1.3))
    workers = [served.spawn(*_args(manifest, f"w{n}.json"), name=f"w{n}") for n in (1, 2)]
    codes = [worker.wait(timeout=120) for worker in workers]
    assert codes == [0, 0], [worker.stderr[-3000:] for worker in workers]
    assert any("closed by the server" in worker.stderr for worker in workers)  # it did happen
    assert completed_by_digest(served.sandbox) == Counter(digests)
    assert served.sandbox.violations() == []
    for n in (1, 2):
        statuses = {entry["status"] for entry in _report(served, f"w{n}.json")["entries"]}
        assert statuses == {"published"}
    with PostgresDatabase.open(Secret(pg_url)) as database:
        items = read_items(database, shared_run_id(manifest))
    assert [(item.state, item.claims) for item in items] == [("done", 1)] * len(digests)


def test_a_connection_cut_inside_a_journal_write_is_recovered_from_the_journal(
    shared: tuple[Served, str],
) -> None:
    """The server ends a worker's connection while its journal write (after a chunk) waits
    inside a transaction: the worker reconnects, gives the entry back, decides it again from the
    journal and finishes the upload itself — one completed upload, its report says published,
    exit 0, the run not stopped."""
    served, pg_url = shared
    path, digest = served.clip("cut.mp4", TWO_CHUNKS)
    manifest = served.manifest([{"id": "cut", "user_id": USERS[0], "video_path": path.name}])
    # The second chunk's answer is held, so the lock below is in place before its journal write.
    served.sandbox.schedule(Fault("upload", call=2, kind="delay", seconds=1.0))
    with PostgresDatabase.open(Secret(pg_url)) as database:
        worker = served.spawn(*_args(manifest, "cut.json", chunk_size=MIN_CHUNK), name="cut")
        wait_until("the second chunk", lambda: served.sandbox.calls("upload") >= 2, timeout=30)
        with database.transaction() as connection:
            # Every journal write adds an event: this makes the next one wait inside its
            # transaction, where the server then ends its connection.
            connection.execute("LOCK TABLE journal_events IN EXCLUSIVE MODE")
            with PostgresDatabase.open(Secret(pg_url)) as watcher:

                def waiting() -> list[Any]:
                    return watcher.fetch_all(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND query LIKE '%journal_events%'"
                    )

                wait_until("a journal write waiting on the lock", lambda: bool(waiting()), 30)
                [(pid,)] = [tuple(row) for row in waiting()]
                watcher.fetch_all("SELECT pg_terminate_backend(?)", (pid,))
    assert worker.wait(timeout=60) == 0, worker.stderr[-3000:]
    assert "connection to the store was cut" in worker.stderr
    assert completed_by_digest(served.sandbox) == Counter([digest])
    assert served.sandbox.violations() == []
    [entry] = _report(served, "cut.json")["entries"]
    assert entry["status"] == "published"


def test_a_heartbeat_that_finds_the_user_taken_over_stops_the_chunk_being_sent(
    shared: tuple[Served, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Mid-way through the last chunk, another worker takes the creator over (and finishes the
    entry): this worker's next heartbeat renews fewer rows than it holds, and the chunk stops
    at its next block — the upload never completes, nothing more is sent or journalled, and the
    worker's report shows the entry as the other worker ended it, with no bytes of its own."""
    served, pg_url = shared
    path, _digest = served.clip("stolen.mp4", TWO_CHUNKS)
    manifest = served.manifest([{"id": "stolen", "user_id": USERS[0], "video_path": path.name}])
    queues: list[WorkQueue] = []

    class Recorded(WorkQueue):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            queues.append(self)

    monkeypatch.setattr(runner, "WorkQueue", Recorded)
    settings = load_settings(environ=served.env, home=served.home)
    hooks = Hooks()
    stolen: list[int] = []

    def take_over(_entry: Entry, sent: int) -> None:
        if sent <= MIN_CHUNK or stolen:
            return
        with PostgresDatabase.open(Secret(pg_url)) as thief, thief.transaction() as connection:
            connection.execute(
                "UPDATE creator_holds SET worker = 'thief', counter = counter + 1,"
                " lease_until = extract(epoch FROM clock_timestamp()) + 3600"
            )
            connection.execute(
                "UPDATE work_queue SET worker = 'thief', claims = claims + 1, state = 'done',"
                " result = 'published'"
            )
        stolen.append(queues[0].renew())

    hooks.on_progress = take_over
    report = run_manifest(
        settings,
        manifest,
        RunOptions(jobs=1),
        tunables=RunSettings(chunk_size=MIN_CHUNK),
        observer=hooks,
    )
    assert stolen == [0]  # the heartbeat renewed none of the hold and claim it had
    assert completed_by_digest(served.sandbox) == Counter()
    [entry] = report.entries
    assert (entry.status, entry.bytes, entry.attempts) == ("published", 0, 0)
    with PostgresDatabase.open(Secret(pg_url)) as database:
        row = database.fetch_one("SELECT state, bytes_confirmed FROM journal")
    assert (row["state"], row["bytes_confirmed"]) == ("uploading", MIN_CHUNK)
    assert "taken over" in caplog.text
