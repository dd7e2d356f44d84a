"""Scheduler pieces that need no server: the interruptible clock, options, tunables."""

from __future__ import annotations

import threading
import time

import pytest

from orchestrator.clock import InterruptibleClock, ManualClock, RunInterrupted, SystemClock
from orchestrator.scheduler import RunOptions


def test_interruptible_clock_tells_the_inner_time_and_sleeps_on_it() -> None:
    """Without a stop it is the inner clock: a manual sleep advances it at once."""
    inner = ManualClock()
    clock = InterruptibleClock(inner, threading.Event())
    before = clock.monotonic()
    clock.sleep(64)
    assert clock.monotonic() - before == 64
    assert clock.time() == inner.time()


def test_interruptible_clock_refuses_to_sleep_once_stopped() -> None:
    """After stop, every sleep raises RunInterrupted instead of waiting."""
    stop = threading.Event()
    stop.set()
    clock = InterruptibleClock(ManualClock(), stop)
    with pytest.raises(RunInterrupted):
        clock.sleep(1)


def test_interruptible_clock_ends_a_real_wait_when_stop_is_set() -> None:
    """A 30 s wait on the real clock ends within moments of stop being set elsewhere."""
    stop = threading.Event()
    clock = InterruptibleClock(SystemClock(), stop)
    timer = threading.Timer(0.05, stop.set)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(RunInterrupted):
            clock.sleep(30)
    finally:
        timer.join()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "changes",
    [{"jobs": 0}, {"limit": 0}, {"daily_direct_cap": -1}, {"pending_inbox_cap": -1}],
)
def test_run_options_refuse_impossible_values(changes: dict[str, int]) -> None:
    """Zero jobs, a zero limit or a negative cap are refused on construction."""
    with pytest.raises(ValueError, match=r"must|cannot"):
        RunOptions(**changes)  # type: ignore[arg-type]
