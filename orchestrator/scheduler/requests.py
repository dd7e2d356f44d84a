"""An entry as the journal and TikTok see it: its kind and source text, the digest of what would
be sent, and the upload request handed to the engine (this module has nothing to do with the
``requests`` HTTP library; only ``transport`` imports that).

Pure functions of a manifest entry: no network, no journal, no clock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from orchestrator.manifest import Entry, Mode
from orchestrator.media import FileMedia, PhotoMedia, VideoUrlMedia
from orchestrator.report import EntryResult
from orchestrator.tiktok.client import PostInfo, PostMode
from orchestrator.upload import FileSource, PhotoSource, UploadRequest, UrlSource


def entry_kind(entry: Entry) -> str:
    """``file``, ``video_url`` or ``photo``: the journal's name for the entry's media."""
    if isinstance(entry.media, FileMedia):
        return "file"
    if isinstance(entry.media, VideoUrlMedia):
        return "video_url"
    return "photo"


def source_text(entry: Entry) -> str:
    """The entry's media as reports and the journal show it: a path, a URL or photo URLs."""
    media = entry.media
    if isinstance(media, FileMedia):
        return display_path(media.path)
    if isinstance(media, VideoUrlMedia):
        return media.url
    return " ".join(media.urls)


def report_source(result: EntryResult, entry: Entry, manifest_path: Path) -> EntryResult:
    """The result with a file's ``source`` as the manifest wrote it: relative to the
    manifest's folder (the journal keeps its own form), absolute when outside it."""
    media = entry.media
    if not isinstance(media, FileMedia):
        return result
    try:
        source = str(media.path.relative_to(manifest_path.resolve().parent))
    except ValueError:
        source = str(media.path)
    return replace(result, source=source)


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def request_digest(entry: Entry, fingerprint: str) -> str:
    """What would be sent, fingerprinted: a change lets a permanent failure be retried."""
    material = {
        "fingerprint": fingerprint,
        "mode": str(entry.mode),
        "caption": entry.caption,
        "title": entry.title,
        "privacy_level": str(entry.privacy_level),
        "disable_comment": entry.disable_comment,
        "disable_duet": entry.disable_duet,
        "disable_stitch": entry.disable_stitch,
        "is_aigc": entry.is_aigc,
        "brand_content_toggle": entry.brand_content_toggle,
        "brand_organic_toggle": entry.brand_organic_toggle,
        "video_cover_timestamp_ms": entry.video_cover_timestamp_ms,
        "auto_add_music": entry.auto_add_music,
        "cover_index": entry.media.cover_index if isinstance(entry.media, PhotoMedia) else None,
    }
    encoded = json.dumps(material, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def upload_request(entry: Entry) -> UploadRequest:
    """The upload engine's request for a validated entry: source, post info and mode."""
    media = entry.media
    source: FileSource | UrlSource | PhotoSource
    if isinstance(media, FileMedia):
        assert entry.media_info is not None, "a validated file entry has been probed"
        source = FileSource(media.path, entry.media_info.size, str(entry.media_info.content_type))
    else:
        source = media  # a URL or photo source is what the init sends, as the manifest has it
    if entry.is_photo:
        post_info = PostInfo(
            privacy_level=str(entry.privacy_level),
            title=entry.title or "",
            description=entry.caption,
            disable_comment=entry.disable_comment,
            brand_content_toggle=entry.brand_content_toggle,
            brand_organic_toggle=entry.brand_organic_toggle,
            auto_add_music=entry.auto_add_music,
        )
    else:
        post_info = PostInfo(
            privacy_level=str(entry.privacy_level),
            title=entry.caption,
            disable_comment=entry.disable_comment,
            disable_duet=entry.disable_duet,
            disable_stitch=entry.disable_stitch,
            video_cover_timestamp_ms=entry.video_cover_timestamp_ms,
            brand_content_toggle=entry.brand_content_toggle,
            brand_organic_toggle=entry.brand_organic_toggle,
            is_aigc=entry.is_aigc,
        )
    mode = PostMode.DIRECT if entry.mode is Mode.DIRECT else PostMode.INBOX
    return UploadRequest(entry.user_id, mode, source, post_info, label=entry.location)
