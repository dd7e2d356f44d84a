"""What a media source is and what a probe found: the three sources an entry can have, the
containers TikTok accepts, a reader's measurement, a probed file, and TikTok's media limits
(tiktok-api.md §5) judged against it.

What this module must not do: read files (the readers and probe.py do). Values only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from orchestrator.tiktok.chunks import MAX_VIDEO

# tiktok-api.md §5: "Video ≤ 4 GB", read as 4 * 10**9 bytes, the stricter reading, as §10 does
# for "MB": the planner (tiktok/chunks.py) and validation share one limit.
MAX_VIDEO_BYTES = MAX_VIDEO
# tiktok-api.md §5 media limits. The duration limit here is the API maximum; each creator's own
# maximum (creator_info.max_video_post_duration_sec) is compared later, with the token at hand.
MIN_FRAME_RATE = 23.0
MAX_FRAME_RATE = 60.0
MIN_SIDE_PX = 360
MAX_SIDE_PX = 4096
MAX_DURATION_S = 600.0


class ContentType(StrEnum):
    """The containers TikTok accepts, as the Content-Type sent with each chunk."""

    MP4 = "video/mp4"
    QUICKTIME = "video/quicktime"
    WEBM = "video/webm"


# -- media sources (an entry's media is exactly one of these) -------------------------------------


@dataclass(frozen=True)
class FileMedia:
    """A local video file, sent with FILE_UPLOAD. ``path`` is absolute and resolved."""

    path: Path


@dataclass(frozen=True)
class VideoUrlMedia:
    """A video TikTok pulls from an https URL on a verified domain (PULL_FROM_URL)."""

    url: str


@dataclass(frozen=True)
class PhotoMedia:
    """A photo post: 1-35 https image URLs TikTok pulls, and the 0-based cover index."""

    urls: tuple[str, ...]
    cover_index: int = 0


Media = FileMedia | VideoUrlMedia | PhotoMedia


@dataclass(frozen=True)
class Measurement:
    """What a reader measured; ``None`` where it could not, with the reason in ``gaps``."""

    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    gaps: tuple[tuple[str, str], ...] = ()

    def missing(self) -> tuple[str, ...]:
        """Names of the quantities still unknown: duration, size, frame rate."""
        names = []
        if self.duration_s is None:
            names.append("duration")
        if self.width is None or self.height is None:
            names.append("size")
        if self.frame_rate is None:
            names.append("frame rate")
        return tuple(names)

    def reason(self, what: str) -> str | None:
        return next((why for name, why in self.gaps if name == what), None)

    def filled_from(self, other: Measurement) -> Measurement:
        """This measurement with its unknowns taken from ``other`` (ours win where both know)."""
        has_size = self.width is not None and self.height is not None
        return Measurement(
            duration_s=self.duration_s if self.duration_s is not None else other.duration_s,
            width=self.width if has_size else other.width,
            height=self.height if has_size else other.height,
            frame_rate=self.frame_rate if self.frame_rate is not None else other.frame_rate,
            gaps=other.gaps + self.gaps,
        )


@dataclass(frozen=True)
class LimitViolation:
    """A measured value outside TikTok's media limits, with the fix."""

    message: str
    fix: str


@dataclass(frozen=True)
class MediaInfo:
    """A video file as probed: container, size in bytes, and what could be measured.

    ``unchecked`` holds one sentence per limit that could not be checked and why; those are
    notes for the user, not errors (TikTok itself will judge the file).
    """

    content_type: ContentType
    size: int
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    probed_with: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()

    def limit_violations(self) -> tuple[LimitViolation, ...]:
        """Every known value outside TikTok's limits (tiktok-api.md §5)."""
        found = []
        if self.duration_s is not None and self.duration_s > MAX_DURATION_S:
            found.append(
                LimitViolation(
                    f"lasts {self.duration_s:.1f} s; the API accepts at most "
                    f"{MAX_DURATION_S:.0f} s (10 min)",
                    "trim it to 10 minutes or less",
                )
            )
        if self.frame_rate is not None and not (
            MIN_FRAME_RATE <= round(self.frame_rate, 2) <= MAX_FRAME_RATE
        ):
            found.append(
                LimitViolation(
                    f"runs at {self.frame_rate:.3g} fps; TikTok accepts "
                    f"{MIN_FRAME_RATE:.0f} to {MAX_FRAME_RATE:.0f} fps",
                    "re-encode it at 24, 25, 30 or 60 fps (e.g. `ffmpeg -i IN -r 30 OUT.mp4`)",
                )
            )
        if self.width is not None and self.height is not None:
            sides = (self.width, self.height)
            if not all(MIN_SIDE_PX <= side <= MAX_SIDE_PX for side in sides):
                found.append(
                    LimitViolation(
                        f"is {self.width}x{self.height} px; TikTok accepts "
                        f"{MIN_SIDE_PX} to {MAX_SIDE_PX} px on each side",
                        "scale it, e.g. to 720x1280 or 1080x1920",
                    )
                )
        return tuple(found)
