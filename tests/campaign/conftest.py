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
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.campaign.harness import SeedResult, play
from tests.campaign.schedule import (
    GENERATOR,
    REDUCED_SEEDS,
    REDUCED_WORKER_SEEDS,
    generate,
)
from tests.campaign.workers import WorkersResult

WORKERS = 2
"""Seeds played at once: each mostly waits on its child process and the sandbox."""


def seed_count(config: pytest.Config) -> int:
    """How many seeds this session plays (1..N)."""
    option = config.getoption("campaign_seeds", default=None)
    if option is None:
        option = int(os.environ.get("CAMPAIGN_SEEDS", REDUCED_SEEDS))
    return max(1, int(option))


def worker_seed_count(config: pytest.Config) -> int:
    """How many paused-worker seeds this session plays: a handful, a tenth of the full
    campaign's seeds."""
    count = seed_count(config)
    return (
        REDUCED_WORKER_SEEDS if count <= REDUCED_SEEDS else max(REDUCED_WORKER_SEEDS, count // 10)
    )


@dataclass(frozen=True)
class Regression:
    """A seed that once broke an invariant: the schedule generator's version and mode it was
    found with, what it found, and whether replaying it waits out a real minute (``slow``:
    full campaign only)."""

    version: int
    full: bool
    found: str
    slow: bool = False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    count = seed_count(metafunc.config)
    if "seed" in metafunc.fixturenames:
        metafunc.parametrize("seed", range(1, count + 1))
    if "worker_seed" in metafunc.fixturenames:
        metafunc.parametrize("worker_seed", range(1, worker_seed_count(metafunc.config) + 1))
    if "regression" in metafunc.fixturenames:
        regressions: dict[int, Regression] = metafunc.module.REGRESSIONS
        full = count > REDUCED_SEEDS
        seeds = [seed for seed, found in sorted(regressions.items()) if full or not found.slow]
        metafunc.parametrize("regression", seeds)


_Key = tuple[int, int, bool]  # (seed, generator version, full campaign)


class CampaignPool:
    """Plays the session's seeds in the background; hands out each seed's result."""

    def __init__(self, root: Path, schedules: list[_Key], *, full: bool) -> None:
        self._root = root
        self.full = full
        self._lock = threading.Lock()
        self._futures: dict[_Key, Future[SeedResult]] = {}
        self._executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="seed")
        self.started = time.monotonic()
        self.finished: float | None = None
        for key in schedules:
            self._submit(key)

    def _submit(self, key: _Key) -> Future[SeedResult]:
        with self._lock:
            future = self._futures.get(key)
            if future is None:
                future = self._executor.submit(self._play, key)
                self._futures[key] = future
            return future

    def _play(self, key: _Key) -> SeedResult:
        seed, version, full = key
        folder = self._root / f"seed-{seed}-v{version}{'-full' if full else ''}"
        folder.mkdir(parents=True)
        return play(generate(seed, full=full, version=version), folder)

    def result(
        self, seed: int, *, version: int = GENERATOR, full: bool | None = None
    ) -> SeedResult:
        """The result of ``seed`` (this session's mode unless ``full`` says otherwise)."""
        key = (seed, version, self.full if full is None else full)
        result = self._submit(key).result()
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
    full = seed_count(request.config) > REDUCED_SEEDS
    schedules: list[_Key] = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        if "seed" in callspec.params:
            schedules.append((int(callspec.params["seed"]), GENERATOR, full))
        if "regression" in callspec.params:
            from tests.campaign.test_campaign import REGRESSIONS

            found = REGRESSIONS[callspec.params["regression"]]
            schedules.append((int(callspec.params["regression"]), found.version, found.full))
    pool = CampaignPool(
        tmp_path_factory.mktemp("campaign"), list(dict.fromkeys(schedules)), full=full
    )
    request.config.stash[_POOL] = pool
    yield pool
    pool.close()


_WORKERS = pytest.StashKey[list[WorkersResult]]()


@pytest.fixture(scope="session")
def worker_results(request: pytest.FixtureRequest) -> list[WorkersResult]:
    """The paused-worker seeds' results, for the session's summary."""
    results: list[WorkersResult] = []
    request.config.stash[_WORKERS] = results
    return results


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    workers = config.stash.get(_WORKERS, [])
    if workers:
        broken_workers = [r.seed for r in workers if r.violations]
        terminalreporter.write_line(
            f"paused workers (PostgreSQL): {len(workers)} schedules, "
            f"{sum(r.workers for r in workers)} workers, "
            f"{sum(r.stopped for r in workers)} SIGSTOPs past the lease "
            f"({sum(r.killed for r in workers)} killed while stopped, "
            f"{sum(r.terminated_sessions > 0 for r in workers)} with sessions terminated), "
            f"{sum(r.fenced for r in workers)} claims found taken over, "
            f"{sum(r.overlaps for r in workers)} in-flight PUTs of a paused worker overlapping "
            "the new holder's, "
            f"{sum(r.seconds for r in workers):.0f} s; invariant violations in "
            f"{len(broken_workers)} schedules"
            + (f" (seeds {broken_workers})" if broken_workers else "")
        )
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
        f"{sum(r.kills for r in results)} SIGKILLs, "
        f"{sum(r.stops for r in results)} SIGSTOPs ({sum(r.killed_while_stopped for r in results)}"
        f" killed while stopped, {sum(r.clock_jumps for r in results)} with TikTok's clock "
        "moved on), "
        f"{sum(r.damaged_runs for r in results)} damaged-store runs, "
        f"{sum(len(r.faults_fired) for r in results)} faults fired, "
        f"{sum(r.bytes_sent for r in results) / 1e6:,.0f} MB received by TikTok, "
        f"{wall:.0f} s wall; invariant violations in {len(broken)} schedules"
        + (f" (seeds {broken})" if broken else "")
    )
