"""Concurrency: 50 users x 3 videos with 50 ms added to every request, against ``--jobs``.

Every answer of every sandbox endpoint (creator_info, init, chunk PUT, status) waits 50 ms
before it is sent (``delay`` faults on every call), standing in for the round trip to TikTok
that loopback lacks. Each user costs creator_info once, then per video an init, one chunk PUT
and one status fetch (``processing_polls=0``): 10 round trips, 0.5 s. The run use case
(``runner.run_manifest``, a fresh home, the system clock) posts the 150 small videos with each
``--jobs`` value; the wall time is compared with ``--jobs 1``, and with the ideal: users are
spread over the jobs, so ``jobs`` parallel users finish in ``ceil(50 / jobs)`` rounds.

The sandbox runs in its own process. Videos are small (``--size``, default 5 KB) so bandwidth
never binds; pass a larger ``--size`` to see where it does.

    python benchmarks/concurrency.py                  # --jobs 1, 4, 16
    python benchmarks/concurrency.py --jobs 1 4 16 32 --latency 0.05

Goal (issue 9): the speed-up follows the job count until bandwidth binds. Not a test: run it by
hand and quote the figures.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

from harness import SandboxProcess, machine_line, mp4_head, write_manifest

from orchestrator.clock import SystemClock
from orchestrator.runner import run_manifest
from orchestrator.scheduler import RunOptions


def build(folder: Path, users: list[str], videos: int, size: int, tag: str) -> Path:
    """A manifest of distinct videos (the sandbox flags the same bytes posted twice)."""
    media = folder / tag
    media.mkdir()
    rows = []
    for user_index, user in enumerate(users):
        for video in range(videos):
            number = user_index * videos + video
            path = media / f"clip-{number:04d}.mp4"
            head = mp4_head(duration_s=5.0, tag=number % 200)
            path.write_bytes(head + os.urandom(max(16, size - len(head))))
            rows.append(
                {
                    "id": f"{tag}-{number:04d}",
                    "user_id": user,
                    "video_path": f"{tag}/{path.name}",
                    "description": f"Concurrency benchmark {number}",
                }
            )
    return write_manifest(folder / f"manifest-{tag}.json", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--videos", type=int, default=3, help="videos per user")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added per answer")
    parser.add_argument("--size", type=int, default=5_000, help="bytes per video")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()

    walls: dict[int, float] = {}
    clock = SystemClock()
    with (
        SandboxProcess(args.users, latency=args.latency) as sandbox,
        tempfile.TemporaryDirectory(prefix="orch-concurrency-") as scratch,
    ):
        folder = Path(scratch)
        users = [str(token["open_id"]) for token in sandbox.tokens]
        for jobs in args.jobs:
            manifest = build(folder, users, args.videos, args.size, f"jobs{jobs}")
            settings = sandbox.settings(folder / f"home-{jobs}", clock)
            started = time.perf_counter()
            report = run_manifest(
                settings,
                manifest,
                RunOptions(jobs=jobs, daily_direct_cap=1_000_000),
                clock=clock,
            )
            walls[jobs] = time.perf_counter() - started
            summary = report.summary()
            if summary["published"] != args.users * args.videos:
                raise SystemExit(f"--jobs {jobs}: {summary}")
            print(f"--jobs {jobs:>2}: {walls[jobs]:6.2f} s", flush=True)
    final = sandbox.final
    problems = final.get("errors", []) + final.get("violations", [])
    if problems:
        raise SystemExit(f"{len(problems)} sandbox errors or violations, first: {problems[:3]}")

    entries = args.users * args.videos
    trips = args.users * (1 + 3 * args.videos)
    print(machine_line())
    print(
        f"{args.users} users x {args.videos} videos of {args.size:,} bytes, "
        f"{args.latency * 1000:.0f} ms added to every answer; "
        f"{trips} round trips = {trips * args.latency:.1f} s of latency in series"
    )
    first = min(walls)
    base = walls[first]
    for jobs, wall in walls.items():
        # Users are spread over the jobs: the run lasts as many rounds as the busiest job has
        # users, so the ideal speed-up is the ratio of rounds.
        ideal = math.ceil(args.users / first) / math.ceil(args.users / jobs)
        speedup = base / wall
        print(
            f"--jobs {jobs:>2}: {wall:6.2f} s  {entries / wall:6.1f} entries/s  "
            f"speed-up {speedup:5.2f}x over --jobs {first} (ideal {ideal:5.2f}x, "
            f"{speedup / ideal:4.0%} of it)"
        )


if __name__ == "__main__":
    main()
