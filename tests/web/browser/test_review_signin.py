"""Signing in with TikTok to review, in a real browser (headless Chromium, phone-sized): an
expired review link → Sign in with TikTok → the simulator's Approve → the review page → Post →
published once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.clock import SystemClock
from orchestrator.store.review import ReviewStore
from orchestrator.store.web import ApiKeyStore, InviteStore
from tests.functional.run_support import assert_published_once, make_clip
from tests.web.browser.conftest import PHONE, new_context
from tests.web.browser.rig import WebRig, web_rig
from tests.web.browser.test_journey import WAIT_LIMIT, consent, wait_for_post, watch

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CREATOR = "sandbox-user-1"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[WebRig]:
    with web_rig(tmp_path) as running:
        yield running


def _loopback_only(context: Any) -> None:
    """Nothing leaves the machine (the sandbox's avatar URLs are not on loopback)."""
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith("http://127.0.0.1") else route.abort()
        ),
    )


def _awaiting_review(web: WebRig, key: str) -> tuple[str, str]:
    """A `review: creator` post made over the API, once the worker has it awaiting review:
    its id and the clip's digest."""
    path, digest = make_clip(web.media, "review.mp4", 1_000_000)
    body = {"user_id": CREATOR, "video_path": str(path), "review": "creator"}
    posted = requests.post(
        f"{web.base}/api/v1/posts",
        headers={"Authorization": f"Bearer {key}"},
        json=body,
        timeout=60,
    )
    assert posted.status_code == 202, posted.text
    post_id: str = posted.json()["id"]
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        state = requests.get(
            f"{web.base}/api/v1/posts/{post_id}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ).json()["state"]
        if state != "queued" or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # polling a real server; nothing asserts on elapsed time
    assert state == "awaiting_review", state
    return post_id, digest


def test_an_expired_link_signs_in_with_tiktok_and_posts_once(
    served: WebRig, chromium: Any, contexts: list[Any]
) -> None:
    """The creator connected once; their review link expired. On a phone: the link's page
    offers Sign in with TikTok → Approve on the simulator → their review page (nickname, no
    default privacy) → Only me → Post → "Nothing left to review"; the post is published once,
    byte-exact, private; no page logged a console error (a blocked form redirect included)."""
    web = served
    clock = SystemClock()
    scopes = ("user.info.basic", "video.publish")
    invite = InviteStore(web.store.database, clock=clock).create("Creator", scopes)
    key = ApiKeyStore(web.store.database, clock=clock).create("tests").value
    phone = new_context(chromium, contexts, viewport=PHONE)
    _loopback_only(phone)
    page = phone.new_page()
    errors = watch(page)
    consent(page, f"{web.base}/connect/{invite.token}", "Approve")
    assert page.inner_text("h1") == "Connected as Sandbox One"

    post_id, digest = _awaiting_review(web, key)
    link = ReviewStore(web.store.database, clock=clock).create_link(CREATOR, [post_id])
    with web.store.database.transaction() as connection:  # the link's lifetime is over
        connection.execute(
            "UPDATE review_links SET expires_at = created_at WHERE id = ?", (link.link.id,)
        )

    answer = page.goto(f"{web.base}/review/{link.token}")
    assert answer is not None
    assert answer.status == 410
    assert page.inner_text("h1") == "This review link has expired"
    page.click("button:has-text('Sign in with TikTok')")
    page.wait_for_url("**/v2/auth/authorize/**")
    page.select_option("#open_id", CREATOR)
    page.click("button:has-text('Approve')")
    page.wait_for_url(f"{web.base}/review")
    assert "Sandbox One" in page.inner_text("main")
    assert page.locator("#privacy_level").input_value() == ""
    assert page.locator("#post-button").is_disabled()
    page.locator("#privacy_level").select_option("SELF_ONLY")
    page.locator("#post-button").click()
    page.wait_for_url(f"{web.base}/review")
    assert "Nothing left to review" in page.content()

    done = wait_for_post(web.base, key, post_id)
    assert done["state"] == "published", done
    assert done["consent"]["settings"]["privacy_level"] == "SELF_ONLY"
    assert_published_once(web.sandbox, [digest])
    (published,) = web.sandbox.publishes()
    assert published.post_info["privacy_level"] == "SELF_ONLY"
    assert errors == []
