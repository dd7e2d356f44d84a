"""The whole-request deadline (``Timeouts.total``): a watchdog that shuts a connection's
socket down when its deadline passes.

Per-operation socket timeouts alone cannot stop a server that reads or answers one byte at a
time. One watchdog thread per transport serves every request (a timer thread per request cost
about 0.3 ms each, benchmarks/README.md). The connection classes find the request in flight
through :data:`CURRENT_EXCHANGE`, so nothing is passed through requests and urllib3 (whose
connection classes they subclass: ``urllib3`` is pinned below its next major).

Must not: raise the orchestrator's errors (``session`` does, seeing the exchange expired).
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import urllib3.connection
import urllib3.connectionpool


class Exchange:
    """One request in flight with a deadline: the connection it uses, and whether the
    watchdog fired. The watchdog runs in its own thread, so every field is behind the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: urllib3.connection.HTTPConnection | None = None
        self._expired = False
        self._finished = False

    @property
    def expired(self) -> bool:
        with self._lock:
            return self._expired

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._finished

    def attach(self, connection: urllib3.connection.HTTPConnection) -> None:
        with self._lock:
            self._connection = connection
            if self._expired:
                raise TimeoutError("request deadline passed")

    def expire(self) -> None:
        """The deadline passed: unblock whatever the request is waiting on."""
        with self._lock:
            if self._finished:
                return
            self._expired = True
            sock = self._connection.sock if self._connection is not None else None
            if sock is not None:
                # shutdown (not close) wakes a send/recv blocked in the requesting thread and
                # leaves closing the socket to urllib3, which discards the connection.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        with self._lock:
            self._finished = True
            self._connection = None


WATCHDOG_COMPACT_AT = 1024
"""Finished exchanges stay in the watchdog's heap until their deadline comes up; past this many
entries the heap is rebuilt without them (amortised: the threshold doubles with the live ones)."""


class Watchdog:
    """One thread that expires each watched exchange when its deadline passes.

    Deadlines wait in a heap ordered by time; the thread sleeps until the earliest one (or until
    an earlier one is added) and expires what is due. Expiring a finished exchange does nothing,
    so a request that ended in time is not touched. The thread starts with the first watched
    request and stops in :meth:`close`; a later request starts a new one.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._wakeup = threading.Condition()
        self._heap: list[tuple[float, int, Exchange]] = []
        self._order = itertools.count()  # ties in deadline never compare exchanges
        self._compact_at = WATCHDOG_COMPACT_AT
        self._thread: threading.Thread | None = None
        self._generation = 0

    def watch(self, exchange: Exchange, seconds: float) -> None:
        """Expire ``exchange`` in ``seconds`` unless it has finished by then."""
        deadline = self._monotonic() + seconds
        with self._wakeup:
            if len(self._heap) >= self._compact_at:
                self._heap = [item for item in self._heap if not item[2].finished]
                heapq.heapify(self._heap)
                self._compact_at = max(WATCHDOG_COMPACT_AT, 2 * len(self._heap))
            heapq.heappush(self._heap, (deadline, next(self._order), exchange))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run,
                    args=(self._generation,),
                    name="transport-watchdog",
                    daemon=True,
                )
                self._thread.start()
            elif self._heap[0][2] is exchange:
                self._wakeup.notify()  # the new deadline comes first: sleep less

    def close(self) -> None:
        """Stop the thread (deadlines still waiting no longer fire) and wait for it."""
        with self._wakeup:
            thread, self._thread = self._thread, None
            self._generation += 1
            self._heap.clear()
            self._wakeup.notify()
        if thread is not None:
            thread.join()

    def _run(self, generation: int) -> None:
        while True:
            with self._wakeup:
                due = self._due(generation)
            if due is None:
                return
            for exchange in due:
                exchange.expire()

    def _due(self, generation: int) -> list[Exchange] | None:
        """Wait (lock held) until some exchange is due; ``None`` once closed."""
        while generation == self._generation:
            now = self._monotonic()
            due: list[Exchange] = []
            while self._heap and (self._heap[0][0] <= now or self._heap[0][2].finished):
                _, _, exchange = heapq.heappop(self._heap)
                if not exchange.finished:
                    due.append(exchange)
            if due:
                return due
            # Bounded by the earliest deadline; without one, only watch() or close() wakes it.
            self._wakeup.wait(self._heap[0][0] - now if self._heap else None)
        return None


# The request in flight in this thread (if it has a deadline): how the connection classes below
# find the watchdog without passing it through requests and urllib3.
CURRENT_EXCHANGE: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar(
    "orchestrator_transport_exchange", default=None
)


class WatchedConnectionMixin:
    """Registers the connection with the current :class:`Exchange` and stops sending once its
    deadline has passed."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        exchange = CURRENT_EXCHANGE.get()
        if exchange is not None:
            assert isinstance(self, urllib3.connection.HTTPConnection)
            exchange.attach(self)
        super().request(*args, **kwargs)  # type: ignore[misc]

    def send(self, data: Any) -> None:
        exchange = CURRENT_EXCHANGE.get()
        if exchange is not None and exchange.expired:
            raise TimeoutError("request deadline passed")
        super().send(data)  # type: ignore[misc]


class WatchedHTTPConnection(WatchedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class WatchedHTTPSConnection(WatchedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class WatchedHTTPConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSConnectionPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection
