"""Review links on the operator's pages and their lifetime, with Flask's test client and a
manual clock (the review page itself runs against the sandbox: test_review.py)."""

from __future__ import annotations

import hashlib
import re

from flask import Flask
from flask.testing import FlaskClient

from orchestrator.clock import ManualClock
from orchestrator.store.journal import EntryMeta
from orchestrator.store.review import DEFAULT_LINK_LIFETIME, ReviewItem, ReviewStore
from orchestrator.store.tokens import TokenStore
from tests.web.conftest import post_form

USER = "creator-1"
_URL = re.compile(r'value="(https?://[^"]+/review/[^"]+)"')


def _waiting(token_store: TokenStore, clock: ManualClock, identity: str = "post-1") -> None:
    """A post journalled awaiting_review, as a run leaves it."""
    meta = EntryMeta(identity, identity, USER, "direct", "file", "a.mp4", "digest", "fp-1")
    item = ReviewItem(identity, USER, "file", ("/nowhere/a.mp4",), "caption", 3.0, "fp-1")
    ReviewStore(token_store.database, clock=clock).await_review(meta, item)


def test_the_reviews_page_makes_a_link_shown_once_and_stored_hashed(
    operator: FlaskClient, token_store: TokenStore, clock: ManualClock
) -> None:
    """The operator sees who has posts waiting and gets a link once; the store keeps its hash."""
    _waiting(token_store, clock)
    page = operator.get("/review-links").text
    assert USER in page
    made = post_form(operator, "/review-links", "/review-links", {"open_id": USER})
    match = _URL.search(made.text)  # type: ignore[attr-defined]
    assert match is not None
    token = match.group(1).rsplit("/", 1)[1]
    assert len(token) >= 22  # >= 128 bits, URL-safe base64
    rows = token_store.database.fetch_all("SELECT token_hash FROM review_links")
    assert [row["token_hash"] for row in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in operator.get("/review-links").text


def test_a_link_for_nobody_waiting_is_refused(
    operator: FlaskClient, token_store: TokenStore
) -> None:
    """No post awaits review for that account: a 400 that says so, no link."""
    made = post_form(operator, "/review-links", "/review-links", {"open_id": USER})
    assert made.status_code == 400  # type: ignore[attr-defined]
    assert "no post awaiting review" in made.text  # type: ignore[attr-defined]


def test_the_reviews_page_needs_the_operator(client: FlaskClient) -> None:
    """Signed out, the Reviews page sends the browser to sign in."""
    assert client.get("/review-links").status_code == 302


def test_an_expired_link_says_to_ask_for_a_new_one(
    app: Flask, token_store: TokenStore, clock: ManualClock
) -> None:
    """Past its lifetime a link opens nothing and the page says what to do."""
    _waiting(token_store, clock)
    made = ReviewStore(token_store.database, clock=clock).create_link(USER, ["post-1"])
    clock.advance(DEFAULT_LINK_LIFETIME + 1)
    page = app.test_client().get(f"/review/{made.token}")
    assert page.status_code == 410
    assert "expired" in page.text
    assert "new review link" in page.text


def test_an_unknown_link_is_not_found(app: Flask) -> None:
    """A made-up token opens nothing."""
    assert app.test_client().get("/review/not-a-real-token-at-all").status_code == 404


def test_a_session_past_the_links_lifetime_is_sent_away(
    app: Flask, token_store: TokenStore, clock: ManualClock
) -> None:
    """The browser that opened a link loses the review when the link expires."""
    _waiting(token_store, clock)
    made = ReviewStore(token_store.database, clock=clock).create_link(USER, ["post-1"])
    browser = app.test_client()
    assert browser.get(f"/review/{made.token}").status_code == 302
    clock.advance(DEFAULT_LINK_LIFETIME + 1)
    assert browser.get("/review/media/post-1").status_code == 410


def test_the_done_page_says_when_a_confirmed_post_goes_out(
    app: Flask, token_store: TokenStore, clock: ManualClock
) -> None:
    """After Post, a post from a manifest run is "confirmed: goes out with the next batch run"
    (serve does not post it; the operator's next run does), one made over /api/v1/posts is
    "processing" (serve's worker posts it)."""
    from orchestrator.store.review import Consent, ReviewChoices
    from orchestrator.store.web import WebPostStore

    reviews = ReviewStore(token_store.database, clock=clock)
    _waiting(token_store, clock, "from-manifest")
    api_post, _ = WebPostStore(token_store.database, clock=clock).add(
        "key-1", body_digest="d", entry="{}"
    )
    meta = EntryMeta("api-identity", api_post.id, USER, "direct", "file", "b.mp4", "d", "fp-2")
    item = ReviewItem("api-identity", USER, "file", ("/nowhere/b.mp4",), "over http", 3.0, "fp-2")
    reviews.await_review(meta, item)
    choices = ReviewChoices("c", "SELF_ONLY", False, False, False, False, False)
    for identity, digest in (("from-manifest", "fp-1"), ("api-identity", "fp-2")):
        consent = Consent(USER, clock.time(), digest, choices, "By posting, ...")
        assert reviews.record_consent(identity, consent)
    made = reviews.create_link(USER, ["from-manifest", "api-identity"])
    browser = app.test_client()
    assert browser.get(f"/review/{made.token}").status_code == 302
    page = browser.get("/review").text
    assert "Nothing left to review" in page
    rows = re.findall(r"<tr>\s*<td>([^<]*)</td>\s*<td class=\"state\">([^<]*)</td>", page)
    assert dict(rows) == {
        "caption": "confirmed: goes out with the next batch run",
        "over http": "processing",
    }
    assert "when the person who prepared them next runs that batch" in page
