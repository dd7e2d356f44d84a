"""Peak memory of a whole ``run`` process: does RSS stay flat from a 10 MB to a 4 GB video?

Each size is posted by a fresh ``python -m orchestrator run`` process (the real command: click,
validation and probing, the token store, the journal, the upload engine, the report), in a
fresh home seeded with a sandbox user's tokens, against the sandbox in another process (rate
limits off, the first status fetch terminal). The figure is the process's peak resident set
(``ru_maxrss`` from ``wait4``: the kernel's high-water mark for the whole process, threads and
libraries included). Files are valid MP4s that are sparse after their head, so no disk or page
cache is needed to make them (page cache is not counted in a process's RSS anyway); they live on
tmpfs by default.

    python benchmarks/memory.py                  # 10 MB, 1 GiB and 4,000,000,000 bytes

4,000,000,000 bytes is the largest video TikTok takes under the stricter reading of "4 GB"
(the manifest refuses anything larger). Goals (issue 9): peak RSS <= 64 MiB, growing < 4 MiB
from the smallest to the largest file. Linux only. Not a test: run it by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import MIB, SandboxProcess, child_env, machine_line, write_manifest, write_sparse_mp4

from orchestrator.clock import SystemClock

SIZES = (10_000_000, 1024**3, 4_000_000_000)
GOAL_PEAK_MIB = 64.0
GOAL_GROWTH_MIB = 4.0


def run_peak(command: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run ``command``; its exit status and peak RSS in bytes (``ru_maxrss`` is in KiB)."""
    with (cwd / "stderr.txt").open("w") as stderr:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=stderr
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss * 1024, (cwd / "stderr.txt").read_text()


def measure(size: int, folder: Path, sandbox: SandboxProcess) -> dict[str, object]:
    """Post one ``size``-byte video with a fresh ``run`` process; its peak RSS and report."""
    work = folder / f"size-{size}"
    work.mkdir()
    sandbox.settings(work / "home", SystemClock())
    write_sparse_mp4(work / "video.mp4", size)
    user = sandbox.tokens[0]["open_id"]
    manifest = write_manifest(
        work / "manifest.json",
        [{"id": f"memory-{size}", "user_id": user, "video_path": "video.mp4"}],
    )
    env = child_env(
        HOME=str(work),
        TIKTOK_CLIENT_KEY=sandbox.client_key,
        TIKTOK_CLIENT_SECRET=sandbox.client_secret,
    )
    command = [
        sys.executable, "-m", "orchestrator",
        "--home", str(work / "home"), "--api-base", sandbox.base_url,
        "run", str(manifest), "--no-progress", "--report", str(work / "report.json"),
    ]  # fmt: skip
    peak, stderr = run_peak(command, env, work)
    report = json.loads((work / "report.json").read_text())
    entry = report["entries"][0]
    if entry["status"] != "published" or entry["bytes"] != size:
        raise SystemExit(f"{size:,} bytes: not published ({entry}); stderr:\n{stderr}")
    (work / "video.mp4").unlink()
    return {"peak": peak, "publish_id": entry["publish_id"], "duration": entry["duration_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=list(SIZES),
        help="video sizes in bytes (default: 10 MB, 1 GiB, 4,000,000,000)",
    )
    parser.add_argument(
        "--dir",
        default="/dev/shm",
        help="where the files go (default /dev/shm: a sparse file on a disk file system reads "
        "its holes slowly, which would time the file system, not us)",
    )
    args = parser.parse_args()

    results: list[tuple[int, dict[str, object]]] = []
    with (
        SandboxProcess(1) as sandbox,
        tempfile.TemporaryDirectory(dir=args.dir, prefix="orch-mem-") as scratch,
    ):
        for size in args.sizes:
            results.append((size, measure(size, Path(scratch), sandbox)))
    final = sandbox.final

    held = {p["id"]: p for p in final.get("publishes", []) if p["completed"]}
    wrong = [f["publish_id"] for s, f in results if held.get(f["publish_id"], {}).get("bytes") != s]
    if wrong or final.get("errors"):
        raise SystemExit(f"uploads incomplete: {wrong}; sandbox errors: {final.get('errors')}")

    print(machine_line())
    for size, figures in results:
        peak = figures["peak"]
        duration = figures["duration"]
        assert isinstance(peak, int)
        assert isinstance(duration, float | int)
        rate = f"{size / duration / 1e6:7.1f} MB/s" if duration else ""
        print(f"{size:>15,} bytes: peak RSS of the run process {peak / MIB:6.1f} MiB   {rate}")
    peaks = [int(str(figures["peak"])) for _, figures in results]
    growth = (peaks[-1] - peaks[0]) / MIB
    largest = max(peaks) / MIB
    print(
        f"peak RSS, largest: {largest:.1f} MiB (goal <= {GOAL_PEAK_MIB:.0f} MiB: "
        f"{'met' if largest <= GOAL_PEAK_MIB else 'NOT met'})"
    )
    print(
        f"growth from {results[0][0]:,} to {results[-1][0]:,} bytes: {growth:+.1f} MiB "
        f"(goal < {GOAL_GROWTH_MIB:.0f} MiB: {'met' if growth < GOAL_GROWTH_MIB else 'NOT met'})"
    )
    print("every upload complete at the sandbox with the file's size")


if __name__ == "__main__":
    main()
