"""OAuth by raw HTTP: authorize page, token exchange (hex PKCE, form only), refresh, revoke."""

from __future__ import annotations

import base64
import hashlib
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from orchestrator.clock import ManualClock
from orchestrator.sandbox import Fault, Sandbox, SandboxConfig
from tests.support.sandbox_api import Api, running_api

REDIRECT = "http://127.0.0.1:8765/callback/"
SCOPES = "user.info.basic,video.publish,video.upload"


class FormReader(HTMLParser):
    """Collects a page's form: its inputs, select options and buttons (like a browser would)."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.method = ""
        self.hidden: dict[str, str] = {}
        self.checkboxes: list[tuple[str, str, bool]] = []
        self.options: list[str] = []
        self.selects: list[str] = []
        self.buttons: dict[str, tuple[str, str]] = {}
        self._button: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action, self.method = a.get("action", ""), a.get("method", "")
        elif tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a.get("value", "")
        elif tag == "input" and a.get("type") == "checkbox":
            self.checkboxes.append((a["name"], a["value"], "checked" in a))
        elif tag == "select":
            self.selects.append(a["name"])
        elif tag == "option":
            self.options.append(a["value"])
        elif tag == "button":
            self._button = (a.get("name", ""), a.get("value", ""))

    def handle_data(self, data: str) -> None:
        if self._button is not None and data.strip():
            self.buttons[data.strip()] = self._button
            self._button = None


def pkce() -> tuple[str, str]:
    """A verifier and TikTok's hex challenge for it."""
    verifier = secrets.token_urlsafe(48)[:64]
    return verifier, hashlib.sha256(verifier.encode()).hexdigest()


def authorize_params(challenge: str, **overrides: str) -> dict[str, str]:
    params = {
        "client_key": "sbx_client_key",
        "scope": SCOPES,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "state": "st-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return params


def read_form(api: Api, params: dict[str, str]) -> FormReader:
    page = api.http.get(api.url("authorize"), params=params, timeout=10)
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    form = FormReader()
    form.feed(page.text)
    return form


def submit(
    api: Api,
    form: FormReader,
    *,
    button: str = "Authorize",
    open_id: str | None = None,
    uncheck: tuple[str, ...] = (),
) -> dict[str, list[str]]:
    """Submit the consent form as a browser would; the redirect's query."""
    fields: list[tuple[str, str]] = list(form.hidden.items())
    fields.append(("open_id", open_id or form.options[0]))
    fields += [(n, v) for n, v, checked in form.checkboxes if checked and v not in uncheck]
    fields.append(form.buttons[button])
    response = api.http.post(
        api.sandbox.base_url + form.action,
        data=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(location).query)


def login(api: Api, open_id: str = "sandbox-user-1") -> tuple[str, dict[str, list[str]]]:
    verifier, challenge = pkce()
    callback = submit(api, read_form(api, authorize_params(challenge)), open_id=open_id)
    return verifier, callback


def exchange(api: Api, code: str, verifier: str, **overrides: str) -> requests.Response:
    fields = {
        "client_key": "sbx_client_key",
        "client_secret": "sbx_client_secret",
        "code": code,
        "grant_type": "authorization_code",
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    fields.update(overrides)
    return api.form("token", fields)


def refresh(api: Api, refresh_token: str) -> requests.Response:
    return api.form(
        "token",
        {
            "client_key": "sbx_client_key",
            "client_secret": "sbx_client_secret",
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
        },
    )


def user_info(api: Api, token: str, fields: str = "open_id,display_name") -> requests.Response:
    return api.http.get(
        api.url("user_info"),
        params={"fields": fields},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_authorize_page_is_a_consent_form(api: Api) -> None:
    """The page offers every sandbox user, checked scope boxes, hidden OAuth fields, two buttons."""
    _, challenge = pkce()
    form = read_form(api, authorize_params(challenge))
    assert form.method == "post"
    assert form.selects == ["open_id"]
    assert form.options == ["sandbox-user-1", "sandbox-user-2", "sandbox-user-3"]
    assert [(v, checked) for _, v, checked in form.checkboxes] == [
        ("user.info.basic", True),
        ("video.publish", True),
        ("video.upload", True),
    ]
    for name in ("client_key", "redirect_uri", "state", "code_challenge", "code_challenge_method"):
        assert name in form.hidden
    assert form.hidden["code_challenge"] == challenge
    assert set(form.buttons) == {"Authorize", "Deny"}


def test_full_login_gives_tiktok_token_response(api: Api, sandbox: Sandbox) -> None:
    """Authorize → code, scopes and state on the redirect → form exchange with hex PKCE → tokens."""
    verifier, callback = login(api, "sandbox-user-2")
    assert callback["state"] == ["st-123"]
    assert callback["scopes"] == [SCOPES]
    response = exchange(api, callback["code"][0], verifier)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "access_token",
        "expires_in",
        "open_id",
        "refresh_token",
        "refresh_expires_in",
        "scope",
        "token_type",
    }
    assert body["open_id"] == "sandbox-user-2"
    assert (body["expires_in"], body["refresh_expires_in"]) == (7200, 180 * 86400)
    assert body["scope"] == SCOPES
    info = user_info(api, body["access_token"])
    assert info.json()["data"]["user"] == {
        "open_id": "sandbox-user-2",
        "display_name": "Sandbox Two",
    }
    assert sandbox.violations() == []


def test_user_may_grant_fewer_scopes(api: Api) -> None:
    """Unticking a scope shows in the callback's scopes and in the token's scope."""
    verifier, challenge = pkce()
    callback = submit(api, read_form(api, authorize_params(challenge)), uncheck=("video.publish",))
    assert callback["scopes"] == ["user.info.basic,video.upload"]
    body = exchange(api, callback["code"][0], verifier).json()
    assert body["scope"] == "user.info.basic,video.upload"


def test_deny_redirects_with_access_denied(api: Api) -> None:
    """The Deny button sends error=access_denied with a description and the state."""
    _, challenge = pkce()
    callback = submit(api, read_form(api, authorize_params(challenge)), button="Deny")
    assert callback["error"] == ["access_denied"]
    assert callback["error_description"]
    assert callback["state"] == ["st-123"]
    assert "code" not in callback


@pytest.mark.parametrize(
    "overrides",
    [
        {"client_key": "someone-else"},
        {"redirect_uri": "https://example.com/callback/"},
        {"redirect_uri": "http://127.0.0.1/callback/"},  # no port
    ],
)
def test_untrusted_client_or_redirect_shows_an_error_page(
    api: Api, overrides: dict[str, str]
) -> None:
    """A wrong client_key or an unregistered redirect_uri is an error page, never a redirect."""
    _, challenge = pkce()
    page = api.http.get(
        api.url("authorize"),
        params=authorize_params(challenge, **overrides),
        timeout=10,
        allow_redirects=False,
    )
    assert page.status_code == 400
    assert "Location" not in page.headers


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "invalid_request"),
        ({"scope": "video.publish,no.such.scope"}, "invalid_scope"),
    ],
)
def test_bad_authorize_parameters_redirect_with_an_error(
    api: Api, overrides: dict[str, str], error: str
) -> None:
    """Other bad parameters come back on the redirect as an OAuth error, state included."""
    _, challenge = pkce()
    page = api.http.get(
        api.url("authorize"),
        params=authorize_params(challenge, **overrides),
        timeout=10,
        allow_redirects=False,
    )
    assert page.status_code == 302
    query = parse_qs(urlsplit(page.headers["Location"]).query)
    assert query["error"] == [error]
    assert query["state"] == ["st-123"]


def test_registered_redirect_uris_are_matched_exactly(clock: ManualClock) -> None:
    """With redirect_uris configured, only those exact URIs are accepted."""
    config = SandboxConfig(redirect_uris=("http://127.0.0.1:9999/cb/",))
    with Sandbox(config, clock=clock) as sb, requests.Session() as http:
        url = sb.auth_url
        _, challenge = pkce()
        ok = http.get(
            url,
            params=authorize_params(challenge, redirect_uri="http://127.0.0.1:9999/cb/"),
            timeout=10,
        )
        other = http.get(url, params=authorize_params(challenge), timeout=10)
    assert (ok.status_code, other.status_code) == (200, 400)


def test_base64url_challenge_is_refused_at_exchange(api: Api, sandbox: Sandbox) -> None:
    """An RFC 7636 base64url challenge fails the exchange with TikTok's invalid_request message."""
    verifier = secrets.token_urlsafe(48)[:64]
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    callback = submit(api, read_form(api, authorize_params(challenge)))
    response = exchange(api, callback["code"][0], verifier)
    assert response.status_code == 200
    assert response.json()["error"] == "invalid_request"
    assert response.json()["error_description"] == "Code verifier or code challenge is invalid."
    assert "log_id" in response.json()
    assert any("base64url" in v for v in sandbox.violations())


def test_wrong_verifier_is_refused(api: Api) -> None:
    """A verifier that does not hash to the challenge is refused."""
    _, callback = login(api)
    other, _ = pkce()
    assert exchange(api, callback["code"][0], other).json()["error"] == "invalid_request"


def test_json_token_body_is_refused(api: Api, sandbox: Sandbox) -> None:
    """A JSON body at the token endpoint is invalid_request (at HTTP 200, as TikTok does)."""
    verifier, callback = login(api)
    response = api.http.post(
        api.url("token"),
        json={
            "client_key": "sbx_client_key",
            "client_secret": "sbx_client_secret",
            "code": callback["code"][0],
            "grant_type": "authorization_code",
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json()["error"] == "invalid_request"
    assert any("application/x-www-form-urlencoded" in v for v in sandbox.violations())


def test_code_is_single_use(api: Api, sandbox: Sandbox) -> None:
    """A second exchange of the same code is invalid_grant; a violation only once the client
    had shown it got the first exchange's tokens (before that, the answer may have been lost)."""
    verifier, callback = login(api)
    tokens = exchange(api, callback["code"][0], verifier).json()
    assert exchange(api, callback["code"][0], verifier).json()["error"] == "invalid_grant"
    assert sandbox.violations() == []
    assert user_info(api, tokens["access_token"]).status_code == 200
    assert exchange(api, callback["code"][0], verifier).json()["error"] == "invalid_grant"
    assert sandbox.violations() == ["token: authorization code used twice"]


def test_code_expires_after_ten_minutes(api: Api, clock: ManualClock) -> None:
    """A code exchanged after its lifetime is invalid_grant."""
    verifier, callback = login(api)
    clock.advance(600)
    assert exchange(api, callback["code"][0], verifier).json()["error"] == "invalid_grant"


def test_redirect_uri_must_be_identical(api: Api) -> None:
    """The exchange's redirect_uri must equal the authorize one."""
    verifier, callback = login(api)
    response = exchange(
        api, callback["code"][0], verifier, redirect_uri="http://127.0.0.1:8765/other/"
    )
    assert response.json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_invalid_client(api: Api) -> None:
    """A wrong client secret is invalid_client."""
    verifier, callback = login(api)
    response = exchange(api, callback["code"][0], verifier, client_secret="nope")
    assert response.json()["error"] == "invalid_client"


def test_unknown_grant_type(api: Api) -> None:
    """An unknown grant_type is unsupported_grant_type."""
    verifier, callback = login(api)
    response = exchange(api, callback["code"][0], verifier, grant_type="password")
    assert response.json()["error"] == "unsupported_grant_type"


def test_refresh_rotates_and_old_refresh_token_dies(api: Api, sandbox: Sandbox) -> None:
    """A refresh returns a new pair; the old refresh token is then invalid_grant, and sending
    it once the new pair was in use is a violation (the rotation was not stored)."""
    first = sandbox.grant_tokens("sandbox-user-1")
    second = refresh(api, first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == first["scope"]
    assert user_info(api, second["access_token"]).status_code == 200
    assert refresh(api, first["refresh_token"]).json()["error"] == "invalid_grant"
    assert any("reused after rotation" in v for v in sandbox.violations())
    assert "access_token" in refresh(api, second["refresh_token"]).json()


def test_lifetimes_follow_config_and_clock(clock: ManualClock) -> None:
    """expires_in / refresh_expires_in come from the config; the clock makes tokens expire."""
    config = SandboxConfig(access_token_ttl=100, refresh_token_ttl=1000)
    with running_api(config, clock) as api:
        tokens = api.sandbox.grant_tokens("sandbox-user-1")
        assert (tokens["expires_in"], tokens["refresh_expires_in"]) == (100, 1000)
        assert user_info(api, tokens["access_token"]).status_code == 200
        clock.advance(100)
        expired = user_info(api, tokens["access_token"])
        assert expired.status_code == 401
        assert expired.json()["error"]["code"] == "access_token_invalid"
        clock.advance(900)
        assert refresh(api, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoke_kills_access_and_refresh(api: Api, sandbox: Sandbox) -> None:
    """Revoke answers {} and the user's tokens stop working."""
    tokens = sandbox.grant_tokens("sandbox-user-1")
    response = api.form(
        "revoke",
        {
            "client_key": "sbx_client_key",
            "client_secret": "sbx_client_secret",
            "token": tokens["access_token"],
        },
    )
    assert (response.status_code, response.json()) == (200, {})
    assert user_info(api, tokens["access_token"]).status_code == 401
    assert refresh(api, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoke_needs_form_and_client(api: Api, sandbox: Sandbox) -> None:
    """Revoke refuses JSON bodies and a wrong secret, like the token endpoint."""
    tokens = sandbox.grant_tokens("sandbox-user-1")
    as_json = api.http.post(api.url("revoke"), json={"token": tokens["access_token"]}, timeout=10)
    wrong = api.form("revoke", {"client_key": "sbx_client_key", "client_secret": "x", "token": "y"})
    assert as_json.json()["error"] == "invalid_request"
    assert wrong.json()["error"] == "invalid_client"
    assert user_info(api, tokens["access_token"]).status_code == 200


def test_test_shortcuts_revoke_and_expire(api: Api, sandbox: Sandbox) -> None:
    """revoke_user_tokens kills both tokens; expire_access_tokens only the access token."""
    one = sandbox.grant_tokens("sandbox-user-1")
    two = sandbox.grant_tokens("sandbox-user-2")
    sandbox.revoke_user_tokens("sandbox-user-1")
    sandbox.expire_access_tokens("sandbox-user-2")
    assert user_info(api, one["access_token"]).status_code == 401
    assert refresh(api, one["refresh_token"]).json()["error"] == "invalid_grant"
    assert user_info(api, two["access_token"]).status_code == 401
    assert "access_token" in refresh(api, two["refresh_token"]).json()


def test_user_info_returns_only_requested_fields(api: Api) -> None:
    """user_info answers the requested fields, in the posting envelope."""
    body = user_info(api, api.token(), "open_id,union_id,avatar_url,display_name").json()
    assert body["error"]["code"] == "ok"
    assert set(body["data"]["user"]) == {"open_id", "union_id", "avatar_url", "display_name"}


def test_user_info_profile_fields_need_their_scope(api: Api) -> None:
    """username needs user.info.profile; unknown fields are invalid_params."""
    token = api.token()
    needs_scope = user_info(api, token, "open_id,username")
    unknown = user_info(api, token, "open_id,shoe_size")
    assert (needs_scope.status_code, needs_scope.json()["error"]["code"]) == (
        401,
        "scope_not_authorized",
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "invalid_params")
    granted = api.token(scopes=["user.info.basic", "user.info.profile"])
    assert user_info(api, granted, "username").json()["data"]["user"] == {
        "username": "sandbox_user_1"
    }


def test_missing_or_unknown_bearer_is_401(api: Api) -> None:
    """No Authorization header, or a made-up token, is 401 access_token_invalid."""
    missing = api.http.get(api.url("user_info"), params={"fields": "open_id"}, timeout=10)
    made_up = user_info(api, "act.not-a-token")
    for response in (missing, made_up):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "access_token_invalid"
        assert response.json()["data"] == {}


def test_issued_secrets_lists_every_secret_value_it_handed_out(api: Api, sandbox: Sandbox) -> None:
    """issued_secrets (for audits) holds the client secret, each access and refresh token and
    each upload-URL token issued, so a test can look for them anywhere."""
    tokens = sandbox.grant_tokens("sandbox-user-1")
    init = api.init_video(tokens["access_token"], 1_000, 1_000, 1)
    upload_url = init.json()["data"]["upload_url"]
    upload_token = parse_qs(urlsplit(upload_url).query)["upload_token"][0]
    secrets_known = sandbox.issued_secrets()
    for value in (
        sandbox.client_secret,
        tokens["access_token"],
        tokens["refresh_token"],
        upload_token,
    ):
        assert value in secrets_known


def test_refresh_token_sent_again_after_its_answer_was_lost_is_refused_but_no_violation(
    api: Api, sandbox: Sandbox
) -> None:
    """A refresh TikTok processed but whose answer never reached the client (a ``lost``
    fault; or a client killed before storing it) leaves the client holding a refresh token it
    cannot know is dead: sending it again is invalid_grant, as always, but not a violation."""
    tokens = sandbox.grant_tokens("sandbox-user-1")
    sandbox.schedule(Fault("token", call=1, kind="lost"))
    with pytest.raises(requests.ConnectionError):
        refresh(api, tokens["refresh_token"])
    assert refresh(api, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert sandbox.violations() == []


def test_unclaimed_rotations_names_users_whose_new_tokens_never_came_back(
    api: Api, sandbox: Sandbox
) -> None:
    """A refresh whose new tokens are never presented (the answer lost, the client dead) leaves
    its user listed; presenting the new access token claims it."""
    one = sandbox.grant_tokens("sandbox-user-1")
    two = sandbox.grant_tokens("sandbox-user-2")
    new_one = refresh(api, one["refresh_token"]).json()
    refresh(api, two["refresh_token"])
    assert sandbox.unclaimed_rotations() == ["sandbox-user-1", "sandbox-user-2"]
    assert user_info(api, new_one["access_token"]).status_code == 200
    assert sandbox.unclaimed_rotations() == ["sandbox-user-2"]
