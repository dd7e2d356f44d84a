"""Commands on a damaged, truncated or missing state database: a clear message naming the file
and how to restore it, a documented exit code, nothing created, never a traceback."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orchestrator.cli import cli
from orchestrator.store.db import DB_FILENAME

DAY = 86400

READ_ONLY_COMMANDS = (
    ("auth", "list"),
    ("history",),
    ("report", "--run-id", "r-1"),
    ("status", "p-1", "--user", "user-a"),
    ("auth", "remove", "user-a"),
)


def invoke(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def seeded_home(home: Path, tmp_path: Path) -> Path:
    """A home with one imported user and one journal row; returns the token file."""
    tokens = tmp_path / "user_tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "user-a": {
                    "access_token": "act.DAMAGE-ACCESS",
                    "refresh_token": "rft.DAMAGE-REFRESH",
                    "expires_in": 7200,
                    "refresh_expires_in": 180 * DAY,
                    "scope": "user.info.basic,video.publish",
                }
            }
        )
    )
    result = invoke(home, "auth", "import", str(tokens))
    assert result.exit_code == 0, result.output
    connection = sqlite3.connect(home / DB_FILENAME)
    connection.execute(
        "INSERT INTO journal (identity, user_id, mode, kind, source, request_digest, state, "
        "publish_id, created_at, updated_at) VALUES ('sha256:x', 'user-a', 'direct', 'video', "
        "'clip.mp4', 'd', 'published', 'p-1', 1, 1)"
    )
    connection.commit()
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return tokens


def assert_clean_refusal(result: Result, path: Path) -> None:
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{path} is damaged" in result.output
    assert ".recover" in result.output
    assert "backup" in result.output


@pytest.mark.parametrize("content", [b"", b"S"], ids=["0-byte", "1-byte"])
def test_a_truncated_store_is_refused_by_every_command(
    home: Path, tmp_path: Path, content: bytes
) -> None:
    """After state.db is cut to 0 or 1 byte, no command treats it as a new store: `auth list`
    does not say "no users", `auth import` does not start a fresh journal. Exit 1, file kept."""
    tokens = seeded_home(home, tmp_path)
    path = home / DB_FILENAME
    path.write_bytes(content)
    for args in (*READ_ONLY_COMMANDS, ("auth", "import", str(tokens))):
        assert_clean_refusal(invoke(home, *args), path)
    assert path.read_bytes() == content


def test_a_flipped_byte_in_the_schema_text_gives_a_message_not_a_traceback(
    home: Path, tmp_path: Path
) -> None:
    """0xff inside the users table's CREATE text made sqlite3 raise UnicodeDecodeError: now
    every command says the file is damaged and how to restore it."""
    tokens = seeded_home(home, tmp_path)
    path = home / DB_FILENAME
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"CREATE TABLE users") + 5] = 0xFF
    path.write_bytes(bytes(raw))
    for args in (*READ_ONLY_COMMANDS, ("auth", "import", str(tokens))):
        assert_clean_refusal(invoke(home, *args), path)


@pytest.mark.parametrize("args", READ_ONLY_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_read_only_commands_create_nothing_on_a_missing_home(
    home: Path, args: tuple[str, ...]
) -> None:
    """`auth list`, `history`, `report`, `status`, `auth remove` on a home that does not exist
    create no folder, no state.db and no token.key."""
    result = invoke(home, *args)
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), result.output
    assert not home.exists()


def test_auth_list_on_a_missing_home_says_there_are_no_users(home: Path) -> None:
    """`auth list` before anyone signed in: exit 0, says how to add a user, creates nothing."""
    result = invoke(home, "auth", "list")
    assert result.exit_code == 0
    assert "auth login" in result.output
    assert not home.exists()


def test_status_on_a_missing_home_names_the_missing_store(home: Path) -> None:
    """`status` needs a user's token: exit 2, naming the home it looked in."""
    result = invoke(home, "status", "p-1", "--user", "user-a")
    assert result.exit_code == 2
    assert f"no state database at {home / DB_FILENAME}" in result.output
    assert not home.exists()


def test_a_full_disk_when_taking_the_run_lock_is_a_message(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while writing the holder into run.lock: exit 1 with the file and the fix, not an
    OSError traceback from store/lock.py."""
    seeded_home(home, tmp_path)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"version": 1, "entries": []}))

    def disk_full(*_args: Any) -> None:
        raise OSError(28, os.strerror(28))

    monkeypatch.setattr("orchestrator.store.lock.os.pwrite", disk_full)
    monkeypatch.setenv("TIKTOK_CLIENT_KEY", "ck")
    monkeypatch.setenv("TIKTOK_CLIENT_SECRET", "cs")
    result = invoke(home, "run", str(manifest))
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert "run.lock" in result.output
    assert os.strerror(28) in result.output
    assert "free some disk space" in result.output


_BLOCK_PSYCOPG = """
import sys
class _NoPsycopg:
    def find_spec(self, name, path=None, target=None):
        if name == "psycopg" or name.startswith("psycopg."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoPsycopg())
from orchestrator.cli import main
sys.argv = ["tiktok-orchestrator", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("args", [("auth", "list"), ("history",)])
def test_a_postgres_store_without_the_extra_says_how_to_install_it(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """`--store postgresql://…` where psycopg is not installed: exit 2 naming the extra to
    install, no ModuleNotFoundError traceback, and no part of the password shown."""
    env = {**os.environ, "ORCHESTRATOR_STORE": "postgresql://u:hunter2-secret@127.0.0.1:9/db"}
    result = subprocess.run(
        [sys.executable, "-c", _BLOCK_PSYCOPG, "--home", str(tmp_path / "h"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert "pip install 'tiktok-orchestrator[postgres]'" in output
    assert "hunter2" not in output


def test_an_invalid_manifest_on_a_fresh_home_creates_no_store(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run` of a manifest with a problem, on a home with no state yet: exit 2 and no
    state.db or token.key made for it (the journal cannot matter before anything was posted)."""
    monkeypatch.setenv("TIKTOK_CLIENT_KEY", "key")
    monkeypatch.setenv("TIKTOK_CLIENT_SECRET", "secret")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps([{"user_id": "user-a", "video_path": "missing.mp4"}]))
    result = invoke(home, "run", str(manifest))
    assert result.exit_code == 2, result.output
    assert "file not found" in result.output
    assert not (home / DB_FILENAME).exists()
    assert not (home / "token.key").exists()
