"""Retry policy, retry budget and per-user pacing, all on a manual clock."""

from __future__ import annotations

import threading

import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import ApiError, ConnectError, UploadError
from orchestrator.retry import (
    PaceLimit,
    Retrier,
    RetryBudget,
    RetryNotice,
    RetryPolicy,
    SlidingWindowPacer,
    is_retryable,
)


class Flaky:
    """Fails ``failures`` times with ``error``, then answers ``"done"``."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def test_backoff_is_full_jitter_capped_at_64_seconds() -> None:
    """The wait before retry n is uniform up to min(64, base * 2^(n-1))."""
    policy = RetryPolicy(base=1.0, cap=64.0)
    assert [policy.ceiling(n) for n in (1, 2, 3, 7, 8, 100)] == [1, 2, 4, 64, 64, 64]
    assert policy.delay(3, lambda: 0.5) == 2.0
    assert policy.delay(3, lambda: 0.0) == 0.0


def test_transient_failures_are_retried_then_succeed() -> None:
    """Two resets then success: three calls, two backoffs slept on the injected clock."""
    clock = ManualClock()
    retrier = Retrier(clock=clock, draw=lambda: 1.0)
    work = Flaky(2, ConnectError("reset"))
    assert retrier.call(work) == "done"
    assert work.calls == 3
    assert clock.slept == [1.0, 2.0]


def test_at_most_five_attempts_then_the_last_error() -> None:
    """A request that keeps failing is tried five times and its own error is raised."""
    clock = ManualClock()
    retrier = Retrier(clock=clock, draw=lambda: 1.0)
    error = ApiError("internal_error", "boom", http_status=500, retryable=True)
    work = Flaky(99, error)
    with pytest.raises(ApiError) as caught:
        retrier.call(work)
    assert caught.value is error
    assert work.calls == 5
    assert clock.slept == [1.0, 2.0, 4.0, 8.0]


def test_permanent_errors_are_not_retried() -> None:
    """A permanent API error is raised after one attempt, with no sleep."""
    clock = ManualClock()
    work = Flaky(1, ApiError("invalid_params", "bad", http_status=400))
    with pytest.raises(ApiError):
        Retrier(clock=clock).call(work)
    assert work.calls == 1
    assert clock.slept == []


def test_caller_predicate_overrides_the_default() -> None:
    """A call site can refuse to retry what the default would (an unsafe resend)."""
    work = Flaky(1, ConnectError("reset"))
    with pytest.raises(ConnectError):
        Retrier(clock=ManualClock()).call(work, retryable=lambda e: False)
    assert work.calls == 1


def test_default_predicate() -> None:
    """Transport errors and retryable API errors are retryable; nothing else is."""
    assert is_retryable(ConnectError("x"))
    assert is_retryable(ApiError("internal_error", "", http_status=500, retryable=True))
    assert not is_retryable(ApiError("x", "", http_status=400))
    assert not is_retryable(UploadError("x"))
    assert not is_retryable(ValueError("x"))


def test_run_wide_budget_stops_retrying_when_spent() -> None:
    """Once the run's retries are used up, failures are raised at the first attempt."""
    clock = ManualClock()
    budget = RetryBudget(max_retries=3, max_wait=1000)
    retrier = Retrier(clock=clock, budget=budget, draw=lambda: 1.0)
    first = Flaky(99, ConnectError("down"))
    with pytest.raises(ConnectError):
        retrier.call(first)
    assert first.calls == 4  # three retries taken from the budget
    second = Flaky(99, ConnectError("down"))
    with pytest.raises(ConnectError):
        retrier.call(second)
    assert second.calls == 1
    assert budget.exhausted
    assert budget.retries == 3


def test_budget_counts_seconds_of_backoff() -> None:
    """A budget of 5 s of waiting refuses the retry that would pass it."""
    clock = ManualClock()
    budget = RetryBudget(max_retries=100, max_wait=5.0)
    retrier = Retrier(clock=clock, budget=budget, draw=lambda: 1.0)
    work = Flaky(99, ConnectError("down"))
    with pytest.raises(ConnectError):
        retrier.call(work)
    assert clock.slept == [1.0, 2.0]  # the next wait (4 s) would make 7 s
    assert budget.waited == 3.0


def test_budget_is_thread_safe() -> None:
    """Many threads spending at once never take more than the budget holds."""
    budget = RetryBudget(max_retries=500, max_wait=1e9)
    granted: list[bool] = []
    lock = threading.Lock()

    def spend() -> None:
        for _ in range(200):
            ok = budget.try_spend(0.0)
            with lock:
                granted.append(ok)

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 500


def test_retries_are_announced_to_the_listener() -> None:
    """on_retry hears of each retry before its backoff, with the error."""
    notices: list[RetryNotice] = []
    retrier = Retrier(clock=ManualClock(), draw=lambda: 0.5, on_retry=notices.append)
    retrier.call(Flaky(1, ConnectError("reset")))
    assert [(n.retry_number, n.wait, str(n.error)) for n in notices] == [(1, 0.5, "reset")]


def test_policy_validates_itself() -> None:
    """A policy with no attempts or an inverted backoff cannot be built."""
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="base"):
        RetryPolicy(base=10, cap=1)


def test_pacer_lets_six_inits_through_then_waits_for_the_window() -> None:
    """The 7th video init within a minute waits until the 1st leaves the window."""
    clock = ManualClock()
    pacer = SlidingWindowPacer(clock=clock)
    waits = [pacer.acquire("alice", "video_init") for _ in range(6)]
    assert waits == [0.0] * 6
    clock.advance(10)
    assert pacer.acquire("alice", "video_init") == pytest.approx(50.0)


def test_pacer_seeded_with_an_earlier_runs_inits_waits_for_them_to_leave_the_window() -> None:
    """Four inits sent 50 s ago and one 10 s ago by an earlier run: one more goes now, the
    next waits until the oldest is a minute old; seeds older than a minute do not count."""
    clock = ManualClock()
    pacer = SlidingWindowPacer(clock=clock)
    pacer.seed("u", "video_init", [50.0, 50.0, 50.0, 50.0, 10.0, 61.0, 3600.0])
    assert pacer.acquire("u", "video_init") == 0
    assert pacer.acquire("u", "video_init") == pytest.approx(10.0)
    assert pacer.acquire("other", "video_init") == 0
    pacer.seed("u", "no_limit_kind", [1.0])  # kinds without a limit ignore seeds


def test_pacer_windows_are_per_user_and_per_endpoint() -> None:
    """Bob's inits and Alice's status fetches do not count against Alice's inits."""
    clock = ManualClock()
    pacer = SlidingWindowPacer(clock=clock)
    for _ in range(6):
        pacer.acquire("alice", "video_init")
    assert pacer.acquire("bob", "video_init") == 0.0
    assert pacer.acquire("alice", "inbox_init") == 0.0
    assert pacer.acquire("alice", "status") == 0.0
    assert clock.slept == []


def test_pacer_keeps_thirty_status_fetches_per_sliding_minute() -> None:
    """No 60 s window ever holds more than 30 status fetches, however they are asked."""
    clock = ManualClock()
    pacer = SlidingWindowPacer(clock=clock)
    stamps = []
    for _ in range(100):
        pacer.acquire("alice", "status")
        stamps.append(clock.monotonic())
        clock.advance(0.5)
    for i, start in enumerate(stamps):
        in_window = [t for t in stamps[i:] if t < start + 60]
        assert len(in_window) <= 30


class FrozenClock(ManualClock):
    """A clock whose sleep records but does not move time (to read reserved slots)."""

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)


def test_pacer_concurrent_callers_never_overbook() -> None:
    """Nine threads asking at once get slots three per minute: 0, 60 and 120 s."""
    clock = FrozenClock()
    pacer = SlidingWindowPacer({"x": PaceLimit(3, 60.0)}, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def ask() -> None:
        waited = pacer.acquire("u", "x")
        with lock:
            waits.append(waited)

    threads = [threading.Thread(target=ask) for _ in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == [0.0] * 3 + [60.0] * 3 + [120.0] * 3


def test_pacer_holds_a_window_after_a_429() -> None:
    """After TikTok says 429, the next request for that user and endpoint waits 60 s."""
    clock = ManualClock()
    pacer = SlidingWindowPacer(clock=clock)
    pacer.acquire("alice", "status")
    pacer.rejected("alice", "status")
    assert pacer.acquire("alice", "status") == pytest.approx(60.0)
    assert pacer.acquire("bob", "status") == 0.0


def test_unlimited_kinds_pass() -> None:
    """An endpoint without a limit is never paced."""
    pacer = SlidingWindowPacer(clock=ManualClock())
    assert all(pacer.acquire("a", "user_info") == 0.0 for _ in range(100))


def test_pacing_counts_a_request_from_when_its_answer_came() -> None:
    """An init that took 3 s to arrive and answer pushes the 7th to a minute after its answer,
    not after its send: TikTok counts arrivals, so send times alone could overbook."""
    clock = ManualClock()
    pacer = SlidingWindowPacer(clock=clock)
    start = clock.monotonic()
    with pacer.pacing("alice", "video_init"):
        clock.advance(3.0)  # a new connection: the request arrives, and is answered, late
    for _ in range(5):
        with pacer.pacing("alice", "video_init"):
            pass
    with pacer.pacing("alice", "video_init"):
        sent = clock.monotonic()
    assert sent - start == pytest.approx(63.0)
