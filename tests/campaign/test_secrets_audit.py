"""The secrets audit: no token, client secret or upload-URL token anywhere it could leak.

Every campaign seed ends with the audit (:func:`tests.campaign.harness.find_secrets`): every
value the sandbox issued (access and refresh tokens, upload-URL tokens, the client secret) is
searched, byte for byte, in every run's output (``-v``, text and JSON log lines), every report,
and every file of the home, ``state.db`` and its WAL included. These tests show the audit is
not vacuous (it finds a planted secret; the database does hold the tokens, encrypted), and
extend it in-process to what the files cannot show: every log record at DEBUG with its
exception text, every report format, every error message.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from orchestrator.report import render_json, render_junit, render_markdown
from orchestrator.sandbox import Fault, SandboxConfig
from orchestrator.store.db import DB_FILENAME
from orchestrator.tiktok.chunks import MIN_CHUNK
from tests.campaign.harness import find_secrets, play
from tests.campaign.schedule import generate
from tests.support.run_support import assert_published_once, open_rig


def test_audit_finds_a_secret_planted_in_a_log_a_report_or_the_home(tmp_path: Path) -> None:
    """After a real seed the audit finds nothing; a token planted in a log line, a report or a
    stray file of the home is found, so a clean audit means something."""
    result = play(generate(7), tmp_path)
    assert not result.violations, result.summary()
    assert find_secrets(tmp_path, ["not-issued"]) == []
    token = "act.planted-token-value-0123456789"
    (tmp_path / "media" / "run-1.err").write_text(f"DEBUG Authorization: Bearer {token}\n")
    (tmp_path / "media" / "report-9.json").write_text(f'{{"error": "{token}"}}')
    (tmp_path / "home" / "debug.dump").write_bytes(token.encode())
    found = find_secrets(tmp_path, [token])
    assert sorted(found) == [
        "a secret (act.…) is in home/debug.dump",
        "a secret (act.…) is in media/report-9.json",
        "a secret (act.…) is in media/run-1.err",
    ]


def test_the_database_holds_the_tokens_but_only_encrypted(tmp_path: Path) -> None:
    """state.db has a sealed value for every token the store keeps, and none of the raw
    secrets: the audit's clean result on it is encryption, not an empty store."""
    with open_rig(tmp_path) as rig:
        clip, digest = rig.clip("a.mp4", 2 * MIN_CHUNK + 5)
        manifest = rig.manifest([{"user_id": "sandbox-user-1", "video_path": clip.name}])
        report = rig.run(manifest)
        assert report.entries[0].status == "published"
        connection = sqlite3.connect(rig.home / DB_FILENAME)
        try:
            rows = connection.execute("SELECT * FROM users").fetchall()
        finally:
            connection.close()
        assert len(rows) == len(rig.sandbox.users)
        assert find_secrets(rig.home, rig.sandbox.issued_secrets()) == []
        assert_published_once(rig.sandbox, [digest])


def test_debug_logs_exceptions_and_every_report_format_hold_no_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run at DEBUG through refreshes (a stale token, a 401), new upload URLs (an expired
    one), lost answers, resets and 5xx: no issued secret in any log record (message or
    exception text), in the JSON, JUnit or Markdown report, or in any error's message or
    hint."""
    with open_rig(tmp_path, SandboxConfig(access_token_ttl=900)) as rig:
        clips = [rig.clip(f"{n}.mp4", 2 * MIN_CHUNK + n) for n in range(3)]
        users = ["sandbox-user-1", "sandbox-user-2", "sandbox-user-1"]
        manifest = rig.manifest(
            [
                *(
                    {"user_id": u, "video_path": p.name}
                    for u, (p, _) in zip(users, clips, strict=True)
                ),
                {"user_id": "sandbox-user-3", "video_url": "https://media.example.com/v.mp4"},
            ]
        )
        rig.clock.advance(700)  # the stored tokens are now stale: the run refreshes them
        for fault in (
            Fault("upload", call=2, kind="expire"),
            Fault("upload", call=4, kind="lost"),
            Fault("status", call=1, kind="status", status=401),
            Fault("video_init", call=2, kind="reset_mid_body", after_bytes=10),
            Fault("creator_info", call=1, kind="status", status=503),
            Fault("token", call=1, kind="status", status=503),
        ):
            rig.sandbox.schedule(fault)
        rig.sandbox.revoke_user_tokens("sandbox-user-3")  # its entry fails: needs login
        with caplog.at_level(logging.DEBUG):
            report = rig.run(manifest)
        secrets = rig.sandbox.issued_secrets()
        assert rig.sandbox.calls("token") >= 2  # refreshed: new secrets were issued
        texts = [record.getMessage() for record in caplog.records]
        texts += [record.exc_text or "" for record in caplog.records]
        texts += [caplog.text]
        texts += [
            render_json(report).decode(),
            render_junit(report).decode(),
            render_markdown(report).decode(),
            repr(report),
        ]
        for entry in report.entries:
            if entry.error is not None:
                texts += [entry.error.message, entry.error.hint or ""]
        leaks = [secret for secret in secrets for text in texts if secret in text]
        assert leaks == []
        assert find_secrets(tmp_path, secrets) == []
        assert [e.status for e in report.entries] == ["published"] * 3 + ["failed"]
        last = report.entries[3].error
        assert last is not None
        assert last.code == "needs_login"
