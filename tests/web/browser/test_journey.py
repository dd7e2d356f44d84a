"""The web side in a real browser (headless Chromium): an operator and a creator, each in
their own browser profile, against the app and the simulator's Web app over loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.functional.run_support import assert_published_once, make_clip
from tests.web.api_rig import finished
from tests.web.browser.conftest import PHONE, new_context
from tests.web.browser.rig import WebRig, web_rig
from tests.web.test_connect import SCOPES, Rig, rig

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ADMIN_PASSWORD = "operator-pw"  # both rigs'
WAIT_LIMIT = 60.0
"""Seconds the journey waits for the worker at most (a bound, not a timing assertion)."""


@pytest.fixture
def web(home: Path) -> Iterator[Rig]:
    with rig(home) as running:
        yield running


def watch(page: Any) -> list[str]:
    """What went wrong in ``page`` as it happened: console errors (a CSP violation, a blocked
    form redirect), script errors, and any sub-resource answered >= 400 (a missing stylesheet).
    """
    errors: list[str] = []

    def console(message: Any) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    def response(answer: Any) -> None:
        if answer.status >= 400 and answer.request.resource_type != "document":
            errors.append(f"{answer.status} {answer.url}")

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", response)
    return errors


def sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{base}/accounts")


def make_invite(page: Any, base: str, label: str) -> str:
    page.goto(f"{base}/invites")
    page.fill("#label", label)
    page.click("button:has-text('Make invite')")
    url = page.input_value("input[aria-label='invite link']")
    assert url.startswith(f"{base}/connect/")
    return str(url)


def consent(page: Any, invite_url: str, button: str) -> None:
    """Invite page → Continue with TikTok → the simulator's consent page → ``button``."""
    page.goto(invite_url)
    assert "Continue with TikTok" in page.content()
    page.click("button:has-text('Continue with TikTok')")
    page.wait_for_url("**/v2/auth/authorize/**")
    page.click(f"button:has-text('{button}')")
    page.wait_for_url("**/connect/callback/**")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[WebRig]:
    with web_rig(tmp_path) as running:
        yield running


def wait_for_post(base: str, key: str, post_id: str) -> dict[str, Any]:
    """Poll ``GET /api/v1/posts/{id}`` as a workflow tool would, until it settles (bounded)."""
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        answer = requests.get(
            f"{base}/api/v1/posts/{post_id}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if finished(body):
            return body
        if time.monotonic() > deadline:
            return body
        time.sleep(0.05)  # polling a real server; nothing asserts on elapsed time


def test_journey_invite_connect_api_key_post_published(
    served: WebRig, chromium: Any, contexts: list[Any]
) -> None:
    """Operator signs in → makes an invite on the Invites page → a second browser (a phone)
    opens it → Continue with TikTok → the simulator's Approve → "Connected as Sandbox One" →
    the operator's Accounts page lists the creator → makes an API key (shown once) →
    ``POST /api/v1/posts`` with a multipart video → ``GET /posts/{id}`` until published → the
    sandbox holds exactly that one post, byte-exact; the Posts page shows it; no page logged a
    console error (CSP, a blocked form redirect, a missing stylesheet)."""
    web = served
    operator = new_context(chromium, contexts).new_page()
    operator_errors = watch(operator)
    sign_in(operator, web.base)
    invite_url = make_invite(operator, web.base, "Client X")

    creator = new_context(chromium, contexts, viewport=PHONE).new_page()
    creator_errors = watch(creator)
    consent(creator, invite_url, "Approve")
    assert creator.inner_text("h1") == "Connected as Sandbox One"
    for scope in SCOPES:
        assert scope in creator.inner_text("main")

    operator.goto(f"{web.base}/accounts")
    row = operator.locator("tr", has_text="sandbox-user-1")
    assert "Sandbox One" in row.inner_text()
    assert [u.open_id for u in web.store.list_users()] == ["sandbox-user-1"]

    operator.goto(f"{web.base}/api-keys")
    operator.fill("#label", "n8n")
    operator.click("button:has-text('Make key')")
    key = operator.input_value("input[aria-label='API key']")
    assert key
    operator.reload()
    assert key not in operator.content()  # shown once

    path, digest = make_clip(web.media, "journey.mp4", 2_000_000)
    entry = {"user_id": "sandbox-user-1", "privacy_level": "SELF_ONLY", "description": "hi"}
    with path.open("rb") as video:
        posted = requests.post(
            f"{web.base}/api/v1/posts",
            headers={"Authorization": f"Bearer {key}"},
            data={"entry": json.dumps(entry)},
            files={"video": ("journey.mp4", video, "video/mp4")},
            timeout=60,
        )
    assert posted.status_code == 202, posted.text
    body = wait_for_post(web.base, key, posted.json()["id"])
    assert body["state"] == "published", body
    assert_published_once(web.sandbox, [digest])

    operator.goto(f"{web.base}/posts")
    assert "published" in operator.inner_text("main")
    assert operator_errors == []
    assert creator_errors == []


def test_deny_shows_the_denied_page(web: Rig, chromium: Any, contexts: list[Any]) -> None:
    """Deny on the simulator's consent page → "You did not allow access"; nothing stored."""
    page = new_context(chromium, contexts).new_page()
    consent(page, f"{web.base}/connect/{web.invite()}", "Deny")
    assert "You did not allow access" in page.inner_text("h1")
    assert page.locator("text=Try again").count() >= 1
    assert web.store.list_users() == []


def test_expired_invite_is_refused(web: Rig, chromium: Any, contexts: list[Any]) -> None:
    """An invite past its lifetime shows "This invite has expired" and no Continue button."""
    made = web.invites.create("Client Y", SCOPES, lifetime=3600)
    web.clock.advance(3601)
    page = new_context(chromium, contexts).new_page()
    response = page.goto(f"{web.base}/connect/{made.token}")
    assert response is not None
    assert response.status == 410 or response.status >= 400
    assert "This invite has expired" in page.inner_text("h1")
    assert page.locator("text=Continue with TikTok").count() == 0


def test_replayed_callback_is_refused(web: Rig, chromium: Any, contexts: list[Any]) -> None:
    """Re-opening the callback address after connecting (back button, a copied URL) shows the
    refusal page; the account is stored once."""
    page = new_context(chromium, contexts).new_page()
    consent(page, f"{web.base}/connect/{web.invite()}", "Approve")
    assert "Connected as" in page.inner_text("h1")
    callback = page.url
    response = page.goto(callback)
    assert response is not None
    assert response.status == 400
    assert "This sign-in cannot be finished" in page.inner_text("h1")
    assert len(web.store.list_users()) == 1
