"""The key signing ``serve``'s session cookies lives in the store: a restart keeps the operator
and a creator's review signed in, instances on one store share sessions, and the key itself is
in no page, log line or readable column."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from orchestrator.cli import cli
from orchestrator.clock import ManualClock
from orchestrator.config import Settings, WebConfig, load_settings
from orchestrator.store.journal import EntryMeta
from orchestrator.store.review import ReviewItem, ReviewStore
from orchestrator.store.tokens import TokenStore
from orchestrator.store.web import SESSION_KEY_NAME, session_signing_key
from orchestrator.web import SESSION_COOKIE, create_app
from tests.web.conftest import ADMIN_PASSWORD, sign_in

USER = "creator-1"


def _app(web_config: WebConfig, settings: Settings, clock: ManualClock, store: TokenStore) -> Flask:
    return create_app(web_config, settings=settings, clock=clock, token_store=store)


def _cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    return cookie.value


def _with_cookie(app: Flask, value: str) -> FlaskClient:
    """A browser that carries ``value`` as its session cookie to ``app``."""
    browser = app.test_client()
    browser.set_cookie(SESSION_COOKIE, value)
    return browser


def test_a_restart_keeps_the_operator_and_a_review_signed_in(
    web_config: WebConfig, settings: Settings, clock: ManualClock
) -> None:
    """Sign in, open a review link, stop the app and close the store; a new app on the same
    store accepts the same cookie for the operator's pages and the review."""
    with TokenStore.open(settings, clock=clock) as store:
        meta = EntryMeta("post-1", "post-1", USER, "direct", "file", "a.mp4", "d", "fp")
        item = ReviewItem("post-1", USER, "file", ("/nowhere/a.mp4",), "caption", 3.0, "fp")
        reviews = ReviewStore(store.database, clock=clock)
        reviews.await_review(meta, item)
        link = reviews.create_link(USER, ["post-1"])
        browser = _app(web_config, settings, clock, store).test_client()
        assert getattr(sign_in(browser), "status_code", None) == 302
        assert browser.get(f"/review/{link.token}").status_code == 302
        cookie = _cookie(browser)
    with TokenStore.open(settings, clock=clock) as store:
        again = _with_cookie(_app(web_config, settings, clock, store), cookie)
        assert again.get("/accounts").status_code == 200
        # The review's media route answers for the session's post (the file is gone: 404),
        # where a browser without the review gets the sign-in page (403).
        assert again.get("/review/media/post-1").status_code == 404
        stranger = _app(web_config, settings, clock, store).test_client()
        assert stranger.get("/review/media/post-1").status_code == 403
        rows = store.database.fetch_all(
            "SELECT name FROM store_meta WHERE name = ?", (SESSION_KEY_NAME,)
        )
        assert len(rows) == 1


def test_two_apps_on_one_store_share_sessions(
    web_config: WebConfig, settings: Settings, clock: ManualClock, token_store: TokenStore
) -> None:
    """Two instances (each its own connection to the store): a sign-in on one is a sign-in
    on the other, and a cookie signed by another store's key is refused."""
    with TokenStore.open(settings, clock=clock) as second_store:
        first = _app(web_config, settings, clock, token_store).test_client()
        second = _app(web_config, settings, clock, second_store)
        sign_in(first)
        assert _with_cookie(second, _cookie(first)).get("/accounts").status_code == 200


def test_a_cookie_from_another_store_is_refused(
    web_config: WebConfig,
    settings: Settings,
    clock: ManualClock,
    tmp_path: Path,
    token_store: TokenStore,
) -> None:
    """A store with its own key does not accept the first store's cookies."""
    elsewhere = load_settings(environ={}, home=tmp_path / "other-home")
    first = _app(web_config, settings, clock, token_store).test_client()
    sign_in(first)
    with TokenStore.open(elsewhere, clock=clock) as other_store:
        other = _app(web_config, elsewhere, clock, other_store)
        answer = _with_cookie(other, _cookie(first)).get("/accounts")
        assert answer.status_code == 302  # to the sign-in page


def test_the_key_is_in_no_page_log_or_readable_column(
    web_config: WebConfig,
    settings: Settings,
    clock: ManualClock,
    token_store: TokenStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The session key is stored sealed (its text is not in the row), and no page or log line
    of a signed-in session shows it."""
    caplog.set_level(logging.DEBUG)
    browser = _app(web_config, settings, clock, token_store).test_client()
    pages = [browser.get("/login").text]
    sign_in(browser)
    pages += [browser.get(path).text for path in ("/accounts", "/invites", "/review")]
    key = session_signing_key(token_store.database, token_store.cipher).reveal()
    assert len(key) >= 43  # 256 random bits
    row = token_store.database.fetch_one(
        "SELECT value FROM store_meta WHERE name = ?", (SESSION_KEY_NAME,)
    )
    assert key.encode() not in bytes(row["value"])
    assert ADMIN_PASSWORD not in "".join(pages)
    for text in [*pages, *(record.getMessage() for record in caplog.records)]:
        assert key not in text


def test_rotating_the_key_ends_every_session_after_a_restart(
    web_config: WebConfig, settings: Settings, clock: ManualClock
) -> None:
    """`tiktok-orchestrator store rotate-session-key`: the next app on the store refuses the cookie
    the operator signed in with, and a fresh sign-in works."""
    with TokenStore.open(settings, clock=clock) as store:
        browser = _app(web_config, settings, clock, store).test_client()
        assert getattr(sign_in(browser), "status_code", None) == 302
        cookie = _cookie(browser)
    result = CliRunner().invoke(
        cli,
        ["store", "rotate-session-key"],
        env={"ORCHESTRATOR_HOME": str(settings.home)},
    )
    assert result.exit_code == 0, result.output
    assert "restart every `serve` instance" in result.output
    with TokenStore.open(settings, clock=clock) as store:
        app = _app(web_config, settings, clock, store)
        assert _with_cookie(app, cookie).get("/accounts").status_code == 302  # to sign-in
        fresh = app.test_client()
        assert getattr(sign_in(fresh), "status_code", None) == 302
        assert fresh.get("/accounts").status_code == 200
