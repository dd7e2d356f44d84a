"""The operator's pages through Flask's test client: sign-in, each page, each error."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from click.testing import CliRunner
from flask.testing import FlaskClient

from orchestrator.cli import cli
from orchestrator.clock import ManualClock, SystemClock
from orchestrator.config import DEFAULT_SESSION_LIFETIME, load_web_config
from orchestrator.secret import Secret
from orchestrator.store.tokens import TokenStore
from orchestrator.tiktok.oauth import TokenGrant
from orchestrator.web import create_app
from tests.functional.run_support import Served, served
from tests.web.conftest import ADMIN_PASSWORD, csrf_of, post_form, sign_in

__all__ = ["served"]

PAGES = ("/accounts", "/invites", "/posts", "/reports", "/api-keys")


def grant(
    open_id: str, now: float, *, access_in: float = 86400, refresh_in: float = 365 * 86400
) -> TokenGrant:
    return TokenGrant(
        open_id=open_id,
        access_token=Secret(f"act.{open_id}.secret-value"),
        access_expires_at=now + access_in,
        refresh_token=Secret(f"rft.{open_id}.secret-value"),
        refresh_expires_at=now + refresh_in,
        scopes=frozenset({"user.info.basic", "video.publish"}),
    )


def test_every_page_sends_a_visitor_to_sign_in_and_back(client: FlaskClient) -> None:
    """Without a login each page redirects to /login?next=<that page>; after it, back there."""
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 302
        assert response.headers["Location"] == f"/login?next={page}"
    response = sign_in(client, next_path="/api-keys")
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert response.headers["Location"] == "/api-keys"  # type: ignore[attr-defined]


def test_every_page_renders_for_the_operator(operator: FlaskClient) -> None:
    """Each page answers 200 with its heading and the navigation."""
    headings = {
        "/accounts": "Connected accounts",
        "/invites": "Invites",
        "/posts": "Recent posts",
        "/reports": "Runs",
        "/api-keys": "API keys",
    }
    for page, heading in headings.items():
        response = operator.get(page)
        assert response.status_code == 200, page
        assert f"<h1>{heading}</h1>" in response.text
        assert 'href="/static/style.css"' in response.text
    assert operator.get("/").headers["Location"] == "/accounts"


def test_a_wrong_password_is_refused_with_a_message(client: FlaskClient) -> None:
    """A wrong password: 401, the sign-in page again saying so, and no access."""
    response = sign_in(client, password="not it")
    assert response.status_code == 401  # type: ignore[attr-defined]
    assert "Wrong password." in response.text  # type: ignore[attr-defined]
    assert client.get("/accounts").status_code == 302


def test_a_login_expires_after_the_session_lifetime(
    operator: FlaskClient, clock: ManualClock
) -> None:
    """12 hours after signing in, the pages ask for the password again."""
    clock.advance(DEFAULT_SESSION_LIFETIME - 60)
    assert operator.get("/accounts").status_code == 200
    clock.advance(120)
    response = operator.get("/accounts")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_sign_out_ends_the_session(operator: FlaskClient) -> None:
    """Signing out: the pages need the password again."""
    response = post_form(operator, "/accounts", "/logout", {})
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert operator.get("/accounts").status_code == 302


def test_a_form_without_its_csrf_token_is_refused(operator: FlaskClient) -> None:
    """A POST without the session's CSRF token (a forged cross-site form) changes nothing."""
    response = operator.post("/api-keys", data={"label": "forged"})
    assert response.status_code == 400
    assert "This form has expired" in response.text
    response = operator.post("/api-keys", data={"label": "forged", "csrf_token": "guess"})
    assert response.status_code == 400
    assert "forged" not in operator.get("/api-keys").text


def test_an_invite_is_made_shown_once_and_revoked(operator: FlaskClient) -> None:
    """Making an invite shows its one-time URL once; the list shows it open; revoking it
    marks it revoked."""
    response = post_form(
        operator,
        "/invites",
        "/invites",
        {"label": "Client X", "days": "7", "scopes": ["video.upload", "user.info.basic"]},
    )
    assert response.status_code == 200  # type: ignore[attr-defined]
    url = re.search(r'value="(http://127\.0\.0\.1:8700/connect/[^"]+)"', response.text)  # type: ignore[attr-defined]
    assert url, response.text  # type: ignore[attr-defined]
    listing = operator.get("/invites").text
    assert url.group(1) not in listing
    assert "Client X" in listing
    assert ">open<" in listing
    invite_id = re.search(r"/invites/([0-9a-f]+)/revoke", listing)
    assert invite_id
    response = post_form(operator, "/invites", f"/invites/{invite_id.group(1)}/revoke", {})
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert ">revoked<" in operator.get("/invites").text


def test_invite_form_errors_are_said_on_the_page(operator: FlaskClient) -> None:
    """An invite without a label, or with an unknown lifetime, is a 400 saying what is wrong."""
    response = post_form(operator, "/invites", "/invites", {"label": " ", "days": "7"})
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert "needs a label" in response.text  # type: ignore[attr-defined]
    response = post_form(operator, "/invites", "/invites", {"label": "x", "days": "365"})
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert "how long" in response.text  # type: ignore[attr-defined]
    response = post_form(operator, "/invites", "/invites/nope/revoke", {})
    assert response.status_code == 404  # type: ignore[attr-defined]
    assert "There is no invite nope." in response.text  # type: ignore[attr-defined]


def test_an_api_key_is_shown_once_and_revoked(operator: FlaskClient) -> None:
    """A new key is on the answer page only; revoked, the list says so."""
    response = post_form(operator, "/api-keys", "/api-keys", {"label": "n8n"})
    key = re.search(r'value="(tko_[^"]+)"', response.text)  # type: ignore[attr-defined]
    assert key
    listing = operator.get("/api-keys").text
    assert key.group(1) not in listing
    assert "n8n" in listing
    assert ">active<" in listing
    key_id = re.search(r"/api-keys/([0-9a-f]+)/revoke", listing)
    assert key_id
    post_form(operator, "/api-keys", f"/api-keys/{key_id.group(1)}/revoke", {})
    assert ">revoked<" in operator.get("/api-keys").text
    response = post_form(operator, "/api-keys", "/api-keys", {"label": ""})
    assert response.status_code == 400  # type: ignore[attr-defined]
    response = post_form(operator, "/api-keys", "/api-keys/nope/revoke", {})
    assert response.status_code == 404  # type: ignore[attr-defined]


def test_accounts_show_token_health(
    operator: FlaskClient, token_store: TokenStore, clock: ManualClock
) -> None:
    """Each account: display name, scopes, expiries and state, `needs login` when it must."""
    now = clock.time()
    token_store.save_grant(grant("alice-open-id", now), display_name="Alice")
    token_store.save_grant(grant("bob-open-id", now), display_name="Bob")
    token_store.mark_needs_login("bob-open-id", "the refresh token was rejected")
    page = operator.get("/accounts").text
    assert "alice-open-id" in page
    assert "Alice" in page
    assert "user.info.basic, video.publish" in page
    assert "(in 1d 0h)" in page
    assert "needs login" in page
    assert "the refresh token was rejected" in page
    assert "secret-value" not in page


def test_unknown_pages_and_runs_are_clear_404s(operator: FlaskClient) -> None:
    """An unknown path or run id: a 404 page naming it, not a traceback."""
    response = operator.get("/reports/no-such-run")
    assert response.status_code == 404
    assert "The store has no run no-such-run." in response.text
    response = operator.get("/nowhere")
    assert response.status_code == 404
    assert "<h1>404 Not Found</h1>" in response.text


def _cli(served: Served, *args: str) -> str:
    old = Path.cwd()
    os.chdir(served.folder)
    try:
        result = CliRunner().invoke(cli, list(args), env=served.env)
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_pages_agree_with_auth_list_history_and_report(served: Served) -> None:
    """After a real run, the accounts, posts and reports pages show what `auth list`,
    `history --json` and `report --json` print: the same users, states, publish_ids and
    post ids."""
    clip, _ = served.clip("a.mp4")
    manifest = served.manifest(
        [
            {
                "id": "launch",
                "user_id": "sandbox-user-1",
                "video_path": clip.name,
                "privacy_level": "PUBLIC_TO_EVERYONE",
            }
        ]
    )
    _cli(served, "run", str(manifest), "--report", "r.json")
    run_id = json.loads((served.folder / "r.json").read_text())["run_id"]
    auth_list = _cli(served, "auth", "list")
    history = json.loads(_cli(served, "history", "--json"))

    clock = SystemClock()
    config = load_web_config(environ={"ORCHESTRATOR_ADMIN_PASSWORD": ADMIN_PASSWORD})
    with TokenStore.open(served.settings, clock=clock) as store:
        app = create_app(config, settings=served.settings, clock=clock, token_store=store)
        client = app.test_client()
        sign_in(client)
        accounts = client.get("/accounts").text
        posts = client.get("/posts").text
        reports = client.get("/reports").text
        report = client.get(f"/reports/{run_id}").text

    checked = 0
    for line in auth_list.splitlines()[2:]:
        cells = line.split()
        if not cells:
            continue
        checked += 1
        open_id, state = cells[0], " ".join(cells[-2:]) if cells[-1] == "login" else cells[-1]
        row = re.search(rf"<td class=\"mono\">{re.escape(open_id)}</td>.*?</tr>", accounts, re.S)
        assert row, open_id
        assert f'<td class="state">{state}' in row.group(0)
    assert checked >= 1
    assert checked == accounts.count('<tr class="state-')
    assert history
    for record in history:
        assert record["state"] in posts
        assert record["publish_id"] in posts
        for post_id in record["post_ids"]:
            # The store knows no creator's username, so the id is shown without a link
            # (TikTok's post URLs need it: https://www.tiktok.com/@USER/video/ID).
            assert f'<span class="mono">{post_id}</span>' in posts
            assert post_id in report
        assert record["publish_id"] in report
    assert "tiktok.com/@/video" not in posts + report
    assert run_id in reports
    assert csrf_of(accounts)
