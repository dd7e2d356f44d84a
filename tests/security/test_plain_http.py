"""Tokens never cross the network in clear text: plain http:// is for loopback only.

The command-line tests run the real command inside ``unshare --net``, a network namespace with
nothing but a down loopback: even if the check regressed, no packet could leave the machine.
The addresses are from TEST-NET-1 (192.0.2.0/24, RFC 5737), never a real host.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.clock import SystemClock
from orchestrator.errors import PlainHttpError
from orchestrator.sandbox import Sandbox, SandboxConfig
from orchestrator.transport import HttpTransport
from tests.support.run_support import (
    REPO,
    journal_rows,
    make_clip,
    sandbox_settings,
    sign_in,
    write_manifest,
)

USER = "sandbox-user-1"


def _netns_available() -> str | None:
    """Why ``unshare --net`` cannot be used here, or None when it can."""
    if shutil.which("unshare") is None:
        return "the unshare command is not installed"
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"unshare --net is not permitted here ({probe.stderr.decode().strip()})"
    return None


_NO_NETNS = _netns_available()
needs_netns = pytest.mark.skipif(
    _NO_NETNS is not None and os.environ.get("CI") != "true",
    reason=f"needs an empty network namespace: {_NO_NETNS}",
)


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A manifest of one clip, a home with a signed-in user, and the command's environment."""
    clock = SystemClock()
    with Sandbox(clock=clock) as sandbox:  # only mints the stored tokens; never contacted
        settings = sandbox_settings(sandbox, tmp_path / "home")
        sign_in(settings, sandbox, clock, [USER])
        client_key, client_secret = sandbox.client_key, sandbox.client_secret
    media = tmp_path / "media"
    media.mkdir()
    clip, _ = make_clip(media, "a.mp4")
    manifest = write_manifest(media, [{"user_id": USER, "video_path": clip.name}])
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "ORCHESTRATOR_HOME": str(settings.home),
        "TIKTOK_CLIENT_KEY": client_key,
        "TIKTOK_CLIENT_SECRET": client_secret,
        "ORCHESTRATOR_API_BASE": "https://127.0.0.1:9",
        "ORCHESTRATOR_AUTH_URL": "https://127.0.0.1:9/v2/auth/authorize/",
    }
    return manifest, env


def _run_isolated(manifest: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert _NO_NETNS is None, _NO_NETNS  # under CI=true the test fails instead of skipping
    return subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-m", "orchestrator", "run", str(manifest)],
        cwd=manifest.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@needs_netns
@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("ORCHESTRATOR_API_BASE", "http://192.0.2.1"),
        ("ORCHESTRATOR_API_BASE", "http://[2001:db8::1]:8080"),
        ("ORCHESTRATOR_AUTH_URL", "http://192.0.2.1/v2/auth/authorize/"),
    ],
)
def test_run_refuses_plain_http_to_another_host_before_any_connection(
    project: tuple[Path, dict[str, str]], variable: str, url: str
) -> None:
    """`run` with an http:// API or auth URL off the machine exits 2 naming the variable and
    the fix; nothing was attempted (no entry reached the journal as sent)."""
    manifest, env = project
    finished = _run_isolated(manifest, {**env, variable: url})
    assert finished.returncode == 2, finished.stdout + finished.stderr
    assert variable in finished.stderr
    assert "https://" in finished.stderr
    assert "Traceback" not in finished.stderr


class _NoConnection:
    """Fails the test at any attempt to resolve or reach a host (the check must come first)."""

    def __init__(self) -> None:
        self.attempts: list[Any] = []

    def connect(self, _sock: socket.socket, address: Any) -> None:
        self.attempts.append(address)
        raise AssertionError(f"a connection to {address!r} was attempted")

    def getaddrinfo(self, host: Any, *_args: Any, **_kwargs: Any) -> Any:
        self.attempts.append(host)
        raise AssertionError(f"{host!r} was resolved")


@pytest.fixture
def no_connection(monkeypatch: pytest.MonkeyPatch) -> _NoConnection:
    guard = _NoConnection()
    monkeypatch.setattr(socket.socket, "connect", guard.connect)
    monkeypatch.setattr(socket, "getaddrinfo", guard.getaddrinfo)
    return guard


@pytest.mark.parametrize("method", ["PUT", "POST", "GET"])
def test_a_plain_http_upload_url_from_the_server_is_refused_unsent(
    no_connection: _NoConnection, method: str
) -> None:
    """An upload URL (it carries its own token) on http:// to another host is refused before
    resolving or connecting, and the message hides the URL's token."""
    transport = HttpTransport()
    try:
        with pytest.raises(PlainHttpError) as caught:
            transport.request(
                method,
                "http://192.0.2.7:8080/upload/?upload_token=tok-SECRET-1",
                headers={"Authorization": "Bearer act.SECRET-2"},
                body=b"x" * 10,
            )
    finally:
        transport.close()
    assert no_connection.attempts == []
    shown = f"{caught.value} {caught.value.hint}"
    assert "192.0.2.7" in shown
    assert "SECRET" not in shown


def test_a_run_stops_with_exit_2_when_the_server_hands_out_a_plain_http_upload_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API (on loopback) answers the init with an http:// upload URL on another host: the
    run stops before the first chunk (exit 2), nothing is published, and the journal holds the
    entry for a later run rather than as failed."""
    real_connect = socket.socket.connect

    def loopback_connect(sock: socket.socket, address: Any) -> None:
        if not (isinstance(address, tuple) and str(address[0]) in ("127.0.0.1", "::1")):
            raise AssertionError(f"a connection to {address!r} was attempted")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_connect)
    clock = SystemClock()
    # The sandbox advertises itself as 192.0.2.1 (TEST-NET-1) in the upload URLs it returns.
    with Sandbox(SandboxConfig(processing_polls=0), clock=clock, server_name="192.0.2.1") as sb:
        settings = sandbox_settings(sb, tmp_path / "home")
        sign_in(settings, sb, clock, [USER])
        clip, _ = make_clip(tmp_path, "a.mp4")
        manifest = write_manifest(tmp_path, [{"user_id": USER, "video_path": clip.name}])
        api_base = f"http://127.0.0.1:{sb.base_url.rsplit(':', 1)[1]}"
        old = Path.cwd()
        os.chdir(tmp_path)
        try:
            result = CliRunner().invoke(
                cli,
                ["run", str(manifest), "--no-progress"],
                env={
                    "ORCHESTRATOR_HOME": str(settings.home),
                    "ORCHESTRATOR_API_BASE": api_base,
                    "ORCHESTRATOR_AUTH_URL": api_base + "/v2/auth/authorize/",
                    "TIKTOK_CLIENT_KEY": sb.client_key,
                    "TIKTOK_CLIENT_SECRET": sb.client_secret,
                },
            )
        finally:
            os.chdir(old)
        (publish,) = sb.publishes()  # the init was accepted; not one byte followed
        assert publish.bytes_received == 0
        assert not publish.completed
    assert result.exit_code == 2, result.output
    assert "192.0.2.1" in result.stderr
    assert "plain http://" in result.stderr
    assert "upload_token" not in result.stderr
    (row,) = journal_rows(settings.home)
    assert row["state"] not in ("failed", "initialising"), row
