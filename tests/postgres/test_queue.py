"""The claiming protocol of a shared run: enqueue once, one worker per user, leases that expire,
and rate windows shared by every worker (real PostgreSQL, manual clocks)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import StoreError
from orchestrator.retry import PaceLimit
from orchestrator.secret import Secret
from orchestrator.store.postgres import PostgresDatabase
from orchestrator.store.queue import WorkQueue
from orchestrator.store.shared_pacing import MARGIN, SharedPacer

ITEMS = [("e1", "alice"), ("e2", "alice"), ("e3", "bob")]


@pytest.fixture
def database(pg_url: str) -> Iterator[PostgresDatabase]:
    with PostgresDatabase.open(Secret(pg_url)) as opened:
        yield opened


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


def _queue(database: PostgresDatabase, clock: ManualClock, worker: str) -> WorkQueue:
    return WorkQueue(database, run_id="run-1", worker=worker, clock=clock, lease=30.0)


def test_entries_are_enqueued_once_whoever_enqueues_them(
    database: PostgresDatabase, clock: ManualClock
) -> None:
    """The first worker adds the entries; the next adds none and the queue is unchanged."""
    with _queue(database, clock, "a") as a, _queue(database, clock, "b") as b:
        assert a.enqueue(ITEMS) == 3
        assert b.enqueue(ITEMS) == 0
        assert [item.identity for item in a.items()] == ["e1", "e2", "e3"]
        assert a.remaining() == 3


def test_a_different_manifest_under_the_same_run_id_is_refused(
    database: PostgresDatabase, clock: ManualClock
) -> None:
    """A worker with other entries cannot join the run: it is told to use its own run id."""
    with _queue(database, clock, "a") as a, _queue(database, clock, "b") as b:
        a.enqueue(ITEMS)
        with pytest.raises(StoreError, match="other entries"):
            b.enqueue([*ITEMS, ("e4", "carol")])


def test_only_one_worker_holds_a_user_until_it_lets_go(
    database: PostgresDatabase, clock: ManualClock
) -> None:
    """The user's advisory lock: a second worker (or thread) is refused until it is released."""
    with _queue(database, clock, "a") as a, _queue(database, clock, "b") as b:
        a.enqueue(ITEMS)
        assert a.try_hold_user("alice")
        assert not a.try_hold_user("alice")  # another thread of the same worker
        assert not b.try_hold_user("alice")
        assert b.try_hold_user("bob")
        a.release_user("alice")
        assert b.try_hold_user("alice")


def test_a_dead_workers_user_lock_is_released_with_its_connection(
    database: PostgresDatabase, clock: ManualClock
) -> None:
    """Closing a worker's session (as a kill does) frees its users for the others at once."""
    b = _queue(database, clock, "b")
    with _queue(database, clock, "a") as a:
        assert a.try_hold_user("alice")
        assert not b.try_hold_user("alice")
    assert b.try_hold_user("alice")
    b.close()


def test_claims_go_in_order_and_a_claimed_entry_is_not_handed_out_twice(
    database: PostgresDatabase, clock: ManualClock
) -> None:
    """Claims follow the manifest; a live claim is not free for another worker."""
    with _queue(database, clock, "a") as a, _queue(database, clock, "b") as b:
        a.enqueue(ITEMS)
        a.try_hold_user("alice")
        assert a.claim("alice") == "e1"
        a.release_user("alice")
        b.try_hold_user("alice")
        assert b.claim("alice") == "e2"
        assert b.complete("e2", "published")
        assert b.claim("alice") is None  # e1 is a's, its lease is live
        assert a.remaining() == 2


def test_an_expired_lease_is_taken_over_and_the_old_claim_cannot_complete(
    database: PostgresDatabase, clock: ManualClock
) -> None:
    """After the lease runs out another worker claims the entry; the first one's late
    completion is refused (it lost the claim)."""
    with _queue(database, clock, "a") as a, _queue(database, clock, "b") as b:
        a.enqueue(ITEMS)
        a.try_hold_user("bob")
        assert a.claim("bob") == "e3"
        a.release_user("bob")
        b.try_hold_user("bob")
        assert b.claim("bob") is None
        assert b.waiting_users() == ["alice"]
        clock.advance(31)
        assert "bob" in a.waiting_users()
        assert b.claim("bob") == "e3"
        assert not a.complete("e3", "published")
        assert b.complete("e3", "published")
        [item] = [i for i in b.items() if i.identity == "e3"]
        assert (item.state, item.worker, item.claims, item.result) == (
            "done",
            "b",
            2,
            "published",
        )


def test_a_heartbeat_keeps_a_live_claim_from_expiring(
    database: PostgresDatabase, clock: ManualClock
) -> None:
    """Renewing extends the lease: a claim renewed in time is not taken over."""
    with _queue(database, clock, "a") as a, _queue(database, clock, "b") as b:
        a.enqueue(ITEMS)
        a.try_hold_user("bob")
        a.claim("bob")
        a.release_user("bob")
        clock.advance(20)
        assert a.renew() == 1
        clock.advance(20)
        b.try_hold_user("bob")
        assert b.claim("bob") is None


def test_a_released_entry_is_free_at_once(database: PostgresDatabase, clock: ManualClock) -> None:
    """A worker that stops gives its claim back; the next worker need not wait for the lease."""
    with _queue(database, clock, "a") as a, _queue(database, clock, "b") as b:
        a.enqueue(ITEMS)
        a.try_hold_user("bob")
        a.claim("bob")
        a.release("e3")
        a.release_user("bob")
        b.try_hold_user("bob")
        assert b.claim("bob") == "e3"


def test_claiming_without_holding_the_user_is_a_bug(
    database: PostgresDatabase, clock: ManualClock
) -> None:
    """claim() refuses a user the worker does not hold (the per-user rule is not optional)."""
    with _queue(database, clock, "a") as a:
        a.enqueue(ITEMS)
        with pytest.raises(RuntimeError, match="without holding"):
            a.claim("alice")


def test_rate_windows_are_shared_between_workers(
    database: PostgresDatabase, clock: ManualClock
) -> None:
    """Two workers' pacers count one window: the third request waits out the first's minute,
    whichever worker sends it."""
    limits = {"video_init": PaceLimit(2)}
    first = SharedPacer(database, limits, clock=clock)
    second = SharedPacer(database, limits, clock=clock)
    assert first.acquire("alice", "video_init") == 0
    clock.advance(10)
    assert second.acquire("alice", "video_init") == 0
    waited = second.acquire("alice", "video_init")
    assert waited == pytest.approx(50 + MARGIN)
    assert first.acquire("bob", "video_init") == 0  # another user's window
    assert first.acquire("alice", "creator_info") == 0  # a kind without a limit


def test_a_429_fills_the_shared_window(database: PostgresDatabase, clock: ManualClock) -> None:
    """After TikTok rejects a request, no worker sends that kind for the user for a minute."""
    limits = {"video_init": PaceLimit(6)}
    first = SharedPacer(database, limits, clock=clock)
    second = SharedPacer(database, limits, clock=clock)
    first.rejected("alice", "video_init")
    assert second.acquire("alice", "video_init") == pytest.approx(60 + MARGIN)
