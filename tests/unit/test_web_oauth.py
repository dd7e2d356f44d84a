"""Login Kit for Web, client side: the authorize URL (PKCE per setting, disable_auto_auth), and
a code turned into stored tokens on the same path as `auth login` (reconnect replaces)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from orchestrator import auth
from orchestrator.clock import ManualClock
from orchestrator.errors import ConfigError, OAuthError
from orchestrator.secret import Secret
from orchestrator.store.tokens import TokenStore
from orchestrator.tiktok.oauth import AuthorizationCode, OAuthClient
from orchestrator.tiktok.web_oauth import (
    WebPkce,
    build_web_authorization_request,
    connect_redirect_uri,
)
from orchestrator.transport import HttpTransport

API = "http://127.0.0.1:9"
AUTH_URL = "https://www.tiktok.com/v2/auth/authorize/"
REDIRECT = "https://posts.example.com/connect/callback/"
SCOPES = ("user.info.basic", "video.publish", "video.upload")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_authorize_url_uses_rfc7636_base64url_by_default() -> None:
    """Default PKCE is base64url(sha256(verifier)) without padding; the URL forces consent."""
    request = build_web_authorization_request(
        auth_url=AUTH_URL, client_key="ck", redirect_uri=REDIRECT, scopes=SCOPES
    )
    query = query_of(request.url)
    digest = hashlib.sha256(request.code_verifier.reveal().encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert "=" not in query["code_challenge"]
    assert query["code_challenge_method"] == "S256"
    assert query["disable_auto_auth"] == "1"
    assert query["redirect_uri"] == REDIRECT
    assert query["state"] == request.state.reveal()
    assert query["scope"] == ",".join(SCOPES)
    assert (query["client_key"], query["response_type"]) == ("ck", "code")


def test_authorize_url_with_hex_setting_sends_hex_challenge() -> None:
    """ORCHESTRATOR_WEB_PKCE=hex writes the challenge as the desktop flow's hex SHA-256."""
    request = build_web_authorization_request(
        auth_url=AUTH_URL, client_key="ck", redirect_uri=REDIRECT, scopes=SCOPES, pkce="hex"
    )
    verifier = request.code_verifier.reveal()
    assert query_of(request.url)["code_challenge"] == hashlib.sha256(verifier.encode()).hexdigest()


def test_each_attempt_has_fresh_state_and_verifier() -> None:
    """Two attempts share neither state nor verifier."""
    one, two = (
        build_web_authorization_request(
            auth_url=AUTH_URL, client_key="ck", redirect_uri=REDIRECT, scopes=SCOPES
        )
        for _ in range(2)
    )
    assert one.state.reveal() != two.state.reveal()
    assert one.code_verifier.reveal() != two.code_verifier.reveal()


def test_unknown_pkce_reading_names_the_setting() -> None:
    """A reading other than s256/hex is a ConfigError whose hint names ORCHESTRATOR_WEB_PKCE."""
    with pytest.raises(ConfigError) as caught:
        build_web_authorization_request(
            auth_url=AUTH_URL, client_key="ck", redirect_uri=REDIRECT, scopes=SCOPES, pkce="b64"
        )
    assert "ORCHESTRATOR_WEB_PKCE" in (caught.value.hint or "")


def test_redirect_uri_is_under_the_public_url() -> None:
    """The redirect URI is ${ORCHESTRATOR_PUBLIC_URL}/connect/callback/, one slash whatever."""
    assert connect_redirect_uri("https://posts.example.com") == REDIRECT
    assert connect_redirect_uri("https://posts.example.com/") == REDIRECT
    assert WebPkce("s256") is WebPkce.S256


def token_answer(access: str, refresh: str, scope: str = ",".join(SCOPES)) -> dict[str, object]:
    return {
        "access_token": access,
        "expires_in": 7200,
        "open_id": "creator-1",
        "refresh_token": refresh,
        "refresh_expires_in": 180 * 86400,
        "scope": scope,
        "token_type": "Bearer",
    }


USER_INFO = {
    "data": {
        "user": {
            "open_id": "creator-1",
            "display_name": "Cleo",
            "avatar_url": "https://p16.example.com/cleo.jpeg",
        }
    },
    "error": {"code": "ok", "message": "", "log_id": "L1"},
}


def connect(store: TokenStore, clock: ManualClock, code: str) -> auth.StoredAuthorization:
    with contextlib.closing(HttpTransport()) as transport:
        oauth = OAuthClient(
            transport, api_base=API, client_key="ck", client_secret=Secret("cs"), clock=clock
        )
        return auth.store_authorization(
            oauth,
            store,
            AuthorizationCode(Secret(code), frozenset(SCOPES)),
            code_verifier=Secret("v" * 64),
            redirect_uri=REDIRECT,
            requested_scopes=SCOPES,
        )


@responses.activate
def test_code_becomes_stored_tokens_with_name_and_avatar(
    store: TokenStore, clock: ManualClock
) -> None:
    """The code is exchanged with the web redirect URI and verifier; the user is stored with
    their display name; the avatar comes back for the page."""
    responses.post(f"{API}/v2/oauth/token/", json=token_answer("act.1", "rft.1"))
    responses.get(f"{API}/v2/user/info/", json=USER_INFO)
    result = connect(store, clock, "CODE1")
    exchange = parse_qs(responses.calls[0].request.body.decode())  # type: ignore[union-attr]
    assert exchange["redirect_uri"] == [REDIRECT]
    assert exchange["code_verifier"] == ["v" * 64]
    assert exchange["code"] == ["CODE1"]
    assert "avatar_url" in parse_qs(urlsplit(responses.calls[1].request.url).query)["fields"][0]
    assert result.user.display_name == "Cleo"
    assert result.avatar_url == "https://p16.example.com/cleo.jpeg"
    assert result.missing_scopes == frozenset()
    assert [u.open_id for u in store.list_users()] == ["creator-1"]


@responses.activate
def test_connecting_again_replaces_tokens_and_never_duplicates(
    store: TokenStore, clock: ManualClock
) -> None:
    """A second connect of the same creator replaces the tokens in the one row."""
    responses.post(f"{API}/v2/oauth/token/", json=token_answer("act.1", "rft.1"))
    responses.post(f"{API}/v2/oauth/token/", json=token_answer("act.2", "rft.2", "user.info.basic"))
    responses.get(f"{API}/v2/user/info/", json=USER_INFO)
    connect(store, clock, "CODE1")
    clock.advance(60)
    second = connect(store, clock, "CODE2")
    assert len(store.list_users()) == 1
    credentials = store.credentials("creator-1")
    assert credentials is not None
    assert (credentials.access_token.reveal(), credentials.refresh_token.reveal()) == (
        "act.2",
        "rft.2",
    )
    assert credentials.user.scopes == {"user.info.basic"}
    assert second.missing_scopes == {"video.publish", "video.upload"}


@responses.activate
def test_refused_code_stores_nothing(store: TokenStore, clock: ManualClock) -> None:
    """invalid_grant from the token endpoint is an OAuthError and no account appears."""
    responses.post(
        f"{API}/v2/oauth/token/",
        json={"error": "invalid_grant", "error_description": "Code expired", "log_id": "L"},
    )
    with pytest.raises(OAuthError) as caught:
        connect(store, clock, "OLD")
    assert caught.value.error == "invalid_grant"
    assert store.list_users() == []
