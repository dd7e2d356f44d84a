"""Signing in with TikTok to review when a review link has expired or was used: the connect
flow's attempt and callback against the sandbox's Web app over loopback, a manual clock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from orchestrator.store.journal import EntryMeta
from orchestrator.store.review import ReviewItem, ReviewStore
from tests.web.test_connect import SCOPES, Browser, Rig, assert_no_secrets, forms_of, rig

ONE = "sandbox-user-1"
TWO = "sandbox-user-2"


@pytest.fixture
def web(home: Path) -> Iterator[Rig]:
    with rig(home) as running:
        yield running


def connect(web: Rig, scopes: tuple[str, ...] = SCOPES) -> None:
    """sandbox-user-1 connects through an invite, in a browser of its own."""
    browser = web.browser()
    done = browser.get(web.consent(browser, web.invites.create("Creator", scopes).token))
    assert done.status_code == 200, done.text


def waiting(web: Rig, identity: str, user: str = ONE) -> None:
    """A post journalled awaiting_review for ``user``, as a run leaves it."""
    digest = "fp-" + identity
    meta = EntryMeta(identity, identity, user, "direct", "file", "a.mp4", "digest", digest)
    item = ReviewItem(identity, user, "file", ("/nowhere/a.mp4",), identity, 3.0, digest)
    ReviewStore(web.store.database, clock=web.clock).await_review(meta, item)


def expired_link(web: Rig, *identities: str, user: str = ONE) -> str:
    """A review link for ``identities``, already past its lifetime: its address."""
    made = ReviewStore(web.store.database, clock=web.clock).create_link(
        user, list(identities), lifetime=60
    )
    web.clock.advance(61)
    return f"{web.base}/review/{made.token}"


def sign_in(
    web: Rig,
    browser: Browser,
    page: requests.Response,
    *,
    user: str = ONE,
    button: str = "Approve",
    uncheck: tuple[str, ...] = (),
) -> str:
    """Press "Sign in with TikTok" on ``page``, pick ``user`` on TikTok's consent page and press
    ``button``: the callback address TikTok redirects to (not yet opened)."""
    assert "Sign in with TikTok" in page.text, page.text
    to_tiktok = browser.submit(page)
    assert to_tiktok.status_code == 303, to_tiktok.text
    authorize = browser.get(to_tiktok.headers["Location"])
    form = forms_of(authorize.text)[0]
    fields = [*form["fields"], ("open_id", user)]
    fields += [(name, value) for name, value in form["checks"] if value not in uncheck]
    fields.append(form["buttons"][button])
    answer = browser.post(urljoin(authorize.url, form["action"]), fields)
    assert answer.status_code == 302, answer.text
    location = str(answer.headers["Location"])
    assert location.startswith(f"{web.base}/connect/callback/?")
    return location


def test_an_expired_link_signs_in_and_opens_every_waiting_post(
    web: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Expired link → Sign in with TikTok → Approve → the review page of that creator, with all
    their waiting posts (also one the link was not made for); their tokens are renewed."""
    caplog.set_level(logging.DEBUG)
    connect(web)
    waiting(web, "post-1")
    address = expired_link(web, "post-1")
    waiting(web, "post-2")
    before = web.store.credentials(ONE)
    creator = web.browser()
    page = creator.get(address)
    assert page.status_code == 410
    assert "This review link has expired" in page.text
    assert f"form-action 'self' {web.sandbox.base_url}" in page.headers["Content-Security-Policy"]
    callback = sign_in(web, creator, page)
    opened = creator.get(callback)
    assert opened.status_code == 302, opened.text
    assert urlsplit(opened.headers["Location"]).path == "/review"
    review = creator.get(f"{web.base}/review")
    assert review.status_code == 200, review.text
    assert "Sandbox One" in review.text
    assert "2 posts are waiting" in review.text
    after = web.store.credentials(ONE)
    assert before is not None
    assert after is not None
    assert after.access_token.reveal() != before.access_token.reveal()
    assert after.user.scopes == set(SCOPES)
    query = parse_qs(urlsplit(callback).query)
    assert_no_secrets(web, [address.rsplit("/", 1)[1], query["code"][0], query["state"][0]], caplog)


def test_a_used_link_offers_sign_in_asking_for_the_creators_stored_scopes(web: Rig) -> None:
    """A link opened once offers signing in; the authorize request asks for the scopes the link's
    creator's stored grant holds, so the new grant can replace it."""
    connect(web)
    waiting(web, "post-1")
    made = ReviewStore(web.store.database, clock=web.clock).create_link(ONE, ["post-1"])
    first = web.browser()
    assert first.get(f"{web.base}/review/{made.token}").status_code == 302
    second = web.browser()
    page = second.get(f"{web.base}/review/{made.token}")
    assert page.status_code == 410
    assert "already used" in page.text
    to_tiktok = second.submit(page)
    scope = parse_qs(urlsplit(to_tiktok.headers["Location"]).query)["scope"][0]
    assert set(scope.split(",")) == set(SCOPES)


def test_an_account_that_is_not_connected_is_told_so_and_nothing_is_stored(web: Rig) -> None:
    """Signing in as a TikTok account this server never connected: a 403 page saying so; no
    account is added and no review opens."""
    connect(web)
    waiting(web, "post-1")
    creator = web.browser()
    page = creator.get(expired_link(web, "post-1"))
    answer = creator.get(sign_in(web, creator, page, user=TWO))
    assert answer.status_code == 403
    assert "This TikTok account is not connected here" in answer.text
    assert "for another TikTok account" in answer.text
    assert [user.open_id for user in web.store.list_users()] == [ONE]
    assert "Review your posts" in creator.get(f"{web.base}/review").text


def test_a_creator_with_nothing_waiting_is_told_so(web: Rig) -> None:
    """From the plain /review entry page: a connected creator with no post awaiting review
    gets "Nothing to review"."""
    connect(web)
    creator = web.browser()
    entry = creator.get(f"{web.base}/review")
    assert entry.status_code == 403  # nothing is shown without a link or a sign-in
    assert "Review your posts" in entry.text
    answer = creator.get(sign_in(web, creator, entry))
    assert answer.status_code == 200
    assert "Nothing to review" in answer.text
    assert "Review your posts" in creator.get(f"{web.base}/review").text


def test_a_narrower_grant_opens_the_review_but_never_replaces_the_stored_tokens(
    web: Rig,
) -> None:
    """Unticking video.upload on TikTok's page: the creator is still recognised and reviews,
    but the stored (wider) grant stays as it was."""
    connect(web)
    waiting(web, "post-1")
    before = web.store.credentials(ONE)
    creator = web.browser()
    page = creator.get(expired_link(web, "post-1"))
    opened = creator.get(sign_in(web, creator, page, uncheck=("video.upload",)))
    assert opened.status_code == 302, opened.text
    assert 'action="/review/post-1/post"' in creator.get(f"{web.base}/review").text
    after = web.store.credentials(ONE)
    assert before is not None
    assert after is not None
    assert after.access_token.reveal() == before.access_token.reveal()
    assert "video.upload" in after.user.scopes


def test_deny_gets_the_connect_refusal_and_try_again_signs_in(web: Rig) -> None:
    """Deny on TikTok's page → 403 "You did not allow access"; Try again starts a new sign-in
    for the same link, which opens the review."""
    connect(web)
    waiting(web, "post-1")
    creator = web.browser()
    page = creator.get(expired_link(web, "post-1"))
    denied = creator.get(sign_in(web, creator, page, button="Deny"))
    assert denied.status_code == 403
    assert "You did not allow access" in denied.text
    retry = forms_of(denied.text)[0]
    assert retry["action"] == "/review/sign-in"
    again = creator.post(urljoin(denied.url, retry["action"]), retry["fields"])
    scope = parse_qs(urlsplit(again.headers["Location"]).query)["scope"][0]
    assert set(scope.split(",")) == set(SCOPES)  # still bound to the link's creator
    authorize = creator.get(again.headers["Location"])
    form = forms_of(authorize.text)[0]
    fields = [*form["fields"], ("open_id", ONE), *form["checks"], form["buttons"]["Approve"]]
    back = creator.post(urljoin(authorize.url, form["action"]), fields)
    assert creator.get(back.headers["Location"]).status_code == 302
    assert 'action="/review/post-1/post"' in creator.get(f"{web.base}/review").text


def test_a_replayed_callback_is_refused(web: Rig) -> None:
    """The same callback opened twice: the second is refused and opens nothing more."""
    connect(web)
    waiting(web, "post-1")
    creator = web.browser()
    callback = sign_in(web, creator, creator.get(expired_link(web, "post-1")))
    assert creator.get(callback).status_code == 302
    replay = creator.get(callback)
    assert replay.status_code == 400
    assert "This sign-in cannot be finished" in replay.text
    assert web.store.database.fetch_one("SELECT COUNT(*) AS n FROM review_links")["n"] == 2


def test_a_callback_in_another_browser_opens_nothing(web: Rig) -> None:
    """A sign-in's callback opened in a browser other than the one that started it is refused,
    and that browser gets no review."""
    connect(web)
    waiting(web, "post-1")
    creator, attacker = web.browser(), web.browser()
    callback = sign_in(web, creator, creator.get(expired_link(web, "post-1")))
    page = attacker.get(callback)
    assert page.status_code == 400
    assert "started in another browser" in page.text
    assert "Review your posts" in attacker.get(f"{web.base}/review").text
    assert web.sandbox.calls("token") == 1  # the connect's exchange only
