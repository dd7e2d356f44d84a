"""Work distribution in a shared (PostgreSQL) store: many workers drain one run exactly once.

The ``work_queue`` table holds a shared run's entries: enqueued once (by run id and entry
identity; every worker enqueues the whole manifest, the first one wins), then claimed one at a
time. This module only hands out and records claims; what is done with an entry (and whether it
was already done) is the journal's business, which is what makes a takeover safe.

Theory of operation:

- **Per-user serialisation.** A worker works on a user only while it holds the user's
  session-level advisory lock (``pg_try_advisory_lock``), on a connection of its own. The lock
  is the server's: it is released when the worker lets go or its connection ends (a killed
  worker's socket closes at once; a vanished machine's when TCP gives up), so a user is never
  worked on by two workers — TikTok's per-user rate limits and caps, the token refresh and the
  order of a user's posts all rely on that. Threads of one worker share that connection (an
  advisory lock is re-entrant within a session), so the worker also keeps a set of the users
  its threads hold.
- **Claims and leases.** Under the user's lock the worker claims the user's next pending entry
  with ``SELECT … FOR UPDATE SKIP LOCKED`` (two workers never read the same free row as
  theirs) and stamps it with its name and a lease (``lease_until``). A heartbeat renews the
  leases of a worker's claims while it lives. An entry whose lease has run out belongs to no
  one: after a worker dies, whoever next holds the user's lock takes the entry over, and the
  journal tells it where the entry stands (published: nothing to do; mid-upload: resume;
  a URL init whose answer was lost: uncertain, never sent again).
- Finished entries are marked ``done`` with the result's status; ``remaining`` counts what is
  still pending so workers know when the run is drained.
- Lease times are the workers' clocks (kept in sync by NTP); the lease (60 s by default) must
  be far longer than their skew.

It must not decide what to do with an entry, talk to TikTok, or print.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.clock import Clock
from orchestrator.errors import StoreError
from orchestrator.store.db import StoreConnection, StoreDatabase
from orchestrator.store.postgres import PostgresDatabase, advisory_key

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

DEFAULT_LEASE = 60.0
"""Seconds a claim outlives its worker's last heartbeat before another worker may take it."""

PENDING = "pending"
DONE = "done"


@dataclass(frozen=True)
class QueueItem:
    """One entry of a shared run, as the queue knows it."""

    identity: str
    user_id: str
    position: int
    state: str
    worker: str | None
    lease_until: float | None
    claims: int
    result: str | None
    finished_at: float | None


def user_lock_key(user_id: str) -> int:
    """The advisory lock id that serialises work on ``user_id`` across every worker and run."""
    return advisory_key(f"tiktok-orchestrator user {user_id}")


class WorkQueue:
    """One worker's handle on a shared run's queue; thread-safe.

    ``worker`` names this worker in the queue (and in ``report --run-id``); ``lease`` is in
    seconds. Close it (or use it as a context manager) to release every user it holds.
    """

    def __init__(
        self,
        database: PostgresDatabase,
        *,
        run_id: str,
        worker: str,
        clock: Clock,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        if lease <= 0:
            raise ValueError("the lease must be positive")
        self._database = database
        self.run_id = run_id
        self.worker = worker
        self.lease = lease
        self._clock = clock
        self._held: set[str] = set()
        self._held_lock = threading.Lock()
        self._session_lock = threading.Lock()
        self._session: psycopg.Connection[Any] | None = None

    def close(self) -> None:
        """Release every user lock (by ending the session that holds them)."""
        with self._session_lock:
            session, self._session = self._session, None
        with self._held_lock:
            self._held.clear()
        if session is not None:
            session.close()

    def __enter__(self) -> WorkQueue:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _locked_session(self) -> Iterator[psycopg.Connection[Any]]:
        """The connection holding this worker's advisory locks (made on first use)."""
        with self._session_lock:
            if self._session is None:
                self._session = self._database.connect()
            with self._database.translate_errors():
                yield self._session

    # -- the run's entries ----------------------------------------------------------------------

    def enqueue(self, items: Sequence[tuple[str, str]]) -> int:
        """Add ``(identity, user_id)`` pairs in manifest order; existing ones are kept as they
        are. Returns how many were new."""
        now = self._clock.time()
        wanted = {identity for identity, _ in items}
        added = 0
        with self._database.transaction() as connection:
            existing = self._identities(connection)
            if existing and existing != wanted:
                raise self._mismatch()
            for position, (identity, user_id) in enumerate(items):
                cursor = connection.execute(
                    "INSERT INTO work_queue (run_id, identity, user_id, position, state,"
                    " enqueued_at) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (run_id, identity) DO NOTHING",
                    (self.run_id, identity, user_id, position, PENDING, now),
                )
                added += int(cursor.rowcount)
            # A worker with other entries may have enqueued at the same moment.
            if self._identities(connection) != wanted:
                raise self._mismatch()
        return added

    def _identities(self, connection: StoreConnection) -> set[str]:
        rows = connection.execute(
            "SELECT identity FROM work_queue WHERE run_id = ?", (self.run_id,)
        ).fetchall()
        return {row["identity"] for row in rows}

    def _mismatch(self) -> StoreError:
        # Another worker enqueued a different manifest (or selection) under this run id:
        # claiming its entries would mean posting what this worker cannot even read.
        return StoreError(
            f"the shared run {self.run_id} holds other entries than this manifest selects",
            hint="give every worker the same manifest and options, or use a new --run-id",
        )

    def items(self) -> list[QueueItem]:
        """Every entry of the run, in manifest order."""
        return read_items(self._database, self.run_id)

    def remaining(self) -> int:
        """How many entries are not done yet (claimed or not)."""
        row = self._database.fetch_one(
            "SELECT count(*) FROM work_queue WHERE run_id = ? AND state = ?",
            (self.run_id, PENDING),
        )
        return int(row[0])

    def waiting_users(self) -> list[str]:
        """Users with an entry nobody holds (unclaimed, or its lease ran out), first-queued
        first; users this worker already holds are left out."""
        rows = self._database.fetch_all(
            "SELECT user_id, min(position) AS first FROM work_queue"
            " WHERE run_id = ? AND state = ? AND (worker IS NULL OR lease_until < ?)"
            " GROUP BY user_id ORDER BY first",
            (self.run_id, PENDING, self._clock.time()),
        )
        with self._held_lock:
            held = set(self._held)
        return [row["user_id"] for row in rows if row["user_id"] not in held]

    # -- users ------------------------------------------------------------------------------

    def try_hold_user(self, user_id: str) -> bool:
        """Take the user's advisory lock if no worker (nor another thread here) has it."""
        with self._held_lock:
            if user_id in self._held:
                return False
            self._held.add(user_id)
        try:
            with self._locked_session() as session:
                row = session.execute(
                    "SELECT pg_try_advisory_lock(%s)", (user_lock_key(user_id),)
                ).fetchone()
        except BaseException:
            with self._held_lock:
                self._held.discard(user_id)
            raise
        if row is None or not row[0]:
            with self._held_lock:
                self._held.discard(user_id)
            return False
        return True

    def release_user(self, user_id: str) -> None:
        """Let go of the user's advisory lock."""
        with self._held_lock:
            if user_id not in self._held:
                return
            self._held.discard(user_id)
        with self._locked_session() as session:
            session.execute("SELECT pg_advisory_unlock(%s)", (user_lock_key(user_id),))

    # -- claims -----------------------------------------------------------------------------

    def claim(self, user_id: str) -> str | None:
        """Claim the user's next free entry (the caller holds the user); its identity, or None.

        Free: unclaimed, claimed by this worker before, or its lease has run out.
        """
        with self._held_lock:
            if user_id not in self._held:
                raise RuntimeError(f"claiming an entry of {user_id} without holding the user")
        now = self._clock.time()
        with self._database.transaction() as connection:
            row = connection.execute(
                "SELECT identity, worker FROM work_queue"
                " WHERE run_id = ? AND user_id = ? AND state = ?"
                " AND (worker IS NULL OR worker = ? OR lease_until < ?)"
                " ORDER BY position LIMIT 1 FOR UPDATE SKIP LOCKED",
                (self.run_id, user_id, PENDING, self.worker, now),
            ).fetchone()
            if row is None:
                return None
            connection.execute(
                "UPDATE work_queue SET worker = ?, lease_until = ?, claims = claims + 1"
                " WHERE run_id = ? AND identity = ?",
                (self.worker, now + self.lease, self.run_id, row["identity"]),
            )
        if row["worker"] not in (None, self.worker):
            log.warning(
                "taking over an entry of %s from worker %s (its lease ran out)",
                user_id,
                row["worker"],
            )
        identity: str = row["identity"]
        return identity

    def complete(self, identity: str, result: str) -> bool:
        """Mark a claimed entry done with its result's status; False if the claim was lost
        (its lease ran out and another worker took it)."""
        with self._database.transaction() as connection:
            cursor = connection.execute(
                "UPDATE work_queue SET state = ?, result = ?, finished_at = ?, lease_until = NULL"
                " WHERE run_id = ? AND identity = ? AND worker = ? AND state = ?",
                (DONE, result, self._clock.time(), self.run_id, identity, self.worker, PENDING),
            )
            return int(cursor.rowcount) == 1

    def release(self, identity: str) -> None:
        """Give a claimed entry back unfinished (this worker is stopping)."""
        with self._database.transaction() as connection:
            connection.execute(
                "UPDATE work_queue SET worker = NULL, lease_until = NULL"
                " WHERE run_id = ? AND identity = ? AND worker = ? AND state = ?",
                (self.run_id, identity, self.worker, PENDING),
            )

    def renew(self) -> int:
        """Extend the leases of this worker's pending claims (the heartbeat); how many."""
        with self._database.transaction(durable=False) as connection:
            cursor = connection.execute(
                "UPDATE work_queue SET lease_until = ?"
                " WHERE run_id = ? AND worker = ? AND state = ?",
                (self._clock.time() + self.lease, self.run_id, self.worker, PENDING),
            )
            return int(cursor.rowcount)


class Heartbeat:
    """Renews a worker's leases every third of the lease until stopped; a failed renewal sets
    ``on_failure`` (the run's stop event): a worker that cannot keep its claims must not go on
    working on them after another worker may have taken them over."""

    def __init__(self, queue: WorkQueue, on_failure: threading.Event) -> None:
        self._queue = queue
        self._on_failure = on_failure
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _beat(self) -> None:
        # Waits on an event (not the clock): the heartbeat keeps real time whatever the run does.
        while not self._stop.wait(self._queue.lease / 3):
            try:
                self._queue.renew()
            except Exception:
                log.exception("cannot renew this worker's leases; stopping its work")
                self._on_failure.set()
                return


def read_items(database: StoreDatabase, run_id: str) -> list[QueueItem]:
    """Every queued entry of ``run_id``, in manifest order (none for a run of one machine)."""
    rows = database.fetch_all(
        "SELECT identity, user_id, position, state, worker, lease_until, claims, result,"
        " finished_at FROM work_queue WHERE run_id = ? ORDER BY position",
        (run_id,),
    )
    return [_item(row) for row in rows]


def _item(row: Any) -> QueueItem:
    return QueueItem(
        identity=row["identity"],
        user_id=row["user_id"],
        position=int(row["position"]),
        state=row["state"],
        worker=row["worker"],
        lease_until=row["lease_until"],
        claims=int(row["claims"]),
        result=row["result"],
        finished_at=row["finished_at"],
    )
