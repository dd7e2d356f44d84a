"""`validate MANIFEST`: exit 0 with a one-line summary, or exit 2 listing every problem with its
location and fix; no request leaves the machine; `--online` says what it is waiting for."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from tests.support import media_factory as mf

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test here that opens a connection or resolves a name."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("validate must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "teaser.mp4").write_bytes(mf.mp4())
    (tmp_path / "videos" / "loop.webm").write_bytes(mf.webm())
    return tmp_path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def test_valid_manifest_prints_the_summary(project: Path) -> None:
    """A valid manifest exits 0 with `ok: N entries for M users: ...` on stdout."""
    path = write(
        project,
        "m.yaml",
        """
        version: 1
        entries:
          - {user_id: a, video_path: videos/teaser.mp4}
          - {user_id: a, video_path: videos/loop.webm, mode: inbox}
          - {user_id: b, photo_urls: ["https://m.example.com/1.jpg"]}
          - user_id: b
            video_url: https://m.example.com/v.mp4
            publish_at: 2026-01-01T09:00:00Z
        """,
    )
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok: 4 entries for 2 users: 2 direct, 1 inbox, 1 photo; 1 scheduled\n"


def test_invalid_manifest_lists_every_problem_and_exits_2(project: Path) -> None:
    """Three mistakes in three entries: all three listed with location, line and fix; exit 2."""
    (project / "videos" / "notes.mp4").write_text("not a video\n")
    path = write(
        project,
        "m.yaml",
        """
        version: 1
        entries:
          - user_id: a
            video_path: videos/teaser.mp4
            privacy_lvl: SELF_ONLY
          - user_id: a
            video_path: videos/notes.mp4
          - user_id: b
            video_path: videos/teaser.mp4
            publish_at: 2026-01-01T09:00:00
        """,
    )
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: {path}: 3 problems found; nothing was sent"
    assert lines[1] == (
        "  - entries[0].privacy_lvl: unknown field 'privacy_lvl' (line 5); "
        "fix: did you mean 'privacy_level'?"
    )
    assert lines[2].startswith("  - entries[1].video_path: 'videos/notes.mp4' (")
    assert "it looks like text" in lines[2]
    assert "(line 7); fix: " in lines[2]
    assert lines[3].startswith("  - entries[2].publish_at: '2026-01-01T09:00:00' has no timezone")
    assert len(lines) == 4
    assert "Traceback" not in result.output


def test_malformed_json_exits_2_with_position(project: Path) -> None:
    """A JSON syntax error is reported with line and column, exit 2."""
    path = write(project, "m.json", '[\n  {"user_id": "a" "video_path": "x.mp4"}\n]\n')
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert "manifest: invalid JSON: Expecting ',' delimiter (line 2, column 19)" in result.stderr


def test_missing_manifest_exits_2(project: Path) -> None:
    """A manifest path that does not exist is a problem, exit 2."""
    result = CliRunner().invoke(cli, ["validate", str(project / "nope.json")])
    assert result.exit_code == 2
    assert "manifest file not found" in result.stderr


def test_notes_go_to_stderr_and_do_not_fail(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks that could not be made are notes on stderr; the exit code stays 0."""
    monkeypatch.setenv("PATH", str(project))  # no ffprobe to fill the gaps
    (project / "videos" / "frag.mp4").write_bytes(
        mf.mp4(tracks=(mf.Track(duration_s=0, frames=0),), duration_s=0)
    )
    path = write(project, "m.json", json.dumps([{"user_id": "a", "video_path": "videos/frag.mp4"}]))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0
    assert result.stdout.startswith("ok: 1 entry for 1 user: 1 direct")
    assert result.stderr.count("note: ") == 2
    assert "duration not checked" in result.stderr


def test_online_without_app_credentials_is_a_configuration_error(project: Path) -> None:
    """`validate --online` without TIKTOK_CLIENT_KEY/SECRET names them, exits 2, sends nothing."""
    path = write(
        project, "m.json", json.dumps([{"user_id": "a", "video_path": "videos/teaser.mp4"}])
    )
    result = CliRunner().invoke(cli, ["validate", "--online", str(path)])
    assert result.exit_code == 2
    assert "TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET not set" in result.stderr


def test_real_process_on_the_repo_example() -> None:
    """`python -m orchestrator validate videos_to_upload.example.json` exits 0 from the repo."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "validate", "videos_to_upload.example.json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok: 2 entries for 2 users: 2 direct, 0 inbox, 0 photo; 0 scheduled\n"


def test_real_process_on_an_invalid_manifest(tmp_path: Path) -> None:
    """A real process exits 2 on a bad manifest, with the problem on stderr and no traceback."""
    shutil.copy(REPO / "manifests" / "samples" / "clip-a.mp4", tmp_path / "clip.mp4")
    path = write(
        tmp_path,
        "m.yaml",
        """
        - user_id: a
          video_path: clip.mp4
          tags: [ok]
        - user_id: a
          video_path: clip.mp4
        """,
    )
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert "[1]: is the same post as [0] on line 1: same user, mode and video content" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
