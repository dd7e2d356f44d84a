"""`run --notify`: Apprise notifications to local receivers (json:// and form:// on 127.0.0.1).

One receiver answers 200, one 500, one never answers: the run still finishes with its own exit
code, each delivery is in the JSON report (target redacted), and no secret is in any message.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from click.testing import Result

from orchestrator.report import report_schema
from orchestrator.sandbox import SandboxConfig
from tests.cli.test_run_cli import invoke
from tests.support.receiver import receiving
from tests.support.run_support import Served, serve, wait_until

USER = "sandbox-user-1"


def failing_manifest(served: Served) -> Path:
    """One entry that publishes, one TikTok fails (frame_rate_check_failed), one for a user
    with no tokens (must sign in)."""
    a, _ = served.clip("a.mp4")
    b, _ = served.clip("b.mp4")
    c, _ = served.clip("c.mp4")
    served.sandbox.fail_next_publish("sandbox-user-3", "frame_rate_check_failed")
    return served.manifest(
        [
            {"id": "fine", "user_id": USER, "video_path": a.name},
            {"id": "bad-fps", "user_id": "sandbox-user-3", "video_path": b.name},
            {"id": "no-login", "user_id": "ghost-user", "video_path": c.name},
        ]
    )


def report_of(served: Served, name: str = "r.json") -> dict[str, object]:
    document: dict[str, object] = json.loads((served.folder / name).read_text())
    jsonschema.validate(document, report_schema())
    return document


def run(served: Served, manifest: Path, *args: str, **env: str) -> Result:
    return invoke(served, "run", str(manifest), "--report", "r.json", *args, env=env)


def test_a_failed_run_notifies_every_target_and_a_dead_one_changes_nothing(
    served: Served,
) -> None:
    """A run with failures notifies each target; the 500 and the silent receiver are recorded
    as not delivered, the run still exits 1 as it would without --notify, and the message has
    the summary, TikTok's code, the fix, the user to sign in and the report's path."""
    manifest = failing_manifest(served)
    with receiving("ok") as ok, receiving("error") as error, receiving("hang") as hang:
        result = run(
            served,
            manifest,
            "--notify",
            ok.url("json", "/hook"),
            "--notify",
            error.url("form"),
            "--notify",
            hang.url(),
            "--notify-timeout",
            "0.5",
        )
        assert result.exit_code == 1, result.output
        wait_until("the silent receiver to be reached", lambda: len(hang.raw) == 1)
    (message,) = ok.received
    text = f"{message['title']}\n{message['message']}"
    assert "run needs_login" in text
    assert "3 entries" in text
    assert "1 published" in text
    assert "2 failed" in text
    assert "`bad-fps` (sandbox-user-3): failed `frame_rate_check_failed`" in text
    assert "— fix: re-encode the video" in text
    assert "ghost-user" in text
    assert "auth login" in text
    assert "Report: `r.json`" in text
    assert message["type"] == "failure"
    assert error.received, "the 500 receiver was sent the message too"
    notifications = report_of(served)["notifications"]
    assert notifications == [
        {"target": f"json://127.0.0.1:{ok.port}", "delivered": True, "error": None},
        {
            "target": f"form://127.0.0.1:{error.port}",
            "delivered": False,
            "error": notifications[1]["error"],  # type: ignore[index]
        },
        {
            "target": f"json://127.0.0.1:{hang.port}",
            "delivered": False,
            "error": notifications[2]["error"],  # type: ignore[index]
        },
    ]
    assert "500" in notifications[1]["error"]  # type: ignore[index]
    # The silent receiver is given up on by whichever bound fires first: our 0.5 s wait for the
    # target, or Apprise's own socket timeout (set to the same 0.5 s) — either way in bounds.
    assert notifications[2]["error"] in (  # type: ignore[index]
        "no answer within 0.5 s",
        "A Connection error occurred sending JSON notification to 127.0.0.1.",
    )
    assert f"not delivered to form://127.0.0.1:{error.port}" in result.stderr
    secrets = served.sandbox.issued_secrets()
    outputs = [result.output, (served.folder / "r.json").read_text()]
    outputs += [raw.decode() for raw in (*ok.raw, *error.raw, *hang.raw)]
    leaked = [s for s in secrets if any(s in output for output in outputs)]
    assert leaked == []


def test_a_clean_run_notifies_only_when_asked_always(served: Served) -> None:
    """By default (failure) a clean run sends nothing; --notify-on always sends a success."""
    a, _ = served.clip("a.mp4")
    manifest = served.manifest([{"user_id": USER, "video_path": a.name}])
    with receiving("ok") as ok:
        assert run(served, manifest, "--notify", ok.url()).exit_code == 0
        assert ok.received == []
        assert report_of(served)["notifications"] == []
        result = run(served, manifest, "--notify", ok.url(), "--notify-on", "always")
        assert result.exit_code == 0, result.output
    (message,) = ok.received
    assert message["type"] == "success"
    assert "run ok" in str(message["title"])
    assert "1 already_done" in str(message["message"])


def test_an_undeliverable_notice_leaves_exit_0(served: Served) -> None:
    """A clean run whose only target answers 500 still exits 0; the report says why."""
    a, _ = served.clip("a.mp4")
    manifest = served.manifest([{"user_id": USER, "video_path": a.name}])
    with receiving("error") as error:
        result = run(served, manifest, "--notify", error.url(), "--notify-on", "always")
    assert result.exit_code == 0, result.output
    (notification,) = report_of(served)["notifications"]  # type: ignore[misc]
    assert notification["delivered"] is False
    assert "500" in notification["error"]


def test_notify_on_change_sends_when_the_outcome_changes(served: Served) -> None:
    """change: the first run of a manifest says how things stand; a rerun with the same
    outcome is quiet; a failure notifies, and so does the recovery after it."""
    a, _ = served.clip("a.mp4")
    b, _ = served.clip("b.mp4")
    clean = served.manifest([{"user_id": USER, "video_path": a.name}])
    with receiving("ok") as ok:
        env = {"ORCHESTRATOR_NOTIFY": ok.url()}

        def outcome(manifest: Path) -> int:
            return run(served, manifest, "--notify-on", "change", **env).exit_code

        assert outcome(clean) == 0
        assert outcome(clean) == 0
        failing = served.manifest(
            [
                {"user_id": USER, "video_path": a.name},
                {"user_id": "ghost-user", "video_path": b.name},
            ],
            name="week.json",
        )
        assert outcome(failing) == 1
        assert outcome(failing) == 1
        served.manifest([{"user_id": USER, "video_path": a.name}], name="week.json")
        assert outcome(failing) == 0
        assert outcome(failing) == 0
    titles = [str(message["title"]) for message in ok.received]
    assert titles == [
        "tiktok-orchestrator: run ok",
        "tiktok-orchestrator: run needs_login",
        "tiktok-orchestrator: run ok",
    ]


def test_orchestrator_notify_takes_space_separated_urls(served: Served) -> None:
    """ORCHESTRATOR_NOTIFY: two URLs separated by spaces are both notified."""
    a, _ = served.clip("a.mp4")
    manifest = served.manifest([{"user_id": USER, "video_path": a.name}])
    with receiving("ok") as one, receiving("ok") as two:
        env = {"ORCHESTRATOR_NOTIFY": f"  {one.url()}   {two.url('form')} "}
        result = run(served, manifest, "--notify-on", "always", **env)
    assert result.exit_code == 0, result.output
    assert len(one.received) == 1
    assert len(two.received) == 1


def test_an_unknown_notify_url_is_a_usage_error_naming_no_secret(served: Served) -> None:
    """A URL Apprise does not understand: exit 2 before anything is sent, the target shown
    without its token."""
    a, _ = served.clip("a.mp4")
    manifest = served.manifest([{"user_id": USER, "video_path": a.name}])
    result = run(served, manifest, "--notify", "nosuchservice://hunter2-token@host/secret-path")
    assert result.exit_code == 2
    assert "nosuchservice://" in result.stderr
    assert "hunter2" not in result.output
    assert "secret-path" not in result.output
    assert sum(served.sandbox.call_counts().values()) == 0


def test_auth_refresh_all_notifies_users_to_sign_in_before_tokens_die(tmp_path: Path) -> None:
    """The weekly refresh: a revoked user (must sign in) and refresh tokens dying within 14
    days are announced; users with a long-lived token are not; exit code as without it."""
    config = SandboxConfig(processing_polls=0, refresh_token_ttl=10 * 86400)
    with serve(tmp_path, config, users=("sandbox-user-1", "sandbox-user-2")) as short:
        short.sandbox.revoke_user_tokens("sandbox-user-2")
        with receiving("ok") as ok, receiving("hang") as hang:
            env = {"ORCHESTRATOR_NOTIFY": f"{ok.url()} {hang.url()}"}
            result = invoke(short, "auth", "refresh", "--all", "--notify-timeout", "0.5", env=env)
        assert result.exit_code == 1  # sandbox-user-2 could not be refreshed, as without it
        (message,) = ok.received
        text = str(message["message"])
        assert "sandbox-user-1: the refresh token expires in 9 day(s)" in text
        assert "sandbox-user-2: must sign in again" in text
        assert "auth login" in text
        assert f"not delivered to json://127.0.0.1:{hang.port}" in result.stderr
        seen = result.output + ok.raw[0].decode()
        assert [s for s in short.sandbox.issued_secrets() if s in seen] == []


def test_auth_refresh_with_healthy_tokens_sends_nothing(served: Served) -> None:
    """Tokens with months left and no login needed: no notification."""
    with receiving("ok") as ok:
        result = invoke(served, "auth", "refresh", "--all", "--notify", ok.url())
    assert result.exit_code == 0, result.output
    assert ok.received == []
