"""The creator's side of review in a real browser, for test_review_rules and
test_review_journeys (their ``review_rig`` is in conftest.py): a phone opening a review link,
and a Post press whose form and answer the test can read.

Nothing leaves the machine: the sandbox's avatar and photo URLs (https://media.example.com/,
not on loopback) are answered by the browser itself with a small picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from tests.web.api_rig import ADMIN_PASSWORD, ApiRig
from tests.web.browser.conftest import PHONE, new_context
from tests.web.browser.test_journey import watch
from tests.web.test_review import LOCKED, OTHER, PUBLIC, on_this_server

__all__ = ["LOCKED", "OTHER", "PUBLIC"]

PLAIN_DECLARATION = "By posting, you agree to TikTok's Music Usage Confirmation."
BRANDED_DECLARATION = (
    "By posting, you agree to TikTok's Branded Content Policy and Music Usage Confirmation."
)
"""§11.4's declarations, written out here (not imported) so a changed text fails a test."""
PICTURE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="400">'
    '<rect width="300" height="400" fill="#25f4ee"/></svg>'
)


@dataclass
class Pressed:
    """One press of a submit button: the form the browser sent and the server's answer."""

    status: int
    form: dict[str, list[str]]


def phone(chromium: Any, contexts: list[Any], viewport: dict[str, int] = PHONE) -> Any:
    """A phone's browser profile whose off-machine requests get a local picture."""
    context = new_context(chromium, contexts, viewport)

    def route(route: Any) -> None:
        if route.request.url.startswith("http://127.0.0.1"):
            route.continue_()
        else:
            route.fulfill(status=200, content_type="image/svg+xml", body=PICTURE_SVG)

    context.route("**/*", route)
    return context


def review_link(rig: ApiRig, user: str) -> str:
    """A new review link for ``user``'s waiting posts, on the test's server."""
    made = rig.post("/api/v1/reviews", json={"user_id": user})
    assert made.status_code == 201, made.text
    return on_this_server(rig, made.json()["review_url"])


def open_review(
    rig: ApiRig, chromium: Any, contexts: list[Any], user: str
) -> tuple[Any, list[str]]:
    """A phone on ``user``'s review page (the link opened); the page and its errors."""
    page = phone(chromium, contexts).new_page()
    errors = watch(page)
    page.goto(review_link(rig, user))
    page.wait_for_url("**/review")
    return page, errors


def press(page: Any, selector: str) -> Pressed:
    """Click the submit button ``selector``; what was sent and answered (the page loaded)."""
    with page.expect_response(lambda answer: answer.request.method == "POST") as answered:
        page.locator(selector).click()
    answer = answered.value
    page.wait_for_load_state()
    return Pressed(status=answer.status, form=parse_qs(answer.request.post_data or ""))


def force_enable(page: Any, selector: str) -> None:
    """What a creator can do in devtools: remove ``disabled`` from an element."""
    page.eval_on_selector(
        selector, "el => { el.disabled = false; el.removeAttribute('disabled'); }"
    )


def operator_page(chromium: Any, contexts: list[Any], rig: ApiRig, path: str) -> Any:
    """The operator, signed in, on ``path``."""
    page = new_context(chromium, contexts).new_page()
    page.goto(f"{rig.url}/login")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{rig.url}/accounts")
    page.goto(rig.url + path)
    return page


def untouched(rig: ApiRig, post_id: str) -> None:
    """Nothing was recorded for the post and nothing was sent to TikTok's inits."""
    post = rig.get(f"/api/v1/posts/{post_id}").json()
    assert post["state"] == "awaiting_review", post
    assert post["consent"] is None, post
    assert rig.sandbox.calls("video_init") == 0
    assert rig.sandbox.calls("content_init") == 0
    assert rig.sandbox.publishes() == []
