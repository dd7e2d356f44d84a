"""The review page's rules (tiktok-api.md §11) as the server applies them, without a browser."""

from __future__ import annotations

import pytest

from orchestrator.manifest import Mode, PrivacyLevel
from orchestrator.media import ContentType, MediaInfo
from orchestrator.preflight import creator_problems
from orchestrator.review import (
    DECLARATION,
    DECLARATION_BRANDED,
    ReviewRefused,
    apply_consent,
    declaration,
    entry_for_checks,
    needs_review,
    read_choices,
    too_long,
)
from orchestrator.store.review import Consent, ReviewChoices, ReviewItem
from tests.unit.entries import open_creator, photo_entry, video_entry

VIDEO = ReviewItem("clip-1", "user-1", "file", ("/videos/clip.mp4",), "a clip", 30.0, "fp")
PHOTOS = ReviewItem(
    "photos-1", "user-1", "photo", ("https://cdn.example.com/a.jpg",), "", None, "fp"
)


def test_a_complete_form_gives_exactly_the_chosen_settings() -> None:
    """Caption, privacy, interactions and disclosure come through as the creator set them."""
    form = {
        "caption": "edited\r\nline",
        "privacy_level": "MUTUAL_FOLLOW_FRIENDS",
        "allow_comment": "on",
        "allow_stitch": "on",
        "disclose": "on",
        "brand_organic_toggle": "on",
    }
    choices = read_choices(form, VIDEO, open_creator())
    assert choices == ReviewChoices(
        caption="edited\nline",
        privacy_level="MUTUAL_FOLLOW_FRIENDS",
        allow_comment=True,
        allow_duet=False,
        allow_stitch=True,
        brand_organic_toggle=True,
        brand_content_toggle=False,
    )


def test_a_video_over_the_creators_limit_cannot_be_posted() -> None:
    """Longer than max_video_post_duration_sec: refused whatever else the form says."""
    creator = open_creator(max_video_post_duration_sec=10)
    assert too_long(VIDEO, creator) is not None
    with pytest.raises(ReviewRefused, match="at most 10 s"):
        read_choices({"privacy_level": "SELF_ONLY"}, VIDEO, creator)


def test_a_photo_post_takes_comments_only() -> None:
    """Duet and stitch are refused on a photo post; its length is never judged."""
    with pytest.raises(ReviewRefused, match="no duet or stitch"):
        read_choices({"privacy_level": "SELF_ONLY", "allow_duet": "on"}, PHOTOS, open_creator())
    assert too_long(PHOTOS, open_creator(max_video_post_duration_sec=1)) is None


def test_every_broken_rule_is_listed() -> None:
    """One refusal names each problem, so the creator fixes them in one go."""
    creator = open_creator(comment_disabled=True, stitch_disabled=True)
    form = {"allow_comment": "on", "allow_stitch": "on", "disclose": "on"}
    with pytest.raises(ReviewRefused) as refused:
        read_choices(form, VIDEO, creator)
    assert len(refused.value.problems) == 4


def test_the_declaration_names_the_branded_content_policy_only_with_branded_content() -> None:
    """§11.4's two texts."""
    assert declaration(False) == DECLARATION
    assert declaration(True) == DECLARATION_BRANDED
    assert "Branded Content Policy" in DECLARATION_BRANDED
    assert "Branded Content Policy" not in DECLARATION


def test_the_creators_settings_win_over_the_manifests() -> None:
    """apply_consent replaces caption, privacy, interactions and disclosure."""
    entry = video_entry(privacy_level=PrivacyLevel.SELF_ONLY, disable_comment=False)
    choices = ReviewChoices("page", "PUBLIC_TO_EVERYONE", False, True, False, False, True)
    posted = apply_consent(entry, Consent("user-1", 1.0, "fp", choices, DECLARATION_BRANDED))
    assert posted.caption == "page"
    assert posted.privacy_level is PrivacyLevel.PUBLIC_TO_EVERYONE
    assert (posted.disable_comment, posted.disable_duet, posted.disable_stitch) == (
        True,
        False,
        True,
    )
    assert posted.brand_content_toggle is True


def test_a_post_awaiting_review_is_judged_only_on_what_the_page_cannot_change() -> None:
    """A manifest privacy the creator lacks is no problem before review; a long video is."""
    creator = open_creator(
        privacy_level_options=("SELF_ONLY",), comment_disabled=True, max_video_post_duration_sec=60
    )
    assert creator_problems(entry_for_checks(video_entry(), creator), creator) is None
    long = video_entry(media_info=MediaInfo(ContentType.MP4, 1_000, duration_s=120.0))
    problem = creator_problems(entry_for_checks(long, creator), creator)
    assert problem is not None
    assert "at most 60 s" in problem.message
    assert creator_problems(entry_for_checks(photo_entry(), creator), creator) is None


def test_review_holds_direct_posts_only() -> None:
    """`review: creator` and --review creator never hold an inbox draft."""
    assert needs_review(video_entry(creator_review=True))
    assert needs_review(video_entry(), review_all=True)
    assert not needs_review(video_entry())
    assert not needs_review(video_entry(mode=Mode.INBOX), review_all=True)
