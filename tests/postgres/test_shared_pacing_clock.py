"""The shared rate windows are stamped with the database's clock, as leases are: workers whose
own clocks disagree still count one window and never overfill TikTok's (real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.clock import ManualClock
from orchestrator.retry import PaceLimit
from orchestrator.secret import Secret
from orchestrator.store.postgres import PostgresDatabase
from orchestrator.store.shared_pacing import MARGIN, SharedPacer

LIMITS = {"video_init": PaceLimit(2)}
SKEW = 90.0
"""Seconds one worker's clock runs ahead: more than the whole one-minute window."""
SLACK = 5.0
"""Real seconds the test itself may take between two reservations (a bound, not a timing)."""


@pytest.fixture
def database(pg_url: str) -> Iterator[PostgresDatabase]:
    with PostgresDatabase.open(Secret(pg_url)) as opened:
        yield opened


def test_a_worker_whose_clock_runs_ahead_still_waits_out_the_shared_window(
    database: PostgresDatabase,
) -> None:
    """Two requests fill the window on one worker; a worker whose clock is 90 s ahead must
    still wait about the window's minute for the third, not send it at once."""
    on_time = SharedPacer(database, LIMITS, clock=ManualClock(1_800_000_000.0))
    ahead = SharedPacer(database, LIMITS, clock=ManualClock(1_800_000_000.0 + SKEW))
    assert on_time.acquire("alice", "video_init") == 0
    assert on_time.acquire("alice", "video_init") == pytest.approx(0, abs=SLACK)
    waited = ahead.acquire("alice", "video_init")
    assert 60 + MARGIN - SLACK <= waited <= 60 + MARGIN


def test_a_429_recorded_by_a_worker_whose_clock_runs_behind_still_fills_the_window(
    database: PostgresDatabase,
) -> None:
    """A 429 recorded by a worker whose clock is 90 s behind fills the window from now, not
    from a moment its clock imagines: the other worker waits about one minute, not 0 s."""
    behind = SharedPacer(database, LIMITS, clock=ManualClock(1_800_000_000.0 - SKEW))
    on_time = SharedPacer(database, LIMITS, clock=ManualClock(1_800_000_000.0))
    behind.rejected("alice", "video_init")
    waited = on_time.acquire("alice", "video_init")
    assert 60 + MARGIN - SLACK <= waited <= 60 + MARGIN
