"""Work distribution in a shared (PostgreSQL) store: many workers drain one run exactly once.

The ``work_queue`` table holds a shared run's entries: enqueued once (by run id and entry
identity; every worker enqueues the whole manifest, the first one wins), then claimed one at a
time. This module only hands out, renews and checks claims; what is done with an entry (and
whether it was already done) is the journal's business, which is what makes a takeover safe.

Theory of operation:

- **Per-creator exclusion in rows.** A worker works on a user only while it holds the user's
  row in ``creator_holds`` (worker, lease, counter). Rows, not session advisory locks: a hold
  lives in the data, so it survives a pooler in transaction mode, a server's
  ``idle_session_timeout`` and a NAT dropping an idle connection, and it needs no connection
  of its own. Threads of one worker share its holds, so the worker also keeps them in memory.
- **Claims and leases.** Holding the user, the worker claims the user's next pending entry with
  ``SELECT … FOR UPDATE SKIP LOCKED`` (two workers never read the same free row as theirs),
  stamps it with its name and a lease, and bumps the entry's ``claims`` counter. The heartbeat
  renews every hold and claim of the worker; a hold or claim whose lease ran out belongs to no
  one and the next worker takes it over (its counter grows), whether its worker died, was
  paused (SIGSTOP, a VM pause) or lost its connections.
- **Leases on the database's clock.** Every lease is written and compared with the server's
  ``clock_timestamp()``, never a worker's clock: a worker with a wrong clock cannot steal or
  keep a claim.
- **Fencing.** The counters are fencing tokens. A :class:`Claim` is checked inside every
  journal write for its entry (``Journal``'s fence): the queue row must still be this worker's
  with this counter, and the user's hold too, or the write is refused with
  :class:`~orchestrator.errors.ClaimLostError` and the worker stops the entry — so a worker
  that wakes up after another took its entry over cannot record (or go on with) a second
  upload. The check locks the entry's queue row (``FOR SHARE``): taking an entry over is an
  UPDATE of that row, so a takeover waits for the write in flight and then reads the journal
  with it. The hold row is only read: a hold changing hands decides nothing about this entry's
  journal (the new holder must still claim the entry, through its queue row), and locking it
  too is what crossed the heartbeat's lock order (see below).
- **One lock order.** Every transaction that touches these tables locks rows in this order,
  and never back: ``creator_holds`` → ``work_queue`` → ``journal``/``journal_events``. The
  heartbeat renews holds, then claims; a claim reads the hold (``FOR SHARE``), then locks the
  entry; a journal write locks the entry's queue row (the fence), then writes the journal. Two
  workers (or a worker's heartbeat and its upload threads) therefore wait for each other at
  most, never in a circle: PostgreSQL's "deadlock detected" cannot happen between them. The
  queue's own transactions may run twice, so a deadlock or serialization failure there is
  run again (``PostgresDatabase.run_transaction``); a journal write is not (an error there
  stops the entry, and the next claim decides it again from the journal).
- A renewal that finds fewer rows than the worker holds marks the missing ones lost
  (:meth:`WorkQueue.is_lost`), so their uploads stop at the next chunk block.
- Finished entries are marked ``done`` with the result's status; ``remaining`` counts what is
  still pending so workers know when the run is drained.

It must not decide what to do with an entry, talk to TikTok, or print.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import ClaimLostError, StoreError
from orchestrator.store.db import StoreConnection, StoreDatabase
from orchestrator.store.postgres import Connection, PostgresDatabase

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


@dataclass(frozen=True)
class Claim:
    """This worker's claim on one entry: the fence checked inside each of its journal writes.

    ``token`` is the entry's claim counter when this worker took it, ``hold`` the user's hold
    counter; a takeover changes one of them, and from then on every write is refused.
    """

    run_id: str
    identity: str
    user_id: str
    worker: str
    token: int
    hold: int

    def check(self, connection: StoreConnection) -> None:
        """Raise :class:`ClaimLostError` unless the entry and its user are still this
        worker's, with the same counters (locking the entry's queue row until the write
        commits; the hold row is read, not locked: see the lock order above)."""
        row = connection.execute(
            "SELECT q.claims FROM work_queue q JOIN creator_holds h ON h.user_id = q.user_id"
            " WHERE q.run_id = ? AND q.identity = ? AND q.state = ? AND q.worker = ?"
            " AND q.claims = ? AND h.worker = ? AND h.counter = ?"
            " FOR SHARE OF q",
            (
                self.run_id,
                self.identity,
                PENDING,
                self.worker,
                self.token,
                self.worker,
                self.hold,
            ),
        ).fetchone()
        if row is None:
            raise ClaimLostError(
                f"worker {self.worker} no longer holds entry {self.identity} of user "
                f"{self.user_id}: its lease ran out (the worker was paused or cut off) and "
                "another worker may have taken it over; nothing more is sent for it",
                hint="the worker holding it now finishes it; `tiktok-orchestrator report "
                f"--run-id {self.run_id}` shows its outcome (raise --lease if workers pause "
                "for longer than the lease)",
            )


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
        lease: float = DEFAULT_LEASE,
    ) -> None:
        if lease <= 0:
            raise ValueError("the lease must be positive")
        self._database = database
        self.run_id = run_id
        self.worker = worker
        self.lease = lease
        self._lock = threading.Lock()
        # user -> hold counter (None while a thread is taking it); identity -> claim.
        self._holds: dict[str, int | None] = {}
        self._claims: dict[str, Claim] = {}
        self._lost: set[str] = set()

    def close(self) -> None:
        """Let go of every user this worker still holds (claims are released by their
        owners; a claim left behind runs out with its lease)."""
        with self._lock:
            users = [user for user, counter in self._holds.items() if counter is not None]
        for user_id in users:
            try:
                self.release_user(user_id)
            except StoreError as exc:
                log.warning(
                    "cannot release user %s (its hold runs out with the lease): %s", user_id, exc
                )

    def __enter__(self) -> WorkQueue:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the run's entries ----------------------------------------------------------------------

    def enqueue(self, items: Sequence[tuple[str, str]]) -> int:
        """Add ``(identity, user_id)`` pairs in manifest order; existing ones are kept as they
        are. Returns how many were new."""
        wanted = {identity for identity, _ in items}

        def add(connection: Connection) -> int:
            existing = _identities(connection, self.run_id)
            if existing and existing != wanted:
                raise _mismatch(self.run_id)
            added = 0
            for position, (identity, user_id) in enumerate(items):
                cursor = connection.execute(
                    "INSERT INTO work_queue (run_id, identity, user_id, position, state,"
                    " enqueued_at) VALUES (?, ?, ?, ?, ?, extract(epoch FROM clock_timestamp()))"
                    " ON CONFLICT (run_id, identity) DO NOTHING",
                    (self.run_id, identity, user_id, position, PENDING),
                )
                added += int(cursor.rowcount)
            # A worker with other entries may have enqueued at the same moment.
            if _identities(connection, self.run_id) != wanted:
                raise _mismatch(self.run_id)
            return added

        return self._database.run_transaction(add)

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
        """Users with an entry nobody holds (unclaimed, or its lease ran out) and whom no other
        worker holds, first-queued first; users this worker already holds are left out."""
        rows = self._database.fetch_all(
            "SELECT q.user_id, min(q.position) AS first FROM work_queue q"
            " LEFT JOIN creator_holds h ON h.user_id = q.user_id"
            " WHERE q.run_id = ? AND q.state = ?"
            " AND (q.worker IS NULL OR q.lease_until < extract(epoch FROM clock_timestamp()))"
            " AND (h.worker IS NULL OR h.worker = ?"
            " OR h.lease_until < extract(epoch FROM clock_timestamp()))"
            " GROUP BY q.user_id ORDER BY first",
            (self.run_id, PENDING, self.worker),
        )
        with self._lock:
            held = set(self._holds)
        return [row["user_id"] for row in rows if row["user_id"] not in held]

    # -- users ------------------------------------------------------------------------------

    def try_hold_user(self, user_id: str) -> bool:
        """Take the user's hold if no worker (nor another thread here) has it, or its lease
        ran out."""
        with self._lock:
            if user_id in self._holds:
                return False
            self._holds[user_id] = None
        counter: int | None = None
        try:
            row = self._database.run_transaction(
                lambda connection: connection.execute(
                    "INSERT INTO creator_holds (user_id, worker, lease_until, counter)"
                    " VALUES (?, ?, extract(epoch FROM clock_timestamp()) + ?, 1)"
                    " ON CONFLICT (user_id) DO UPDATE SET worker = excluded.worker,"
                    " lease_until = excluded.lease_until, counter = creator_holds.counter + 1"
                    " WHERE creator_holds.worker IS NULL OR creator_holds.worker = excluded.worker"
                    " OR creator_holds.lease_until < extract(epoch FROM clock_timestamp())"
                    " RETURNING counter",
                    (user_id, self.worker, self.lease),
                ).fetchone()
            )
            counter = None if row is None else int(row["counter"])
        finally:
            with self._lock:
                if counter is None:
                    del self._holds[user_id]
                else:
                    self._holds[user_id] = counter
                    self._lost.discard(user_id)
        return counter is not None

    def release_user(self, user_id: str) -> None:
        """Let go of the user's hold (if it is still this worker's)."""
        with self._lock:
            counter = self._holds.pop(user_id, None)
        if counter is None:
            return
        self._database.run_transaction(
            lambda connection: connection.execute(
                "UPDATE creator_holds SET worker = NULL, lease_until = NULL"
                " WHERE user_id = ? AND worker = ? AND counter = ?",
                (user_id, self.worker, counter),
            ),
            durable=False,
        )

    # -- claims -----------------------------------------------------------------------------

    def claim(self, user_id: str) -> Claim | None:
        """Claim the user's next free entry (the caller holds the user), or None.

        Free: unclaimed, claimed by this worker before, or its lease has run out. Raises
        :class:`ClaimLostError` if the user's hold is no longer this worker's.
        """
        with self._lock:
            hold = self._holds.get(user_id)
        if hold is None:
            raise RuntimeError(f"claiming an entry of {user_id} without holding the user")

        def take(connection: Connection) -> tuple[Any, Any] | None:
            held = connection.execute(
                "SELECT counter FROM creator_holds WHERE user_id = ? AND worker = ?"
                " AND counter = ? FOR SHARE",
                (user_id, self.worker, hold),
            ).fetchone()
            if held is None:
                self._mark_lost(user_id)
                raise ClaimLostError(
                    f"worker {self.worker} no longer holds user {user_id}: its lease ran out "
                    "and another worker may have taken the user over",
                    hint="the worker holding the user now posts its entries",
                )
            row = connection.execute(
                "SELECT identity, worker FROM work_queue"
                " WHERE run_id = ? AND user_id = ? AND state = ?"
                " AND (worker IS NULL OR worker = ?"
                " OR lease_until < extract(epoch FROM clock_timestamp()))"
                " ORDER BY position LIMIT 1 FOR UPDATE SKIP LOCKED",
                (self.run_id, user_id, PENDING, self.worker),
            ).fetchone()
            if row is None:
                return None
            claimed = connection.execute(
                "UPDATE work_queue SET worker = ?,"
                " lease_until = extract(epoch FROM clock_timestamp()) + ?,"
                " claims = claims + 1 WHERE run_id = ? AND identity = ? RETURNING claims",
                (self.worker, self.lease, self.run_id, row["identity"]),
            ).fetchone()
            return row, claimed

        taken = self._database.run_transaction(take)
        if taken is None:
            return None
        row, claimed = taken
        if row["worker"] not in (None, self.worker):
            log.warning(
                "taking over an entry of %s from worker %s (its lease ran out)",
                user_id,
                row["worker"],
            )
        claim = Claim(
            run_id=self.run_id,
            identity=row["identity"],
            user_id=user_id,
            worker=self.worker,
            token=int(claimed["claims"]),
            hold=hold,
        )
        with self._lock:
            self._claims[claim.identity] = claim
            self._lost.discard(claim.identity)
        return claim

    def complete(self, claim: Claim, result: str) -> bool:
        """Mark a claimed entry done with its result's status; False if the claim was lost
        (its lease ran out and another worker took it)."""
        self._forget(claim)
        cursor = self._database.run_transaction(
            lambda connection: connection.execute(
                "UPDATE work_queue SET state = ?, result = ?,"
                " finished_at = extract(epoch FROM clock_timestamp()),"
                " lease_until = NULL"
                " WHERE run_id = ? AND identity = ? AND worker = ? AND claims = ? AND state = ?",
                (DONE, result, self.run_id, claim.identity, self.worker, claim.token, PENDING),
            )
        )
        return int(cursor.rowcount) == 1

    def release(self, claim: Claim) -> None:
        """Give a claimed entry back unfinished (this worker is stopping)."""
        self._forget(claim)
        self._database.run_transaction(
            lambda connection: connection.execute(
                "UPDATE work_queue SET worker = NULL, lease_until = NULL"
                " WHERE run_id = ? AND identity = ? AND worker = ? AND claims = ? AND state = ?",
                (self.run_id, claim.identity, self.worker, claim.token, PENDING),
            )
        )

    def _forget(self, claim: Claim) -> None:
        with self._lock:
            self._claims.pop(claim.identity, None)
            self._lost.discard(claim.identity)

    def _mark_lost(self, key: str) -> None:
        with self._lock:
            self._lost.add(key)

    def is_lost(self, claim: Claim) -> bool:
        """Whether the heartbeat found this claim (or its user's hold) taken over."""
        with self._lock:
            return claim.identity in self._lost or claim.user_id in self._lost

    def renew(self) -> int:
        """Extend the leases of this worker's holds and claims (the heartbeat); how many rows
        were renewed. Those it no longer finds as it left them are marked lost."""
        with self._lock:
            holds = {user: counter for user, counter in self._holds.items() if counter is not None}
            claims = dict(self._claims)

        def extend(connection: Connection) -> tuple[list[Any], list[Any]]:
            # Holds first, then claims: the lock order of the module docstring.
            users = connection.execute(
                "UPDATE creator_holds SET lease_until = extract(epoch FROM clock_timestamp()) + ?"
                " WHERE worker = ? AND (user_id, counter) IN"
                " (SELECT * FROM unnest(?::text[], ?::bigint[])) RETURNING user_id",
                (self.lease, self.worker, list(holds), list(holds.values())),
            ).fetchall()
            entries = connection.execute(
                "UPDATE work_queue SET lease_until = extract(epoch FROM clock_timestamp()) + ?"
                " WHERE run_id = ? AND worker = ? AND state = ? AND (identity, claims) IN"
                " (SELECT * FROM unnest(?::text[], ?::bigint[])) RETURNING identity",
                (
                    self.lease,
                    self.run_id,
                    self.worker,
                    PENDING,
                    list(claims),
                    [claim.token for claim in claims.values()],
                ),
            ).fetchall()
            return users, entries

        users, entries = self._database.run_transaction(extend, durable=False)
        lost = (set(holds) - {row["user_id"] for row in users}) | (
            set(claims) - {row["identity"] for row in entries}
        )
        with self._lock:
            new = lost - self._lost
            self._lost |= lost
        if new:
            log.warning(
                "the leases of %s ran out before this worker renewed them (it was paused or "
                "cut off): another worker may have taken them over; stopping their work",
                ", ".join(sorted(new)),
            )
        return len(users) + len(entries)


class Heartbeat:
    """Renews a worker's holds and claims every third of the lease until stopped.

    A renewal that fails (the database cannot be reached) sets ``on_failure`` (the run's stop
    event): a worker that cannot keep its claims must not start new work. What it is doing
    already is safe either way: every journal write checks the claim (the fence).
    """

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


def _identities(connection: StoreConnection, run_id: str) -> set[str]:
    rows = connection.execute(
        "SELECT identity FROM work_queue WHERE run_id = ?", (run_id,)
    ).fetchall()
    return {row["identity"] for row in rows}


def _mismatch(run_id: str) -> StoreError:
    # Another worker enqueued a different manifest (or selection) under this run id:
    # claiming its entries would mean posting what this worker cannot even read.
    return StoreError(
        f"the shared run {run_id} holds other entries than this manifest selects",
        hint="give every worker the same manifest and options, or use a new --run-id",
    )
