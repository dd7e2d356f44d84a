"""A sandbox Web app by raw HTTP (Login Kit for Web, tiktok-api.md §2.1): PKCE readings,
https redirect URIs matched exactly, the loopback allowance for tests, Approve and Deny."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from orchestrator.clock import ManualClock
from orchestrator.sandbox import SandboxConfig
from tests.sandbox.conftest import Api, running_api
from tests.sandbox.test_oauth import FormReader

WEB_REDIRECT = "https://orchestrator.example.com/connect/callback/"
LOOPBACK_REDIRECT = "http://127.0.0.1:8700/connect/callback/"
SCOPES = "user.info.basic,video.publish"
MSG_PKCE = "Code verifier or code challenge is invalid."


def web_config(**overrides: object) -> SandboxConfig:
    fields: dict[str, object] = {"app_type": "web", "redirect_uris": (WEB_REDIRECT,)}
    fields.update(overrides)
    return SandboxConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture
def web_api(clock: ManualClock) -> Iterator[Api]:
    with running_api(web_config(), clock) as api:
        yield api


def verifier() -> str:
    return secrets.token_urlsafe(48)[:64]


def s256(value: str) -> str:
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hex_of(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def authorize_params(challenge: str, redirect_uri: str = WEB_REDIRECT) -> dict[str, str]:
    return {
        "client_key": "sbx_client_key",
        "scope": SCOPES,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "state": "st-web",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "disable_auto_auth": "1",
    }


def consent(
    api: Api, challenge: str, *, button: str = "Approve", redirect_uri: str = WEB_REDIRECT
) -> dict[str, list[str]]:
    """Open the authorize page, press ``button``; the query of the redirect to ``redirect_uri``."""
    page = api.http.get(
        api.url("authorize"), params=authorize_params(challenge, redirect_uri), timeout=10
    )
    assert page.status_code == 200, page.text
    form = FormReader()
    form.feed(page.text)
    fields: list[tuple[str, str]] = list(form.hidden.items())
    fields.append(("open_id", form.options[0]))
    fields += [(name, value) for name, value, checked in form.checkboxes if checked]
    fields.append(form.buttons[button])
    answer = api.http.post(
        api.sandbox.base_url + form.action,
        data=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(redirect_uri + "?")
    return parse_qs(urlsplit(location).query)


def exchange(
    api: Api, code: str, code_verifier: str, redirect_uri: str = WEB_REDIRECT
) -> requests.Response:
    return api.form(
        "token",
        {
            "client_key": "sbx_client_key",
            "client_secret": "sbx_client_secret",
            "code": code,
            "grant_type": "authorization_code",
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        },
    )


def test_web_consent_page_has_approve_and_deny_and_keeps_disable_auto_auth(web_api: Api) -> None:
    """A Web app's consent page shows Approve and Deny and carries disable_auto_auth=1 back."""
    page = web_api.http.get(
        web_api.url("authorize"), params=authorize_params(s256(verifier())), timeout=10
    )
    form = FormReader()
    form.feed(page.text)
    assert set(form.buttons) == {"Approve", "Deny"}
    assert form.hidden["disable_auto_auth"] == "1"
    assert web_api.sandbox.violations() == []


@pytest.mark.parametrize("reading", ["s256", "hex"])
def test_web_app_accepts_both_pkce_readings_by_default(web_api: Api, reading: str) -> None:
    """By default a Web app exchanges a code for an RFC 7636 base64url or a hex challenge."""
    secret = verifier()
    challenge = s256(secret) if reading == "s256" else hex_of(secret)
    callback = consent(web_api, challenge)
    assert callback["state"] == ["st-web"]
    response = exchange(web_api, callback["code"][0], secret)
    assert response.json()["open_id"] == "sandbox-user-1"
    assert web_api.sandbox.violations() == []


@pytest.mark.parametrize(("accepted", "sent"), [("s256", "hex"), ("hex", "s256")])
def test_web_app_pinned_to_one_pkce_reading_refuses_the_other(
    clock: ManualClock, accepted: str, sent: str
) -> None:
    """A Web app pinned to one reading answers invalid_request "Code verifier or code challenge
    is invalid." at exchange for the other."""
    with running_api(web_config(web_pkce=(accepted,)), clock) as api:
        secret = verifier()
        challenge = s256(secret) if sent == "s256" else hex_of(secret)
        callback = consent(api, challenge)
        body = exchange(api, callback["code"][0], secret).json()
        assert (body["error"], body["error_description"]) == ("invalid_request", MSG_PKCE)
        assert any(
            f"code_challenge is {sent.replace('s256', 'base64url')}" in v
            for v in (api.sandbox.violations())
        )


def test_web_app_refuses_a_verifier_that_does_not_match(web_api: Api) -> None:
    """A verifier other than the one behind the challenge is invalid_request, either reading."""
    callback = consent(web_api, s256(verifier()))
    body = exchange(web_api, callback["code"][0], verifier()).json()
    assert (body["error"], body["error_description"]) == ("invalid_request", MSG_PKCE)


def test_desktop_app_still_refuses_base64url(clock: ManualClock) -> None:
    """The web readings do not leak into the Desktop app: base64url stays refused there."""
    desktop_redirect = "http://127.0.0.1:8765/callback/"
    with running_api(SandboxConfig(), clock) as api:
        secret = verifier()
        callback = consent(api, s256(secret), button="Authorize", redirect_uri=desktop_redirect)
        body = exchange(api, callback["code"][0], secret, desktop_redirect).json()
        assert body["error"] == "invalid_request"


def test_deny_redirects_with_access_denied_and_state(web_api: Api) -> None:
    """Deny sends the browser back with error=access_denied, a description and the state."""
    callback = consent(web_api, s256(verifier()), button="Deny")
    assert callback["error"] == ["access_denied"]
    assert callback["error_description"][0]
    assert callback["state"] == ["st-web"]
    assert "code" not in callback


@pytest.mark.parametrize(
    "uri",
    [
        WEB_REDIRECT.rstrip("/"),  # matched exactly: no trailing-slash leniency
        WEB_REDIRECT + "?next=/admin",
        "https://evil.example.com/connect/callback/",
        "http://orchestrator.example.com/connect/callback/",
        LOOPBACK_REDIRECT,
    ],
)
def test_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(
    web_api: Api, uri: str
) -> None:
    """Any redirect URI but a registered one, byte for byte, is a 400 page (no redirect)."""
    page = web_api.http.get(
        web_api.url("authorize"),
        params=authorize_params(s256(verifier()), uri),
        allow_redirects=False,
        timeout=10,
    )
    assert page.status_code == 400
    assert "redirect_uri is not registered" in page.text


def test_loopback_http_redirect_works_only_with_the_test_allowance(clock: ManualClock) -> None:
    """With allow_loopback_http_redirect a Web app may register http://127.0.0.1:PORT/connect/
    callback/ and complete a login through it; without it, the config is refused."""
    with pytest.raises(ValueError, match="must be https"):
        web_config(redirect_uris=(LOOPBACK_REDIRECT,))
    config = web_config(redirect_uris=(LOOPBACK_REDIRECT,), allow_loopback_http_redirect=True)
    with running_api(config, clock) as api:
        secret = verifier()
        callback = consent(api, s256(secret), redirect_uri=LOOPBACK_REDIRECT)
        response = exchange(api, callback["code"][0], secret, LOOPBACK_REDIRECT)
        assert "access_token" in response.json()


@pytest.mark.parametrize(
    ("uris", "problem"),
    [
        ((), "1 to 10"),
        (tuple(f"https://a{i}.example.com/cb/" for i in range(11)), "1 to 10"),
        (("https://example.com/" + "a" * 500,), "the limit is 511"),
        (("https://example.com/cb/?x=1",), "no query"),
        (("https://example.com/cb/#top",), "no fragment"),
        (("http://orchestrator.example.com/connect/callback/",), "must be https"),
        (("http://127.0.0.1:8700/elsewhere/",), "must be https"),
        (("/connect/callback/",), "must be absolute"),
    ],
)
def test_web_redirect_uri_registration_rules(uris: tuple[str, ...], problem: str) -> None:
    """A Web app registers 1-10 absolute https URIs under 512 chars, no query or fragment; the
    loopback allowance covers only http://127.0.0.1:PORT/connect/callback/."""
    with pytest.raises(ValueError, match=problem):
        web_config(
            redirect_uris=uris,
            allow_loopback_http_redirect=True,
        )


def test_web_pkce_setting_is_validated() -> None:
    """Only "s256" and "hex" are PKCE readings, and at least one must be accepted."""
    for bad in ((), ("plain",)):
        with pytest.raises(ValueError, match="web_pkce"):
            web_config(web_pkce=bad)
