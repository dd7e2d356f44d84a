"""Creators reviewing a week of posts in a real browser (headless Chromium, phone-sized) against
the sandbox: every post waits for its creator's Post press, then is published exactly once,
byte-exact, with the settings chosen on the page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from tests.web.api_rig import ApiRig
from tests.web.browser.review_pages import (
    LOCKED,
    OTHER,
    PUBLIC,
    open_review,
    press,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

_ACTION = re.compile(r"/review/([^/]+)/post$")


@dataclass(frozen=True)
class Choice:
    """What a creator picks on the page for one post."""

    user: str
    caption: str
    privacy: str
    comment: bool = False
    duet: bool = False
    stitch: bool = False
    organic: bool = False
    branded: bool = False

    def post_info(self) -> dict[str, Any]:
        """The settings TikTok's init must carry for this choice."""
        return {
            "title": self.caption,
            "privacy_level": self.privacy,
            "disable_comment": not self.comment,
            "disable_duet": not self.duet,
            "disable_stitch": not self.stitch,
            "brand_organic_toggle": self.organic,
            "brand_content_toggle": self.branded,
        }


# 10 posts for 3 creators, each with other settings; LOCKED turned comments and duets off.
CHOICES = (
    Choice(PUBLIC, "one: everyone, all on", "PUBLIC_TO_EVERYONE", True, True, True),
    Choice(PUBLIC, "one: friends, paid partnership", "MUTUAL_FOLLOW_FRIENDS", branded=True),
    Choice(PUBLIC, "one: only me, own brand", "SELF_ONLY", comment=True, organic=True),
    Choice(
        PUBLIC, "one: both brands", "PUBLIC_TO_EVERYONE", stitch=True, organic=True, branded=True
    ),
    Choice(OTHER, "two: only me, nothing", "SELF_ONLY"),
    Choice(OTHER, "two: everyone, duet", "PUBLIC_TO_EVERYONE", duet=True),
    Choice(OTHER, "two: friends, comments", "MUTUAL_FOLLOW_FRIENDS", comment=True),
    Choice(LOCKED, "locked: everyone, stitch", "PUBLIC_TO_EVERYONE", stitch=True),
    Choice(LOCKED, "locked: branded", "MUTUAL_FOLLOW_FRIENDS", branded=True),
    Choice(LOCKED, "locked: only me", "SELF_ONLY"),
)


def _choose(page: Any, choice: Choice) -> None:
    """Make ``choice`` on the page the way a creator does, Post still disabled until privacy."""
    page.fill("#caption", choice.caption)
    for box, wanted in (
        ("#allow_comment", choice.comment),
        ("#allow_duet", choice.duet),
        ("#allow_stitch", choice.stitch),
    ):
        if wanted:
            page.check(box)
    if choice.organic or choice.branded:
        page.check("#disclose")
        if choice.organic:
            page.check("#brand_organic_toggle")
        if choice.branded:
            page.check("#brand_content_toggle")
    assert page.locator("#post-button").is_disabled()
    page.select_option("#privacy_level", choice.privacy)
    assert page.locator("#post-button").is_enabled()


def test_ten_posts_for_three_creators_reviewed_on_phones_publish_once_as_chosen(
    review_rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """Prepare 10 posts for 3 creators; each creator reviews theirs one after another on a
    phone. TikTok sees no init for a post before its Post press; afterwards every post is
    published exactly once, its bytes the file's, its init carrying exactly the chosen settings."""
    posts: dict[str, Choice] = {}
    files: dict[str, str] = {}
    for n, choice in enumerate(CHOICES):
        clip, digest = review_rig.clip(f"post-{n}.mp4")
        body = {
            "user_id": choice.user,
            "video_path": str(clip),
            "description": f"draft {n}",
            "privacy_level": "SELF_ONLY",  # the page's choice wins over the operator's
            "review": "creator",
        }
        answer = review_rig.post("/api/v1/posts", json=body)
        assert answer.status_code == 202, answer.text
        posts[answer.json()["id"]] = choice
        files[choice.caption] = digest
    for post_id in posts:
        waiting = review_rig.wait_for(post_id, lambda post: post["state"] != "queued")
        assert waiting["state"] == "awaiting_review", waiting
    assert review_rig.sandbox.calls("video_init") == 0

    pressed: list[str] = []
    for user in (PUBLIC, OTHER, LOCKED):
        page, errors = open_review(review_rig, chromium, contexts, user)
        mine = [post_id for post_id, choice in posts.items() if choice.user == user]
        for left in range(len(mine), 0, -1):
            action = page.locator("#review-form").get_attribute("action") or ""
            found = _ACTION.search(action)
            assert found, action
            post_id = found.group(1)
            assert post_id in mine, post_id
            assert post_id not in pressed
            choice = posts[post_id]
            if left > 1:
                assert f"{left} posts are waiting for you" in page.content()
            assert page.locator("#caption").input_value() == f"draft {list(posts).index(post_id)}"
            _choose(page, choice)
            sent = {record.post_info.get("title") for record in review_rig.sandbox.publishes()}
            assert choice.caption not in sent  # nothing reached TikTok before the press
            assert len(sent) <= len(pressed)
            answer = press(page, "#post-button")
            assert answer.status == 302, answer
            pressed.append(post_id)
            page.wait_for_url("**/review")
        assert page.locator("h1").text_content() == "Nothing left to review"
        assert errors == []
    assert sorted(pressed) == sorted(posts)

    for post_id, choice in posts.items():
        done = review_rig.wait_for(post_id, lambda post: post["state"] == "published")
        assert done["state"] == "published", done
        assert done["consent"]["settings"]["privacy_level"] == choice.privacy
    publishes = review_rig.sandbox.publishes()
    assert len(publishes) == len(CHOICES)
    by_caption = {record.post_info["title"]: record for record in publishes}
    assert sorted(by_caption) == sorted(choice.caption for choice in CHOICES)
    for choice in CHOICES:
        record = by_caption[choice.caption]
        assert record.open_id == choice.user
        assert record.completed
        assert record.sha256 == files[choice.caption]  # byte-exact
        carried = {key: record.post_info.get(key, False) for key in choice.post_info()}
        assert carried == choice.post_info(), choice
    assert review_rig.sandbox.violations() == []


def test_a_creator_sees_their_posts_published_after_reviewing(
    review_rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """After Post the creator is told processing may take a few minutes; reloading shows each
    reviewed post published with its TikTok post id, the declined one declined."""
    first, _ = review_rig.clip("a.mp4")
    second, _ = review_rig.clip("b.mp4")
    ids = []
    for clip, caption in ((first, "keep"), (second, "drop")):
        body = {"user_id": PUBLIC, "video_path": str(clip), "description": caption}
        answer = review_rig.post("/api/v1/posts", json={**body, "review": "creator"})
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    for post_id in ids:
        assert review_rig.wait_for(post_id, lambda post: post["state"] != "queued")["state"] == (
            "awaiting_review"
        )
    page, errors = open_review(review_rig, chromium, contexts, PUBLIC)
    assert page.locator("#caption").input_value() == "keep"
    page.select_option("#privacy_level", "PUBLIC_TO_EVERYONE")
    assert press(page, "#post-button").status == 302
    page.wait_for_url("**/review")
    assert page.locator("#caption").input_value() == "drop"
    assert press(page, "button:has-text('Not this one')").status == 302
    page.wait_for_url("**/review")
    assert "TikTok may take a few minutes to process it" in page.content()

    published = review_rig.wait_for(ids[0], lambda post: post["state"] == "published")
    assert published["state"] == "published", published
    page.reload()
    rows = page.locator("tbody tr")
    assert rows.count() == 2
    states = dict(
        zip(
            rows.locator("td:first-child").all_text_contents(),
            rows.locator("td.state").all_text_contents(),
            strict=True,
        )
    )
    assert states == {"keep": "published", "drop": "declined"}
    (post_id,) = [str(n) for n in published["post_ids"]]
    assert post_id in rows.first.inner_text()
    assert len(review_rig.sandbox.publishes()) == 1
    assert errors == []
