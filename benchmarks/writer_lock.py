"""The SQLite writer against ``--jobs``: entries per second, and how much of the run the write
lock is held (issue 14, item 9's last point; benchmarks/README.md §6).

Each ``--jobs`` value is a whole run (``runner.run_manifest``) of 1,000 small MP4 files over 50
users against the sandbox serving from a child process, as in ``linear_cost.py``, in a fresh
home. Every connection the orchestrator opens is a ``sqlite3.Connection`` subclass that notes
when ``BEGIN IMMEDIATE`` returns (SQLite's write lock is taken) and when ``COMMIT`` or
``ROLLBACK`` returns (it is let go), so the same figure is measured whatever the store does
above SQLite: one transaction per write (before group commit) or one per batch of writes.

Figures per ``--jobs``: wall seconds, entries per second, the share of the wall time the write
lock is held, commits (and commits per entry), CPU seconds of this process.

    python benchmarks/writer_lock.py                       # 1,000 entries, --jobs 1 4 16
    python benchmarks/writer_lock.py --entries 500 --jobs 4
    python benchmarks/writer_lock.py --store-only       # the journal's writes alone, no run

``--store-only`` leaves out the run and the sandbox: ``--jobs`` threads write journal entries
as fast as they can, two synced transactions each (``Journal.begin`` for a URL entry, then a
``Failed``), so the figure is the store's own capacity for durable writes.

To compare with another checkout, run this file with ``PYTHONPATH`` pointing at it (the
script measures whichever ``orchestrator`` package it imports).

Linux, Python 3.11. Not a test: run it by hand and quote the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import machine_line
from linear_cost import measured_run

import orchestrator
from orchestrator.clock import ManualClock
from orchestrator.config import Settings
from orchestrator.store.journal import EntryMeta, Journal
from orchestrator.store.tokens import TokenStore
from orchestrator.upload.events import Failed


class WriteLock:
    """How long SQLite's write lock was held in all, and how many commits let it go."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._taken_at: float | None = None
        self.held = 0.0
        self.commits = 0

    def taken(self) -> None:
        with self._guard:
            self._taken_at = time.perf_counter()

    def released(self, *, committed: bool) -> None:
        with self._guard:
            if self._taken_at is not None:
                self.held += time.perf_counter() - self._taken_at
                self._taken_at = None
            self.commits += int(committed)


LOCK = WriteLock()


class TimedConnection(sqlite3.Connection):
    """A connection that reports to :data:`LOCK` when it takes and lets go of the write lock."""

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        cursor = super().execute(sql, parameters)
        if sql == "BEGIN IMMEDIATE":
            LOCK.taken()
        elif sql in ("COMMIT", "ROLLBACK"):
            LOCK.released(committed=sql == "COMMIT")
        return cursor


@contextlib.contextmanager
def timed_connections() -> Iterator[None]:
    original = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return original(*args, factory=TimedConnection, **kwargs)

    sqlite3.connect = connect  # type: ignore[assignment]
    try:
        yield
    finally:
        sqlite3.connect = original


@dataclass(frozen=True)
class Figures:
    wall: float
    cpu: float
    held: float
    commits: int


def run_once(entries: int, users: int, jobs: int) -> Figures:
    held, commits = LOCK.held, LOCK.commits
    cpu, wall = measured_run(entries, users, jobs, around=timed_connections())
    return Figures(wall, cpu, LOCK.held - held, LOCK.commits - commits)


def store_only(entries: int, jobs: int) -> Figures:
    """``jobs`` threads writing ``entries`` journal entries in all, two synced writes each."""
    clock = ManualClock(start=time.time())
    with (
        tempfile.TemporaryDirectory(prefix="orch-writer-") as scratch,
        timed_connections(),
        TokenStore.open(Settings(home=Path(scratch) / "home"), clock=clock) as store,
    ):
        journal = Journal(store.database, store.cipher, clock=clock, run_id="bench")
        failed = Failed("bench", "a benchmark failure", retryable=True)

        def write(thread: int) -> None:
            for index in range(thread, entries, jobs):
                identity = f"entry-{index:06d}"
                meta = EntryMeta(identity, None, "u1", "direct", "video_url", "s", "d", identity)
                journal.begin(meta)
                journal.record(identity, "u1", failed)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(jobs)]
        held, commits = LOCK.held, LOCK.commits
        cpu_started = time.process_time()
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    return Figures(wall, cpu, LOCK.held - held, LOCK.commits - commits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--store-only", action="store_true", help="journal writes alone")
    args = parser.parse_args()
    print(machine_line())
    what = " (--store-only: journal writes, no run)" if args.store_only else ""
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"orchestrator from {Path(orchestrator.__file__).parent}; {args.entries} entries, "
        f"{args.users} users{what}; load average {load}"
    )
    for jobs in args.jobs:
        if args.store_only:
            figures = store_only(args.entries, jobs)
        else:
            figures = run_once(args.entries, args.users, jobs)
        print(
            f"--jobs {jobs:>2}: wall {figures.wall:6.2f} s, "
            f"{args.entries / figures.wall:6.1f} entries/s, write lock held "
            f"{figures.held / figures.wall:5.1%} of the run, {figures.commits} commits "
            f"({figures.commits / args.entries:.2f} per entry), CPU {figures.cpu:6.2f} s",
            flush=True,
        )
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
