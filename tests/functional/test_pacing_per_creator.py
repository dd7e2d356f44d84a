"""Init pacing per creator (open_id): across token refreshes, slow arrivals and processes.

A 20,000-entry run drew 429s on init: TikTok counts a request when it arrives, and a first
init that arrives late (a new connection) let the seventh land inside its minute. These runs
go through the real command path on the sandbox's manual clock, with short-lived tokens (each
user's token is refreshed mid-run) and requests that sometimes arrive seconds after they are
sent, and check from the sandbox's own records that no sliding minute holds more than six inits
of one user and that TikTok never had to say 429.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.clock import ManualClock
from orchestrator.report import RunReport
from orchestrator.runner import run_manifest
from orchestrator.sandbox import SandboxConfig
from orchestrator.scheduler import RunOptions
from orchestrator.transport import HttpResponse, HttpTransport
from tests.support.run_support import RunRig, open_rig

INIT_LIMIT = 6
WINDOW = 60.0
USERS = ("sandbox-user-1", "sandbox-user-2")


class LateArrivals(HttpTransport):
    """Some video inits arrive ``delay`` seconds after they are sent (the manual clock moves
    on before the sandbox sees them, as a new connection or a slow handshake does)."""

    def __init__(self, clock: ManualClock, late: frozenset[int], delay: float) -> None:
        super().__init__()
        self._clock = clock
        self._late = late
        self._delay = delay
        self.inits = 0
        self.init_statuses: list[int] = []

    def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        is_init = "/video/init/" in url
        if is_init:
            self.inits += 1
            if self.inits in self._late:
                self._clock.advance(self._delay)
        response = super().request(method, url, **kwargs)
        if is_init:
            self.init_statuses.append(response.status)
        return response


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[RunRig]:
    """Tokens that go stale after 100 s (refreshed several times in a run), caps out of the way."""
    config = SandboxConfig(access_token_ttl=400, daily_post_cap=100, processing_polls=0)
    with open_rig(tmp_path, config) as opened:
        yield opened


def _busiest_minutes(rig: RunRig) -> dict[str, int]:
    """Per open_id, the most inits the sandbox accepted within any 60 s."""
    arrivals: dict[str, list[float]] = defaultdict(list)
    for record in rig.sandbox.publishes():
        arrivals[record.open_id].append(record.created_at)
    busiest = {}
    for user, times in arrivals.items():
        times.sort()
        busiest[user] = max(
            sum(1 for later in times[i:] if later < start + WINDOW) for i, start in enumerate(times)
        )
    return busiest


def _run(rig: RunRig, manifest: Path, transport: LateArrivals) -> RunReport:
    """One run (one process's worth of pacing), two users in parallel, caps out of the way."""
    return run_manifest(
        rig.settings,
        manifest,
        RunOptions(jobs=2, daily_direct_cap=100),
        tunables=rig.tunables,
        clock=rig.clock,
        transport_factory=lambda: transport,
    )


def _manifest(rig: RunRig, count: int, tag: str) -> Path:
    entries = []
    for user in USERS:
        for number in range(count):
            path, _ = rig.clip(f"{tag}-{user}-{number}.mp4")
            entries.append({"user_id": user, "video_path": path.name})
    return rig.manifest(entries, defaults={"privacy_level": "SELF_ONLY"})


def test_a_late_first_init_and_token_refreshes_never_overbook_a_creators_minute(
    rig: RunRig,
) -> None:
    """Fourteen posts per user, two users in parallel, tokens refreshed mid-run and the first
    init of some windows arriving 3 s late: at most six inits per sliding minute per open_id,
    zero 429s, every entry published."""
    transport = LateArrivals(rig.clock, frozenset({1, 2, 13, 14}), delay=3.0)
    report = _run(rig, _manifest(rig, 14, "a"), transport)
    assert rig.statuses(report) == ["published"] * 28
    assert rig.sandbox.calls("token") >= 2, "each user's token was refreshed during the run"
    assert 429 not in transport.init_statuses
    assert _busiest_minutes(rig) == {user: INIT_LIMIT for user in USERS}
    assert rig.sandbox.violations() == []


def test_the_next_process_counts_the_last_runs_inits_after_a_refresh(rig: RunRig) -> None:
    """A run posts six per user, their tokens are refreshed, and a new run (a new process:
    fresh pacing seeded from the journal) posts six more at once: no minute holds more than
    six inits of one user, and TikTok never says 429."""
    rig.clock.advance(99)  # the tokens go stale at the first wait: refreshed around the runs
    first = LateArrivals(rig.clock, frozenset(), delay=0.0)
    report = _run(rig, _manifest(rig, 6, "a"), first)
    assert rig.statuses(report) == ["published"] * 12
    second = LateArrivals(rig.clock, frozenset({1}), delay=3.0)
    rig.sandbox.new_client()
    report = _run(rig, _manifest(rig, 6, "b"), second)
    assert rig.statuses(report) == ["published"] * 12
    assert rig.sandbox.calls("token") >= 2
    assert 429 not in first.init_statuses + second.init_statuses
    assert max(_busiest_minutes(rig).values()) <= INIT_LIMIT
    assert rig.sandbox.violations() == []
