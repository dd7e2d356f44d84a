"""Group commit: queued writers share one transaction and one commit, and fail alone."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import ClaimLostError, StoreError
from orchestrator.store.db import Database, StoreConnection
from orchestrator.store.group_commit import MAX_MEMBERS, GroupCommit

Work = Callable[[StoreConnection], None]
BOUND = 10.0  # seconds any wait here may take before the test fails (never reached)


@dataclass
class Trace:
    """Every statement the database's writing connection runs, in order."""

    statements: list[str] = field(default_factory=list)

    def count(self, statement: str) -> int:
        return sum(1 for seen in self.statements if seen == statement)

    def batches(self) -> list[tuple[str, list[str]]]:
        """Each committed transaction: the safety level it ran at and its INSERTs."""
        batches: list[tuple[str, list[str]]] = []
        level, inserts = "FULL", list[str]()
        for statement in self.statements:
            if statement.startswith("PRAGMA synchronous"):
                level = statement.rsplit(" ", 1)[1]
            elif statement == "BEGIN IMMEDIATE":
                inserts = []
            elif statement.startswith("INSERT"):
                inserts.append(statement)
            elif statement == "COMMIT":
                batches.append((level, inserts))
        return batches


def trace_writes(database: Database, *, max_members: int = MAX_MEMBERS) -> Trace:
    """Give ``database`` a group-commit writer whose batches never age out (a stopped clock)
    and whose connection's statements are traced."""
    trace = Trace()

    def connect() -> sqlite3.Connection:
        connection = database._connect()
        connection.set_trace_callback(trace.statements.append)
        return connection

    database._writer = GroupCommit(
        connect,
        database.translate_errors,
        location=str(database.path),
        timeout=BOUND,
        max_members=max_members,
        clock=ManualClock().monotonic,
    )
    return trace


@pytest.fixture
def traced(tmp_path: Path) -> Iterator[tuple[Database, Trace]]:
    """A database with a ``notes`` table whose writes share commits on a stopped clock (no
    batch ages out), and the trace of its writing connection."""
    database = Database.open(tmp_path / "home")
    with database.transaction() as connection:
        connection.execute("CREATE TABLE parents (id INTEGER PRIMARY KEY)")
        connection.execute(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, writer TEXT NOT NULL UNIQUE,"
            " parent INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)"
        )
    trace = trace_writes(database)
    try:
        yield database, trace
    finally:
        database.close()


def note(writer: str) -> Work:
    def work(connection: StoreConnection) -> None:
        # The value is in the text so the trace shows which writer each INSERT was.
        connection.execute(f"INSERT INTO notes (writer) VALUES ('{writer}')")  # noqa: S608

    return work


def wait_until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for the other threads to reach a point; not a timing assertion."""
    deadline = time.monotonic() + BOUND
    while not condition():
        assert time.monotonic() < deadline, "the writers never queued"
        threading.Event().wait(0.001)


def write_together(
    database: Database, works: list[Work], *, durable: list[bool] | None = None
) -> list[BaseException | None]:
    """Run ``works[0]`` in a transaction that ends only once every other work is queued for
    the writer's turn, so all of them meet in one batch; what each call raised (or None)."""
    durable = durable or [True] * len(works)
    outcomes: list[BaseException | None] = [None] * len(works)
    holding = threading.Event()
    writer = database._writer

    def run(index: int) -> None:
        try:
            with database.transaction(durable=durable[index]) as connection:
                if index == 0:
                    holding.set()
                    wait_until(lambda: writer.waiting == len(works) - 1)
                works[index](connection)
        except BaseException as exc:
            outcomes[index] = exc

    first = threading.Thread(target=run, args=(0,))
    first.start()
    assert holding.wait(BOUND)
    others = [threading.Thread(target=run, args=(i,)) for i in range(1, len(works))]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(BOUND)
        assert not thread.is_alive()
    return outcomes


def writers(database: Database) -> set[str]:
    return {row["writer"] for row in database.fetch_all("SELECT writer FROM notes")}


def test_queued_writers_share_one_transaction_and_one_commit(
    traced: tuple[Database, Trace],
) -> None:
    """Eight threads writing at once all get their rows, with one BEGIN and one COMMIT."""
    database, trace = traced
    names = [f"w{i}" for i in range(8)]
    outcomes = write_together(database, [note(name) for name in names])
    assert outcomes == [None] * 8
    assert writers(database) == set(names)
    assert trace.count("BEGIN IMMEDIATE") == 1
    assert trace.count("COMMIT") == 1


def test_a_failing_writer_is_rolled_back_alone(traced: tuple[Database, Trace]) -> None:
    """A writer hitting a constraint, and one whose fence finds its claim lost, each get their
    own error and leave nothing; the others of the same commit keep their rows."""
    database, trace = traced

    def lost_claim(connection: StoreConnection) -> None:
        note("fenced")(connection)
        raise ClaimLostError("entry e1 is no longer ours")

    outcomes = write_together(database, [note("a"), note("a"), lost_claim, note("b")])
    assert outcomes[0] is None
    assert outcomes[3] is None
    assert isinstance(outcomes[1], StoreError)
    assert "UNIQUE" in str(outcomes[1])
    assert isinstance(outcomes[2], ClaimLostError)
    assert writers(database) == {"a", "b"}
    assert trace.count("COMMIT") == 1


def test_the_first_writer_of_a_batch_failing_leaves_the_others_their_commit(
    traced: tuple[Database, Trace],
) -> None:
    """The writer that opened the batch fails (it has no savepoint: it rolls the transaction
    back); the writers queued behind it still write, in a new transaction, and commit."""
    database, _trace = traced

    def lost_claim(connection: StoreConnection) -> None:
        note("first")(connection)
        raise ClaimLostError("entry e1 is no longer ours")

    outcomes = write_together(database, [lost_claim, note("a"), note("b")])
    assert isinstance(outcomes[0], ClaimLostError)
    assert outcomes[1:] == [None, None]
    assert writers(database) == {"a", "b"}


def test_a_failed_commit_reaches_every_writer_of_its_batch(
    traced: tuple[Database, Trace],
) -> None:
    """When the shared COMMIT itself fails (a deferred foreign key), every writer in it gets
    the error and none of their rows is there; the next write commits normally."""
    database, _trace = traced

    def orphan(connection: StoreConnection) -> None:
        connection.execute("INSERT INTO notes (writer, parent) VALUES ('orphan', 42)")

    outcomes = write_together(database, [note("a"), orphan, note("b")])
    for outcome in outcomes:
        assert isinstance(outcome, StoreError), outcome
        assert "FOREIGN KEY" in str(outcome)
    assert len({id(outcome) for outcome in outcomes}) == 3  # each thread raises its own
    assert writers(database) == set()
    with database.transaction() as connection:
        note("after")(connection)
    assert writers(database) == {"after"}


def test_a_durable_write_never_shares_an_unsynced_commit(
    traced: tuple[Database, Trace],
) -> None:
    """A durable write queued behind unsynced ones is committed with synchronous = FULL: it
    commits their batch first and opens its own (unsynced ones may join it)."""
    database, trace = traced
    works = [note("quick0"), note("sure"), note("quick1"), note("quick2")]
    outcomes = write_together(database, works, durable=[False, True, False, False])
    assert outcomes == [None] * 4
    assert writers(database) == {"quick0", "sure", "quick1", "quick2"}
    batches = trace.batches()
    (level,) = [level for level, inserts in batches if any("'sure'" in i for i in inserts)]
    assert level == "FULL"
    assert batches[0][0] == "NORMAL"
    assert "INSERT INTO notes (writer) VALUES ('quick0')" in batches[0][1]


def test_a_batch_holds_at_most_max_members(tmp_path: Path) -> None:
    """With room for three writers per commit, eight queued writers take three commits."""
    database = Database.open(tmp_path / "home")
    try:
        with database.transaction() as connection:
            connection.execute("CREATE TABLE notes (writer TEXT NOT NULL)")
        trace = trace_writes(database, max_members=3)
        outcomes = write_together(database, [note(f"w{i}") for i in range(8)])
        assert outcomes == [None] * 8
        assert len(writers(database)) == 8
        assert [len(inserts) for _level, inserts in trace.batches()] == [3, 3, 2]
    finally:
        database.close()


def test_a_transaction_lost_under_a_writer_fails_every_writer_in_it(
    traced: tuple[Database, Trace],
) -> None:
    """If the shared transaction ends under a writer (here its work ends it itself, as SQLite
    does after some I/O errors), that writer and those before it in the batch get an error,
    none is reported written, and the next write opens a new transaction."""
    database, _trace = traced

    def rogue(connection: StoreConnection) -> None:
        connection.execute("ROLLBACK")

    outcomes = write_together(database, [note("a"), rogue])
    for outcome in outcomes:
        assert isinstance(outcome, StoreError), outcome
        assert "rolled back" in str(outcome)
    assert writers(database) == set()
    with database.transaction() as connection:
        note("after")(connection)
    assert writers(database) == {"after"}


def test_a_slow_writer_alone_lets_the_writes_before_it_commit_and_takes_no_others(
    traced: tuple[Database, Trace],
) -> None:
    """A token refresh asks TikTok inside its transaction (``alone=True``): the write that
    handed it the turn is committed before the refresh's work starts, and a write queued
    meanwhile gets a commit of its own, not the refresh's."""
    database, trace = traced
    writer = database._writer
    first_holding, slow_working, slow_may_finish = (threading.Event() for _ in range(3))
    first_done = threading.Event()

    def first() -> None:
        with database.transaction() as connection:
            first_holding.set()
            wait_until(lambda: writer.waiting == 1)  # the slow writer queued behind it
            note("first")(connection)
        first_done.set()

    def slow() -> None:
        with database.transaction(alone=True) as connection:
            slow_working.set()
            note("slow")(connection)
            assert slow_may_finish.wait(BOUND)  # waiting for TikTok's answer

    def later() -> None:
        with database.transaction() as connection:
            note("later")(connection)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert first_holding.wait(BOUND)
    threads.append(threading.Thread(target=slow))
    threads[1].start()
    assert slow_working.wait(BOUND)
    assert first_done.wait(BOUND), "the first write waited for the slow one's commit"
    threads.append(threading.Thread(target=later))
    threads[2].start()
    wait_until(lambda: writer.waiting == 1)
    slow_may_finish.set()
    for thread in threads:
        thread.join(BOUND)
    inserts = [[text.split("'")[1] for text in batch] for _, batch in trace.batches()]
    assert inserts == [["first"], ["slow"], ["later"]]
