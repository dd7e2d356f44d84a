"""The `auth` commands through click: output, exit codes, and clean errors (no tracebacks)."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orchestrator.cli import cli
from orchestrator.clock import SystemClock

DAY = 86400


def token_entry(**changes: Any) -> dict[str, Any]:
    entry = {
        "access_token": "act.CLI-ACCESS",
        "refresh_token": "rft.CLI-REFRESH",
        "expires_in": 7200,
        "refresh_expires_in": 180 * DAY,
        "scope": "user.info.basic,video.publish",
        "display_name": "Cli User",
    }
    entry.update(changes)
    return entry


def invoke(home: Path, *args: str, env: dict[str, str] | None = None, **kw: Any) -> Result:
    return CliRunner().invoke(
        cli, ["--home", str(home), *args], env=env, catch_exceptions=False, **kw
    )


def import_file(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "user_tokens.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_list_with_no_users_says_how_to_add_one(home: Path) -> None:
    """`auth list` on an empty store exits 0 and names `auth login` / `auth import`."""
    result = invoke(home, "auth", "list")
    assert result.exit_code == 0
    assert "auth login" in result.output


def test_import_then_list_shows_a_row_per_user(home: Path, tmp_path: Path) -> None:
    """Imported users list with name, scopes, expiries and state; no token is printed."""
    path = import_file(
        tmp_path, {"user-a": token_entry(), "user-b": token_entry(display_name="Bee")}
    )
    imported = invoke(home, "auth", "import", path)
    assert imported.exit_code == 0
    assert "imported user-a: fresh" in imported.output
    assert "2 user(s) imported." in imported.output
    listing = invoke(home, "auth", "list")
    assert listing.exit_code == 0
    for text in ("open_id", "display name", "scopes", "access expires", "refresh expires"):
        assert text in listing.output
    assert "user-a" in listing.output
    assert "Cli User" in listing.output
    assert "Bee" in listing.output
    assert "user.info.basic,video.publish" in listing.output
    assert "fresh" in listing.output
    assert "(in 1h 59m)" in listing.output or "(in 2h 0m)" in listing.output
    for text in (imported.output, listing.output):
        assert "CLI-ACCESS" not in text
        assert "CLI-REFRESH" not in text


def test_list_warns_about_refresh_tokens_dying_within_14_days(home: Path, tmp_path: Path) -> None:
    """A refresh token with 10 days left gets a warning line naming the user and `auth login`."""
    path = import_file(tmp_path, {"soon": token_entry(refresh_expires_in=10 * DAY)})
    invoke(home, "auth", "import", path)
    listing = invoke(home, "auth", "list")
    assert listing.exit_code == 0
    assert "warning: the refresh token of soon dies in 9d" in listing.output
    assert "auth login" in listing.output


def test_list_shows_stale_and_expired_states(home: Path, tmp_path: Path) -> None:
    """A token expiring in 2 minutes is 'stale'; one expired an hour ago is 'expired'."""
    now = time.time()
    path = import_file(
        tmp_path,
        {
            "stale-user": token_entry(expires_in=120),
            "expired-user": token_entry(expires_at=now - 3600),
        },
    )
    invoke(home, "auth", "import", path)
    output = invoke(home, "auth", "list").output
    stale_line = next(line for line in output.splitlines() if "stale-user" in line)
    expired_line = next(line for line in output.splitlines() if "expired-user" in line)
    assert "stale" in stale_line
    assert "expired" in expired_line
    assert "ago)" in expired_line


def test_importing_an_expired_refresh_token_warns(home: Path, tmp_path: Path) -> None:
    """A user whose refresh token already expired is imported with a needs-login warning."""
    path = import_file(tmp_path, {"old": token_entry(refresh_expires_at=time.time() - 10)})
    result = invoke(home, "auth", "import", path)
    assert result.exit_code == 0
    assert "imported old: needs login" in result.output
    assert "warning: old must sign in again" in result.output


def test_bad_token_file_exits_2_and_imports_nothing(home: Path, tmp_path: Path) -> None:
    """A file with a missing field exits 2, names entry and field, and imports nothing."""
    path = import_file(
        tmp_path,
        {"good": token_entry(), "bad": {k: v for k, v in token_entry().items() if k != "scope"}},
    )
    result = invoke(home, "auth", "import", path)
    assert result.exit_code == 2
    assert "user 'bad': missing 'scope'" in result.output
    assert "nothing was imported" in result.output
    assert "Traceback" not in result.output
    assert "No users stored" in invoke(home, "auth", "list").output


def test_refresh_without_users_named_is_a_usage_error(home: Path) -> None:
    """`auth refresh` with neither ids nor --all exits 2."""
    result = invoke(home, "auth", "refresh")
    assert result.exit_code == 2
    assert "--all" in result.output


def test_refresh_of_an_unknown_user_exits_2(home: Path, tmp_path: Path) -> None:
    """Naming a user that is not stored exits 2 before anything is sent."""
    invoke(home, "auth", "import", import_file(tmp_path, {"user-a": token_entry()}))
    result = invoke(
        home,
        "auth",
        "refresh",
        "ghost",
        env={"TIKTOK_CLIENT_KEY": "k", "TIKTOK_CLIENT_SECRET": "s"},
    )
    assert result.exit_code == 2
    assert "not in the token store: ghost" in result.output


def test_refresh_without_app_credentials_exits_2(home: Path, tmp_path: Path) -> None:
    """Refreshing needs TIKTOK_CLIENT_KEY/SECRET: without them, exit 2 naming them."""
    invoke(home, "auth", "import", import_file(tmp_path, {"user-a": token_entry()}))
    result = invoke(home, "auth", "refresh", "--all")
    assert result.exit_code == 2
    assert "TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET not set" in result.output


def test_refresh_that_cannot_reach_tiktok_exits_1(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token endpoint that refuses connections: retried with backoff, then the user fails,
    exit 1, with a hint."""
    invoke(home, "auth", "import", import_file(tmp_path, {"user-a": token_entry()}))
    slept: list[float] = []
    monkeypatch.setattr(SystemClock, "sleep", lambda self, seconds: slept.append(seconds))
    # The sealed environment points the API at a closed loopback port.
    result = invoke(
        home,
        "auth",
        "refresh",
        "user-a",
        env={"TIKTOK_CLIENT_KEY": "k", "TIKTOK_CLIENT_SECRET": "s"},
    )
    assert result.exit_code == 1
    assert "error: user user-a: refreshing the token failed after 3 attempts" in result.output
    assert "hint:" in result.output
    assert len(slept) == 2  # jittered: at most 1 s, then at most 2 s
    assert 0 <= slept[0] <= 1.0
    assert 0 <= slept[1] <= 2.0


def test_remove_forgets_the_user(home: Path, tmp_path: Path) -> None:
    """`auth remove` forgets the user and says TikTok was not told; again → exit 2."""
    invoke(home, "auth", "import", import_file(tmp_path, {"user-a": token_entry()}))
    result = invoke(home, "auth", "remove", "user-a")
    assert result.exit_code == 0
    assert "TikTok was not told" in result.output
    assert invoke(home, "auth", "remove", "user-a").exit_code == 2


def test_login_without_client_secret_exits_2_before_anything(home: Path) -> None:
    """`auth login` without the app's secret exits 2 and creates no state."""
    result = invoke(home, "auth", "login", "--no-browser", env={"TIKTOK_CLIENT_KEY": "k"})
    assert result.exit_code == 2
    assert "TIKTOK_CLIENT_SECRET not set" in result.output
    assert not home.exists()


def test_login_no_browser_with_a_foreign_redirect_fails_cleanly(home: Path) -> None:
    """A pasted redirect with the wrong state: exit 1, a clear message, no user stored."""
    result = invoke(
        home,
        "auth",
        "login",
        "--no-browser",
        env={"TIKTOK_CLIENT_KEY": "k", "TIKTOK_CLIENT_SECRET": "s"},
        input="http://127.0.0.1:8765/callback/?code=abc&state=not-ours\n",
    )
    assert result.exit_code == 1
    assert "state does not match" in result.output
    assert "code_challenge=" in result.output  # the URL to open was shown
    assert "Traceback" not in result.output


def test_wrong_token_key_is_a_clear_error(home: Path, tmp_path: Path) -> None:
    """A changed ORCHESTRATOR_TOKEN_KEY names the cause; the tokens are still there after."""
    first = {"ORCHESTRATOR_TOKEN_KEY": base64.b64encode(os.urandom(32)).decode()}
    second = {"ORCHESTRATOR_TOKEN_KEY": base64.b64encode(os.urandom(32)).decode()}
    invoke(home, "auth", "import", import_file(tmp_path, {"user-a": token_entry()}), env=first)
    result = invoke(home, "auth", "list", env=second)
    assert result.exit_code == 2
    assert "was ORCHESTRATOR_TOKEN_KEY changed?" in result.output
    assert "Traceback" not in result.output
    assert "user-a" in invoke(home, "auth", "list", env=first).output


def test_malformed_token_key_is_a_configuration_error(home: Path) -> None:
    """An ORCHESTRATOR_TOKEN_KEY that is not base64 of 32 bytes exits 2."""
    result = invoke(home, "auth", "list", env={"ORCHESTRATOR_TOKEN_KEY": "c2hvcnQ="})
    assert result.exit_code == 2
    assert "32" in result.output


def test_corrupted_database_is_a_clear_error(home: Path, tmp_path: Path) -> None:
    """A damaged state.db names the file and the fix, and is not replaced."""
    invoke(home, "auth", "import", import_file(tmp_path, {"user-a": token_entry()}))
    (home / "state.db").write_bytes(b"\x00garbage" * 1000)
    for suffix in ("-wal", "-shm"):
        (home / f"state.db{suffix}").unlink(missing_ok=True)
    result = invoke(home, "auth", "list")
    assert result.exit_code == 1
    assert "is damaged" in result.output
    assert "mv " in result.output
    assert (home / "state.db").read_bytes() == b"\x00garbage" * 1000


@pytest.mark.skipif(os.name != "posix", reason="mode bits are POSIX")
def test_store_readable_by_others_is_refused(home: Path, tmp_path: Path) -> None:
    """A state.db others can read is refused with the chmod fix."""
    invoke(home, "auth", "import", import_file(tmp_path, {"user-a": token_entry()}))
    os.chmod(home / "state.db", 0o644)
    result = invoke(home, "auth", "list")
    assert result.exit_code == 2
    assert f"hint: chmod 600 {home / 'state.db'}" in result.output


def test_newer_schema_is_refused(home: Path, tmp_path: Path) -> None:
    """A database from a newer orchestrator says to upgrade."""
    invoke(home, "auth", "import", import_file(tmp_path, {"user-a": token_entry()}))
    raw = sqlite3.connect(home / "state.db")
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    result = invoke(home, "auth", "list")
    assert result.exit_code == 1
    assert "newer tiktok-orchestrator" in result.output


def _stored_refresh_token(home: Path, open_id: str) -> str:
    from orchestrator.config import load_settings
    from orchestrator.store.tokens import TokenStore

    with TokenStore.open(load_settings(home=str(home)), clock=SystemClock()) as store:
        credentials = store.credentials(open_id)
        assert credentials is not None
        return credentials.refresh_token.reveal()


def test_import_does_not_replace_tokens_rotated_since_the_file(home: Path, tmp_path: Path) -> None:
    """import; refresh; import the same file again: the rotated (live) refresh token is kept,
    the user is named as skipped with the reason, exit 1; --force replaces it."""
    from orchestrator.config import load_settings
    from orchestrator.secret import Secret
    from orchestrator.store.tokens import TokenStore
    from orchestrator.tiktok.oauth import TokenGrant

    path = import_file(tmp_path, {"user-a": token_entry(), "user-b": token_entry()})
    written = time.time() - 600
    os.utime(path, (written, written))
    assert invoke(home, "auth", "import", path).exit_code == 0
    again = invoke(home, "auth", "import", path)  # the same grant twice changes nothing
    assert again.exit_code == 0, again.output
    now = time.time()
    with TokenStore.open(load_settings(home=str(home)), clock=SystemClock()) as store:
        # What `auth refresh` stores: TikTok rotated the refresh token.
        store.save_grant(
            TokenGrant(
                open_id="user-a",
                access_token=Secret("act.ROTATED"),
                access_expires_at=now + 86400,
                refresh_token=Secret("rft.ROTATED"),
                refresh_expires_at=now + 365 * DAY,
                scopes=frozenset({"user.info.basic", "video.publish"}),
            )
        )
    stale = invoke(home, "auth", "import", path)
    assert stale.exit_code == 1
    assert "skipped user-a: the store holds newer tokens" in stale.output
    assert "imported user-b" in stale.output
    assert "--force" in stale.output
    assert _stored_refresh_token(home, "user-a") == "rft.ROTATED"
    forced = invoke(home, "auth", "import", "--force", path)
    assert forced.exit_code == 0
    assert _stored_refresh_token(home, "user-a") == "rft.CLI-REFRESH"
