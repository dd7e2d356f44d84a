"""The manifest's values: an entry as the run sees it, the manifest, a problem, the check's
outcome, the vocabularies (mode, privacy level, form), and an entry's identity in the journal
(SPEC §5), a pure function of its values.

What this module must not do: read files or parse documents (documents.py), or judge values
(schema.py, checks.py). It holds values and pure functions only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from orchestrator.media import ContentType, Media, MediaInfo, PhotoMedia

DocPath = tuple[str | int, ...]  # a location in the document: ("entries", 3, "privacy_level")


class Mode(StrEnum):
    """direct: publish now; inbox: send to the creator's inbox as a draft."""

    DIRECT = "direct"
    INBOX = "inbox"


class PrivacyLevel(StrEnum):
    """Who may see a post (one of the creator's ``privacy_level_options``)."""

    PUBLIC_TO_EVERYONE = "PUBLIC_TO_EVERYONE"
    MUTUAL_FOLLOW_FRIENDS = "MUTUAL_FOLLOW_FRIENDS"
    FOLLOWER_OF_CREATOR = "FOLLOWER_OF_CREATOR"
    SELF_ONLY = "SELF_ONLY"


class ManifestForm(StrEnum):
    """Which of the two manifest forms a file uses."""

    VERSION_1 = "version 1"
    LEGACY = "legacy"


# -- values ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest: where, what, and how to fix it."""

    location: str
    message: str
    fix: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.line is not None:
            where = f" (line {self.line}" + (
                f", column {self.column})" if self.column is not None else ")"
            )
        text = f"{self.location}: {self.message}{where}"
        return f"{text}; fix: {self.fix}" if self.fix else text


@dataclass(frozen=True)
class Entry:
    """One post for one user, normalised: defaults applied, paths resolved, caption built.

    ``caption`` is the text TikTok shows: for a video, ``post_info.title`` (description and
    tags); for a photo post, ``post_info.description`` (the same), next to ``title``.
    ``media_info`` is the probe of a file source (None for URL and photo sources).
    """

    index: int
    location: str
    id: str | None
    user_id: str
    mode: Mode
    media: Media
    caption: str
    title: str | None
    privacy_level: PrivacyLevel
    disable_comment: bool
    disable_duet: bool
    disable_stitch: bool
    is_aigc: bool
    brand_content_toggle: bool
    brand_organic_toggle: bool
    video_cover_timestamp_ms: int | None
    auto_add_music: bool
    publish_at: datetime | None
    media_info: MediaInfo | None = None
    creator_review: bool = False
    """``review: creator``: the post waits for its creator's confirmation (``review.py``)."""

    @property
    def is_photo(self) -> bool:
        return isinstance(self.media, PhotoMedia)

    @property
    def content_type(self) -> ContentType | None:
        """Content-Type for the chunk PUTs of a file source."""
        return None if self.media_info is None else self.media_info.content_type

    @property
    def duration_s(self) -> float | None:
        """The video's duration when it could be measured (compare with creator_info's max)."""
        return None if self.media_info is None else self.media_info.duration_s


@dataclass(frozen=True)
class Manifest:
    """A validated manifest: where it came from, its form, its entries in file order, and notes
    about checks that could not be made (e.g. a frame rate without ffprobe)."""

    path: Path
    form: ManifestForm
    entries: tuple[Entry, ...]
    notes: tuple[str, ...] = ()

    @property
    def users(self) -> tuple[str, ...]:
        """The distinct user_ids, in order of first appearance."""
        return tuple(dict.fromkeys(entry.user_id for entry in self.entries))

    def summary(self) -> str:
        """One line: ``ok: N entries for M users: X direct, Y inbox, Z photo; W scheduled``."""
        photos = sum(1 for entry in self.entries if entry.is_photo)
        videos = [entry for entry in self.entries if not entry.is_photo]
        direct = sum(1 for entry in videos if entry.mode is Mode.DIRECT)
        scheduled = sum(1 for entry in self.entries if entry.publish_at is not None)
        return (
            f"ok: {count_of(len(self.entries), 'entry', 'entries')} for "
            f"{count_of(len(self.users), 'user', 'users')}: {direct} direct, "
            f"{len(videos) - direct} inbox, {photos} photo; {scheduled} scheduled"
        )


@dataclass(frozen=True)
class ManifestCheck:
    """The outcome of checking a manifest: every problem, notes, and the manifest if valid."""

    path: Path
    problems: tuple[Problem, ...]
    notes: tuple[str, ...]
    manifest: Manifest | None


def count_of(number: int, one: str, many: str) -> str:
    """``1 entry``, ``2 entries``: a number and its noun."""
    return f"{number} {one if number == 1 else many}"


# -- identity (SPEC §5) ---------------------------------------------------------------------------


def entry_identity(entry: Entry, fingerprint: str) -> str:
    """The journal's key for an entry: its ``id`` if it has one, else ``sha256:`` over
    (user_id, mode, media fingerprint). ``fingerprint`` comes from
    :func:`orchestrator.media.media_fingerprint` and is ignored when the entry has an id.

    The caption is deliberately not part of it: fixing a typo must not post the video again.
    Explicit ids cannot contain ':' (schema), so they never collide with derived identities.
    """
    if entry.id is not None:
        return entry.id
    return content_identity(entry.user_id, entry.mode, fingerprint)


def content_identity(user_id: str, mode: Mode, fingerprint: str) -> str:
    """The identity an entry without an ``id`` has: ``sha256:`` over (user_id, mode, media
    fingerprint). An entry given an id later adopts the journal record kept under it."""
    material = json.dumps([user_id, str(mode), fingerprint], ensure_ascii=False)
    return "sha256:" + hashlib.sha256(material.encode("utf-8")).hexdigest()
