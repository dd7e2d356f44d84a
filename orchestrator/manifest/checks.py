"""The semantic pass: each entry normalised into an :class:`~orchestrator.manifest.model.Entry`,
and what a schema cannot say about a manifest.

The caption is built from description and tags and counted in UTF-16 units, as TikTok counts
it. Checked: exactly one media source; the file exists and is a regular MP4/MOV/WebM file within
TikTok's limits (probed once per distinct file); caption and title lengths; a timezone on
``publish_at``; two entries that would be the same post; and, given the journal, a video file
that is gone is only a note for an entry already posted.

The media source of each entry (which one, and a file's probe) is ``sources``' job; this module
checks the other fields and the manifest as a whole.

What this module must not do: measure or fingerprint a video itself (it asks the Prober and
orchestrator.media, once per distinct file), or report anything but through ``problems`` and
``notes``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from orchestrator.manifest.documents import Document
from orchestrator.manifest.model import (
    DocPath,
    Entry,
    ManifestForm,
    Mode,
    PrivacyLevel,
    Problem,
    content_identity,
)
from orchestrator.manifest.sources import PostedCheck, SourceChecks
from orchestrator.media import (
    FileMedia,
    Media,
    PhotoMedia,
    Prober,
    VideoUrlMedia,
    media_fingerprint,
)

CAPTION_MAX_UNITS = 2200  # video post_info.title (tiktok-api.md §4)
PHOTO_TITLE_MAX_UNITS = 90  # photo post_info.title (§6)
PHOTO_DESCRIPTION_MAX_UNITS = 4000  # photo post_info.description (§6)

_E = TypeVar("_E", bound=StrEnum)


# What an entry gets when neither it nor ``defaults`` says otherwise. SELF_ONLY is the only
# privacy an unaudited app may use, and the safe choice for the legacy form, which has no field
# for it.
BUILT_IN_DEFAULTS: Mapping[str, object] = MappingProxyType(
    {
        "mode": "direct",
        "privacy_level": "SELF_ONLY",
        "disable_comment": False,
        "disable_duet": False,
        "disable_stitch": False,
        "is_aigc": False,
        "brand_content_toggle": False,
        "brand_organic_toggle": False,
        "auto_add_music": False,
    }
)
_MEDIA_FIELDS = ("video_path", "video_url", "photo_urls")
_VIDEO_ONLY_FIELDS = ("video_cover_timestamp_ms", "disable_duet", "disable_stitch")
_PHOTO_ONLY_FIELDS = ("title", "photo_cover_index", "auto_add_music")
# Fields the inbox video endpoint does not take (it documents source_info only).
_POST_INFO_FIELDS = (
    "description",
    "tags",
    "privacy_level",
    "disable_comment",
    "disable_duet",
    "disable_stitch",
    "is_aigc",
    "brand_content_toggle",
    "brand_organic_toggle",
    "video_cover_timestamp_ms",
)


# -- the caption ----------------------------------------------------------------------------------

_HASHTAG = re.compile(r"#(\w+)")


def utf16_units(text: str) -> int:
    """Length as TikTok counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le", errors="surrogatepass")) // 2


def build_caption(description: str, tags: Sequence[str]) -> str:
    """The description followed by the tags as hashtags, '#' added where missing.

    A tag is left out when the description already has that hashtag or an earlier tag was the
    same (TikTok hashtags are case-insensitive); the first spelling wins.
    """
    seen = (
        {tag.casefold() for tag in _HASHTAG.findall(description)} if "#" in description else set()
    )
    hashtags = []
    for tag in tags:
        name = tag.strip().lstrip("#")
        folded = name.casefold()
        if name and folded not in seen:
            seen.add(folded)
            hashtags.append(f"#{name}")
    text = description.rstrip()
    return " ".join(([text] if text else []) + hashtags)


def _checked_utf16_units(text: str) -> int | None:
    """:func:`utf16_units`, or None for text with an unpaired surrogate (one encoding for
    both questions: every caption is asked both)."""
    try:
        return len(text.encode("utf-16-le")) // 2
    except UnicodeEncodeError:
        return None


def _member(kind: type[_E], given: object) -> _E | None:
    # A dict lookup: calling the enum for each of 10,000 entries is measurably slower.
    return _members(kind).get(given) if isinstance(given, str) else None


@cache
def _members(kind: type[_E]) -> dict[str, _E]:
    return {member.value: member for member in kind}


def _moment(given: str) -> datetime | tuple[str, str]:
    """``publish_at`` read as a moment in UTC, or what is wrong with it and the fix."""
    try:
        moment = datetime.fromisoformat(given.strip())
    except ValueError:
        return (
            f"{given!r} is not an ISO 8601 date-time",
            "write it like 2026-11-22T18:00:00Z or 2026-11-22T19:00:00+01:00",
        )
    if moment.tzinfo is None or moment.utcoffset() is None:
        return (
            f"{given!r} has no timezone",
            f"add one: {moment.isoformat()}Z for UTC, or an offset like +02:00",
        )
    return moment.astimezone(UTC)


def _whole_number(given: object) -> int | None:
    # JSON Schema counts 1.0 as an integer; bools are not numbers here.
    if isinstance(given, bool):
        return None
    if isinstance(given, int):
        return given
    if isinstance(given, float) and given.is_integer():
        return int(given)
    return None


# -- the semantic pass -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Post:
    """What makes an entry a post (SPEC §5), known even when other fields of it are wrong, so
    that duplicates are reported in the same pass as everything else."""

    path: DocPath
    id: str | None
    user_id: str
    mode: Mode
    media: Media
    size: int | None  # of a file source: only equal sizes can be equal content


class Checker:
    """The semantic pass: normalises each entry and collects every problem."""

    def __init__(
        self,
        *,
        document: Document,
        base_dir: Path,
        prober: Prober,
        posted: PostedCheck | None = None,
    ) -> None:
        self.document = document
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self.sources = SourceChecks(
            document=document,
            base_dir=base_dir,
            prober=prober,
            posted=posted,
            problems=self.problems,
            notes=self.notes,
        )
        self._inbox_with_post_info: list[str] = []
        self._moments: dict[str, datetime | tuple[str, str]] = {}
        self._posts: list[_Post] = []

    def problem(self, path: DocPath, message: str, fix: str | None = None) -> None:
        self.problems.append(self.document.problem(path, message, fix))

    def check(self) -> tuple[Entry, ...] | None:
        data = self.document.data
        defaults: dict[str, Any] = {}
        prefix: DocPath = ()
        if isinstance(data, list):
            raw_entries = data
        elif isinstance(data, dict) and isinstance(data.get("entries"), list):
            raw_entries, prefix = data["entries"], ("entries",)
            if isinstance(data.get("defaults"), dict):
                defaults = data["defaults"]
        else:
            return None  # the schema pass has said what is wrong with the top level
        base = {**BUILT_IN_DEFAULTS, **defaults}
        entries = [
            self._entry(raw, index, (*prefix, index), base) if isinstance(raw, dict) else None
            for index, raw in enumerate(raw_entries)
        ]
        self._duplicates()
        if self._inbox_with_post_info:
            shown = ", ".join(self._inbox_with_post_info[:5])
            more = len(self._inbox_with_post_info) - 5
            self.notes.append(
                f"{shown}{f' and {more} more' if more > 0 else ''}: inbox uploads take only the "
                "video; TikTok ignores their caption and post settings (the creator sets them "
                "in the app)"
            )
        valid = tuple(entry for entry in entries if entry is not None)
        return valid if len(valid) == len(entries) else None

    # One entry. Problems go to self.problems; returns the entry only if it is wholly valid.
    def _entry(
        self, raw: dict[str, Any], index: int, path: DocPath, base: dict[str, Any]
    ) -> Entry | None:
        """``base``: the built-in defaults and the manifest's ``defaults`` over them."""
        before = len(self.problems)
        values = {**base, **raw}

        def value(name: str, kind: type) -> Any:
            # The schema has already reported a value of the wrong type; skip it here.
            found = values.get(name)
            return found if isinstance(found, kind) else None

        user_id = value("user_id", str)
        if "user_id" not in values and self.document.form is ManifestForm.VERSION_1:
            # (The legacy schema requires user_id itself.)
            self.problem(
                (*path, "user_id"),
                "'user_id' is missing (required)",
                "set user_id on the entry or in `defaults`",
            )
        sources = [name for name in _MEDIA_FIELDS if name in raw]
        if not sources:
            self.problem(
                path,
                "has no media",
                "set exactly one of video_path, video_url or photo_urls",
            )
        elif len(sources) > 1:
            self.problem(
                (*path, sources[1]),
                f"has more than one media source ({' and '.join(sources)})",
                "keep exactly one of video_path, video_url or photo_urls per entry",
            )
        is_photo = sources == ["photo_urls"]
        kind_fields = _VIDEO_ONLY_FIELDS if is_photo else _PHOTO_ONLY_FIELDS
        for name in kind_fields:
            if name in raw and len(sources) == 1:
                self.problem(
                    (*path, name),
                    f"{name!r} applies to {'videos' if is_photo else 'photo posts'} only",
                    "remove it from this entry"
                    + ("; a video's caption is description + tags" if name == "title" else ""),
                )
        media, media_info, size = self.sources.media(raw, path, sources)
        description = value("description", str) or ""
        tags = [tag for tag in (value("tags", list) or []) if isinstance(tag, str)]
        caption = build_caption(description, tags)
        title = value("title", str) if is_photo else None
        self._check_text(path, caption, title, is_photo)
        publish_at = self._publish_at(values.get("publish_at"), path)
        mode = _member(Mode, values.get("mode"))
        privacy = _member(PrivacyLevel, values.get("privacy_level"))
        cover_ms = _whole_number(values.get("video_cover_timestamp_ms"))
        if (
            cover_ms is not None
            and media_info is not None
            and media_info.duration_s is not None
            and cover_ms > media_info.duration_s * 1000
        ):
            self.problem(
                (*path, "video_cover_timestamp_ms"),
                f"{cover_ms} ms is after the end of the video ({media_info.duration_s:.2f} s)",
                "pick a moment within the video",
            )
        # Inbox videos send no post_info, so the rule cannot be broken there.
        sends_post_info = mode is Mode.DIRECT or is_photo
        branded = values.get("brand_content_toggle") is True
        if sends_post_info and branded and privacy is PrivacyLevel.SELF_ONLY:
            self.problem(
                (*path, "brand_content_toggle"),
                "branded content cannot be private (privacy_level is SELF_ONLY)",
                "choose another privacy_level, or turn brand_content_toggle off",
            )
        if mode is Mode.INBOX and values.get("review") == "creator":
            self.problem(
                (*path, "review"),
                "creator review is for direct posts (an inbox draft is finished in TikTok's app)",
                "set mode: direct, or leave review out",
            )
        if mode is Mode.INBOX and not is_photo and any(name in raw for name in _POST_INFO_FIELDS):
            self._inbox_with_post_info.append(self.document.location(path))
        entry_id = value("id", str)
        self.sources.missing_file(path, entry_id, user_id, mode)
        if user_id is not None and mode is not None and media is not None:
            self._posts.append(_Post(path, entry_id, user_id, mode, media, size))
        if len(self.problems) != before or user_id is None or media is None:
            return None
        if mode is None or privacy is None:
            return None
        entry = Entry(
            index=index,
            location=self.document.location(path),
            id=entry_id,
            user_id=user_id,
            mode=mode,
            media=media,
            caption=caption,
            title=title,
            privacy_level=privacy,
            disable_comment=bool(values.get("disable_comment")),
            disable_duet=bool(values.get("disable_duet")) and not is_photo,
            disable_stitch=bool(values.get("disable_stitch")) and not is_photo,
            is_aigc=bool(values.get("is_aigc")),
            brand_content_toggle=bool(values.get("brand_content_toggle")),
            brand_organic_toggle=bool(values.get("brand_organic_toggle")),
            video_cover_timestamp_ms=None if is_photo else cover_ms,
            auto_add_music=bool(values.get("auto_add_music")) and is_photo,
            publish_at=publish_at,
            media_info=media_info,
            creator_review=values.get("review") == "creator",
        )
        return entry

    def _check_text(self, path: DocPath, caption: str, title: str | None, is_photo: bool) -> None:
        where = (*path, "description")
        units = _checked_utf16_units(caption)
        if units is None:
            self.problem(
                where,
                "contains an invalid character (an unpaired UTF-16 surrogate)",
                "remove the broken character (often left by a bad copy-paste of an emoji)",
            )
            units = utf16_units(caption)
        limit = PHOTO_DESCRIPTION_MAX_UNITS if is_photo else CAPTION_MAX_UNITS
        if units > limit:
            what = "description" if is_photo else "caption"
            self.problem(
                where,
                f"the {what} (description + tags) is {units} UTF-16 units; TikTok allows "
                f"{limit} (an emoji counts 2)",
                f"shorten it by {units - limit} or drop some tags",
            )
        if title is not None:
            title_units = _checked_utf16_units(title)
            if title_units is None:
                self.problem(
                    (*path, "title"),
                    "contains an invalid character (an unpaired UTF-16 surrogate)",
                    "remove the broken character",
                )
                title_units = utf16_units(title)
            if title_units > PHOTO_TITLE_MAX_UNITS:
                self.problem(
                    (*path, "title"),
                    f"is {title_units} UTF-16 units; TikTok allows "
                    f"{PHOTO_TITLE_MAX_UNITS} for a photo title (an emoji counts 2)",
                    f"shorten it by {title_units - PHOTO_TITLE_MAX_UNITS}",
                )

    def _publish_at(self, given: object, path: DocPath) -> datetime | None:
        if not isinstance(given, str):
            return None
        found = self._moments.get(given)
        if found is None:  # read once per distinct text: many entries share a moment
            found = self._moments[given] = _moment(given)
        if isinstance(found, datetime):
            return found
        self.problem((*path, "publish_at"), *found)
        return None

    # Two entries that would be the same post (SPEC §5): same id, or same user, mode and media.
    def _duplicates(self) -> None:
        first_by_id: dict[str, _Post] = {}
        first_by_identity: dict[str, _Post] = {}
        by_size: dict[tuple[str, Mode, int], list[_Post]] = defaultdict(list)
        for post in self._posts:
            if post.id is not None:
                earlier = first_by_id.setdefault(post.id, post)
                if earlier is not post:
                    self.problem(
                        (*post.path, "id"),
                        f"id {post.id!r} is already used by {self._where(earlier)}",
                        "give each entry its own id",
                    )
            elif isinstance(post.media, FileMedia):
                if post.size is not None:
                    by_size[(post.user_id, post.mode, post.size)].append(post)
            else:
                fingerprint = media_fingerprint(post.media)
                self._same_post(first_by_identity, post, fingerprint)
        # Only files of equal size can have equal fingerprints, so only those are hashed (and a
        # file named twice is fingerprinted once).
        for group in by_size.values():
            if len(group) < 2:
                continue
            for post in group:
                assert isinstance(post.media, FileMedia)
                content = self.sources.files.fingerprint(post.media.path)
                if content is not None:
                    self._same_post(first_by_identity, post, content)

    def _same_post(self, first: dict[str, _Post], post: _Post, fingerprint: str) -> None:
        identity = content_identity(post.user_id, post.mode, fingerprint)
        earlier = first.setdefault(identity, post)
        if earlier is post:
            return
        what = {
            FileMedia: "video content",
            VideoUrlMedia: "video URL",
            PhotoMedia: "photo URLs",
        }[type(post.media)]
        self.problem(
            post.path,
            f"is the same post as {self._where(earlier)}: same user, mode and {what}",
            "remove one of them, or give each an `id` if it really should be posted twice",
        )

    def _where(self, post: _Post) -> str:
        line = self.document.line_of(post.path)
        return self.document.location(post.path) + (f" on line {line}" if line else "")
