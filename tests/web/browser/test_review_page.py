"""The review page's rules in a real browser (headless Chromium, phone-sized): no default
privacy, Post disabled until complete, branded content cannot go private, the declaration
switches, disabled interactions greyed — then Post publishes exactly what was chosen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.review import DECLARATION, DECLARATION_BRANDED
from orchestrator.sandbox import SandboxConfig
from tests.web.api_rig import ApiRig, open_api_rig
from tests.web.browser.conftest import PHONE, new_context
from tests.web.browser.test_journey import watch
from tests.web.test_review import LOCKED, PUBLIC, USERS, on_this_server, queue_for_review

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[ApiRig]:
    with open_api_rig(tmp_path, SandboxConfig(users=USERS)) as opened:
        yield opened


def _open(rig: ApiRig, chromium: Any, contexts: list[Any], user: str) -> tuple[Any, list[str]]:
    """A phone's browser on the creator's review link; nothing leaves the machine (the
    sandbox's avatar URLs are not on loopback)."""
    made = rig.post("/api/v1/reviews", json={"user_id": user}).json()
    context = new_context(chromium, contexts, PHONE)
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith("http://127.0.0.1") else route.abort()
        ),
    )
    page = context.new_page()
    errors = watch(page)
    page.goto(on_this_server(rig, made["review_url"]))
    return page, errors


def test_the_page_enforces_section_11_and_posts_the_choice(
    rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """Every §11 control behaves as TikTok asks; Post sends exactly what the creator chose."""
    post_id = queue_for_review(rig, PUBLIC, "a.mp4")
    page, errors = _open(rig, chromium, contexts, PUBLIC)
    post = page.locator("#post-button")
    privacy = page.locator("#privacy_level")
    assert privacy.input_value() == ""
    assert post.is_disabled()
    for box in ("#allow_comment", "#allow_duet", "#allow_stitch", "#disclose"):
        assert not page.locator(box).is_checked()
    assert page.locator("#declaration").text_content() == DECLARATION

    privacy.select_option("SELF_ONLY")
    assert post.is_enabled()
    page.locator("#disclose").check()
    assert post.is_disabled()  # disclosure on: Your brand or Branded content first
    page.locator("#brand_content_toggle").check()
    assert page.locator('#privacy_level option[value="SELF_ONLY"]').is_disabled()
    assert privacy.input_value() == ""  # branded content cannot stay private
    assert page.locator("#declaration").text_content() == DECLARATION_BRANDED
    assert post.is_disabled()
    privacy.select_option("MUTUAL_FOLLOW_FRIENDS")
    page.locator("#allow_comment").check()
    assert post.is_enabled()
    post.click()
    page.wait_for_url("**/review")
    assert "Nothing left to review" in page.content()
    assert errors == []

    done = rig.wait_for(post_id, lambda body: body["state"] == "published")
    assert done["state"] == "published", done
    (published,) = rig.sandbox.publishes()
    assert published.post_info["privacy_level"] == "MUTUAL_FOLLOW_FRIENDS"
    assert published.post_info["brand_content_toggle"] is True
    assert published.post_info["disable_comment"] is False


def test_interactions_the_creator_turned_off_are_greyed(
    rig: ApiRig, chromium: Any, contexts: list[Any]
) -> None:
    """Comment and duet disabled by the creator cannot be ticked; stitch can."""
    queue_for_review(rig, LOCKED, "a.mp4")
    page, errors = _open(rig, chromium, contexts, LOCKED)
    assert page.locator("#allow_comment").is_disabled()
    assert page.locator("#allow_duet").is_disabled()
    assert page.locator("#allow_stitch").is_enabled()
    assert errors == []
