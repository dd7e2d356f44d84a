"""The go-live check against the sandbox over loopback: each finding and its fix."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.clock import ManualClock, SystemClock
from orchestrator.config import Settings
from orchestrator.doctor import Findings, Status, check_redirect_uri, run_checks
from orchestrator.sandbox import Sandbox, SandboxConfig
from orchestrator.secret import Secret
from orchestrator.transport import HttpTransport
from tests.support.run_support import sandbox_settings, sign_in


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(), clock=SystemClock()) as running:
        yield running


def check(settings: Settings, clock: object = None, **kwargs: object) -> Findings:
    with contextlib.closing(HttpTransport()) as transport:
        return run_checks(
            settings,
            transport=transport,
            clock=clock or SystemClock(),  # type: ignore[arg-type]
            **kwargs,  # type: ignore[arg-type]
        )


def status(findings: Findings, name: str) -> tuple[Status, str, str | None]:
    (found,) = [c for c in findings.checks if c.name == name]
    return found.status, found.detail, found.fix


def signed_in(sandbox: Sandbox, tmp_path: Path) -> Settings:
    settings = sandbox_settings(sandbox, tmp_path / "home")
    sign_in(settings, sandbox, SystemClock(), ["sandbox-user-1", "sandbox-user-2"])
    return settings


def test_a_ready_home_passes_every_check(sandbox: Sandbox, tmp_path: Path) -> None:
    """Right credentials, a private home, healthy users, ffprobe, a synced clock: all ok."""
    findings = check(signed_in(sandbox, tmp_path), which=lambda _: "/usr/bin/ffprobe")
    assert findings.ok
    assert [c.status for c in findings.checks] == [Status.OK] * len(findings.checks)
    names = [c.name for c in findings.checks]
    assert names[:5] == [
        "app credentials",
        "redirect URI (desktop app)",
        "home",
        "token key",
        "store",
    ]
    assert "user sandbox-user-1" in names
    assert "TikTok recognised" in status(findings, "app credentials")[1]
    assert "integrity ok" in status(findings, "store")[1]


def test_a_wrong_secret_is_named_by_variable_never_printed(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """invalid_client: a problem naming TIKTOK_CLIENT_SECRET, without the value."""
    settings = signed_in(sandbox, tmp_path).with_overrides(
        client_secret=Secret("wrong-secret-4711")
    )
    findings = check(settings)
    assert not findings.ok
    state, detail, fix = status(findings, "app credentials")
    assert state is Status.PROBLEM
    assert "invalid_client" in detail
    assert fix is not None
    assert "TIKTOK_CLIENT_SECRET" in fix
    assert all("wrong-secret-4711" not in f"{c.detail} {c.fix}" for c in findings.checks)


def test_other_oauth_errors_mean_the_app_is_recognised(sandbox: Sandbox, tmp_path: Path) -> None:
    """unauthorized_client (an app without the client-token products) still proves the key
    and secret; a 5xx from a gateway does not."""
    from orchestrator.sandbox import Fault

    settings = signed_in(sandbox, tmp_path)
    sandbox.schedule(Fault("token", call=None, status=200, error_code="unauthorized_client"))
    assert status(check(settings), "app credentials")[0] is Status.OK
    sandbox.clear_faults()
    sandbox.schedule(Fault("token", call=None, status=502))
    state, detail, _ = status(check(settings), "app credentials")
    assert state is Status.PROBLEM
    assert "could not be checked" in detail


def test_a_skewed_clock_is_a_problem(sandbox: Sandbox, tmp_path: Path) -> None:
    """This machine 5 minutes ahead of TikTok's Date header: a problem with the fix."""
    settings = signed_in(sandbox, tmp_path)
    ahead = ManualClock(SystemClock().time() + 300)
    state, detail, fix = status(check(settings, ahead), "clock")
    assert state is Status.PROBLEM
    assert "ahead of TikTok's clock" in detail
    assert fix is not None
    assert "ntp" in fix


def test_loose_permissions_and_a_user_needing_login_are_problems(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A home others can enter, and a user whose refresh token was revoked."""
    from orchestrator import api

    settings = signed_in(sandbox, tmp_path)
    sandbox.revoke_user_tokens("sandbox-user-2")
    (refreshed,) = api.refresh_users(["sandbox-user-2"], settings=settings)
    assert not refreshed.ok  # the store now says sandbox-user-2 must sign in
    os.chmod(settings.home, 0o750)  # noqa: S103 - the loose home under test
    findings = check(settings)
    assert status(findings, "home")[0] is Status.PROBLEM
    assert status(findings, "home")[2] == f"chmod 700 {settings.home}"
    os.chmod(settings.home, 0o700)
    findings = check(settings)
    state, detail, fix = status(findings, "user sandbox-user-2")
    assert state is Status.PROBLEM
    assert "revoked" in detail
    assert fix is not None
    assert "auth login" in fix
    assert status(findings, "user sandbox-user-1")[0] is Status.OK


def test_a_fresh_machine_warns_and_ffprobe_says_what_is_not_checked(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """No home yet and no ffprobe: warnings (exit 0 material), each with its fix."""
    settings = sandbox_settings(sandbox, tmp_path / "nowhere")
    findings = check(settings, which=lambda _: None)
    assert findings.ok
    assert status(findings, "home")[0] is Status.WARNING
    assert status(findings, "store")[0] is Status.WARNING
    state, detail, fix = status(findings, "ffprobe")
    assert state is Status.WARNING
    assert "frame rate is not checked" in detail
    assert fix is not None
    assert "ffmpeg" in fix
    assert not (tmp_path / "nowhere").exists()  # the check creates nothing


@pytest.mark.parametrize(
    ("uri", "app_type", "ok"),
    [
        ("http://127.0.0.1:8765/callback/", "desktop", True),
        ("http://localhost:8765/callback/", "desktop", True),
        ("https://connect.example.com/callback/", "desktop", False),
        ("https://connect.example.com/callback/", "web", True),
        ("http://connect.example.com/callback/", "web", False),
        ("https://connect.example.com/callback/?from=tiktok", "web", False),
        ("https://connect.example.com/" + "a" * 520, "web", False),
    ],
)
def test_the_redirect_uri_shape_per_app_type(uri: str, app_type: str, ok: bool) -> None:
    """Desktop: loopback with a port; web: static absolute https under 512 characters."""
    assert (check_redirect_uri(uri, app_type).status is Status.OK) is ok
