"""Time as a dependency: the real clock, and a manual one for tests.

Everything that waits, expires or counts a window takes a :class:`Clock`, so tests cross rate
windows, token expiry and upload-URL expiry without sleeping on the wall clock. A run sleeps on an
:class:`InterruptibleClock`, so that Ctrl-C ends every wait of the run at once.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """What the orchestrator needs of time."""

    def time(self) -> float:
        """Wall-clock seconds since the Unix epoch (for expiries and timestamps)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations and windows)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a manual clock advances instead)."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """A clock that moves only when told to; ``sleep`` advances it at once. Thread-safe."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._lock = threading.Lock()
        self._now = start
        self._mono = 1000.0
        self.slept: list[float] = []

    def time(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
        self.advance(max(seconds, 0.0))

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._now += seconds
            self._mono += seconds


class RunInterrupted(Exception):
    """Raised inside a worker (from a sleep or a progress report) to unwind when the run stops.

    Deliberately not an ``OrchestratorError``: the upload engine must not treat it as a failure
    of the entry. The journal keeps the last confirmed step; the next run resumes from there.
    """


class InterruptibleClock:
    """The run's clock: the same time as ``inner``, but every sleep ends early, raising
    :class:`RunInterrupted`, once ``stop`` is set.

    Pacing waits, retry backoffs and status polling all sleep through the clock, so an
    interrupted run never sits out a 64 s backoff or a 30 s poll interval before stopping.
    """

    def __init__(self, inner: Clock, stop: threading.Event) -> None:
        self._inner = inner
        self._stop = stop
        # A real clock's sleep is replaced by a wait on the event; a manual clock (tests)
        # advances instantly and is only checked around.
        self._real = isinstance(inner, SystemClock)

    def time(self) -> float:
        return self._inner.time()

    def monotonic(self) -> float:
        return self._inner.monotonic()

    def sleep(self, seconds: float) -> None:
        if self._stop.is_set():
            raise RunInterrupted()
        if self._real:
            if seconds > 0 and self._stop.wait(seconds):
                raise RunInterrupted()
            return
        self._inner.sleep(seconds)
        if self._stop.is_set():
            raise RunInterrupted()
