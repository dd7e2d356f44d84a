"""Manifest entries and creator_info answers built in memory, for unit tests of the gates."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator.manifest import Entry, Mode, PrivacyLevel
from orchestrator.media import ContentType, FileMedia, MediaInfo, PhotoMedia
from orchestrator.tiktok.client import CreatorInfo


def video_entry(**changes: Any) -> Entry:
    """A direct-mode video entry that breaks no creator setting of :func:`open_creator`."""
    entry = Entry(
        index=0,
        location="manifest.yaml:3",
        id="clip-1",
        user_id="user-1",
        mode=Mode.DIRECT,
        media=FileMedia(Path("/videos/clip.mp4")),
        caption="a clip #tag",
        title=None,
        privacy_level=PrivacyLevel.PUBLIC_TO_EVERYONE,
        disable_comment=False,
        disable_duet=False,
        disable_stitch=False,
        is_aigc=False,
        brand_content_toggle=False,
        brand_organic_toggle=False,
        video_cover_timestamp_ms=None,
        auto_add_music=False,
        publish_at=None,
        media_info=MediaInfo(ContentType.MP4, 1_000_000, duration_s=30.0),
    )
    return replace(entry, **changes)


def photo_entry(**changes: Any) -> Entry:
    """A direct-mode photo post of two images."""
    photos = PhotoMedia(("https://cdn.example.com/a.jpg", "https://cdn.example.com/b.jpg"))
    return video_entry(media=photos, media_info=None, title="photos", **changes)


def open_creator(**changes: Any) -> CreatorInfo:
    """A creator who allows everything: every privacy level, comments, duets, stitches, 10 min."""
    creator = CreatorInfo(
        username="creator",
        nickname="Creator",
        avatar_url="https://cdn.example.com/avatar.jpg",
        privacy_level_options=tuple(str(level) for level in PrivacyLevel),
        comment_disabled=False,
        duet_disabled=False,
        stitch_disabled=False,
        max_video_post_duration_sec=600,
    )
    return replace(creator, **changes)
