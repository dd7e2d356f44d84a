"""Retrying and pacing requests: the only module that imports ``tenacity``.

- :class:`RetryPolicy` is the per-request policy of ``tiktok-api.md`` §9 as data: at most five
  attempts, exponential backoff with full jitter, capped at 64 s.
- :class:`RetryBudget` is shared by a whole run, so a dead API costs a bounded number of retries
  and seconds of waiting instead of five attempts times every request for hours.
- :class:`Retrier` applies a policy with tenacity; the clock (its ``sleep``) and the random
  source are injected so tests cross backoffs without waiting.
- :class:`SlidingWindowPacer` keeps each user under TikTok's per-minute limits (§8) before
  TikTok has to say 429, and waits for the window when TikTok says it anyway. Its windows are
  keyed by the user's open_id, never by an access token: a refresh (a new token string) must
  not empty them, and a new process seeds them from the journal.

What is retryable is decided by the caller's predicate (see :func:`is_retryable`); this module
never inspects an HTTP answer. It never prints; a retry is logged (without secrets: our errors
carry none).
"""

from __future__ import annotations

import contextlib
import logging
import random as _random
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeVar

import tenacity

from orchestrator.clock import Clock
from orchestrator.errors import ApiError, TransportError

log = logging.getLogger(__name__)

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """The default predicate: transport failures and API answers classified retryable."""
    if isinstance(exc, TransportError):
        return True
    if isinstance(exc, ApiError):
        return exc.retryable
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """How one request is retried.

    ``max_attempts`` counts the first try. The wait before retry *n* (1-based) is uniform in
    ``[0, min(cap, base * 2^(n-1))]`` seconds ("full jitter": many clients failing together do
    not retry together).
    """

    max_attempts: int = 5
    base: float = 1.0
    cap: float = 64.0
    retryable: Callable[[BaseException], bool] = is_retryable

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("backoff needs 0 < base <= cap")

    def ceiling(self, retry_number: int) -> float:
        """The longest wait before retry ``retry_number`` (1-based)."""
        # min() before the power would overflow for absurd retry numbers; cap the exponent.
        return min(self.cap, self.base * float(2 ** min(retry_number - 1, 62)))

    def delay(self, retry_number: int, draw: Callable[[], float]) -> float:
        """The wait before retry ``retry_number``, with ``draw()`` uniform in [0, 1)."""
        return draw() * self.ceiling(retry_number)


class RetryBudget:
    """Retries left for a whole run (thread-safe): a count and total seconds of backoff.

    Once spent, requests still get their first attempt but failures are no longer retried,
    so a run against a dead API ends in minutes.
    """

    def __init__(self, *, max_retries: int = 200, max_wait: float = 900.0) -> None:
        if max_retries < 0 or max_wait < 0:
            raise ValueError("a retry budget cannot be negative")
        self._lock = threading.Lock()
        self._max_retries = max_retries
        self._max_wait = max_wait
        self._retries = 0
        self._waited = 0.0
        self._exhausted = False

    def try_spend(self, wait: float) -> bool:
        """Take one retry costing ``wait`` seconds; False (and nothing taken) when over budget."""
        with self._lock:
            if self._retries + 1 > self._max_retries or self._waited + wait > self._max_wait:
                self._exhausted = True
                return False
            self._retries += 1
            self._waited += wait
            return True

    @property
    def exhausted(self) -> bool:
        """Whether a retry has been refused for lack of budget."""
        with self._lock:
            return self._exhausted

    @property
    def retries(self) -> int:
        """Retries taken so far."""
        with self._lock:
            return self._retries

    @property
    def waited(self) -> float:
        """Seconds of backoff taken so far."""
        with self._lock:
            return self._waited


@dataclass(frozen=True)
class RetryNotice:
    """Told to ``on_retry`` before each backoff: which retry, how long, after what error."""

    retry_number: int
    max_attempts: int
    wait: float
    error: BaseException


class Retrier:
    """Applies a :class:`RetryPolicy` to calls, drawing from a shared :class:`RetryBudget`."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        clock: Clock,
        budget: RetryBudget | None = None,
        draw: Callable[[], float] | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.budget = budget if budget is not None else RetryBudget()
        self._clock = clock
        self._draw = draw or _random.random
        self._on_retry = on_retry

    def call(
        self,
        fn: Callable[[], T],
        *,
        retryable: Callable[[BaseException], bool] | None = None,
        policy: RetryPolicy | None = None,
    ) -> T:
        """``fn()``, retried on errors ``retryable`` (default: the policy's predicate) accepts,
        until it succeeds, the policy's attempts run out, or the budget is spent; then the
        last error is raised as it was."""
        rules = policy or self.policy
        accepts = retryable or rules.retryable
        # Each retry's wait is drawn once and remembered, so tenacity's wait and stop hooks
        # agree on it whatever order they run in.
        waits: dict[int, float] = {}

        def wait_for(retry_number: int) -> float:
            if retry_number not in waits:
                waits[retry_number] = rules.delay(retry_number, self._draw)
            return waits[retry_number]

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= rules.max_attempts:
                return True
            return not self.budget.try_spend(wait_for(state.attempt_number))

        def wait(state: tenacity.RetryCallState) -> float:
            return wait_for(state.attempt_number)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            if error is None:  # pragma: no cover - tenacity retries on exceptions only here
                return
            notice = RetryNotice(
                state.attempt_number, rules.max_attempts, wait_for(state.attempt_number), error
            )
            log.info(
                "retry %d/%d in %.1f s after: %s",
                notice.retry_number,
                notice.max_attempts - 1,
                notice.wait,
                error,
            )
            if self._on_retry is not None:
                self._on_retry(notice)

        retrying = tenacity.Retrying(
            sleep=self._clock.sleep,
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception(accepts),
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn)


@dataclass(frozen=True)
class PaceLimit:
    """At most ``requests`` per sliding ``window`` seconds."""

    requests: int
    window: float = 60.0

    def __post_init__(self) -> None:
        if self.requests < 1 or self.window <= 0:
            raise ValueError("a pace limit needs at least one request per positive window")


TIKTOK_LIMITS: Final = MappingProxyType(
    {
        # tiktok-api.md §8: per user token, each init endpoint counted separately.
        "video_init": PaceLimit(6),
        "inbox_init": PaceLimit(6),
        "content_init": PaceLimit(6),
        "creator_info": PaceLimit(20),
        "status": PaceLimit(30),
    }
)


class SlidingWindowPacer:
    """Spaces requests per (user, endpoint kind) so no sliding window holds more than its limit.

    ``user`` is the creator's open_id (never a token: a refresh must not reset the count).
    :meth:`acquire` reserves the earliest moment the window has room, then sleeps until it (via
    the clock, so tests do not wait). Reservations are made under a lock and handed out in order,
    so concurrent callers never overbook a window and never spin. Kinds without a limit pass.

    TikTok counts a request when it *arrives*, which is after we send it: a first request that
    takes longer to arrive (a new connection, a TLS handshake) than the seventh would land the
    seventh inside its window by that difference. :meth:`pacing` wraps the request and, when its
    answer is in, moves the request's stamp to that moment (no arrival is later), so the window
    is counted from arrivals' upper bounds and no latency can overbook it.
    """

    def __init__(self, limits: Mapping[str, PaceLimit] = TIKTOK_LIMITS, *, clock: Clock) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._lock = threading.Lock()
        self._stamps: dict[tuple[str, str], deque[float]] = {}
        self._blocked_until: dict[tuple[str, str], float] = {}
        self._reserved = threading.local()

    @contextlib.contextmanager
    def pacing(self, user: str, kind: str) -> Iterator[None]:
        """Wait for room (:meth:`acquire`), run the request inside, then count it from the
        moment its answer (or failure) came back."""
        self._reserved.slot = None
        self.acquire(user, kind)
        slot: float | None = self._reserved.slot
        try:
            yield
        finally:
            if slot is not None:
                self._answered(user, kind, slot)

    def _answered(self, user: str, kind: str, slot: float) -> None:
        key = (user, kind)
        with self._lock:
            stamps = self._stamps.get(key)
            if stamps is None or slot not in stamps:
                return  # pushed out by later reservations: it no longer decides anything
            now = self._clock.monotonic()
            moved = [now if stamp == slot else stamp for stamp in stamps]
            stamps.clear()
            stamps.extend(sorted(moved))

    def acquire(self, user: str, kind: str) -> float:
        """Wait until a ``kind`` request for ``user`` fits its window and count it; returns the
        seconds waited."""
        limit = self._limits.get(kind)
        if limit is None:
            return 0.0
        key = (user, kind)
        with self._lock:
            now = self._clock.monotonic()
            # Only the last `requests` reservations can decide the next one.
            stamps = self._stamps.setdefault(key, deque(maxlen=limit.requests))
            slot = max(now, self._blocked_until.get(key, now))
            if stamps:
                slot = max(slot, stamps[-1])
            if len(stamps) == limit.requests:
                slot = max(slot, stamps[0] + limit.window)
            stamps.append(slot)
        self._reserved.slot = slot
        wait = slot - now
        if wait > 0:
            log.info("pacing: %s for %s waits %.1f s for the rate window", kind, user, wait)
            self._clock.sleep(wait)
        return wait

    def seed(self, user: str, kind: str, ages: Sequence[float]) -> None:
        """Count ``kind`` requests for ``user`` sent ``ages`` seconds ago (by an earlier run,
        known from the journal) in the window, so this run does not overbook it."""
        limit = self._limits.get(kind)
        if limit is None:
            return
        key = (user, kind)
        with self._lock:
            now = self._clock.monotonic()
            earlier = [now - age for age in ages if 0 <= age < limit.window]
            stamps = self._stamps.setdefault(key, deque(maxlen=limit.requests))
            merged = sorted([*earlier, *stamps])
            stamps.clear()
            stamps.extend(merged[-limit.requests :])

    def rejected(self, user: str, kind: str) -> None:
        """TikTok answered 429 although our count had room (another client shares the token):
        hold further ``kind`` requests for ``user`` for a whole window, after which every
        request TikTok counted has left it."""
        limit = self._limits.get(kind)
        if limit is None:
            return
        key = (user, kind)
        with self._lock:
            until = self._clock.monotonic() + limit.window
            self._blocked_until[key] = max(self._blocked_until.get(key, until), until)
