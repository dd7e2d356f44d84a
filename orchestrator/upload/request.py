"""What the upload engine is asked to post: the entry's source, mode and post info.

Plain values built by the scheduler from a manifest entry; no I/O (a :class:`FileSource` names a
file, it does not open it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from orchestrator.media import PhotoMedia, VideoUrlMedia
from orchestrator.tiktok.client import PostInfo, PostMode

__all__ = [
    "CONTENT_TYPES",
    "FileSource",
    "PhotoSource",
    "Source",
    "UploadRequest",
    "UrlSource",
]

CONTENT_TYPES: Final = frozenset({"video/mp4", "video/quicktime", "video/webm"})
"""The chunk Content-Types TikTok accepts (§5), one per container."""

# -- the entry to upload -----------------------------------------------------------------------


@dataclass(frozen=True)
class FileSource:
    """A local video sent with FILE_UPLOAD; ``content_type`` follows its container."""

    path: Path
    size: int
    content_type: str

    def __post_init__(self) -> None:
        if self.content_type not in CONTENT_TYPES:
            raise ValueError(
                f"content_type must be one of {sorted(CONTENT_TYPES)}, not {self.content_type!r}"
            )
        if self.size < 1:
            raise ValueError("a video file has at least one byte")


# TikTok pulls these itself; the manifest's media values are exactly what an init needs.
UrlSource = VideoUrlMedia
"""A video TikTok downloads itself (PULL_FROM_URL) from a verified https URL."""
PhotoSource = PhotoMedia
"""A photo post's images (PULL_FROM_URL only) and which one is the cover."""


Source = FileSource | UrlSource | PhotoSource


@dataclass(frozen=True)
class UploadRequest:
    """Everything the engine needs to post one entry; ``label`` names it in log lines."""

    open_id: str
    mode: PostMode
    source: Source
    post_info: PostInfo
    label: str = ""

    @property
    def name(self) -> str:
        """How log lines name this entry."""
        return self.label or self.open_id
