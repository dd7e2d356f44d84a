"""`serve`, `auth invite` and `api-key` through the real command."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from tests.support.thread_signals import CAN_SIGNAL_THREADS, other_threads, signal_thread


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"ORCHESTRATOR_HOME": str(tmp_path / "home"), "ORCHESTRATOR_ADMIN_PASSWORD": "pw"}


@pytest.fixture
def serving(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = _free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "serve", "--port", str(port)],
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            # The command prints this once the socket listens; a dead process ends the read.
            line = process.stdout.readline()
            assert line.startswith("Serving on"), line
            yield process, port
        finally:
            process.terminate()
            process.wait(30)


def test_serve_binds_loopback_and_answers_healthz(
    serving: tuple[subprocess.Popen[str], int],
) -> None:
    """A real `serve`: listens on 127.0.0.1, /api/v1/healthz says the store and worker are
    fine, the sign-in page is served; SIGTERM stops it with exit 0."""
    process, port = serving
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/healthz", timeout=10) as answer:
        body = json.loads(answer.read())
        assert answer.headers["Server"] == "tiktok-orchestrator"
    assert body == {
        "status": "ok",
        "store_reachable": True,
        "worker_alive": True,
        "queue_depth": 0,
    }
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as answer:
        assert "Admin password" in answer.read().decode()
    process.terminate()
    assert process.wait(30) == 0


@pytest.mark.parametrize(
    "taken_by",
    [
        "process",
        pytest.param(
            "another thread",
            marks=pytest.mark.skipif(
                not CAN_SIGNAL_THREADS, reason="aims a signal at one thread (Linux tgkill)"
            ),
        ),
    ],
)
def test_ctrl_c_stops_serve(serving: tuple[subprocess.Popen[str], int], taken_by: str) -> None:
    """Ctrl-C stops `serve` with exit 0, also when the kernel hands the SIGINT to one of its
    threads (waitress's, the worker's) instead of the main one, where Python handles it."""
    process, _port = serving
    if taken_by == "process":
        process.send_signal(signal.SIGINT)
    else:
        signal_thread(process.pid, other_threads(process.pid)[0], signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_serve_refuses_an_http_public_url_off_loopback(env: dict[str, str]) -> None:
    """`serve` with http://posts.example as public URL: exit 2, the reason and the fix."""
    result = CliRunner().invoke(
        cli, ["serve"], env={**env, "ORCHESTRATOR_PUBLIC_URL": "http://posts.example"}
    )
    assert result.exit_code == 2
    assert "plain http:// URL to posts.example" in result.stderr
    assert "hint: put serve behind a TLS reverse proxy" in result.stderr


def test_serve_without_a_password_says_which_variable(tmp_path: Path) -> None:
    """No admin password: exit 2 naming both variables."""
    result = CliRunner().invoke(cli, ["serve"], env={"ORCHESTRATOR_HOME": str(tmp_path / "h")})
    assert result.exit_code == 2
    assert "ORCHESTRATOR_ADMIN_PASSWORD" in result.stderr


def test_serve_on_a_busy_port_is_a_clear_error(env: dict[str, str]) -> None:
    """A port in use: exit 2 naming it, not a traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--port", str(port)], env=env)
    assert result.exit_code == 2
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr


def test_auth_invite_prints_the_url_once(env: dict[str, str]) -> None:
    """`auth invite` prints the one-time URL on stdout (only), under the public URL."""
    result = CliRunner().invoke(
        cli,
        ["auth", "invite", "--label", "Client X", "--expires", "2d"],
        env={**env, "ORCHESTRATOR_PUBLIC_URL": "https://posts.example"},
    )
    assert result.exit_code == 0, result.output
    url = result.stdout.strip()
    assert url.startswith("https://posts.example/connect/")
    assert "'Client X'" in result.stderr
    assert url.rsplit("/", 1)[1] not in result.stderr
    bad = CliRunner().invoke(cli, ["auth", "invite", "--label", "x", "--expires", "soon"], env=env)
    assert bad.exit_code == 2
    assert "--expires 'soon' is not a duration" in bad.stderr


def test_api_key_create_list_revoke(env: dict[str, str]) -> None:
    """A key is printed once by `create`; `list` shows its id, never the key; `revoke` ends it."""
    runner = CliRunner()
    assert "No API keys" in runner.invoke(cli, ["api-key", "list"], env=env).stdout
    created = runner.invoke(cli, ["api-key", "create", "--label", "n8n"], env=env)
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("tko_")
    listing = runner.invoke(cli, ["api-key", "list"], env=env).stdout
    assert key not in listing
    key_id = listing.split()[0]
    assert "active" in listing
    revoked = runner.invoke(cli, ["api-key", "revoke", key_id], env=env)
    assert revoked.exit_code == 0
    assert "revoked" in runner.invoke(cli, ["api-key", "list"], env=env).stdout
    unknown = runner.invoke(cli, ["api-key", "revoke", "nope"], env=env)
    assert unknown.exit_code == 2
    assert "there is no API key nope" in unknown.stderr
