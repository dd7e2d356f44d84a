"""The issue's security list, for the operator's side: one test per line that concerns it."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import sqlite3
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from orchestrator.clock import ManualClock
from orchestrator.config import Settings, load_web_config
from orchestrator.secret import Secret
from orchestrator.store.db import DB_FILENAME
from orchestrator.store.tokens import TokenStore
from orchestrator.tiktok.oauth import TokenGrant
from orchestrator.web import create_app, security
from orchestrator.web.security import (
    LOGIN_FAILURES_ALLOWED,
    LOGIN_WINDOW,
    PasswordCheck,
    hash_password,
    safe_next,
)
from tests.web.conftest import ADMIN_PASSWORD, ADMIN_PASSWORD_HASH, post_form, sign_in


def _make_invite_and_key(operator: FlaskClient) -> tuple[str, str]:
    page = post_form(operator, "/invites", "/invites", {"label": "Client", "days": "7"})
    invite = re.search(r"/connect/([A-Za-z0-9_-]+)", page.text)  # type: ignore[attr-defined]
    page = post_form(operator, "/api-keys", "/api-keys", {"label": "n8n"})
    key = re.search(r'value="(tko_[^"]+)"', page.text)  # type: ignore[attr-defined]
    assert invite
    assert key
    return invite.group(1), key.group(1)


def test_no_secret_in_any_page_or_log(
    operator: FlaskClient,
    token_store: TokenStore,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Tokens, API keys, invite tokens and the admin password appear in no page after the one
    that hands a new secret out, and in no log line."""
    caplog.set_level(logging.DEBUG)
    now = clock.time()
    token_store.save_grant(
        TokenGrant(
            open_id="creator-1",
            access_token=Secret("act.ACCESS-TOKEN-VALUE"),
            access_expires_at=now + 3600,
            refresh_token=Secret("rft.REFRESH-TOKEN-VALUE"),
            refresh_expires_at=now + 86400,
            scopes=frozenset({"video.upload"}),
        ),
        display_name="Creator",
    )
    invite, key = _make_invite_and_key(operator)
    secrets = (invite, key, "ACCESS-TOKEN-VALUE", "REFRESH-TOKEN-VALUE", ADMIN_PASSWORD)
    for page in ("/accounts", "/invites", "/posts", "/reports", "/api-keys", "/api/v1/healthz"):
        text = operator.get(page).text
        for secret in secrets:
            assert secret not in text, (page, secret)
    for secret in secrets:
        assert secret not in caplog.text


def test_a_creator_named_script_is_text(
    operator: FlaskClient, token_store: TokenStore, clock: ManualClock
) -> None:
    """Display names and labels are escaped: `<script>` shows as text, never as markup."""
    now = clock.time()
    token_store.save_grant(
        TokenGrant(
            open_id="evil",
            access_token=Secret("a"),
            access_expires_at=now + 3600,
            refresh_token=Secret("r"),
            refresh_expires_at=now + 86400,
            scopes=frozenset({"video.upload"}),
        ),
        display_name="<script>alert(1)</script>",
    )
    post_form(
        operator, "/invites", "/invites", {"label": "<img src=x onerror=alert(1)>", "days": "7"}
    )
    accounts = operator.get("/accounts").text
    invites = operator.get("/invites").text
    assert "<script>alert(1)</script>" not in accounts
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in accounts
    assert "<img src=x" not in invites
    assert "&lt;img src=x onerror=alert(1)&gt;" in invites


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "http:/evil.example",
        "/\tevil",
        "javascript:alert(1)",
    ],
)
def test_no_open_redirect_after_sign_in(client: FlaskClient, target: str) -> None:
    """`next=` sends the operator only to a path of this site; anything else goes home."""
    response = sign_in(client, next_path=target)
    assert response.headers["Location"] == "/accounts"  # type: ignore[attr-defined]


def test_safe_next_keeps_same_site_paths() -> None:
    """A same-site path with a query survives `next=`."""
    assert safe_next("/reports/run-1?x=1", "/accounts") == "/reports/run-1?x=1"


def test_sign_in_is_throttled_per_client_address(client: FlaskClient, clock: ManualClock) -> None:
    """After 5 failures from one address even the right password is refused (429) until the
    window has passed; another address is not affected."""
    for _ in range(LOGIN_FAILURES_ALLOWED):
        assert sign_in(client, password="wrong").status_code == 401  # type: ignore[attr-defined]
    response = sign_in(client)
    assert response.status_code == 429  # type: ignore[attr-defined]
    assert "Too many failed sign-ins" in response.text  # type: ignore[attr-defined]
    assert client.get("/accounts").status_code == 302
    other = client.application.test_client()
    token_page = other.get("/login", environ_base={"REMOTE_ADDR": "10.0.0.9"}).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', token_page)
    assert token
    response = other.post(
        "/login",
        data={"password": ADMIN_PASSWORD, "csrf_token": token.group(1)},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert response.status_code == 302
    clock.advance(LOGIN_WINDOW + 1)
    assert sign_in(client).status_code == 302  # type: ignore[attr-defined]


def test_password_and_secrets_are_compared_in_constant_time(
    operator: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The password check, the CSRF check and the API key lookup end in hmac.compare_digest."""
    calls: list[str] = []
    real = hmac.compare_digest

    def spy(a: bytes | str, b: bytes | str) -> bool:
        calls.append("compare")
        return real(a, b)  # type: ignore[arg-type]

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    check = PasswordCheck.from_config(
        load_web_config(environ={"ORCHESTRATOR_ADMIN_PASSWORD": ADMIN_PASSWORD})
    )
    assert check.verify(ADMIN_PASSWORD)
    assert not check.verify("nope")
    assert len(calls) == 2
    from orchestrator.store import web_secrets

    monkeypatch.setattr(web_secrets.hmac, "compare_digest", spy)
    _invite, key = _make_invite_and_key(operator)
    before = len(calls)
    assert operator.application.extensions["orchestrator"].api_keys.authenticate(key)
    assert len(calls) > before


def test_a_password_hash_from_the_helper_signs_in(
    settings: Settings, clock: ManualClock, token_store: TokenStore
) -> None:
    """ORCHESTRATOR_ADMIN_PASSWORD_HASH (scrypt) works; the password itself is then nowhere."""
    hashed = hash_password("a long admin password")
    assert hashed.startswith("$scrypt$n=16384,r=8,p=1$")
    config = load_web_config(environ={"ORCHESTRATOR_ADMIN_PASSWORD_HASH": hashed})
    app = create_app(config, settings=settings, clock=clock, token_store=token_store)
    client = app.test_client()
    assert sign_in(client, password="a long admin password").status_code == 302  # type: ignore[attr-defined]


def test_security_headers_on_every_answer(operator: FlaskClient) -> None:
    """CSP (default-src 'self', frame-ancestors 'none'), nosniff and no-referrer on pages,
    errors, static files and the API."""
    for path in ("/accounts", "/login", "/nowhere", "/static/style.css", "/api/v1/healthz"):
        response = operator.get(path)
        response.close()  # the static file's handle
        headers = response.headers
        csp = headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp, path
        assert "frame-ancestors 'none'" in csp, path
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"


def test_session_cookie_is_httponly_lax_and_secure_when_public(
    settings: Settings, clock: ManualClock, token_store: TokenStore
) -> None:
    """The session cookie: HttpOnly and SameSite=Lax always, Secure with an https public URL."""
    for public_url, secure in (("http://127.0.0.1:8700", False), ("https://posts.example", True)):
        config = load_web_config(
            environ={"ORCHESTRATOR_ADMIN_PASSWORD_HASH": ADMIN_PASSWORD_HASH},
            public_url=public_url,
        )
        client = create_app(
            config, settings=settings, clock=clock, token_store=token_store
        ).test_client()
        response = sign_in(client)
        cookie = response.headers["Set-Cookie"]  # type: ignore[attr-defined]
        assert cookie.startswith("orchestrator_session=")
        assert "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure


def test_invites_and_api_keys_are_hashed_at_rest(operator: FlaskClient, settings: Settings) -> None:
    """The database holds the SHA-256 of each invite token and API key, never the value."""
    invite, key = _make_invite_and_key(operator)
    raw = (settings.home / DB_FILENAME).read_bytes()
    wal = settings.home / f"{DB_FILENAME}-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert invite.encode() not in raw
    assert key.encode() not in raw
    connection = sqlite3.connect(Path(settings.home) / DB_FILENAME)
    try:
        (token_hash,) = connection.execute("SELECT token_hash FROM invites").fetchone()
        (key_hash,) = connection.execute("SELECT key_hash FROM api_keys").fetchone()
    finally:
        connection.close()
    assert token_hash == hashlib.sha256(invite.encode()).hexdigest()
    assert key_hash == hashlib.sha256(key.encode()).hexdigest()


def test_loopback_bind_by_default() -> None:
    """Without options serve listens on 127.0.0.1 only."""
    assert load_web_config(environ={"ORCHESTRATOR_ADMIN_PASSWORD": "x"}).host == "127.0.0.1"


def test_trusted_proxy_headers_only_when_configured(
    settings: Settings, clock: ManualClock, token_store: TokenStore
) -> None:
    """X-Forwarded-For is ignored unless ORCHESTRATOR_TRUSTED_PROXIES says a proxy is in front:
    a client cannot dodge the login throttle by making up addresses."""
    for proxies, dodges in ((0, False), (1, True)):
        config = load_web_config(
            environ={"ORCHESTRATOR_ADMIN_PASSWORD_HASH": ADMIN_PASSWORD_HASH},
            trusted_proxies=proxies,
        )
        client = create_app(
            config, settings=settings, clock=clock, token_store=token_store
        ).test_client()
        for n in range(LOGIN_FAILURES_ALLOWED):
            client.environ_base["HTTP_X_FORWARDED_FOR"] = f"10.1.0.{n}"
            sign_in(client, password="wrong")
        client.environ_base["HTTP_X_FORWARDED_FOR"] = "10.1.0.99"
        status = sign_in(client).status_code  # type: ignore[attr-defined]
        assert (status == 302) is dodges, proxies
