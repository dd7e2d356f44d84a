"""Creators connect through the web app, against the real sandbox over loopback with a real
HTTP client (cookies kept, redirects followed by hand): invite → authorize → callback → stored."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.clock import ManualClock
from orchestrator.config import Settings, WebConfig
from orchestrator.sandbox import Fault, Sandbox, SandboxConfig, SandboxUser
from orchestrator.secret import Secret
from orchestrator.store.tokens import TokenStore
from orchestrator.store.web import InviteStore
from orchestrator.web import create_app
from tests.support.waitress_thread import LOOP_TIMEOUT
from tests.web.conftest import ADMIN_PASSWORD_HASH

SCOPES = ("user.info.basic", "video.publish", "video.upload")


class Form(HTMLParser):
    """A page's forms as a browser sees them: action, hidden fields, checkboxes, buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._button: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {"action": a.get("action", ""), "fields": [], "checks": [], "options": []}
            )
        elif not self.forms:
            return
        elif tag == "input" and a.get("type") == "hidden":
            self.forms[-1]["fields"].append((a["name"], a.get("value", "")))
        elif tag == "input" and a.get("type") == "checkbox":
            self.forms[-1]["checks"].append((a["name"], a["value"]))
        elif tag == "option":
            self.forms[-1]["options"].append(a["value"])
        elif tag == "button":
            self._button = (a.get("name", ""), a.get("value", ""))

    def handle_data(self, data: str) -> None:
        if self._button is not None and data.strip() and self.forms:
            self.forms[-1].setdefault("buttons", {})[data.strip()] = self._button
            self._button = None


def forms_of(html: str) -> list[dict[str, Any]]:
    reader = Form()
    reader.feed(html)
    return reader.forms


@dataclass
class Browser:
    """One browser: its own cookies; every page it saw is kept for the secrets audit."""

    pages: list[tuple[str, str]]
    http: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.http.trust_env = False

    def get(self, url: str) -> requests.Response:
        answer = self.http.get(url, allow_redirects=False, timeout=10)
        self.pages.append((url, answer.text))
        return answer

    def post(self, url: str, fields: list[tuple[str, str]]) -> requests.Response:
        answer = self.http.post(
            url,
            data=urlencode(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            allow_redirects=False,
            timeout=10,
        )
        self.pages.append((url, answer.text))
        return answer

    def submit(self, page: requests.Response, button: str | None = None) -> requests.Response:
        """Submit the page's (first) form, as a click on ``button`` would."""
        form = forms_of(page.text)[0]
        fields = list(form["fields"])
        if button is not None:
            fields.append(form["buttons"][button])
        return self.post(urljoin(page.url, form["action"]), fields)


@dataclass
class Rig:
    """The web app on a loopback port, the sandbox as a Web app, and their store."""

    base: str
    sandbox: Sandbox
    store: TokenStore
    invites: InviteStore
    clock: ManualClock
    home: Path
    pages: list[tuple[str, str]]

    browsers: list[Browser]

    def browser(self) -> Browser:
        made = Browser(self.pages)
        self.browsers.append(made)
        return made

    def invite(self, scopes: tuple[str, ...] = SCOPES) -> str:
        made = self.invites.create("Client X", scopes)
        return made.token

    def consent(
        self,
        browser: Browser,
        token: str,
        *,
        button: str = "Approve",
        uncheck: tuple[str, ...] = (),
    ) -> str:
        """Invite page → Continue with TikTok → TikTok's consent page → ``button``; the
        callback address TikTok redirects to (not yet opened)."""
        page = browser.get(f"{self.base}/connect/{token}")
        assert page.status_code == 200, page.text
        to_tiktok = browser.submit(page)
        return self.answer_consent(browser, to_tiktok, button=button, uncheck=uncheck)

    def answer_consent(
        self,
        browser: Browser,
        to_tiktok: requests.Response,
        *,
        button: str = "Approve",
        uncheck: tuple[str, ...] = (),
    ) -> str:
        assert to_tiktok.status_code == 303, to_tiktok.text
        authorize = browser.get(to_tiktok.headers["Location"])
        assert authorize.status_code == 200, authorize.text
        form = forms_of(authorize.text)[0]
        fields = list(form["fields"])
        fields.append(("open_id", form["options"][0]))
        fields += [(n, v) for n, v in form["checks"] if v not in uncheck]
        fields.append(form["buttons"][button])
        answer = browser.post(urljoin(authorize.url, form["action"]), fields)
        assert answer.status_code == 302, answer.text
        location = str(answer.headers["Location"])
        assert location.startswith(f"{self.base}/connect/callback/?")
        return location


def _wsgi_server(holder: dict[str, Any]) -> Any:
    import waitress  # type: ignore[import-untyped]

    def app(environ: Any, start_response: Any) -> Any:
        return holder["app"](environ, start_response)

    return waitress.create_server(
        app, host="127.0.0.1", port=0, threads=4, asyncore_loop_timeout=LOOP_TIMEOUT
    )


@contextlib.contextmanager
def rig(
    home: Path,
    *,
    pkce: str = "s256",
    web_pkce: tuple[str, ...] = ("s256", "hex"),
    users: tuple[SandboxUser, ...] | None = None,
) -> Iterator[Rig]:
    holder: dict[str, Any] = {}
    browsers: list[Browser] = []
    server = _wsgi_server(holder)
    base = f"http://127.0.0.1:{server.effective_port}"
    clock = ManualClock()
    sandbox_config = SandboxConfig(
        app_type="web",
        redirect_uris=(f"{base}/connect/callback/",),
        allow_loopback_http_redirect=True,
        web_pkce=web_pkce,
        **({"users": users} if users else {}),
    )
    with Sandbox(sandbox_config, clock=clock) as sandbox:
        settings = Settings(
            home=home,
            api_base=sandbox.base_url,
            auth_url=sandbox.auth_url,
            client_key=sandbox.client_key,
            client_secret=Secret(sandbox.client_secret),
        )
        config = WebConfig(
            public_url=base, admin_password_hash=Secret(ADMIN_PASSWORD_HASH), pkce=pkce
        )
        with TokenStore.open(settings, clock=clock) as store:
            holder["app"] = create_app(config, settings=settings, clock=clock, token_store=store)
            stop = threading.Event()

            def run() -> None:
                # waitress's own run() cannot be stopped from another thread without closing
                # sockets under its select(); this loop stops between two polls instead.
                while not stop.is_set():
                    server.asyncore.loop(timeout=0.05, map=server._map, count=1)

            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            try:
                yield Rig(
                    base=base,
                    sandbox=sandbox,
                    store=store,
                    invites=InviteStore(store.database, clock=clock),
                    clock=clock,
                    home=home,
                    pages=[],
                    browsers=browsers,
                )
            finally:
                for browser in browsers:
                    browser.http.close()
                stop.set()
                thread.join(5)
                server.asyncore.close_all(server._map)  # the listener and every connection
                server.task_dispatcher.shutdown()
        assert sandbox.server_errors() == []


@pytest.fixture
def web(home: Path) -> Iterator[Rig]:
    with rig(home) as running:
        yield running


def _browser_request(rig: Rig, record: logging.LogRecord) -> bool:
    """urllib3's line about a request *the test's browser* made (to the app or to TikTok's
    authorize page): the browser's own history, not the server's log."""
    message = record.getMessage()
    return record.name.startswith("urllib3") and (
        rig.base in message or "/v2/auth/authorize/" in message
    )


def assert_no_secrets(rig: Rig, extra: list[str], caplog: pytest.LogCaptureFixture) -> None:
    """No token, code, invite token or client secret in any page or log line."""
    secrets_seen = [*rig.sandbox.issued_secrets(), *extra]
    logged = "\n".join(
        record.getMessage() for record in caplog.records if not _browser_request(rig, record)
    )
    assert "connect: invite" in logged  # the server's lines are in the audit
    for secret in secrets_seen:
        assert secret not in logged
        for url, page in rig.pages:
            if url.startswith(rig.base):  # the app's pages (TikTok's own pages carry state)
                assert secret not in page


def test_invite_to_connected_account_stores_the_same_row_as_auth_login(
    web: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Approve → "Connected as <name>" with the scopes; the account is in the token store (one
    row, `auth list` shows it), the invite is used up, and no secret reached a page or log."""
    caplog.set_level(logging.DEBUG)
    token = web.invite()
    creator = web.browser()
    page = creator.get(f"{web.base}/connect/{token}")
    assert "Continue with TikTok" in page.text
    for scope in SCOPES:
        assert scope in page.text
    assert "post videos directly to the profile" in page.text
    callback = web.consent(creator, token)
    query = parse_qs(urlsplit(callback).query)
    done = creator.get(callback)
    assert done.status_code == 200, done.text
    assert "Connected as Sandbox One" in done.text
    assert "video.publish" in done.text
    users = web.store.list_users()
    assert [(u.open_id, u.display_name) for u in users] == [("sandbox-user-1", "Sandbox One")]
    assert users[0].scopes == set(SCOPES)
    (invite,) = web.invites.list()
    assert (invite.state(web.clock.time()).value, invite.open_id) == ("used", "sandbox-user-1")
    listed = CliRunner().invoke(cli, ["--home", str(web.home), "auth", "list"])
    assert listed.exit_code == 0, listed.output
    assert "sandbox-user-1" in listed.output
    assert web.sandbox.violations() == []
    assert_no_secrets(web, [token, query["code"][0], query["state"][0]], caplog)


def test_authorize_request_forces_consent_and_uses_the_pkce_setting(home: Path) -> None:
    """The browser is sent to TikTok with disable_auto_auth=1, the web redirect URI and an
    RFC 7636 challenge by default; ORCHESTRATOR_WEB_PKCE=hex against a hex-only app works."""
    with rig(home, pkce="hex", web_pkce=("hex",)) as web:
        creator = web.browser()
        to_tiktok = creator.submit(creator.get(f"{web.base}/connect/{web.invite()}"))
        query = parse_qs(urlsplit(to_tiktok.headers["Location"]).query)
        assert query["disable_auto_auth"] == ["1"]
        assert query["redirect_uri"] == [f"{web.base}/connect/callback/"]
        assert re.fullmatch(r"[0-9a-f]{64}", query["code_challenge"][0])
        done = creator.get(web.answer_consent(creator, to_tiktok))
        assert "Connected as" in done.text


def test_pkce_reading_tiktok_refuses_gives_a_page_naming_the_setting(home: Path) -> None:
    """If TikTok wants the other PKCE reading, the page says so and names ORCHESTRATOR_WEB_PKCE."""
    with rig(home, pkce="s256", web_pkce=("hex",)) as web:
        creator = web.browser()
        done = creator.get(web.consent(creator, web.invite()))
        assert done.status_code == 502
        assert "Code verifier or code challenge is invalid." in done.text
        assert "ORCHESTRATOR_WEB_PKCE" in done.text
        assert web.store.list_users() == []


def test_deny_shows_a_clear_page_and_stores_nothing(web: Rig) -> None:
    """Deny on TikTok's page → 403 "You did not allow access" with Try again; no account."""
    creator = web.browser()
    token = web.invite()
    page = creator.get(web.consent(creator, token, button="Deny"))
    assert page.status_code == 403
    assert "You did not allow access" in page.text
    assert "Try again" in page.text
    assert web.store.list_users() == []
    # Try again starts a new attempt for the same invite, in this browser.
    again = creator.submit(page)
    done = creator.get(web.answer_consent(creator, again))
    assert "Connected as Sandbox One" in done.text


def test_expired_used_revoked_and_unknown_invites_are_refused(web: Rig) -> None:
    """Each gone invite has its own page and status, not a traceback."""
    creator = web.browser()
    expired = web.invites.create("old", SCOPES, lifetime=60).token
    revoked = web.invites.create("withdrawn", SCOPES)
    web.invites.revoke(revoked.invite.id)
    used = web.invite()
    creator.get(web.consent(creator, used))
    web.clock.advance(61)
    cases = {
        expired: (410, "This invite has expired"),
        used: (410, "This invite has been used"),
        revoked.token: (410, "This invite was withdrawn"),
        "not-a-real-invite-token": (404, "This invite link is not valid"),
    }
    for token, (status, title) in cases.items():
        page = creator.get(f"{web.base}/connect/{token}")
        assert (page.status_code, title in page.text) == (status, True), page.text
        assert "Traceback" not in page.text


def test_invite_expiring_while_at_tiktok_is_refused_at_callback(web: Rig) -> None:
    """The invite is checked again when the creator comes back: expired meanwhile → 410."""
    creator = web.browser()
    token = web.invites.create("short", SCOPES, lifetime=120).token
    callback = web.consent(creator, token)
    web.clock.advance(121)
    page = creator.get(callback)
    assert page.status_code == 410
    assert web.store.list_users() == []


def test_replayed_callback_is_refused(web: Rig) -> None:
    """Opening the same callback address twice: the second is refused, nothing changes."""
    creator = web.browser()
    callback = web.consent(creator, web.invite())
    assert creator.get(callback).status_code == 200
    before = web.store.credentials("sandbox-user-1")
    replay = creator.get(callback)
    assert replay.status_code == 400
    assert "This sign-in cannot be finished" in replay.text
    after = web.store.credentials("sandbox-user-1")
    assert before is not None
    assert after is not None
    assert after.access_token.reveal() == before.access_token.reveal()


def test_state_from_another_browser_is_refused(web: Rig) -> None:
    """A callback opened in a browser other than the one that started it stores nothing."""
    creator, attacker = web.browser(), web.browser()
    callback = web.consent(creator, web.invite())
    page = attacker.get(callback)
    assert page.status_code == 400
    assert "started in another browser" in page.text
    assert web.store.list_users() == []


def test_missing_state_or_unknown_state_is_refused(web: Rig) -> None:
    """A callback without a state, or with a made-up one, is a 400 page."""
    creator = web.browser()
    for query in ("code=abc", "code=abc&state=made-up"):
        page = creator.get(f"{web.base}/connect/callback/?{query}")
        assert page.status_code == 400
    assert web.sandbox.calls("token") == 0


@pytest.mark.parametrize(
    ("fault", "status", "title"),
    [
        (Fault(endpoint="token", status=503), 502, "TikTok is having trouble"),
        (Fault(endpoint="token", kind="reset"), 504, "TikTok did not answer"),
        (
            Fault(endpoint="token", status=200, error_code="invalid_grant"),
            400,
            "The sign-in expired",
        ),
    ],
)
def test_token_endpoint_failures_get_clear_pages(
    web: Rig, fault: Fault, status: int, title: str
) -> None:
    """TikTok's token endpoint failing (5xx, no answer, invalid_grant) → a page with the right
    status and a Try again; no account stored, the invite still open."""
    creator = web.browser()
    callback = web.consent(creator, web.invite())
    web.sandbox.schedule(fault)
    page = creator.get(callback)
    assert page.status_code == status, page.text
    assert title in page.text
    assert "Try again" in page.text
    assert web.store.list_users() == []
    (invite,) = web.invites.list()
    assert invite.state(web.clock.time()).value == "open"


def test_reconnect_replaces_tokens_and_never_duplicates(web: Rig) -> None:
    """The same creator connecting through a second invite: one row, the new tokens."""
    creator = web.browser()
    creator.get(web.consent(creator, web.invite()))
    first = web.store.credentials("sandbox-user-1")
    web.clock.advance(3600)
    creator.get(web.consent(creator, web.invite()))
    second = web.store.credentials("sandbox-user-1")
    assert first is not None
    assert second is not None
    assert len(web.store.list_users()) == 1
    assert second.refresh_token.reveal() != first.refresh_token.reveal()
    assert second.user.access_expires_at == first.user.access_expires_at + 3600


def test_missing_scope_says_what_will_not_work_and_offers_to_try_again(web: Rig) -> None:
    """Unticking video.publish: connected, the page says direct posts will not work, the invite
    stays open, and Try again can complete the grant."""
    creator = web.browser()
    page = creator.get(web.consent(creator, web.invite(), uncheck=("video.publish",)))
    assert page.status_code == 200
    assert "Connected as Sandbox One" in page.text
    assert "cannot post videos directly to the profile" in page.text
    (user,) = web.store.list_users()
    assert "video.publish" not in user.scopes
    (invite,) = web.invites.list()
    assert invite.state(web.clock.time()).value == "open"
    forms = forms_of(page.text)
    retry = creator.post(urljoin(page.url, forms[-1]["action"]), forms[-1]["fields"])
    done = creator.get(web.answer_consent(creator, retry))
    assert "Some access was not granted" not in done.text
    (user,) = web.store.list_users()
    assert set(SCOPES) <= user.scopes


def test_script_display_name_is_shown_as_text(home: Path) -> None:
    """A creator named <script>…</script> is escaped on the connected page."""
    name = "<script>alert(1)</script>"
    with rig(home, users=(SandboxUser(open_id="evil", display_name=name),)) as web:
        creator = web.browser()
        page = creator.get(web.consent(creator, web.invite()))
        assert name not in page.text
        assert "Connected as &lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_continue_without_csrf_token_is_refused(web: Rig) -> None:
    """A cross-site POST to the invite (no CSRF token) does not start an attempt."""
    creator = web.browser()
    token = web.invite()
    answer = creator.post(f"{web.base}/connect/{token}", [])
    assert answer.status_code == 400
    assert web.sandbox.calls("authorize") == 0


def test_pages_allow_the_form_redirect_to_tiktok_only(web: Rig) -> None:
    """The invite page's CSP lets its form lead to TikTok's authorize origin, and frames none."""
    creator = web.browser()
    page = creator.get(f"{web.base}/connect/{web.invite()}")
    policy = page.headers["Content-Security-Policy"]
    assert f"form-action 'self' {web.sandbox.base_url}" in policy
    assert "frame-ancestors 'none'" in policy
    flags = creator.submit(page).headers["Set-Cookie"]
    assert "HttpOnly" in flags
    assert "SameSite=Lax" in flags


def test_app_not_allowed_for_this_account_explains_target_users(web: Rig) -> None:
    """error=unauthorized_client&error_type=client_key (a sandbox-mode app, a creator who is
    not a target user) → 403 naming target users, nothing stored."""
    creator = web.browser()
    to_tiktok = creator.submit(creator.get(f"{web.base}/connect/{web.invite()}"))
    state = parse_qs(urlsplit(to_tiktok.headers["Location"]).query)["state"][0]
    query = urlencode(
        {
            "error": "unauthorized_client",
            "error_type": "client_key",
            "error_description": "client_key not allowed",
            "state": state,
        }
    )
    page = creator.get(f"{web.base}/connect/callback/?{query}")
    assert page.status_code == 403
    assert "target user" in page.text
    assert web.store.list_users() == []
