"""Probing a video file: check it is a regular file, sniff its container, measure it with the
built-in reader for that container, and fill what that could not measure from ffprobe.

What this module must not do: judge limits (:meth:`MediaInfo.limit_violations` does) or read
more than the sniffing head and the readers' budgets.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import MediaError
from orchestrator.media.ffprobe import FFPROBE_TIMEOUT_S, run_ffprobe
from orchestrator.media.isobmff import read_mp4
from orchestrator.media.model import ContentType, MediaInfo
from orchestrator.media.regular_file import check_regular_file, open_regular
from orchestrator.media.sniff import SNIFF_BYTES, sniff_container
from orchestrator.media.webm import read_webm

_FFMPEG_HINT = "install ffmpeg (which provides ffprobe) to check it"


@dataclass(frozen=True)
class Prober:
    """How video files are probed: the ``ffprobe`` executable (``None``: built-in readers only)
    and how long one ffprobe run may take."""

    ffprobe: str | None = None
    timeout_s: float = FFPROBE_TIMEOUT_S

    @classmethod
    def detect(cls) -> Prober:
        """Use ffprobe when it is on PATH."""
        return cls(ffprobe=shutil.which("ffprobe"))

    def probe(self, path: Path) -> MediaInfo:
        return probe_video(path, ffprobe=self.ffprobe, timeout_s=self.timeout_s)


def probe_video(
    path: Path, *, ffprobe: str | None = None, timeout_s: float = FFPROBE_TIMEOUT_S
) -> MediaInfo:
    """Check that ``path`` is a video TikTok can take and measure it.

    Raises MediaError when it cannot be posted at all (not a regular file, empty, over 4 GB, not
    MP4/MOV/WebM by its bytes, cut short, no video track). Limits are not judged here: see
    :meth:`MediaInfo.limit_violations`.
    """
    size = check_regular_file(path).st_size
    try:
        with open_regular(path) as file:
            content_type = sniff_container(file.read(SNIFF_BYTES))
            if content_type is ContentType.WEBM:
                measured, reader = read_webm(file, size), "built-in WebM reader"
            else:
                measured, reader = read_mp4(file, size), "built-in MP4 reader"
    except OSError as exc:
        raise MediaError(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    probed_with = [reader]
    if ffprobe is not None and measured.missing():
        measured = measured.filled_from(run_ffprobe(path, ffprobe, timeout_s=timeout_s))
        probed_with.append("ffprobe")
    notes = []
    for what in measured.missing():
        why = measured.reason(what) or "the file does not state it"
        notes.append(f"{what} not checked: {why}" + ("" if ffprobe else f"; {_FFMPEG_HINT}"))
    return MediaInfo(
        content_type=content_type,
        size=size,
        duration_s=measured.duration_s,
        width=measured.width,
        height=measured.height,
        frame_rate=measured.frame_rate,
        probed_with=tuple(probed_with),
        unchecked=tuple(notes),
    )
