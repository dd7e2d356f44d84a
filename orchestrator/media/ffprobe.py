"""ffprobe, when it is installed: measure what the built-in readers could not.

What this module must not do: let a missing or hanging ffprobe fail a check (its values are
then only unknown), or let a file name be read as an ffprobe option or protocol.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

from orchestrator.errors import MediaError
from orchestrator.media.model import Measurement

FFPROBE_TIMEOUT_S = 30.0


def run_ffprobe(
    path: Path, executable: str, *, timeout_s: float = FFPROBE_TIMEOUT_S
) -> Measurement:
    """Measure the first video stream with ffprobe (JSON output, bounded in time).

    Raises MediaError when ffprobe reads the file and finds it broken or without video; a
    missing or hanging ffprobe only leaves the values unknown.
    """
    command = [
        executable,
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        "-select_streams",
        "v:0",
        # "file:" keeps ffprobe from reading a protocol or option out of an odd file name.
        f"file:{path}",
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            timeout=timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return _ffprobe_gap(f"ffprobe did not answer within {timeout_s:g} s")
    except OSError as exc:
        return _ffprobe_gap(f"ffprobe could not be run ({exc.strerror or type(exc).__name__})")
    stderr = done.stderr.decode("utf-8", errors="replace").strip()
    if done.returncode != 0:
        reason = stderr.splitlines()[-1] if stderr else f"exit status {done.returncode}"
        raise MediaError(
            f"cannot be read by ffprobe: {reason.removeprefix(f'file:{path}: ')}",
            hint="the file is damaged or not a video; export it again",
        )
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        return _ffprobe_gap("ffprobe gave an answer that is not JSON")
    return _parse_ffprobe(answer)


def _ffprobe_gap(why: str) -> Measurement:
    return Measurement(gaps=tuple((what, why) for what in ("duration", "size", "frame rate")))


def _parse_ffprobe(answer: object) -> Measurement:
    if not isinstance(answer, dict):
        return _ffprobe_gap("ffprobe gave an unexpected answer")
    streams = answer.get("streams")
    stream = streams[0] if isinstance(streams, list) and streams else None
    if not isinstance(stream, dict) or stream.get("codec_type", "video") != "video":
        raise MediaError(
            "has no video stream (ffprobe found none)", hint="post a file with a video track"
        )
    file_format = answer.get("format")
    duration = _positive_float(stream.get("duration"))
    if duration is None and isinstance(file_format, dict):
        duration = _positive_float(file_format.get("duration"))
    width = _positive_int(stream.get("width"))
    height = _positive_int(stream.get("height"))
    if width is not None and height is not None and _ffprobe_rotation(stream) % 180 == 90:
        width, height = height, width
    frame_rate = _ratio(stream.get("avg_frame_rate")) or _ratio(stream.get("r_frame_rate"))
    gaps = []
    if duration is None:
        gaps.append(("duration", "ffprobe could not tell the duration"))
    if width is None or height is None:
        gaps.append(("size", "ffprobe could not tell the picture size"))
        width = height = None
    if frame_rate is None:
        gaps.append(("frame rate", "ffprobe could not tell the frame rate"))
    return Measurement(duration, width, height, frame_rate, tuple(gaps))


def _ffprobe_rotation(stream: dict[str, object]) -> int:
    side_data = stream.get("side_data_list")
    if isinstance(side_data, list):
        for item in side_data:
            if isinstance(item, dict) and "rotation" in item:
                return abs(_int_or_zero(item["rotation"]))
    tags = stream.get("tags")
    if isinstance(tags, dict) and "rotate" in tags:
        return abs(_int_or_zero(tags["rotate"]))
    return 0


def _int_or_zero(value: object) -> int:
    try:
        return int(float(str(value)))
    except ValueError:
        return 0


def _positive_float(value: object) -> float | None:
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _ratio(value: object) -> float | None:
    if not isinstance(value, str) or "/" not in value:
        return None
    numerator, _, denominator = value.partition("/")
    try:
        top, bottom = int(numerator), int(denominator)
    except ValueError:
        return None
    return top / bottom if top > 0 and bottom > 0 else None
