"""Peak memory of an upload: does RSS stay flat from a 10 MB to a 2 GB file?

The sandbox runs in one child process; each upload runs in a fresh child process of its own
(``--measure``), which reports its ``VmHWM`` (peak resident set) from /proc when the upload is
done, with ``VmRSS`` after imports as the baseline. The files are sparse (no disk or page cache
needed to make them), uploaded as direct posts with the default chunk size and send block, the
whole engine in the loop: init, streamed chunk PUTs, one status fetch.

    python benchmarks/memory.py                          # 10 MB and 2 GB
    python benchmarks/memory.py --sizes 10000000 4000000000

Goals (issue 5): peak RSS ≤ 64 MiB, and the 2 GB upload's peak < 8 MiB above the 10 MB one's.
Linux only. Not a test: run it by hand and quote the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MIB = 1024 * 1024


def proc_status(field: str) -> int:
    """A memory field of /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def measure(path: str, base_url: str, token: str) -> None:
    """Child mode: upload ``path`` and print the process's memory figures as JSON."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(HERE))
    from throughput import Engine

    from orchestrator.tiktok.chunks import DEFAULT_CHUNK
    from orchestrator.transport import SEND_BLOCK

    engine = Engine(base_url, token)
    baseline = proc_status("VmRSS")
    seconds = engine.upload(Path(path), DEFAULT_CHUNK, SEND_BLOCK)
    print(
        json.dumps(
            {
                "baseline": baseline,
                "peak": proc_status("VmHWM"),
                "seconds": seconds,
                "publish_id": engine.publish_ids[-1],
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10_000_000, 2_000_000_000],
        help="file sizes in bytes (default: 10 MB and 2 GB)",
    )
    parser.add_argument("--dir", default=None, help="where the sparse files go (default: tmp)")
    parser.add_argument("--measure", nargs=3, metavar=("PATH", "BASE_URL", "TOKEN"))
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return

    sys.path.insert(0, str(HERE))
    from throughput import CHILD, cpu_model

    env = {"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    sandbox = subprocess.Popen(
        [sys.executable, "-c", CHILD, "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert sandbox.stdin is not None
    assert sandbox.stdout is not None
    results: list[tuple[int, dict[str, float]]] = []
    try:
        hello = json.loads(sandbox.stdout.readline())
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="orch-mem-") as scratch:
            for size in args.sizes:
                path = Path(scratch) / f"sparse-{size}.mp4"
                with path.open("wb") as handle:
                    handle.truncate(size)
                done = subprocess.run(
                    [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "--measure",
                        str(path),
                        hello["base_url"],
                        hello["token"],
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=env,
                    timeout=3600,
                )
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                results.append((size, figures))
                path.unlink()
    finally:
        sandbox.stdin.close()
        report = json.loads(sandbox.stdout.readline() or "{}")
        sandbox.wait(timeout=60)

    completed = {p["id"] for p in report.get("publishes", []) if p["completed"]}
    missing = [f["publish_id"] for _, f in results if f["publish_id"] not in completed]
    if missing or report.get("errors"):
        raise SystemExit(f"uploads incomplete: {missing}; sandbox errors: {report.get('errors')}")

    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    for size, figures in results:
        print(
            f"{size:>15,} bytes: baseline RSS {figures['baseline'] / MIB:6.1f} MiB, "
            f"peak RSS {figures['peak'] / MIB:6.1f} MiB, "
            f"{size / figures['seconds'] / 1e6:7.1f} MB/s"
        )
    smallest, largest = results[0][1]["peak"], results[-1][1]["peak"]
    print(
        f"peak growth from {results[0][0]:,} to {results[-1][0]:,} bytes: "
        f"{(largest - smallest) / MIB:+.1f} MiB (goal < 8 MiB); "
        f"largest peak {max(f['peak'] for _, f in results) / MIB:.1f} MiB (goal <= 64 MiB)"
    )


if __name__ == "__main__":
    main()
