"""The campaign's seeds, played in parallel, and its figures at the end of the session.

``--campaign-seeds N`` (or ``CAMPAIGN_SEEDS=N``) plays seeds 1..N; more than the reduced 25 is
the full campaign. Every seed the session selected is submitted at once to a small pool (the
work is mostly waiting on child processes), so each test only waits for its own seed; the
terminal summary gives the count, the kills, the runs, the wall time and the violations.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.campaign.harness import SeedResult, play
from tests.campaign.schedule import REDUCED_SEEDS, generate

WORKERS = 2
"""Seeds played at once: each mostly waits on its child process and the sandbox."""


def seed_count(config: pytest.Config) -> int:
    """How many seeds this session plays (1..N)."""
    option = config.getoption("campaign_seeds", default=None)
    if option is None:
        option = int(os.environ.get("CAMPAIGN_SEEDS", REDUCED_SEEDS))
    return max(1, int(option))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    count = seed_count(metafunc.config)
    if "seed" in metafunc.fixturenames:
        metafunc.parametrize("seed", range(1, count + 1))
    if "regression" in metafunc.fixturenames:
        from tests.campaign.test_campaign import REGRESSIONS, SLOW_REGRESSIONS

        full = count > REDUCED_SEEDS
        seeds = [s for s in sorted(REGRESSIONS) if full or s not in SLOW_REGRESSIONS]
        metafunc.parametrize("regression", seeds)


class CampaignPool:
    """Plays the session's seeds in the background; hands out each seed's result."""

    def __init__(self, root: Path, seeds: list[int], *, full: bool) -> None:
        self._root = root
        self._full = full
        self._lock = threading.Lock()
        self._futures: dict[int, Future[SeedResult]] = {}
        self._executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="seed")
        self.started = time.monotonic()
        self.finished: float | None = None
        for seed in seeds:
            self._submit(seed)

    def _submit(self, seed: int) -> Future[SeedResult]:
        with self._lock:
            future = self._futures.get(seed)
            if future is None:
                future = self._executor.submit(self._play, seed)
                self._futures[seed] = future
            return future

    def _play(self, seed: int) -> SeedResult:
        folder = self._root / f"seed-{seed}"
        folder.mkdir(parents=True)
        return play(generate(seed, full=self._full), folder)

    def result(self, seed: int) -> SeedResult:
        result = self._submit(seed).result()
        self.finished = time.monotonic()
        return result

    def results(self) -> list[SeedResult]:
        with self._lock:
            futures = list(self._futures.values())
        return [f.result() for f in futures if f.done() and f.exception() is None]

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


_POOL = pytest.StashKey[CampaignPool]()


@pytest.fixture(scope="session")
def campaign(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CampaignPool]:
    """The session's campaign: every selected seed submitted at once."""
    seeds: list[int] = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        for name in ("seed", "regression"):
            if name in callspec.params:
                seeds.append(int(callspec.params[name]))
    full = seed_count(request.config) > REDUCED_SEEDS
    pool = CampaignPool(tmp_path_factory.mktemp("campaign"), list(dict.fromkeys(seeds)), full=full)
    request.config.stash[_POOL] = pool
    yield pool
    pool.close()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    pool = config.stash.get(_POOL, None)
    if pool is None:
        return
    results = pool.results()
    if not results:
        return
    wall = (pool.finished or time.monotonic()) - pool.started
    broken = [r.seed for r in results if r.violations]
    terminalreporter.write_line(
        f"fault campaign: {len(results)} schedules, {sum(len(r.runs) for r in results)} runs, "
        f"{sum(r.kills for r in results)} SIGKILLs, {sum(len(r.faults_fired) for r in results)} "
        "faults fired, "
        f"{sum(r.bytes_sent for r in results) / 1e6:,.0f} MB received by TikTok, "
        f"{wall:.0f} s wall; invariant violations in {len(broken)} schedules"
        + (f" (seeds {broken})" if broken else "")
    )
