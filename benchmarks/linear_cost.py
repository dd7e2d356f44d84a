"""Cost against the work: 1,000 then 5,000 entries, the CPU-seconds ratio (issue 14, item 9).

Each size is a whole run (``runner.run_manifest``: validation, a fresh home's journal, token
decryption, creator_info, caps, init, one chunk PUT, status) of that many distinct small MP4
files over 50 users, against the sandbox serving from a child process (rate limits off, caps
out of the way, terminal on the first status poll), so the CPU time measured is the
orchestrator's alone. The client-side pacing TikTok requires (6 inits per user per minute)
runs on a :class:`ManualClock`, so it costs no wall time.

Figures: CPU seconds of this process per size (``time.process_time``), wall seconds, and the
ratio CPU(5,000) / CPU(1,000). Five times the work should cost about five times the CPU; the
goal is a ratio ≤ 5.2. Also the mean wall time per entry over the first and the last tenth of
each run (the cost that once grew through a run, from 1.0 to 8.8 ms per entry).

    python benchmarks/linear_cost.py                    # 1,000 and 5,000 entries, --jobs 4
    python benchmarks/linear_cost.py --sizes 500 2500 --jobs 8

Linux, Python 3.11. Not a test: run it by hand and quote the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from harness import SandboxProcess, machine_line, write_manifest, write_small_mp4

from orchestrator.clock import ManualClock
from orchestrator.manifest import Entry
from orchestrator.report import EntryResult
from orchestrator.runner import run_manifest
from orchestrator.scheduler import NullObserver, RunOptions
from orchestrator.settings import RunSettings

GOAL_RATIO = 5.2


class EntryTimes(NullObserver):
    """When each entry finished, on the wall clock (the run's own clock is a ManualClock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.finished: list[float] = []

    def entry_finished(self, entry: Entry, result: EntryResult) -> None:
        with self._lock:
            self.finished.append(time.perf_counter())


@contextlib.contextmanager
def gc_time(spent: list[float]) -> Iterator[None]:
    """Add the wall seconds the garbage collector runs to ``spent[0]``."""
    started: list[float] = []

    def note(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            spent[0] += time.perf_counter() - started.pop()

    gc.callbacks.append(note)
    try:
        yield
    finally:
        gc.callbacks.remove(note)


def build(folder: Path, entries: int, users: int) -> Path:
    videos = folder / "videos"
    videos.mkdir()
    rows = []
    for index in range(entries):
        write_small_mp4(videos / f"clip-{index:05d}.mp4", tag=index, payload=1024)
        rows.append(
            {
                "id": f"entry-{index:05d}",
                "user_id": f"bench-user-{index % users:02d}",
                "video_path": f"videos/clip-{index:05d}.mp4",
                "description": f"Linear cost benchmark clip {index}",
            }
        )
    return write_manifest(folder / "manifest.json", rows)


def measured_run(
    entries: int,
    users: int,
    jobs: int,
    *,
    around: contextlib.AbstractContextManager[None],
    observer: NullObserver | None = None,
) -> tuple[float, float]:
    """(CPU s, wall s) of one run of ``entries`` fresh entries over ``users`` against the sandbox
    in a child process, ``around`` entered for the run alone; exits unless every entry was
    published and the sandbox saw no error or violation."""
    clock = ManualClock(start=time.time())
    with (
        tempfile.TemporaryDirectory(prefix="orch-bench-") as scratch,
        SandboxProcess(users) as sandbox,
    ):
        folder = Path(scratch)
        manifest_path = build(folder, entries, users)
        settings = sandbox.settings(folder / "home", clock)
        options = RunOptions(jobs=jobs, daily_direct_cap=1_000_000, pending_inbox_cap=1_000_000)
        tunables = RunSettings(poll_first=0.01, poll_max=0.05)
        cpu_started = time.process_time()
        started = time.perf_counter()
        with around:
            report = run_manifest(
                settings, manifest_path, options, tunables=tunables, clock=clock, observer=observer
            )
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        final = sandbox.close()
    published = report.summary()["published"]
    if published != entries or final.get("errors") or final.get("violations"):
        raise SystemExit(
            f"expected {entries} published, got {report.summary()}; sandbox errors "
            f"{final.get('errors', [])[:3]}, violations {final.get('violations', [])[:3]}"
        )
    return cpu, wall


def run_once(entries: int, users: int, jobs: int) -> tuple[float, float, float, float, float]:
    """(CPU s, wall s, ms per entry over the first tenth, over the last tenth, seconds in the
    garbage collector) of one run."""
    collecting = [0.0]
    times = EntryTimes()
    cpu, wall = measured_run(entries, users, jobs, around=gc_time(collecting), observer=times)
    finished = sorted(times.finished)
    tenth = max(len(finished) // 10, 2)
    first = (finished[tenth - 1] - finished[0]) / (tenth - 1)
    last = (finished[-1] - finished[-tenth]) / (tenth - 1)
    return cpu, wall, first * 1000, last * 1000, collecting[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 5000], metavar="N")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args()
    print(machine_line())
    print(
        f"{args.users} users, --jobs {args.jobs}, sandbox in a child process (rate limits off, "
        "processing_polls=0), ManualClock for pacing, fresh home per size"
    )
    cpus = []
    for size in args.sizes:
        cpu, wall, first, last, collecting = run_once(size, args.users, args.jobs)
        cpus.append(cpu)
        print(
            f"{size:>6} entries: CPU {cpu:7.2f} s ({cpu / size * 1000:.2f} ms/entry), wall "
            f"{wall:7.2f} s (garbage collector {collecting:.2f} s); per entry, first tenth "
            f"{first:.2f} ms, last tenth {last:.2f} ms"
        )
    ratio = cpus[1] / cpus[0]
    work = args.sizes[1] / args.sizes[0]
    verdict = "met" if ratio <= GOAL_RATIO * work / 5 else "NOT met"
    print(
        f"CPU ratio {ratio:.2f} for {work:g}x the work "
        f"(goal <= {GOAL_RATIO * work / 5:.2f}: {verdict})"
    )


if __name__ == "__main__":
    main()
