"""Start-up: ``--help`` and ``validate`` of a 10,000-entry manifest, as whole processes.

Each command runs as a fresh ``python -m orchestrator`` process and is timed from spawn to
exit (wall clock), ``--runs`` times; the median is the figure. ``python -c pass`` is timed the
same way: the interpreter's own floor, which no change of ours can go below. The manifest is
the one ``validate_10k.py`` builds (10,000 entries over 3 small videos, half of them scheduled),
as JSON and as YAML; validation is offline (ffprobe is used for the 3 files if installed).

    python benchmarks/startup.py

Goals (issue 9): ``--help`` < 0.3 s; ``validate`` of 10,000 entries < 1 s. Not a test: run it by
hand and quote the figures.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import REPO, child_env, machine_line
from validate_10k import make_manifest, make_videos

GOAL_HELP = 0.3
GOAL_VALIDATE = 1.0


def timed(command: list[str], runs: int) -> list[float]:
    """Wall seconds of ``command`` per run, after one untimed warm-up (disk cache)."""
    env = child_env()
    subprocess.run(command, check=True, capture_output=True, env=env, cwd=REPO)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=REPO)
        times.append(time.perf_counter() - started)
    return times


def show(label: str, times: list[float], goal: float | None) -> None:
    median = statistics.median(times)
    line = f"{label:42} median {median:6.3f} s  (min {min(times):.3f}, max {max(times):.3f})"
    if goal is not None:
        line += f"  goal < {goal:g} s: {'met' if median < goal else 'NOT met'}"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--entries", type=int, default=10_000)
    args = parser.parse_args()
    python = sys.executable
    print(machine_line())
    show("python -c pass (interpreter floor)", timed([python, "-c", "pass"], args.runs), None)
    show(
        "python -m orchestrator --help",
        timed([python, "-m", "orchestrator", "--help"], args.runs),
        GOAL_HELP,
    )
    with tempfile.TemporaryDirectory(prefix="orch-startup-") as scratch:
        folder = Path(scratch)
        videos = make_videos(folder / "videos", 3)
        for as_yaml in (False, True):
            manifest = make_manifest(folder, args.entries, videos, as_yaml)
            show(
                f"validate {manifest.name} ({args.entries:,} entries)",
                timed([python, "-m", "orchestrator", "validate", str(manifest)], args.runs),
                GOAL_VALIDATE,
            )


if __name__ == "__main__":
    main()
