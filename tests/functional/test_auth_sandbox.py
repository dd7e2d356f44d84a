"""Auth against the sandbox over loopback: login through a scripted browser, import, list,
refresh with rotation, revoke, faults during refresh, two processes refreshing at once; and no
token value in plaintext in the home or in any output."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orchestrator import auth
from orchestrator.cli import cli
from orchestrator.clock import ManualClock, SystemClock
from orchestrator.config import Settings
from orchestrator.errors import ApiError, OAuthError
from orchestrator.sandbox import Fault, Sandbox, SandboxConfig
from orchestrator.secret import Secret
from orchestrator.store.tokens import TokenProvider, TokenStore
from orchestrator.tiktok.oauth import OAuthClient
from orchestrator.transport import HttpTransport
from tests.functional import scripted_browser

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
USER = "sandbox-user-1"
posix_only = pytest.mark.skipif(os.name != "posix", reason="BROWSER script needs a shebang")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class World:
    """A sandbox, a home, the environment pointing at both, and everything that was printed."""

    sandbox: Sandbox
    home: Path
    env: dict[str, str]
    outputs: list[str] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)

    def settings(self) -> Settings:
        return Settings(
            home=self.home,
            api_base=self.sandbox.base_url,
            auth_url=self.sandbox.auth_url,
            redirect_uri=self.env["TIKTOK_REDIRECT_URI"],
            client_key=self.sandbox.client_key,
            client_secret=Secret(self.sandbox.client_secret),
        )

    def invoke(self, *args: str) -> Result:
        """Run the CLI in-process with this world's environment."""
        result = CliRunner().invoke(cli, list(args), env=self.env, catch_exceptions=False)
        self.outputs.append(result.output)
        return result

    def run(
        self, *args: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the CLI as a real process."""
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            env={**os.environ, **self.env, **(extra_env or {})},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.outputs += [done.stdout, done.stderr]
        return done

    def grant(self, open_id: str = USER, **changes: Any) -> dict[str, Any]:
        """A token response from the sandbox (as if the user logged in), remembered for greps."""
        response = {**self.sandbox.grant_tokens(open_id), **changes}
        self.tokens |= {response["access_token"], response["refresh_token"]}
        return response

    def import_file(self, responses: list[dict[str, Any]]) -> Path:
        path = self.home.parent / "tokens.json"
        path.write_text(json.dumps(responses))
        return path

    def remember_stored_tokens(self) -> None:
        """Add the tokens now in the store to the values that must never leak."""
        with TokenStore.open(self.settings(), clock=SystemClock()) as store:
            for user in store.list_users():
                credentials = store.credentials(user.open_id)
                assert credentials is not None
                self.tokens |= {
                    credentials.access_token.reveal(),
                    credentials.refresh_token.reveal(),
                }

    def assert_no_plaintext_tokens(self, caplog: pytest.LogCaptureFixture | None = None) -> None:
        """No token (nor the client secret) in any file under the home or in any output."""
        secrets = {t for t in self.tokens if t}
        assert secrets, "the test should have seen some tokens"
        texts = list(self.outputs)
        if caplog is not None:
            texts += [record.getMessage() for record in caplog.records]
        for text in texts:
            for value in [*secrets, self.sandbox.client_secret]:
                assert value not in text, "a secret was printed or logged"
        files = [p for p in self.home.rglob("*") if p.is_file()]
        assert files
        for path in files:
            data = path.read_bytes()
            for value in secrets:
                assert value.encode() not in data, f"a token in plaintext in {path.name}"


@pytest.fixture
def world(home: Path, caplog: pytest.LogCaptureFixture) -> Iterator[World]:
    caplog.set_level(logging.DEBUG, logger="orchestrator")
    with Sandbox(SandboxConfig()) as sandbox:
        env = {
            "ORCHESTRATOR_HOME": str(home),
            "ORCHESTRATOR_API_BASE": sandbox.base_url,
            "ORCHESTRATOR_AUTH_URL": sandbox.auth_url,
            "TIKTOK_CLIENT_KEY": sandbox.client_key,
            "TIKTOK_CLIENT_SECRET": sandbox.client_secret,
            "TIKTOK_REDIRECT_URI": f"http://127.0.0.1:{free_port()}/callback/",
            "PYTHONPATH": str(ROOT),
        }
        yield World(sandbox, home, env)
        assert sandbox.server_errors() == []


@pytest.fixture
def browser(tmp_path: Path) -> str:
    """An executable BROWSER that runs the scripted browser (webbrowser wants one path)."""
    path = tmp_path / "scripted-browser"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "scripted_browser.py"}" "$1"\n')
    path.chmod(0o700)
    return str(path)


# -- login ----------------------------------------------------------------------------------------


@posix_only
def test_login_through_a_scripted_browser(
    world: World, browser: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`auth login` opens $BROWSER, the consent form is submitted, the redirect comes back,
    and the user is stored with their display name and granted scopes."""
    done = world.run("auth", "login", "--timeout", "30", extra_env={"BROWSER": browser})
    assert done.returncode == 0, done.stderr
    assert f"Signed in as Sandbox One ({USER})" in done.stdout
    assert "video.publish" in done.stdout
    listing = world.invoke("auth", "list")
    assert listing.exit_code == 0
    assert USER in listing.output
    assert "Sandbox One" in listing.output
    assert "fresh" in listing.output
    assert world.sandbox.violations() == []
    world.remember_stored_tokens()
    world.assert_no_plaintext_tokens(caplog)


@posix_only
def test_login_denied_in_the_browser_stores_nothing(world: World, browser: str) -> None:
    """Pressing Deny ends the login with access_denied, exit 1, no traceback, no user."""
    done = world.run(
        "auth",
        "login",
        "--timeout",
        "30",
        extra_env={"BROWSER": browser, "SCRIPTED_BROWSER_ACTION": "deny"},
    )
    assert done.returncode == 1
    assert "access_denied" in done.stderr
    assert "Traceback" not in done.stderr
    assert "No users stored" in world.invoke("auth", "list").output


@posix_only
def test_login_with_no_redirect_times_out_cleanly(world: World, browser: str) -> None:
    """A browser that never comes back: after --timeout, exit 1 with a message, no traceback."""
    started = time.monotonic()
    done = world.run(
        "auth",
        "login",
        "--timeout",
        "1",
        extra_env={"BROWSER": browser, "SCRIPTED_BROWSER_ACTION": "ignore"},
    )
    assert done.returncode == 1
    assert "no sign-in came back" in done.stderr
    assert "--no-browser" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 20


def test_login_without_browser_by_pasting_the_redirect(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """--no-browser: the URL is shown, the pasted redirect is exchanged (hex PKCE accepted)."""
    shown: list[str] = []
    with (
        TokenStore.open(world.settings(), clock=SystemClock()) as store,
        contextlib.closing(HttpTransport()) as transport,
    ):
        result = auth.login(
            world.settings(),
            store=store,
            transport=transport,
            clock=SystemClock(),
            open_browser=False,
            show_url=shown.append,
            read_pasted_url=lambda: scripted_browser.authorize(shown[0], user="sandbox-user-2"),
        )
    assert result.user.open_id == "sandbox-user-2"
    assert result.user.display_name == "Sandbox Two"
    assert result.missing_scopes == frozenset()
    assert world.sandbox.violations() == []
    world.remember_stored_tokens()
    world.assert_no_plaintext_tokens(caplog)


# -- import, list, refresh, revoke ----------------------------------------------------------------


def test_import_list_refresh_twice_then_revoke(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Imported tokens list as fresh; two refreshes in a row both work (the rotated refresh
    token was kept); revoke ends the tokens at TikTok and forgets the user."""
    original = world.grant()
    assert world.invoke("auth", "import", str(world.import_file([original]))).exit_code == 0

    listing = world.invoke("auth", "list")
    assert listing.exit_code == 0
    assert USER in listing.output
    assert "fresh" in listing.output

    first = world.invoke("auth", "refresh", USER)
    assert first.exit_code == 0, first.output
    world.remember_stored_tokens()
    second = world.invoke("auth", "refresh", USER)
    assert second.exit_code == 0, second.output
    world.remember_stored_tokens()
    assert world.sandbox.calls("token") == 2
    assert world.sandbox.violations() == []  # no refresh token was ever reused

    with TokenStore.open(world.settings(), clock=SystemClock()) as store:
        last = store.credentials(USER)
    assert last is not None
    assert world.invoke("auth", "revoke", USER).exit_code == 0
    assert "No users stored" in world.invoke("auth", "list").output
    with contextlib.closing(HttpTransport()) as transport:
        oauth = OAuthClient.from_settings(world.settings(), transport, SystemClock())
        with pytest.raises(OAuthError) as caught:
            oauth.refresh(last.refresh_token)  # revoked at TikTok, not just forgotten here
    assert caught.value.error == "invalid_grant"
    world.assert_no_plaintext_tokens(caplog)


def test_rejected_refresh_token_marks_the_user_needs_login(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A refresh token TikTok rejects: `auth refresh` exits 1 pointing at `auth login`, the
    other user is still refreshed, and `auth list` shows 'needs login'."""
    path = world.import_file([world.grant(USER), world.grant("sandbox-user-2")])
    assert world.invoke("auth", "import", str(path)).exit_code == 0
    world.sandbox.revoke_user_tokens(USER)

    refreshed = world.invoke("auth", "refresh", "--all")
    assert refreshed.exit_code == 1
    assert f"error: user {USER}: TikTok rejected the refresh token" in refreshed.output
    assert "auth login" in refreshed.output
    assert "refreshed sandbox-user-2" in refreshed.output

    listing = world.invoke("auth", "list")
    assert "needs login" in listing.output
    assert f"warning: {USER} must sign in again" in listing.output
    world.remember_stored_tokens()
    world.assert_no_plaintext_tokens(caplog)


def test_server_errors_and_resets_during_refresh_are_retried(world: World) -> None:
    """A 503 then a connection reset on the token endpoint: the third attempt refreshes."""
    clock = ManualClock(start=time.time())
    with TokenStore.open(world.settings(), clock=clock) as store:
        auth.import_tokens(store, world.import_file([world.grant()]), clock=clock)
        world.sandbox.schedule(Fault(endpoint="token", call=1, kind="status", status=503))
        world.sandbox.schedule(Fault(endpoint="token", call=2, kind="reset"))
        with contextlib.closing(HttpTransport()) as transport:
            oauth = OAuthClient.from_settings(world.settings(), transport, clock)
            provider = TokenProvider(store, oauth, clock=clock)
            clock.slept.clear()
            user = provider.refresh(USER)
    assert user.generation == 2
    assert world.sandbox.calls("token") == 3
    assert len(clock.slept) == 2  # full jitter: at most 1 s, then at most 2 s
    assert 0 <= clock.slept[0] <= 1.0
    assert 0 <= clock.slept[1] <= 2.0
    assert world.sandbox.violations() == []


def test_rejected_access_token_refreshes_once_and_works_again(world: World) -> None:
    """A 401 access_token_invalid: refresh_after_rejection gets a token TikTok accepts."""
    clock = SystemClock()
    with TokenStore.open(world.settings(), clock=clock) as store:
        auth.import_tokens(store, world.import_file([world.grant()]), clock=clock)
        with contextlib.closing(HttpTransport()) as transport:
            oauth = OAuthClient.from_settings(world.settings(), transport, clock)
            provider = TokenProvider(store, oauth, clock=clock)
            rejected = provider.access_token(USER)
            world.sandbox.expire_access_tokens(USER)
            with pytest.raises(ApiError) as caught:
                oauth.fetch_user_info(rejected)
            assert caught.value.reauth
            renewed = provider.refresh_after_rejection(USER, rejected)
            assert oauth.fetch_user_info(renewed).open_id == USER
            # A second thread reporting the same rejected token gets the new one, no refresh.
            assert provider.refresh_after_rejection(USER, rejected) == renewed
    assert world.sandbox.calls("token") == 1


# -- two processes ---------------------------------------------------------------------------------


def test_two_processes_refreshing_one_user_refresh_once(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two real processes needing a stale token at the same moment: the sandbox sees one
    refresh, both end with the same working token, and the rotated refresh token still works."""
    stale = world.grant(expires_in=60)  # inside the 5-minute margin: both must refresh
    assert world.invoke("auth", "import", str(world.import_file([stale]))).exit_code == 0
    # The first refresh is slow, so the second process certainly asks while it runs.
    world.sandbox.schedule(Fault(endpoint="token", call=1, kind="delay", seconds=0.5))
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, str(HERE / "refresh_worker.py"), USER, str(go)],
            env={**os.environ, **world.env},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        go.touch()
        results = [worker.communicate(timeout=60) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    for worker, (out, err) in zip(workers, results, strict=True):
        world.outputs += [out, err]
        assert worker.returncode == 0, err
    digests = {out.strip() for out, _ in results}
    assert len(digests) == 1
    assert world.sandbox.calls("token") == 1
    assert world.sandbox.violations() == []

    world.remember_stored_tokens()
    with TokenStore.open(world.settings(), clock=SystemClock()) as store:
        credentials = store.credentials(USER)
    assert credentials is not None
    assert hashlib.sha256(credentials.access_token.reveal().encode()).hexdigest() in digests
    # Nobody burned the rotated refresh token: refreshing again works.
    assert world.invoke("auth", "refresh", USER).exit_code == 0
    assert world.sandbox.violations() == []
    world.remember_stored_tokens()
    world.assert_no_plaintext_tokens(caplog)
