"""creator_problems: TikTok's rule that a post honours the creator's creator_info settings."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.manifest import Mode, PrivacyLevel
from orchestrator.preflight import creator_problems
from tests.unit.entries import open_creator, photo_entry, video_entry


def test_an_entry_within_every_setting_has_no_problem() -> None:
    """An open creator and a plain entry: nothing to report, the entry may be sent."""
    assert creator_problems(video_entry(), open_creator()) is None


@pytest.mark.parametrize(
    ("setting", "entry_field", "problem", "fix"),
    [
        ("stitch_disabled", "disable_stitch", "stitches disabled", "set disable_stitch: true"),
        ("duet_disabled", "disable_duet", "duets disabled", "set disable_duet: true"),
        ("comment_disabled", "disable_comment", "comments disabled", "set disable_comment: true"),
    ],
)
def test_an_interaction_the_creator_disabled_must_be_disabled_in_the_entry(
    setting: str, entry_field: str, problem: str, fix: str
) -> None:
    """A creator without stitches/duets/comments: an entry allowing them is refused, with the
    field to set; the same entry with the interaction disabled passes."""
    creator = open_creator(**{setting: True})
    error = creator_problems(video_entry(), creator)
    assert error is not None
    assert error.code == "creator_info_mismatch"
    assert not error.retryable
    assert problem in error.message
    assert error.hint == fix
    assert creator_problems(video_entry(**{entry_field: True}), creator) is None


def test_a_privacy_level_the_creator_is_not_offered_is_refused_with_the_offered_ones() -> None:
    """Direct post as PUBLIC_TO_EVERYONE to a creator offered only SELF_ONLY and friends."""
    creator = open_creator(privacy_level_options=("MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"))
    error = creator_problems(video_entry(), creator)
    assert error is not None
    assert error.message == (
        "privacy_level PUBLIC_TO_EVERYONE is not offered to this creator "
        "(offered: MUTUAL_FOLLOW_FRIENDS, SELF_ONLY)"
    )
    assert error.hint == "set privacy_level to one of MUTUAL_FOLLOW_FRIENDS, SELF_ONLY"
    allowed = video_entry(privacy_level=PrivacyLevel.SELF_ONLY)
    assert creator_problems(allowed, creator) is None


def test_an_inbox_share_is_not_held_to_the_privacy_options() -> None:
    """The creator picks the privacy level in the app for a draft: inbox mode is not checked."""
    creator = open_creator(privacy_level_options=("SELF_ONLY",))
    assert creator_problems(video_entry(mode=Mode.INBOX), creator) is None


@pytest.mark.parametrize(
    ("duration", "limit", "refused"),
    [
        (61.0, 60, True),
        (60.0, 60, False),  # exactly the limit is allowed
        (None, 60, False),  # not measured: TikTok judges
        (900.0, 0, False),  # creator_info gave no limit
    ],
)
def test_a_video_longer_than_the_creator_may_post_is_refused(
    duration: float | None, limit: int, refused: bool
) -> None:
    """Duration against max_video_post_duration_sec, with the cut as the fix."""
    entry = video_entry()
    assert entry.media_info is not None
    entry = replace(entry, media_info=replace(entry.media_info, duration_s=duration))
    error = creator_problems(entry, open_creator(max_video_post_duration_sec=limit))
    if not refused:
        assert error is None
        return
    assert error is not None
    assert error.message == "the video lasts 61.0 s; this creator may post at most 60 s"
    assert error.hint == "cut the video to 60 s or less"


def test_a_photo_post_is_held_to_comments_but_not_to_duets_stitches_or_duration() -> None:
    """Photos cannot be duetted or stitched and have no duration; comments still apply."""
    creator = open_creator(duet_disabled=True, stitch_disabled=True, max_video_post_duration_sec=1)
    assert creator_problems(photo_entry(), creator) is None
    error = creator_problems(photo_entry(), open_creator(comment_disabled=True))
    assert error is not None
    assert error.message == "the creator has comments disabled"


def test_every_problem_is_reported_at_once_with_every_fix() -> None:
    """One answer lists all the settings broken, so the user fixes the entry in one go."""
    creator = open_creator(
        privacy_level_options=("SELF_ONLY",),
        comment_disabled=True,
        duet_disabled=True,
        stitch_disabled=True,
        max_video_post_duration_sec=10,
    )
    error = creator_problems(video_entry(), creator)
    assert error is not None
    assert error.message == (
        "privacy_level PUBLIC_TO_EVERYONE is not offered to this creator (offered: SELF_ONLY); "
        "the creator has comments disabled; the creator has duets disabled; "
        "the creator has stitches disabled; "
        "the video lasts 30.0 s; this creator may post at most 10 s"
    )
    assert error.hint == (
        "set privacy_level to one of SELF_ONLY; set disable_comment: true; "
        "set disable_duet: true; set disable_stitch: true; cut the video to 10 s or less"
    )
