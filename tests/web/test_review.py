"""Creator review (tiktok-api.md §11) against the sandbox: posts wait for their creator, the review
page enforces every rule on the server, and only a confirmation sends anything to TikTok."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from orchestrator.review import DECLARATION, DECLARATION_BRANDED
from orchestrator.sandbox import Fault, SandboxConfig, SandboxUser
from tests.web.api_rig import ApiRig, open_api_rig

PUBLIC = "sandbox-user-1"
OTHER = "sandbox-user-2"
LOCKED = "sandbox-locked"
"""A creator who turned comments and duets off."""
USERS = (
    SandboxUser(open_id=PUBLIC, display_name="Sandbox One"),
    SandboxUser(open_id=OTHER, display_name="Sandbox Two"),
    SandboxUser(open_id=LOCKED, display_name="Locked", comment_disabled=True, duet_disabled=True),
)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_ACTION = re.compile(r'action="/review/([^"/]+)/post"')
_DIGEST = re.compile(r'name="media_digest" value="([^"]+)"')


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[ApiRig]:
    with open_api_rig(tmp_path, SandboxConfig(users=USERS)) as opened:
        yield opened


def queue_for_review(rig: ApiRig, user: str, name: str, **fields: Any) -> str:
    """A `review: creator` post; its id once the worker has it awaiting review."""
    clip, _ = rig.clip(name)
    body = {"user_id": user, "video_path": str(clip), "review": "creator", **fields}
    response = rig.post("/api/v1/posts", json=body)
    assert response.status_code == 202, response.text
    post_id: str = response.json()["id"]
    state = rig.wait_for(post_id, lambda post: post["state"] != "queued")
    assert state["state"] == "awaiting_review", state
    return post_id


def on_this_server(rig: ApiRig, review_url: str) -> str:
    """A review URL (made with the configured public URL) on the test's server."""
    path = urlsplit(review_url).path
    assert path.startswith("/review/")
    return rig.url + path


def _html(text: str) -> str:
    """``text`` as Jinja escapes it in a page."""
    return text.replace("'", "&#39;")


def _browser(rig: ApiRig, user: str) -> requests.Session:
    """A creator's browser with their review link opened."""
    made = rig.post("/api/v1/reviews", json={"user_id": user})
    assert made.status_code == 201, made.text
    browser = requests.Session()
    page = browser.get(on_this_server(rig, made.json()["review_url"]), timeout=30)
    assert page.status_code == 200, page.text
    return browser


def _page(rig: ApiRig, browser: requests.Session) -> str:
    page = browser.get(rig.url + "/review", timeout=30)
    assert page.status_code == 200, page.text
    return page.text


def _send(
    rig: ApiRig, browser: requests.Session, page: str, choices: dict[str, str]
) -> requests.Response:
    """Press Post with ``choices`` (the form a browser — or a crafted request — sends)."""
    identity = _ACTION.search(page)
    csrf, digest = _CSRF.search(page), _DIGEST.search(page)
    assert identity, page
    assert csrf
    assert digest
    form = {"csrf_token": csrf.group(1), "media_digest": digest.group(1), **choices}
    return browser.post(
        f"{rig.url}/review/{identity.group(1)}/post", data=form, timeout=30, allow_redirects=False
    )


def test_three_posts_for_two_creators_publish_once_each_with_the_chosen_settings(
    rig: ApiRig,
) -> None:
    """Nothing reaches TikTok's init before the creator presses Post; then each post is
    published once, byte-exact, with the settings chosen on the page (not the manifest's)."""
    first = queue_for_review(
        rig, PUBLIC, "a.mp4", privacy_level="SELF_ONLY", description="manifest"
    )
    second = queue_for_review(rig, PUBLIC, "b.mp4")
    third = queue_for_review(rig, OTHER, "c.mp4")
    assert rig.sandbox.publishes() == []
    assert rig.sandbox.calls("video_init") == 0

    one = _browser(rig, PUBLIC)
    page = _page(rig, one)
    assert "Sandbox One" in page
    assert "2 posts are waiting" in page
    answer = _send(
        rig,
        one,
        page,
        {
            "caption": "chosen on the page",
            "privacy_level": "PUBLIC_TO_EVERYONE",
            "allow_comment": "on",
        },
    )
    assert answer.status_code == 302, answer.text
    page = _page(rig, one)
    answer = _send(
        rig,
        one,
        page,
        {
            "caption": "sponsored",
            "privacy_level": "MUTUAL_FOLLOW_FRIENDS",
            "allow_duet": "on",
            "disclose": "on",
            "brand_content_toggle": "on",
        },
    )
    assert answer.status_code == 302, answer.text
    two = _browser(rig, OTHER)
    answer = _send(rig, two, _page(rig, two), {"privacy_level": "SELF_ONLY"})
    assert answer.status_code == 302, answer.text

    for post_id in (first, second, third):
        done = rig.wait_for(post_id, lambda post: post["state"] == "published")
        assert done["state"] == "published", done
        assert done["consent"]["settings"]["privacy_level"] in (
            "PUBLIC_TO_EVERYONE",
            "MUTUAL_FOLLOW_FRIENDS",
            "SELF_ONLY",
        )
    publishes = {
        record.open_id + ":" + record.post_info.get("title", ""): record
        for record in rig.sandbox.publishes()
    }
    assert len(rig.sandbox.publishes()) == 3
    sent = {hashlib.sha256(clip.read_bytes()).hexdigest() for clip in rig.media.glob("*.mp4")}
    assert {record.sha256 for record in rig.sandbox.publishes()} == sent
    chosen = publishes[PUBLIC + ":chosen on the page"].post_info
    assert chosen["privacy_level"] == "PUBLIC_TO_EVERYONE"
    assert chosen["disable_comment"] is False
    assert chosen["disable_duet"] is True
    assert chosen["disable_stitch"] is True
    assert chosen.get("brand_content_toggle") in (False, None)
    branded = publishes[PUBLIC + ":sponsored"].post_info
    assert branded["privacy_level"] == "MUTUAL_FOLLOW_FRIENDS"
    assert branded["brand_content_toggle"] is True
    assert branded["disable_duet"] is False
    assert publishes[OTHER + ":"].post_info["privacy_level"] == "SELF_ONLY"
    assert "Nothing left to review" in _page(rig, one)


def test_the_page_offers_no_default_and_keeps_post_disabled(rig: ApiRig) -> None:
    """Privacy starts empty, the boxes unchecked, the toggle off, Post disabled, and the
    creator's disabled interactions greyed out."""
    queue_for_review(rig, LOCKED, "a.mp4")
    page = _page(rig, _browser(rig, LOCKED))
    assert '<option value="" selected>' in page
    assert re.search(r'<option value="PUBLIC_TO_EVERYONE">', page)  # not selected
    assert 'id="post-button" disabled' in page
    assert re.search(r'name="allow_comment" id="allow_comment" disabled', page)
    assert re.search(r'name="allow_duet" id="allow_duet" disabled', page)
    assert re.search(r'name="allow_stitch" id="allow_stitch">', page)  # offered, unchecked
    assert 'name="disclose" id="disclose">' in page
    assert _html(DECLARATION) in page
    assert "review.js" in page
    assert "<script>" not in page


@pytest.mark.parametrize(
    ("choices", "problem"),
    [
        ({}, "choose who can see this post"),
        ({"privacy_level": "FOLLOWER_OF_CREATOR"}, "not one of your privacy options"),
        ({"privacy_level": "SELF_ONLY", "allow_comment": "on"}, "comments are turned off"),
        ({"privacy_level": "SELF_ONLY", "allow_duet": "on"}, "duets are turned off"),
        (
            {"privacy_level": "SELF_ONLY", "disclose": "on", "brand_content_toggle": "on"},
            "branded content cannot be private",
        ),
        ({"privacy_level": "SELF_ONLY", "disclose": "on"}, "choose Your brand, Branded content"),
        (
            {"privacy_level": "SELF_ONLY", "brand_organic_toggle": "on"},
            "turn on &#39;Disclose video content&#39;",
        ),
    ],
)
def test_a_crafted_form_cannot_break_a_rule(
    rig: ApiRig, choices: dict[str, str], problem: str
) -> None:
    """The server refuses what the page would not allow; nothing is recorded or sent."""
    post_id = queue_for_review(rig, LOCKED, "a.mp4")
    browser = _browser(rig, LOCKED)
    answer = _send(rig, browser, _page(rig, browser), choices)
    assert answer.status_code == 422
    assert problem in answer.text
    post = rig.get(f"/api/v1/posts/{post_id}").json()
    assert post["state"] == "awaiting_review"
    assert post["consent"] is None
    assert rig.sandbox.calls("video_init") == 0


def test_the_declaration_follows_the_branded_choice(rig: ApiRig) -> None:
    """With branded content chosen the declaration names the Branded Content Policy, and the
    private option is disabled."""
    queue_for_review(rig, PUBLIC, "a.mp4")
    browser = _browser(rig, PUBLIC)
    plain = _page(rig, browser)
    assert '<p id="declaration" data-plain="' + _html(DECLARATION) + '"' in plain
    assert _html(DECLARATION) + "</p>" in plain
    refused = _send(
        rig, browser, plain, {"disclose": "on", "brand_content_toggle": "on"}
    )  # no privacy yet: shown again with the branded choice kept
    assert refused.status_code == 422
    assert _html(DECLARATION_BRANDED) + "</p>" in refused.text
    assert '<option value="SELF_ONLY" disabled>' in refused.text


def test_not_this_one_declines_with_the_note_and_never_posts(rig: ApiRig) -> None:
    """A declined post is terminal: the note is kept, and a late Post press records nothing."""
    post_id = queue_for_review(rig, PUBLIC, "a.mp4")
    browser = _browser(rig, PUBLIC)
    page = _page(rig, browser)
    identity = _ACTION.search(page)
    csrf = _CSRF.search(page)
    assert identity
    assert csrf
    answer = browser.post(
        f"{rig.url}/review/{identity.group(1)}/decline",
        data={"csrf_token": csrf.group(1), "note": "wrong song"},
        timeout=30,
        allow_redirects=False,
    )
    assert answer.status_code == 302
    post = rig.get(f"/api/v1/posts/{post_id}").json()
    assert post["state"] == "declined"
    assert "wrong song" in post["error"]["message"]
    assert _send(rig, browser, page, {"privacy_level": "SELF_ONLY"}).status_code == 302
    assert rig.get(f"/api/v1/posts/{post_id}").json()["consent"] is None


def test_a_creator_who_cannot_post_now_is_told_so(rig: ApiRig) -> None:
    """When creator_info says the creator cannot post, the page says so and Post records
    nothing."""
    post_id = queue_for_review(rig, PUBLIC, "a.mp4")
    browser = _browser(rig, PUBLIC)
    page = _page(rig, browser)
    rig.sandbox.schedule(
        Fault("creator_info", call=None, status=403, error_code="spam_risk_too_many_posts")
    )
    blocked = _page(rig, browser)
    assert 'id="cannot-post"' in blocked
    assert "Try again later" in blocked
    assert "review-form" not in blocked
    answer = _send(rig, browser, page, {"privacy_level": "SELF_ONLY"})
    assert answer.status_code == 409
    assert rig.get(f"/api/v1/posts/{post_id}").json()["consent"] is None


def test_a_review_link_opens_once(rig: ApiRig, caplog: pytest.LogCaptureFixture) -> None:
    """The link opens in one browser; a second opening gets a page saying to ask again. Its
    token is in no log line."""
    caplog.set_level(logging.DEBUG)
    queue_for_review(rig, PUBLIC, "a.mp4")
    made = rig.post("/api/v1/reviews", json={"user_id": PUBLIC}).json()
    url = on_this_server(rig, made["review_url"])
    assert requests.get(url, timeout=30).status_code == 200
    again = requests.get(url, timeout=30)
    assert again.status_code == 410
    assert "already used" in again.text
    assert "new review link" in again.text
    assert requests.get(rig.url + "/review", timeout=30).status_code == 403
    server_lines = [
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith("urllib3")  # the test's own client
    ]
    assert any("review: link" in line for line in server_lines)
    assert not [line for line in server_lines if url.rsplit("/", 1)[1] in line]


def test_the_video_preview_streams_with_range_requests(rig: ApiRig) -> None:
    """The preview plays from the server, in ranges, only for the link's browser."""
    post_id = queue_for_review(rig, PUBLIC, "a.mp4")
    browser = _browser(rig, PUBLIC)
    identity = _ACTION.search(_page(rig, browser))
    assert identity
    assert post_id
    url = f"{rig.url}/review/media/{identity.group(1)}"
    part = browser.get(url, headers={"Range": "bytes=0-9"}, timeout=30)
    assert part.status_code == 206
    assert len(part.content) == 10
    assert requests.get(url, timeout=30).status_code == 403
