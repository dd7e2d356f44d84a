"""OAuth: PKCE, the authorize URL, token responses (errors at 200), revoke, user info, and the
loopback callback server."""

from __future__ import annotations

import hashlib
import http.client
import re
import socket
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import responses

from orchestrator.clock import ManualClock
from orchestrator.errors import ApiError, AuthError, ConfigError, OAuthError
from orchestrator.secret import Secret
from orchestrator.tiktok.oauth import (
    VERIFIER_ALPHABET,
    AuthorizationCode,
    CallbackServer,
    OAuthClient,
    build_authorization_request,
    code_challenge,
    new_code_verifier,
    parse_pasted_redirect,
    parse_scopes,
)
from orchestrator.transport import HttpTransport

API = "http://127.0.0.1:9"
TOKEN_URL = f"{API}/v2/oauth/token/"
TOKEN_ANSWER = {
    "access_token": "act.secret-access",
    "expires_in": 86400,
    "open_id": "user-1",
    "refresh_token": "rft.secret-refresh",
    "refresh_expires_in": 31536000,
    "scope": "user.info.basic,video.publish",
    "token_type": "Bearer",
}


@pytest.fixture
def client(clock: ManualClock) -> Iterator[OAuthClient]:
    transport = HttpTransport()
    try:
        yield OAuthClient(
            transport,
            api_base=API,
            client_key="ck",
            client_secret=Secret("cs-secret"),
            clock=clock,
        )
    finally:
        transport.close()


def form(call: responses.Call) -> dict[str, str]:
    body = call.request.body
    assert isinstance(body, bytes)
    return {k: v[0] for k, v in parse_qs(body.decode()).items()}


# -- PKCE and the authorize URL -------------------------------------------------------------------


def test_verifier_is_64_chars_from_the_allowed_set() -> None:
    """A verifier has 64 characters from [A-Za-z0-9-._~] and differs every time."""
    one, two = new_code_verifier(), new_code_verifier()
    assert len(one.reveal()) == 64
    assert set(one.reveal()) <= set(VERIFIER_ALPHABET)
    assert one != two


def test_challenge_is_hex_sha256_not_base64url() -> None:
    """TikTok desktop quirk: the challenge is the lowercase hex SHA-256 of the verifier."""
    verifier = Secret("a" * 64)
    challenge = code_challenge(verifier)
    assert challenge == hashlib.sha256(b"a" * 64).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", challenge)


def test_authorize_url_carries_every_parameter() -> None:
    """The authorize URL has client_key, comma scopes, code, redirect, state and S256 challenge."""
    request = build_authorization_request(
        auth_url="https://www.tiktok.com/v2/auth/authorize/",
        client_key="ck",
        redirect_uri="http://127.0.0.1:8765/callback/",
        scopes=["user.info.basic", "video.publish", "video.publish"],
    )
    parts = urlsplit(request.url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.netloc == "www.tiktok.com"
    assert query == {
        "client_key": "ck",
        "scope": "user.info.basic,video.publish",
        "response_type": "code",
        "redirect_uri": "http://127.0.0.1:8765/callback/",
        "state": request.state.reveal(),
        "code_challenge": code_challenge(request.code_verifier),
        "code_challenge_method": "S256",
    }
    assert request.code_verifier.reveal() not in request.url
    assert request.code_verifier.reveal() not in repr(request)


def test_each_login_gets_a_fresh_state_and_verifier() -> None:
    """Two login attempts never share a state or verifier."""
    make = lambda: build_authorization_request(  # noqa: E731
        auth_url="https://a/", client_key="k", redirect_uri="http://127.0.0.1:1/cb"
    )
    one, two = make(), make()
    assert one.state != two.state
    assert one.code_verifier != two.code_verifier


def test_no_scopes_is_a_usage_error() -> None:
    """Asking for no scope at all is refused before anything is opened."""
    with pytest.raises(ConfigError):
        build_authorization_request(
            auth_url="https://a/", client_key="k", redirect_uri="http://127.0.0.1:1/", scopes=[" "]
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("user.info.basic,video.publish", {"user.info.basic", "video.publish"}),
        ("user.info.basic video.upload", {"user.info.basic", "video.upload"}),
        (["a", " b "], {"a", "b"}),
        ("", set()),
        (None, set()),
    ],
)
def test_scopes_parse_from_commas_spaces_or_lists(value: object, expected: set[str]) -> None:
    """Granted scopes are read from comma or space separated text, or a list."""
    assert parse_scopes(value) == expected


# -- pasted redirects -----------------------------------------------------------------------------


def test_pasted_redirect_gives_the_code_and_granted_scopes() -> None:
    """A pasted redirect URL yields its code and the scopes the user granted."""
    state = Secret("s" * 20)
    code = parse_pasted_redirect(
        "http://127.0.0.1:8765/callback/?code=C0DE&scopes=user.info.basic%2Cvideo.upload"
        f"&state={state.reveal()}",
        expected_state=state,
    )
    assert code.code.reveal() == "C0DE"
    assert code.granted_scopes == {"user.info.basic", "video.upload"}


def test_pasted_redirect_with_wrong_state_is_refused() -> None:
    """A redirect whose state is not this login's is refused before any exchange."""
    with pytest.raises(AuthError, match="state does not match"):
        parse_pasted_redirect(
            "http://127.0.0.1:8765/callback/?code=C&state=other", expected_state=Secret("mine")
        )


def test_pasted_redirect_without_state_is_refused() -> None:
    """A code with no state at all is refused (CSRF)."""
    with pytest.raises(AuthError, match="state does not match"):
        parse_pasted_redirect("?code=C", expected_state=Secret("mine"))


def test_pasted_access_denied_is_an_oauth_error() -> None:
    """error=access_denied becomes OAuthError('access_denied') with a retry hint."""
    with pytest.raises(OAuthError) as caught:
        parse_pasted_redirect(
            "http://127.0.0.1:8765/callback/?error=access_denied"
            "&error_description=User+cancelled&state=mine",
            expected_state=Secret("mine"),
        )
    assert caught.value.error == "access_denied"
    assert caught.value.description == "User cancelled"
    assert "auth login" in (caught.value.hint or "")


def test_empty_paste_is_refused() -> None:
    """Pressing enter without pasting gives a clear error."""
    with pytest.raises(AuthError, match="no URL was pasted"):
        parse_pasted_redirect("  ", expected_state=Secret("s"))


# -- the token endpoint ---------------------------------------------------------------------------


@responses.activate
def test_exchange_posts_a_form_and_parses_the_grant(
    client: OAuthClient, clock: ManualClock
) -> None:
    """Code exchange is a form post with every field; expiries count from arrival."""
    responses.post(TOKEN_URL, json=TOKEN_ANSWER)
    grant = client.exchange_code(
        Secret("C0DE"), code_verifier=Secret("v" * 64), redirect_uri="http://127.0.0.1:8765/cb/"
    )
    [call] = responses.calls
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form(call) == {
        "client_key": "ck",
        "client_secret": "cs-secret",
        "code": "C0DE",
        "grant_type": "authorization_code",
        "redirect_uri": "http://127.0.0.1:8765/cb/",
        "code_verifier": "v" * 64,
    }
    assert grant.open_id == "user-1"
    assert grant.access_token.reveal() == "act.secret-access"
    assert grant.refresh_token.reveal() == "rft.secret-refresh"
    assert grant.access_expires_at == clock.time() + 86400
    assert grant.refresh_expires_at == clock.time() + 31536000
    assert grant.scopes == {"user.info.basic", "video.publish"}
    assert "secret" not in repr(grant)


@responses.activate
@pytest.mark.parametrize("lifetime", ["nan", "inf", 1e300, -1, "soon"])
def test_token_answer_with_an_impossible_lifetime_is_an_invalid_response(
    client: OAuthClient, lifetime: object
) -> None:
    """expires_in that is NaN (a token fresh forever), infinite, absurd or not a number is
    refused as invalid_response, never stored."""
    responses.post(TOKEN_URL, json={**TOKEN_ANSWER, "expires_in": lifetime})
    with pytest.raises(OAuthError) as caught:
        client.refresh(Secret("rft.old"))
    assert caught.value.error == "invalid_response"
    assert "expires_in" in str(caught.value)


@responses.activate
def test_refresh_posts_the_refresh_token(client: OAuthClient) -> None:
    """Refresh sends grant_type=refresh_token and the token, as a form."""
    responses.post(TOKEN_URL, json=TOKEN_ANSWER)
    client.refresh(Secret("rft.old"))
    fields = form(responses.calls[0])
    assert fields["grant_type"] == "refresh_token"
    assert fields["refresh_token"] == "rft.old"
    assert fields["client_secret"] == "cs-secret"


@responses.activate
def test_error_with_http_200_is_an_oauth_error(client: OAuthClient) -> None:
    """{"error": ...} with HTTP 200 is an error: the key decides, not the status."""
    responses.post(
        TOKEN_URL,
        json={
            "error": "invalid_grant",
            "error_description": "Refresh token is invalid or expired.",
            "log_id": "LOG123",
        },
        status=200,
    )
    with pytest.raises(OAuthError) as caught:
        client.refresh(Secret("rft.old"))
    assert caught.value.error == "invalid_grant"
    assert caught.value.log_id == "LOG123"
    assert caught.value.http_status == 200
    assert not caught.value.retryable
    assert "auth login" in (caught.value.hint or "")
    assert "rft.old" not in str(caught.value)


@responses.activate
def test_pkce_refusal_is_reported(client: OAuthClient) -> None:
    """invalid_request at exchange (e.g. a bad challenge) is an OAuthError with its text."""
    responses.post(
        TOKEN_URL,
        json={
            "error": "invalid_request",
            "error_description": "Code verifier or code challenge is invalid.",
        },
    )
    with pytest.raises(OAuthError, match="Code verifier or code challenge is invalid"):
        client.exchange_code(Secret("C"), code_verifier=Secret("v" * 64), redirect_uri="x")


@responses.activate
def test_server_error_without_body_is_retryable(client: OAuthClient) -> None:
    """A 503 with an HTML body is OAuthError('server_error') marked retryable."""
    responses.post(TOKEN_URL, body="<html>busy</html>", status=503)
    with pytest.raises(OAuthError) as caught:
        client.refresh(Secret("rft"))
    assert caught.value.error == "server_error"
    assert caught.value.retryable


@responses.activate
def test_temporarily_unavailable_is_retryable(client: OAuthClient) -> None:
    """The OAuth error temporarily_unavailable is retryable whatever the status."""
    responses.post(TOKEN_URL, json={"error": "temporarily_unavailable"}, status=200)
    with pytest.raises(OAuthError) as caught:
        client.refresh(Secret("rft"))
    assert caught.value.retryable


@responses.activate
def test_answer_missing_fields_is_refused(client: OAuthClient) -> None:
    """A 200 answer without a refresh token or expiry is an error, never a half grant."""
    partial = {k: v for k, v in TOKEN_ANSWER.items() if k not in ("refresh_token", "expires_in")}
    responses.post(TOKEN_URL, json=partial)
    with pytest.raises(OAuthError, match="refresh_token, expires_in"):
        client.refresh(Secret("rft"))


@responses.activate
def test_non_json_200_is_refused(client: OAuthClient) -> None:
    """A 200 that is not JSON is an invalid response, not a crash."""
    responses.post(TOKEN_URL, body="ok")
    with pytest.raises(OAuthError, match="not a JSON object"):
        client.refresh(Secret("rft"))


@responses.activate
def test_scopes_key_is_accepted(client: OAuthClient) -> None:
    """Granted scopes are read from `scopes` when `scope` is absent."""
    answer = {k: v for k, v in TOKEN_ANSWER.items() if k != "scope"}
    answer["scopes"] = "video.upload"
    responses.post(TOKEN_URL, json=answer)
    assert client.refresh(Secret("rft")).scopes == {"video.upload"}


@responses.activate
def test_revoke_posts_the_access_token(client: OAuthClient) -> None:
    """Revoke is a form post of client credentials and the access token; {} is success."""
    responses.post(f"{API}/v2/oauth/revoke/", json={})
    client.revoke(Secret("act.x"))
    assert form(responses.calls[0]) == {
        "client_key": "ck",
        "client_secret": "cs-secret",
        "token": "act.x",
    }


@responses.activate
def test_revoke_error_is_raised(client: OAuthClient) -> None:
    """A revoke answered with an error key raises OAuthError."""
    responses.post(f"{API}/v2/oauth/revoke/", json={"error": "invalid_request"})
    with pytest.raises(OAuthError, match="invalid_request"):
        client.revoke(Secret("act.x"))


@responses.activate
def test_user_info_asks_for_the_basic_fields(client: OAuthClient) -> None:
    """User info is a Bearer GET for open_id, union_id, avatar_url, display_name."""
    responses.get(
        f"{API}/v2/user/info/",
        json={
            "data": {"user": {"open_id": "user-1", "display_name": "Ann", "avatar_url": "a"}},
            "error": {"code": "ok", "message": "", "log_id": "L"},
        },
    )
    info = client.fetch_user_info(Secret("act.x"))
    call = responses.calls[0]
    assert call.request.headers["Authorization"] == "Bearer act.x"
    assert parse_qs(urlsplit(call.request.url).query)["fields"] == [
        "open_id,union_id,avatar_url,display_name"
    ]
    assert (info.open_id, info.display_name, info.union_id) == ("user-1", "Ann", None)


@responses.activate
def test_user_info_error_is_an_api_error(client: OAuthClient) -> None:
    """An access_token_invalid answer is an ApiError flagged for re-auth."""
    responses.get(
        f"{API}/v2/user/info/",
        json={
            "data": {},
            "error": {"code": "access_token_invalid", "message": "bad", "log_id": "L"},
        },
        status=401,
    )
    with pytest.raises(ApiError) as caught:
        client.fetch_user_info(Secret("act.x"))
    assert caught.value.reauth
    assert caught.value.log_id == "L"


# -- the loopback callback server -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.fixture
def port() -> int:
    return free_port()


def query(**params: str) -> str:
    return "/callback/?" + urlencode(params)


def test_callback_returns_the_code_and_answers_the_browser(port: int) -> None:
    """The redirect with the right state ends the wait with its code; the browser gets a page."""
    state = Secret("right-state")
    with CallbackServer(f"http://127.0.0.1:{port}/callback/", state) as server:
        status, page = get(port, query(code="C0DE", scopes="video.upload", state="right-state"))
        code = server.wait(5)
    assert status == 200
    assert "signed in" in page.lower()
    assert code == AuthorizationCode(Secret("C0DE"), frozenset({"video.upload"}))


def test_callback_ignores_other_paths_and_methods(port: int) -> None:
    """/favicon.ico gets 404 and a POST gets 405, and the server keeps waiting."""
    state = Secret("s")
    with CallbackServer(f"http://127.0.0.1:{port}/callback/", state) as server:
        assert get(port, "/favicon.ico")[0] == 404
        assert get(port, query(code="C", state="s"), method="POST")[0] == 405
        assert get(port, query(code="C", state="s"))[0] == 200
        assert server.wait(5).code.reveal() == "C"


def test_callback_with_wrong_state_is_refused_and_waiting_goes_on(port: int) -> None:
    """A wrong state gets 400 and does not end the login; the right one then does."""
    state = Secret("right")
    with CallbackServer(f"http://127.0.0.1:{port}/callback/", state) as server:
        status, page = get(port, query(code="EVIL", state="wrong"))
        assert status == 400
        assert "does not belong" in page
        get(port, query(code="GOOD", state="right"))
        assert server.wait(5).code.reveal() == "GOOD"


def test_callback_access_denied_ends_the_login(port: int) -> None:
    """error=access_denied with our state ends the wait with OAuthError."""
    state = Secret("s")
    with CallbackServer(f"http://127.0.0.1:{port}/callback/", state) as server:
        status, page = get(
            port, query(error="access_denied", error_description="<b>No</b>", state="s")
        )
        with pytest.raises(OAuthError) as caught:
            server.wait(5)
    assert status == 400
    assert "&lt;b&gt;No&lt;/b&gt;" in page  # escaped, never injected
    assert caught.value.error == "access_denied"


def test_callback_times_out_cleanly_and_mentions_stray_redirects(port: int) -> None:
    """No matching redirect within the timeout: AuthError naming it, the port is freed."""
    state = Secret("s")
    with CallbackServer(f"http://127.0.0.1:{port}/callback/", state) as server:
        get(port, query(code="X", state="stale"))
        with pytest.raises(AuthError, match=r"within 0\.2 s; 1 redirect") as caught:
            server.wait(0.2)
    assert "auth login" in (caught.value.hint or "")
    with CallbackServer(f"http://127.0.0.1:{port}/callback/", state):
        pass  # the port was released: a new login can listen on it at once


def test_callback_port_in_use_is_a_config_error(port: int) -> None:
    """A redirect port already taken gives a ConfigError saying what to change."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with (
            pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"),
            CallbackServer(f"http://127.0.0.1:{port}/callback/", Secret("s")),
        ):
            pass


def test_callback_server_silences_request_logging(
    port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """The request line (which carries the code) is never written to stderr."""
    with CallbackServer(f"http://127.0.0.1:{port}/callback/", Secret("s")) as server:
        get(port, query(code="SECRETCODE", state="s"))
        server.wait(5)
    captured = capsys.readouterr()
    assert "SECRETCODE" not in captured.err + captured.out


def test_slow_client_does_not_block_the_callback(port: int) -> None:
    """A connection that sends nothing does not stop the real redirect from being served."""
    state = Secret("s")
    with CallbackServer(f"http://127.0.0.1:{port}/callback/", state) as server:
        idle = socket.create_connection(("127.0.0.1", port))
        try:
            result: list[int] = []
            worker = threading.Thread(
                target=lambda: result.append(get(port, query(code="C", state="s"))[0])
            )
            worker.start()
            worker.join(15)
            assert result == [200]
            assert server.wait(1).code.reveal() == "C"
        finally:
            idle.close()
