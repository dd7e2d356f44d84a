"""TikTok's per-user rate windows counted in the shared (PostgreSQL) store, across workers.

:class:`SharedPacer` is :class:`~orchestrator.retry.SlidingWindowPacer` with its stamps in the
``rate_stamps`` table instead of process memory, so a worker that takes a user over from another
(after a kill, or between runs) sees the requests that worker made in the last minute and does
not overfill TikTok's window. It must not decide anything but when a request may go.

Theory of operation: a reservation reads the user's last ``limit.requests`` stamps of that kind
within the window, picks the earliest slot that keeps the window within its limit, writes it,
and sleeps until then. The read-then-write runs under a transaction-scoped advisory lock per
(user, kind), so concurrent reservations (threads, or workers of different runs sharing a
creator) queue instead of booking the same slot. Stamps are Unix seconds from the database's
clock (``clock_timestamp()``, read under that lock), as the queue's leases are: workers whose
own clocks disagree still count one window. Only the wait (a duration) is slept on the worker's
clock. Old stamps are deleted as new ones are written. A full window is waited out with a
:data:`MARGIN`. A 429 (someone else shares the token) fills the window for a whole minute.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.clock import Clock
from orchestrator.retry import TIKTOK_LIMITS, PaceLimit, SlidingWindowPacer
from orchestrator.store.postgres import Connection, PostgresDatabase, advisory_key

MARGIN = 1.0
"""Seconds added to a full window before the next request: TikTok counts arrivals, not our
reservations, and an earlier request that took longer to arrive (or the database's clock a little
off) must not make the next one land inside its window."""


class SharedPacer(SlidingWindowPacer):
    """Spaces each user's requests per endpoint kind across every worker of the store."""

    def __init__(
        self,
        database: PostgresDatabase,
        limits: Mapping[str, PaceLimit] = TIKTOK_LIMITS,
        *,
        clock: Clock,
    ) -> None:
        super().__init__(limits, clock=clock)
        self._database = database
        self._shared_limits = dict(limits)
        self._shared_clock = clock

    def acquire(self, user: str, kind: str) -> float:
        """Wait until a ``kind`` request for ``user`` fits its window and count it; returns the
        seconds waited."""
        limit = self._shared_limits.get(kind)
        if limit is None:
            return 0.0
        with self._database.transaction(durable=False) as connection:
            connection.execute("SELECT pg_advisory_xact_lock(?)", (_key(user, kind),))
            now = _database_now(connection)
            rows = connection.execute(
                "SELECT at FROM rate_stamps WHERE user_id = ? AND kind = ? AND at > ?"
                " ORDER BY at DESC LIMIT ?",
                (user, kind, now - limit.window, limit.requests),
            ).fetchall()
            stamps = sorted(float(row[0]) for row in rows)
            slot = now
            if stamps:
                slot = max(slot, stamps[-1])
            if len(stamps) == limit.requests:
                slot = max(slot, stamps[0] + limit.window + MARGIN)
            connection.execute(
                "DELETE FROM rate_stamps WHERE user_id = ? AND kind = ? AND at <= ?",
                (user, kind, now - limit.window),
            )
            connection.execute(
                "INSERT INTO rate_stamps (user_id, kind, at) VALUES (?, ?, ?)", (user, kind, slot)
            )
        wait = slot - now
        if wait > 0:
            self._shared_clock.sleep(wait)
        return wait

    def rejected(self, user: str, kind: str) -> None:
        """TikTok answered 429 although the shared count had room (another client shares the
        token): fill the window now, so no worker sends another for a whole window."""
        limit = self._shared_limits.get(kind)
        if limit is None:
            return
        with self._database.transaction(durable=False) as connection:
            connection.execute("SELECT pg_advisory_xact_lock(?)", (_key(user, kind),))
            now = _database_now(connection)
            for _ in range(limit.requests):
                connection.execute(
                    "INSERT INTO rate_stamps (user_id, kind, at) VALUES (?, ?, ?)",
                    (user, kind, now),
                )


def _database_now(connection: Connection) -> float:
    """The database's clock in Unix seconds, now (not the transaction's start: the advisory
    lock may have been waited for)."""
    (now,) = connection.execute("SELECT extract(epoch FROM clock_timestamp())").fetchall()[0]
    return float(now)


def _key(user: str, kind: str) -> int:
    return advisory_key(f"tiktok-orchestrator pace {user} {kind}")
