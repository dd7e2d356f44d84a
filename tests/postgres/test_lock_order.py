"""The lock order of a shared store: a worker's heartbeat and its fenced journal writes meet on
the same rows and wait for each other, never in a circle ("deadlock detected"), and the fence
still holds a takeover back until the write in flight has committed (real PostgreSQL).

Each side runs the real code (``WorkQueue.renew``, ``Journal.record`` with its claim's fence)
on its own connection; a transaction is stopped after its first statement until the test lets
it go on, so the two take their locks in the order that used to cross, deterministically.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import ClaimLostError, StoreError
from orchestrator.secret import Secret
from orchestrator.store.crypto import KeySource, TokenCipher
from orchestrator.store.journal import EntryMeta, Journal
from orchestrator.store.postgres import Connection, PostgresDatabase
from orchestrator.store.queue import WorkQueue
from orchestrator.tiktok.chunks import MIN_CHUNK, plan_chunks
from orchestrator.upload import Initialised

LEASE = 30.0
BOUND = 30.0
"""Seconds any wait of this test may last before it counts as hung (it never takes that)."""
PLAN = plan_chunks(2 * MIN_CHUNK + 10, MIN_CHUNK)
KEY = os.urandom(32)
"""One token key for every journal of a test run (each test opens several)."""
URL = Secret("http://127.0.0.1:9/upload/?upload_id=1&upload_token=T")


class _PausedConnection(Connection):
    """A connection that stops after its first statement until ``go_on`` (once per database)."""

    def __init__(self, connection: Connection, paused: threading.Event, go_on: threading.Event):
        super().__init__(connection.raw)
        self._paused = paused
        self._go_on = go_on

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        cursor = super().execute(sql, parameters)
        if not self._paused.is_set():
            self._paused.set()
            assert self._go_on.wait(BOUND), "the test never let the transaction go on"
        return cursor


class _PausingDatabase(PostgresDatabase):
    """A database whose first transaction pauses after its first statement."""

    def __init__(self, url: Secret) -> None:
        super().__init__(url)
        self.paused = threading.Event()
        self.go_on = threading.Event()

    def connection(self) -> Connection:
        return _PausedConnection(super().connection(), self.paused, self.go_on)


@pytest.fixture
def database(pg_url: str) -> Iterator[PostgresDatabase]:
    with PostgresDatabase.open(Secret(pg_url)) as opened:
        yield opened


@pytest.fixture
def pausing(pg_url: str, database: PostgresDatabase) -> Iterator[Callable[[], _PausingDatabase]]:
    """Opens pausing databases on the same store (closed at the end of the test)."""
    opened: list[_PausingDatabase] = []

    def open_one() -> _PausingDatabase:
        opened.append(_PausingDatabase(Secret(pg_url)))
        return opened[-1]

    yield open_one
    for each in opened:
        each.close()


def _journal(database: PostgresDatabase) -> Journal:
    cipher = TokenCipher(KEY, KeySource("a test key", from_environment=False))
    return Journal(database, cipher, clock=ManualClock(1_700_000_000.0), run_id="run-1")


def _meta(identity: str, user: str) -> EntryMeta:
    return EntryMeta(identity, identity, user, "direct", "file", "a.mp4", "digest", "fingerprint")


def _in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the test, which asserts on it
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def _until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) until ``condition`` holds: a state of the server, not a duration."""
    waited = threading.Event()
    for _ in range(int(BOUND / 0.01)):
        if condition():
            return
        waited.wait(0.01)
    raise AssertionError("the condition never held")


def _someone_waits_on_a_lock(database: PostgresDatabase) -> bool:
    row = database.fetch_one(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return int(row[0]) > 0


def test_a_heartbeat_and_a_fenced_journal_write_crossing_do_not_deadlock(
    database: PostgresDatabase, pausing: Callable[[], _PausingDatabase]
) -> None:
    """The heartbeat renews the user's hold, a journal write for the user's claimed entry
    checks its fence, then the heartbeat renews the claim: the write commits, the heartbeat
    renews both leases after it, and neither is rolled back as a deadlock."""
    heartbeat_db, writer_db = pausing(), pausing()
    queue = WorkQueue(database, run_id="run-1", worker="a", lease=LEASE)
    queue.enqueue([("e1", "alice")])
    assert queue.try_hold_user("alice")
    claim = queue.claim("alice")
    assert claim is not None
    _journal(database).begin(_meta("e1", "alice"), fence=claim)
    # The heartbeat: the same worker's queue on its own connection, as its thread has.
    heartbeat = WorkQueue(heartbeat_db, run_id="run-1", worker="a", lease=LEASE)
    heartbeat._holds = {"alice": claim.hold}  # the worker's memory, shared by its threads
    heartbeat._claims = {"e1": claim}
    renewed: list[int] = []
    beating, beat_errors = _in_thread(lambda: renewed.append(heartbeat.renew()))
    assert heartbeat_db.paused.wait(BOUND)  # the hold's row is renewed (locked)

    writer = _journal(writer_db)
    writing, write_errors = _in_thread(
        lambda: writer.record("e1", "alice", Initialised("p-1", URL, None, PLAN), fence=claim)
    )
    # The fence has run (or, as before the fix, waits for the hold's row).
    _until(lambda: writer_db.paused.is_set() or _someone_waits_on_a_lock(database))
    heartbeat_db.go_on.set()  # the heartbeat goes on to the claim's row, which the fence holds
    _until(lambda: _someone_waits_on_a_lock(database))
    writer_db.go_on.set()
    writing.join(BOUND)
    beating.join(BOUND)

    assert write_errors == []
    assert beat_errors == []
    assert renewed == [2]
    record = _journal(database).get("e1")
    assert record is not None
    assert record.publish_id == "p-1"


def test_a_takeover_waits_for_the_fenced_write_in_flight(
    database: PostgresDatabase, pausing: Callable[[], _PausingDatabase]
) -> None:
    """The fence locks the entry's queue row: while a paused worker's last write is in flight,
    another worker can take the user but not the entry; once the write commits it takes the
    entry over and reads that write from the journal."""
    writer_db = pausing()
    a = WorkQueue(database, run_id="run-1", worker="a", lease=LEASE)
    b = WorkQueue(database, run_id="run-1", worker="b", lease=LEASE)
    a.enqueue([("e1", "alice")])
    assert a.try_hold_user("alice")
    claim = a.claim("alice")
    assert claim is not None
    _journal(database).begin(_meta("e1", "alice"), fence=claim)
    with database.transaction() as connection:  # a was paused past its leases
        for table in ("creator_holds", "work_queue"):
            connection.execute(
                f"UPDATE {table} SET lease_until = lease_until - ? WHERE worker = 'a'",  # noqa: S608
                (2 * LEASE,),
            )
    writer = _journal(writer_db)
    writing, write_errors = _in_thread(
        lambda: writer.record("e1", "alice", Initialised("p-1", URL, None, PLAN), fence=claim)
    )
    assert writer_db.paused.wait(BOUND)  # the fence passed; the write is in flight

    assert b.try_hold_user("alice")
    assert b.claim("alice") is None  # the entry's row is the write's until it commits
    writer_db.go_on.set()
    writing.join(BOUND)
    assert write_errors == []
    taken = b.claim("alice")
    assert taken is not None
    assert taken.token == claim.token + 1
    record = _journal(database).get("e1")
    assert record is not None
    assert record.publish_id == "p-1"
    with pytest.raises(ClaimLostError):  # and a's next write is refused
        _journal(database).record("e1", "alice", Initialised("p-2", URL, None, PLAN), fence=claim)


# -- the safety net: a transaction rolled back for a conflict is run again --------------------


def _conflict(sqlstate: str) -> str:
    return f"DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '{sqlstate}'; END $$"


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_queue_transaction_rolled_back_for_a_conflict_runs_again(
    database: PostgresDatabase, sqlstate: str
) -> None:
    """A deadlock or serialization failure rolls the attempt back whole; the next attempt
    commits, and only its writes are there."""
    database.run_transaction(lambda c: c.execute("CREATE TABLE notes (n BIGINT)"))
    attempts: list[int] = []

    def work(connection: Connection) -> int:
        attempts.append(len(attempts) + 1)
        connection.execute("INSERT INTO notes (n) VALUES (?)", (len(attempts),))
        if len(attempts) == 1:
            connection.execute(_conflict(sqlstate))
        return len(attempts)

    assert database.run_transaction(work) == 2
    assert [row["n"] for row in database.fetch_all("SELECT n FROM notes")] == [2]


def test_a_conflict_that_keeps_coming_back_is_an_error_after_three_attempts(
    database: PostgresDatabase,
) -> None:
    """The retry is bounded: the third rolled-back attempt is reported as a store error."""
    attempts: list[int] = []

    def work(connection: Connection) -> None:
        attempts.append(1)
        connection.execute(_conflict("40P01"))

    with pytest.raises(StoreError, match="conflict"):
        database.run_transaction(work)
    assert len(attempts) == 3


def test_other_errors_are_not_run_again(database: PostgresDatabase) -> None:
    """Only conflicts are retried: any other error fails the first attempt at once."""
    attempts: list[int] = []

    def work(connection: Connection) -> None:
        attempts.append(1)
        connection.execute(_conflict("23505"))

    with pytest.raises(StoreError, match="conflict"):
        database.run_transaction(work)
    assert len(attempts) == 1
