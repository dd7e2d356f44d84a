"""Group commit: threads that queue for the SQLite writer share one transaction and one fsync.

Used by :class:`~orchestrator.store.db.Database` for every write transaction. It must not
change what a returned write means: a call returns only after the commit that holds its work
is done — on disk for a durable write (``synchronous = FULL``) — and a caller whose commit
failed gets an error, never a silent loss.

Theory of operation (leader/follower, no thread of its own):

- One connection writes for the whole process, and one thread at a time holds the *turn* to use
  it. Threads waiting for the turn queue on a condition (it is handed over the moment the
  holder is done; SQLite's busy handler would have them poll with sleeps).
- The first holder of a batch runs ``BEGIN IMMEDIATE`` (if its work raises, it rolls the
  transaction back: nobody else is in it yet). Each later holder runs its work inside a
  ``SAVEPOINT`` of its own: if its work raises, it is rolled back to that savepoint alone, and
  it gets its exception back at once; the others' work stays in the batch.
- When its work is done, the holder looks at the queue. If threads are waiting and the batch is
  young and small (:data:`MAX_MEMBERS`, :data:`MAX_SECONDS`), it hands the turn to the next
  thread and sleeps until the batch is committed. Otherwise it commits — one ``COMMIT``, one
  fsync for every member — and wakes every member with the outcome: nothing, or the commit's
  error (each member gets its own copy), so no write is reported durable that is not.
- A durable write never joins a batch opened by a non-durable one (that one is committed at
  ``synchronous = NORMAL``): it commits that batch first and opens its own. A non-durable write
  may join a durable batch; it is then synced too, which is more than it asked for.
- If SQLite rolls the whole transaction back under a member (an I/O error, a full disk), the
  members already done with their work are told so, and the next holder opens a new batch.
- A writer that waits on something slow inside its transaction (a token refresh asks TikTok)
  says so (``alone``): the open batch is committed before its work starts, and it commits its
  own transaction without taking members, so nobody's commit waits for TikTok.
- A member's wait for the commit is bounded like the wait for the turn; a member woken by its
  timeout is told the outcome is unknown (it may have been committed after all).
"""

from __future__ import annotations

import contextlib
import copy
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from orchestrator.errors import StoreError

__all__ = ["MAX_MEMBERS", "MAX_SECONDS", "GroupCommit"]

MAX_MEMBERS = 64
"""Writers sharing one commit at most: beyond it, the first ones have waited long enough."""

MAX_SECONDS = 0.005
"""Seconds a batch may stay open for more members (measured from its ``BEGIN``): a few
transactions' worth (one took 1.4 to 1.7 ms under the lock, benchmarks/README.md §6)."""

_SYNC_DURABLE = "PRAGMA synchronous = FULL"
_SYNC_DEFERRED = "PRAGMA synchronous = NORMAL"


@dataclass(eq=False)
class _Batch:
    """One open transaction and the writers in it."""

    durable: bool
    started: float
    alone: bool = False
    """Opened by a slow writer: it takes no other members."""
    members: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class GroupCommit:
    """The process's writer: hands the turn on, runs each write in a savepoint, commits once.

    ``connect`` makes the one writing connection (on first use); ``translate`` turns sqlite3
    errors into store errors; ``timeout`` bounds each wait (for the turn, for the commit);
    ``clock`` (monotonic seconds) ages batches.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        translate: Callable[[], contextlib.AbstractContextManager[None]],
        *,
        location: str,
        timeout: float,
        max_members: int = MAX_MEMBERS,
        max_seconds: float = MAX_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_members < 1:
            raise ValueError(f"max_members must be at least 1, got {max_members}")
        self._connect = connect
        self._translate = translate
        self._location = location
        self._timeout = timeout
        self._max_members = max_members
        self._max_seconds = max_seconds
        self._clock = clock
        self._state = threading.Condition()
        self._busy = False
        self._waiting = 0
        self._batch: _Batch | None = None
        self._connection: sqlite3.Connection | None = None
        self._durable_level: bool | None = None

    @property
    def waiting(self) -> int:
        """Threads queued for the turn now (for tests and benchmarks)."""
        with self._state:
            return self._waiting

    @contextlib.contextmanager
    def write(self, *, durable: bool, alone: bool = False) -> Iterator[sqlite3.Connection]:
        """This thread's turn inside a shared transaction (its own if ``alone``); returns once
        it is committed."""
        self._take_turn()
        try:
            connection = self._writer()
            batch = self._join(connection, durable=durable, alone=alone)
        except BaseException:
            self._release_turn()
            raise
        # The batch's first writer needs no savepoint: if its work fails, the whole
        # transaction (its work alone) is rolled back. One writer alone pays nothing extra.
        savepoint = batch.members > 1
        try:
            if savepoint:
                with self._translate():
                    connection.execute("SAVEPOINT member")
            yield connection
            if not connection.in_transaction:  # SQLite rolled it back under an error caught
                raise StoreError(
                    f"{self._location}: the transaction of this write was rolled back by SQLite",
                    hint="see the error logged before this one (often a full disk); try again",
                )
            if savepoint:
                with self._translate():
                    connection.execute("RELEASE member")
        except BaseException:
            self._undo(connection, batch, savepoint=savepoint)
            self._leave(connection, batch)
            raise
        self._leave(connection, batch)
        self._await(batch)

    # -- the turn -----------------------------------------------------------------------------

    def _take_turn(self) -> None:
        with self._state:
            self._waiting += 1
            try:
                free = self._state.wait_for(lambda: not self._busy, timeout=self._timeout)
            finally:
                self._waiting -= 1
            if not free:
                raise StoreError(
                    f"{self._location} stayed locked by another writer in this process for "
                    f"more than {self._timeout:g} s",
                    hint="a token refresh or a journal write is stuck; try again",
                )
            self._busy = True

    def _release_turn(self) -> None:
        with self._state:
            self._busy = False
            self._state.notify()

    def _writer(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._connect()
            self._durable_level = None
        return self._connection

    # -- the batch (the caller holds the turn) -----------------------------------------------

    def _join(self, connection: sqlite3.Connection, *, durable: bool, alone: bool) -> _Batch:
        batch = self._batch
        if batch is not None and (alone or (durable and not batch.durable)):
            self._commit(connection, batch)
            batch = None
        if batch is None:
            batch = self._begin(connection, durable=durable, alone=alone)
        batch.members += 1
        return batch

    def _begin(self, connection: sqlite3.Connection, *, durable: bool, alone: bool) -> _Batch:
        with self._translate():
            if self._durable_level is not durable:
                # SQLite refuses to change the safety level inside a transaction.
                connection.execute(_SYNC_DURABLE if durable else _SYNC_DEFERRED)
                self._durable_level = durable
            connection.execute("BEGIN IMMEDIATE")
        batch = _Batch(durable=durable, started=self._clock(), alone=alone)
        self._batch = batch
        return batch

    def _undo(self, connection: sqlite3.Connection, batch: _Batch, *, savepoint: bool) -> None:
        """Roll the failed member's savepoint back (the first member's: the transaction); if
        SQLite lost the whole transaction instead, end the batch with an error for the members
        already done."""
        if not savepoint:
            _rollback_quietly(connection)
            self._end(batch, None)  # nobody else joined it
            return
        try:
            connection.execute("ROLLBACK TO member")
            connection.execute("RELEASE member")
        except sqlite3.Error:
            pass
        if connection.in_transaction and self._batch is batch:
            return
        _rollback_quietly(connection)
        self._end(
            batch,
            StoreError(
                f"{self._location}: SQLite rolled back a transaction shared by several writes "
                "after an error in one of them; this write was not committed",
                hint="see the error of the other write (often a full disk); then try again",
            ),
        )

    def _leave(self, connection: sqlite3.Connection, batch: _Batch) -> None:
        """Hand the turn to a waiting writer, or commit the batch and wake its members."""
        with self._state:
            if self._batch is not batch:  # already ended (rolled back under a member)
                self._busy = False
                self._state.notify()
                return
            if (
                self._waiting > 0
                and not batch.alone
                and batch.members < self._max_members
                and self._clock() - batch.started < self._max_seconds
            ):
                self._busy = False
                self._state.notify()
                return
        try:
            self._commit(connection, batch)
        finally:
            self._release_turn()

    def _commit(self, connection: sqlite3.Connection, batch: _Batch) -> None:
        error: BaseException | None = None
        try:
            with self._translate():
                connection.execute("COMMIT")
        except BaseException as exc:  # every member of the batch must hear of it
            error = exc
            _rollback_quietly(connection)
        self._end(batch, error)

    def _end(self, batch: _Batch, error: BaseException | None) -> None:
        with self._state:
            if self._batch is batch:
                self._batch = None
        if not batch.done.is_set():
            batch.error = error
            batch.done.set()

    def _await(self, batch: _Batch) -> None:
        """Wait for the batch's commit; raise its error (a copy: other threads raise it too)."""
        if not batch.done.wait(timeout=self._timeout):
            raise StoreError(
                f"{self._location}: this write waited more than {self._timeout:g} s for the "
                "commit it shares with other writes; it may or may not have been committed",
                hint="a token refresh or a journal write is stuck; check `history`, then try again",
            )
        if batch.error is not None:
            raise copy.copy(batch.error) from batch.error


def _rollback_quietly(connection: sqlite3.Connection) -> None:
    """End a transaction left open by an error (SQLite may already have rolled it back)."""
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
