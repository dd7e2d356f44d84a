"""Benchmark: validate a 10,000-entry manifest whose entries share a few video files.

Generates the manifest (JSON, and the same as YAML) and small MP4/MOV/WebM files in a temporary
folder, then times ``load_manifest`` (parse, schema, semantic checks, one probe per file) over
several runs and prints the best and median times, wall and CPU (``time.process_time``, which
other processes on a busy machine inflate less). Offline; needs no ffmpeg.

    python benchmarks/validate_10k.py [--entries N] [--files K] [--runs R] [--yaml]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.manifest import load_manifest  # noqa: E402
from orchestrator.media import Prober  # noqa: E402
from tests import media_factory  # noqa: E402


def make_videos(folder: Path, count: int) -> list[str]:
    folder.mkdir()
    names = []
    for index in range(count):
        kind = index % 3
        name = f"clip-{index}.{['mp4', 'mov', 'webm'][kind]}"
        seconds = 4 + index % 50  # distinct files, all within TikTok's limits
        if kind == 2:
            data = media_factory.webm(duration_s=seconds)
        else:
            brand = b"qt  " if kind == 1 else b"isom"
            track = media_factory.Track(duration_s=seconds, frames=30 * seconds)
            data = media_factory.mp4(
                brand=brand, tracks=(track,), duration_s=seconds, mdat_bytes=64_000 + index
            )
        (folder / name).write_bytes(data)
        names.append(f"videos/{name}")
    return names


def make_manifest(folder: Path, entries: int, videos: list[str], as_yaml: bool) -> Path:
    rows = []
    for index in range(entries):
        row: dict[str, object] = {
            "id": f"post-{index:05d}",
            "user_id": f"creator-{index % 12}",
            "video_path": videos[index % len(videos)],
            "description": f"Daily clip number {index} — behind the scenes ✨",
            "tags": ["daily", "#studio", f"week{index // 70}"],
            "privacy_level": "SELF_ONLY",
        }
        if index % 4 == 0:
            row["mode"] = "inbox"
        if index % 2:
            row["publish_at"] = "2026-11-22T18:00:00Z"
        rows.append(row)
    document = {"version": 1, "defaults": {"disable_duet": True}, "entries": rows}
    if as_yaml:
        import yaml

        path = folder / "manifest.yaml"
        path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
    else:
        path = folder / "manifest.json"
        path.write_text(json.dumps(document, ensure_ascii=False, indent=2))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--yaml", action="store_true", help="also time the same manifest as YAML")
    options = parser.parse_args()
    prober = Prober(ffprobe=None)  # the built-in readers: the same work whatever is installed
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        videos = make_videos(folder / "videos", options.files)
        formats = [False, True] if options.yaml else [False]
        for as_yaml in formats:
            path = make_manifest(folder, options.entries, videos, as_yaml)
            times, cpu_times = [], []
            for _ in range(options.runs):
                started, cpu_started = time.perf_counter(), time.process_time()
                manifest = load_manifest(path, prober=prober)
                times.append(time.perf_counter() - started)
                cpu_times.append(time.process_time() - cpu_started)
            print(
                f"{path.name}: {len(manifest.entries)} entries, {options.files} files, "
                f"{path.stat().st_size / 1024:.0f} KiB: best {min(times) * 1000:.0f} ms, "
                f"median {statistics.median(times) * 1000:.0f} ms over {options.runs} runs "
                f"(CPU best {min(cpu_times) * 1000:.0f} ms, "
                f"median {statistics.median(cpu_times) * 1000:.0f} ms)"
            )
            print(f"  {manifest.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
