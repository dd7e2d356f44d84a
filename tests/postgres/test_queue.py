"""The claiming protocol of a shared run: enqueue once, one worker per user (a row, not a
session), leases on the database's clock that expire, fencing of journal writes, and rate
windows shared by every worker (real PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import ClaimLostError, StoreError
from orchestrator.retry import PaceLimit
from orchestrator.secret import Secret
from orchestrator.store.crypto import KeySource, TokenCipher
from orchestrator.store.journal import EntryMeta, EntryState, Journal
from orchestrator.store.postgres import PostgresDatabase
from orchestrator.store.queue import Claim, WorkQueue
from orchestrator.store.shared_pacing import MARGIN, SharedPacer
from orchestrator.tiktok.chunks import MIN_CHUNK, plan_chunks
from orchestrator.upload import ChunkConfirmed, Initialised

ITEMS = [("e1", "alice"), ("e2", "alice"), ("e3", "bob")]
LEASE = 30.0
SLACK = 5.0
"""Real seconds the test may take between two reservations on the database's clock (a bound)."""


@pytest.fixture
def database(pg_url: str) -> Iterator[PostgresDatabase]:
    with PostgresDatabase.open(Secret(pg_url)) as opened:
        yield opened


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


def _queue(database: PostgresDatabase, worker: str) -> WorkQueue:
    return WorkQueue(database, run_id="run-1", worker=worker, lease=LEASE)


def _pass_the_lease(database: PostgresDatabase, worker: str) -> None:
    """Move ``worker``'s leases into the database's past, as if it had been paused (SIGSTOP, a
    VM pause) for longer than the lease: the server's clock decides, not the worker's."""
    with database.transaction() as connection:
        for table in ("creator_holds", "work_queue"):
            connection.execute(
                f"UPDATE {table} SET lease_until = lease_until - ? WHERE worker = ?",  # noqa: S608
                (2 * LEASE, worker),
            )


def _claim(queue: WorkQueue, user_id: str) -> Claim:
    claim = queue.claim(user_id)
    assert claim is not None
    return claim


def test_entries_are_enqueued_once_whoever_enqueues_them(database: PostgresDatabase) -> None:
    """The first worker adds the entries; the next adds none and the queue is unchanged."""
    with _queue(database, "a") as a, _queue(database, "b") as b:
        assert a.enqueue(ITEMS) == 3
        assert b.enqueue(ITEMS) == 0
        assert [item.identity for item in a.items()] == ["e1", "e2", "e3"]
        assert a.remaining() == 3


def test_a_different_manifest_under_the_same_run_id_is_refused(database: PostgresDatabase) -> None:
    """A worker with other entries cannot join the run: it is told to use its own run id."""
    with _queue(database, "a") as a, _queue(database, "b") as b:
        a.enqueue(ITEMS)
        with pytest.raises(StoreError, match="other entries"):
            b.enqueue([*ITEMS, ("e4", "carol")])


def test_only_one_worker_holds_a_user_until_it_lets_go(database: PostgresDatabase) -> None:
    """The user's hold: a second worker (or thread) is refused until it is released."""
    with _queue(database, "a") as a, _queue(database, "b") as b:
        a.enqueue(ITEMS)
        assert a.try_hold_user("alice")
        assert not a.try_hold_user("alice")  # another thread of the same worker
        assert not b.try_hold_user("alice")
        assert b.try_hold_user("bob")
        a.release_user("alice")
        assert b.try_hold_user("alice")


def test_a_hold_outlives_the_sessions_of_its_worker(
    database: PostgresDatabase, pg_url: str
) -> None:
    """Terminating every connection of a worker (idle_session_timeout, a pooler, a NAT) does not
    free its users: another worker still waits for the lease; the worker itself reconnects and
    goes on (its heartbeat renews, it claims)."""
    with PostgresDatabase.open(Secret(pg_url)) as other:
        b = _queue(other, "b")
        with _queue(database, "a") as a:
            a.enqueue(ITEMS)
            assert a.try_hold_user("alice")
            other.fetch_all(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert not b.try_hold_user("alice")
            assert a.renew() == 1
            assert _claim(a, "alice").identity == "e1"
        b.close()


def test_a_paused_workers_user_is_free_after_the_lease_and_it_cannot_claim_again(
    database: PostgresDatabase,
) -> None:
    """Once the lease has run out on the database's clock another worker takes the user; the
    paused worker, waking up, is refused its next claim."""
    with _queue(database, "a") as a, _queue(database, "b") as b:
        a.enqueue(ITEMS)
        assert a.try_hold_user("alice")
        assert not b.try_hold_user("alice")
        _pass_the_lease(database, "a")
        assert "alice" in b.waiting_users()
        assert b.try_hold_user("alice")
        with pytest.raises(ClaimLostError, match="no longer holds user alice"):
            a.claim("alice")
        assert _claim(b, "alice").identity == "e1"


def test_leases_are_measured_by_the_database_clock(database: PostgresDatabase) -> None:
    """A claim's lease ends ``lease`` seconds after the server's time, whatever the worker's
    clock says."""
    with _queue(database, "a") as a:
        a.enqueue(ITEMS)
        a.try_hold_user("bob")
        _claim(a, "bob")
        row = database.fetch_one(
            "SELECT lease_until - extract(epoch FROM clock_timestamp()) AS left"
            " FROM work_queue WHERE identity = 'e3'"
        )
        assert LEASE - 5 < float(row["left"]) <= LEASE


def test_claims_go_in_order_and_a_claimed_entry_is_not_handed_out_twice(
    database: PostgresDatabase,
) -> None:
    """Claims follow the manifest; a live claim is not free for another worker."""
    with _queue(database, "a") as a, _queue(database, "b") as b:
        a.enqueue(ITEMS)
        a.try_hold_user("alice")
        assert _claim(a, "alice").identity == "e1"
        a.release_user("alice")
        b.try_hold_user("alice")
        e2 = _claim(b, "alice")
        assert e2.identity == "e2"
        assert b.complete(e2, "published")
        assert b.claim("alice") is None  # e1 is a's, its lease is live
        assert a.remaining() == 2


def test_an_expired_lease_is_taken_over_and_the_old_claim_cannot_complete(
    database: PostgresDatabase,
) -> None:
    """After the lease runs out another worker claims the entry; the first one's late
    completion is refused (it lost the claim)."""
    with _queue(database, "a") as a, _queue(database, "b") as b:
        a.enqueue(ITEMS)
        a.try_hold_user("bob")
        old = _claim(a, "bob")
        b.try_hold_user("alice")
        assert b.waiting_users() == []  # alice is b's, bob and e3 are a's
        _pass_the_lease(database, "a")
        assert b.waiting_users() == ["bob"]
        b.try_hold_user("bob")
        new = _claim(b, "bob")
        assert (new.identity, new.token) == ("e3", 2)
        assert not a.complete(old, "published")
        assert b.complete(new, "published")
        [item] = [i for i in b.items() if i.identity == "e3"]
        assert (item.state, item.worker, item.claims, item.result) == (
            "done",
            "b",
            2,
            "published",
        )


def test_a_heartbeat_keeps_a_live_claim_from_expiring(database: PostgresDatabase) -> None:
    """Renewing extends the leases of the worker's hold and claim on the database's clock."""
    with _queue(database, "a") as a, _queue(database, "b") as b:
        a.enqueue(ITEMS)
        a.try_hold_user("bob")
        claim = _claim(a, "bob")
        _pass_the_lease(database, "a")  # as if the heartbeat came late
        assert a.renew() == 2
        assert not a.is_lost(claim)
        assert not b.try_hold_user("bob")
        assert b.waiting_users() == ["alice"]


def test_a_heartbeat_that_finds_its_claim_taken_over_marks_it_lost(
    database: PostgresDatabase,
) -> None:
    """A renewal that renews fewer rows than the worker holds marks those claims lost (their
    uploads stop), and renews the rest."""
    with _queue(database, "a") as a, _queue(database, "b") as b:
        a.enqueue(ITEMS)
        a.try_hold_user("bob")
        a.try_hold_user("alice")
        bobs = _claim(a, "bob")
        alices = _claim(a, "alice")
        with database.transaction() as connection:  # only bob's leases ran out
            connection.execute("UPDATE creator_holds SET lease_until = 0 WHERE user_id = 'bob'")
            connection.execute("UPDATE work_queue SET lease_until = 0 WHERE identity = 'e3'")
        assert b.try_hold_user("bob")
        assert _claim(b, "bob").identity == "e3"
        assert a.renew() == 2  # alice's hold and claim
        assert a.is_lost(bobs)
        assert not a.is_lost(alices)


def test_a_released_entry_is_free_at_once(database: PostgresDatabase) -> None:
    """A worker that stops gives its claim back; the next worker need not wait for the lease."""
    with _queue(database, "a") as a, _queue(database, "b") as b:
        a.enqueue(ITEMS)
        a.try_hold_user("bob")
        a.release(_claim(a, "bob"))
        a.release_user("bob")
        b.try_hold_user("bob")
        assert _claim(b, "bob").identity == "e3"


def test_claiming_without_holding_the_user_is_a_bug(database: PostgresDatabase) -> None:
    """claim() refuses a user the worker does not hold (the per-user rule is not optional)."""
    with _queue(database, "a") as a:
        a.enqueue(ITEMS)
        with pytest.raises(RuntimeError, match="without holding"):
            a.claim("alice")


# -- fencing: journal writes checked against the claim ----------------------------------------


def _journal(database: PostgresDatabase, clock: ManualClock) -> Journal:
    cipher = TokenCipher(os.urandom(32), KeySource("a test key", from_environment=False))
    return Journal(database, cipher, clock=clock, run_id="run-1")


def _meta(identity: str, user: str, kind: str = "file") -> EntryMeta:
    return EntryMeta(identity, identity, user, "direct", kind, "a.mp4", "digest", "fingerprint")


PLAN = plan_chunks(2 * MIN_CHUNK + 10, MIN_CHUNK)
URL = Secret("http://127.0.0.1:9/upload/?upload_id=1&upload_token=T")


def test_a_journal_write_after_a_takeover_is_refused_and_changes_nothing(
    database: PostgresDatabase, clock: ManualClock
) -> None:
    """The paused worker's late init is refused (ClaimLostError) once another worker holds the
    entry: the journal keeps the new owner's state, and the new owner writes on."""
    journal = _journal(database, clock)
    with _queue(database, "a") as a, _queue(database, "b") as b:
        a.enqueue(ITEMS)
        a.try_hold_user("bob")
        old = _claim(a, "bob")
        journal.begin(_meta("e3", "bob"), fence=old)
        _pass_the_lease(database, "a")  # a is paused inside its init
        b.try_hold_user("bob")
        new = _claim(b, "bob")
        journal.begin(_meta("e3", "bob"), fence=new)
        sink = journal.sink("e3", "bob", old)
        with pytest.raises(ClaimLostError, match="no longer holds entry e3"):
            sink.record(Initialised("p-old", URL, None, PLAN))
        record = journal.get("e3")
        assert record is not None
        assert (record.state, record.publish_id, record.attempts) == (
            EntryState.INITIALISING,
            None,
            2,
        )
        journal.record("e3", "bob", Initialised("p-new", URL, None, PLAN), fence=new)
        journal.record("e3", "bob", ChunkConfirmed(0, MIN_CHUNK), fence=new)
        with pytest.raises(ClaimLostError):
            journal.record("e3", "bob", ChunkConfirmed(0, MIN_CHUNK), fence=old)
        record = journal.get("e3")
        assert record is not None
        assert (record.publish_id, record.bytes_confirmed) == ("p-new", MIN_CHUNK)


def test_a_write_is_refused_when_the_users_hold_changed_hands(
    database: PostgresDatabase, clock: ManualClock
) -> None:
    """Even with its entry's claim intact, a worker whose user hold was taken over cannot
    write: two workers never post for one creator at once."""
    journal = _journal(database, clock)
    with _queue(database, "a") as a, _queue(database, "b") as b:
        a.enqueue(ITEMS)
        a.try_hold_user("alice")
        claim = _claim(a, "alice")
        with database.transaction() as connection:
            connection.execute("UPDATE creator_holds SET lease_until = 0 WHERE user_id = 'alice'")
        assert b.try_hold_user("alice")
        with pytest.raises(ClaimLostError):
            journal.begin(_meta("e1", "alice"), fence=claim)
        assert journal.get("e1") is None


def test_rate_windows_are_shared_between_workers(
    database: PostgresDatabase, clock: ManualClock
) -> None:
    """Two workers' pacers count one window: the third request waits out the first's minute,
    whichever worker sends it. (The window is on the database's clock: the test's own moments
    between requests count, bounded by SLACK.)"""
    limits = {"video_init": PaceLimit(2)}
    first = SharedPacer(database, limits, clock=clock)
    second = SharedPacer(database, limits, clock=clock)
    assert first.acquire("alice", "video_init") == 0
    assert second.acquire("alice", "video_init") == pytest.approx(0, abs=SLACK)
    waited = second.acquire("alice", "video_init")
    assert 60 + MARGIN - SLACK <= waited <= 60 + MARGIN
    assert first.acquire("bob", "video_init") == 0  # another user's window
    assert first.acquire("alice", "creator_info") == 0  # a kind without a limit


def test_a_429_fills_the_shared_window(database: PostgresDatabase, clock: ManualClock) -> None:
    """After TikTok rejects a request, no worker sends that kind for the user for a minute."""
    limits = {"video_init": PaceLimit(6)}
    first = SharedPacer(database, limits, clock=clock)
    second = SharedPacer(database, limits, clock=clock)
    first.rejected("alice", "video_init")
    assert 60 + MARGIN - SLACK <= second.acquire("alice", "video_init") <= 60 + MARGIN
