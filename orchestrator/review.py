"""Creator review's rules (tiktok-api.md §11): which posts wait for their creator, what the review
page may accept, and how the creator's choices become the post.

Pure functions over values: the review page (``web/review.py``) renders and enforces with them,
the poster (``scheduler/posting.py``) gates with them. The server judges every choice again
here, whatever the browser sent: a crafted form cannot post a privacy level the creator was not
offered, an interaction the creator disabled, or branded content in private.

This module must not read the database, talk to TikTok or render HTML.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from orchestrator.errors import UsageError
from orchestrator.manifest import Entry, Mode, PrivacyLevel
from orchestrator.manifest.checks import (
    CAPTION_MAX_UNITS,
    PHOTO_DESCRIPTION_MAX_UNITS,
    utf16_units,
)
from orchestrator.media import FileMedia, PhotoMedia, VideoUrlMedia
from orchestrator.store.journal import EntryMeta
from orchestrator.store.review import Consent, ReviewChoices, ReviewItem

if TYPE_CHECKING:
    from orchestrator.tiktok.client import CreatorInfo

__all__ = [
    "DECLARATION",
    "DECLARATION_BRANDED",
    "ReviewRefused",
    "apply_consent",
    "declaration",
    "entry_for_checks",
    "needs_review",
    "read_choices",
    "review_item",
    "too_long",
]

DECLARATION: Final = "By posting, you agree to TikTok's Music Usage Confirmation."
DECLARATION_BRANDED: Final = (
    "By posting, you agree to TikTok's Branded Content Policy and Music Usage Confirmation."
)
NOTE_MAX: Final = 500
"""Characters of a "Not this one" note kept in the journal."""


class ReviewRefused(UsageError):
    """Raised when a review form breaks a rule of §11 (whatever the page allowed): the creator
    is shown the page again with the problems."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems), hint="correct the choices and press Post again")
        self.problems = tuple(problems)


def needs_review(entry: Entry, *, review_all: bool = False) -> bool:
    """Whether ``entry`` waits for its creator: ``review: creator``, or every direct post with
    ``run --review creator`` (an inbox draft is finished by the creator in TikTok's app)."""
    return entry.mode is Mode.DIRECT and (entry.creator_review or review_all)


def declaration(branded: bool) -> str:
    """The declaration shown above the Post button (§11.4)."""
    return DECLARATION_BRANDED if branded else DECLARATION


def too_long(item: ReviewItem, creator: CreatorInfo) -> str | None:
    """Why the video cannot be posted by this creator at all, or None (§11.1)."""
    limit = creator.max_video_post_duration_sec
    if item.kind == "photo" or item.duration_s is None or not limit:
        return None
    if item.duration_s <= limit:
        return None
    return f"this video lasts {item.duration_s:.0f} s; your account may post at most {limit} s"


def _flag(form: Mapping[str, str], name: str) -> bool:
    return form.get(name, "") in ("on", "true", "1")


def read_choices(form: Mapping[str, str], item: ReviewItem, creator: CreatorInfo) -> ReviewChoices:
    """The creator's choices from the review form, judged by §11 against fresh creator_info;
    :class:`ReviewRefused` lists every rule broken."""
    problems: list[str] = []
    long = too_long(item, creator)
    if long is not None:
        problems.append(long)
    caption = form.get("caption", "").replace("\r\n", "\n")
    limit = PHOTO_DESCRIPTION_MAX_UNITS if item.kind == "photo" else CAPTION_MAX_UNITS
    if utf16_units(caption) > limit:
        problems.append(f"the caption is longer than {limit} characters")
    privacy = form.get("privacy_level", "")
    if not privacy:
        problems.append("choose who can see this post")
    elif privacy not in creator.privacy_level_options:
        problems.append(f"{privacy} is not one of your privacy options")
    allow_comment = _flag(form, "allow_comment")
    allow_duet = _flag(form, "allow_duet")
    allow_stitch = _flag(form, "allow_stitch")
    if allow_comment and creator.comment_disabled:
        problems.append("comments are turned off for your account")
    if item.kind == "photo" and (allow_duet or allow_stitch):
        problems.append("a photo post takes no duet or stitch")
    if allow_duet and creator.duet_disabled:
        problems.append("duets are turned off for your account")
    if allow_stitch and creator.stitch_disabled:
        problems.append("stitches are turned off for your account")
    disclose = _flag(form, "disclose")
    organic = _flag(form, "brand_organic_toggle")
    branded = _flag(form, "brand_content_toggle")
    if not disclose and (organic or branded):
        problems.append("turn on 'Disclose video content' to mark your brand or branded content")
    if disclose and not (organic or branded):
        problems.append(
            "with 'Disclose video content' on, choose Your brand, Branded content or both"
        )
    if branded and privacy == PrivacyLevel.SELF_ONLY:
        problems.append("branded content cannot be private: choose another privacy setting")
    if problems:
        raise ReviewRefused(problems)
    return ReviewChoices(
        caption=caption,
        privacy_level=privacy,
        allow_comment=allow_comment,
        allow_duet=allow_duet,
        allow_stitch=allow_stitch,
        brand_organic_toggle=organic,
        brand_content_toggle=branded,
    )


def read_note(form: Mapping[str, str]) -> str:
    """The creator's "Not this one" note, trimmed to :data:`NOTE_MAX` characters."""
    return form.get("note", "").strip()[:NOTE_MAX]


def apply_consent(entry: Entry, consent: Consent) -> Entry:
    """The entry as its creator confirmed it: the page's settings win over the manifest's."""
    choices = consent.choices
    return dataclasses.replace(
        entry,
        caption=choices.caption,
        privacy_level=PrivacyLevel(choices.privacy_level),
        disable_comment=not choices.allow_comment,
        disable_duet=not choices.allow_duet and not entry.is_photo,
        disable_stitch=not choices.allow_stitch and not entry.is_photo,
        brand_organic_toggle=choices.brand_organic_toggle,
        brand_content_toggle=choices.brand_content_toggle,
    )


def entry_for_checks(entry: Entry, creator: CreatorInfo) -> Entry:
    """The entry with settings any creator accepts, so creator_info's check of a post awaiting
    review judges only what the creator cannot change on the page (the video's length)."""
    options = creator.privacy_level_options
    return dataclasses.replace(
        entry,
        privacy_level=PrivacyLevel(options[0]) if options else entry.privacy_level,
        disable_comment=True,
        disable_duet=not entry.is_photo,
        disable_stitch=not entry.is_photo,
    )


def review_item(entry: Entry, meta: EntryMeta) -> ReviewItem:
    """What the review page shows of ``entry``."""
    media = entry.media
    if isinstance(media, FileMedia):
        sources: tuple[str, ...] = (str(media.path),)
    elif isinstance(media, VideoUrlMedia):
        sources = (media.url,)
    else:
        assert isinstance(media, PhotoMedia)
        sources = tuple(media.urls)
    return ReviewItem(
        identity=meta.identity,
        user_id=entry.user_id,
        kind=meta.kind,
        media=sources,
        caption=entry.caption,
        duration_s=entry.duration_s,
        fingerprint=meta.fingerprint,
    )
