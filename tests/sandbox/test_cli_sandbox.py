"""`python -m orchestrator sandbox`: serves until Ctrl-C and says how to point the tool at it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from orchestrator.cli import cli
from tests.support.thread_signals import CAN_SIGNAL_THREADS, other_threads, signal_thread

REPO = Path(__file__).resolve().parents[2]


def _start_sandbox() -> tuple[subprocess.Popen[str], list[str]]:
    """`sandbox --port 0` in a child, and its banner: printed once the server answers."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines = []
    for _ in range(40):  # bounded: the banner is about 14 lines
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "TIKTOK_CLIENT_SECRET" in line:
            break
    return process, lines


def _api_base(lines: list[str]) -> str:
    api_line = next(line for line in lines if "ORCHESTRATOR_API_BASE=" in line)
    base_url = api_line.split("=", 1)[1].strip()
    assert base_url.startswith("http://127.0.0.1:")
    return base_url


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.communicate(timeout=10)


def test_sandbox_command_serves_until_interrupted() -> None:
    """It prints URL, client key/secret, users and env lines, answers HTTP, exits 0 on Ctrl-C."""
    process, lines = _start_sandbox()
    try:
        banner = "".join(lines)
        base_url = _api_base(lines)
        with requests.Session() as session:
            info = session.get(base_url + "/v2/user/info/?fields=open_id", timeout=5)
        assert info.status_code == 401
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    finally:
        _stop(process)
    assert process.returncode == 0, stderr
    for text in (
        "sbx_client_key",
        "sbx_client_secret",
        "sandbox-user-1",
        "Sandbox Three",
        "private",
        "public",
        "export ORCHESTRATOR_AUTH_URL=",
        "export TIKTOK_CLIENT_KEY=sbx_client_key",
    ):
        assert text in banner
    assert "/v2/user/info/ -> 401" in stderr
    assert "sandbox stopped" in stderr


def test_port_in_use_is_a_usage_error() -> None:
    """A taken port exits 2 with a hint, without a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["sandbox", "--port", str(port)])
    assert result.exit_code == 2
    assert f"cannot serve on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output


@pytest.mark.skipif(not CAN_SIGNAL_THREADS, reason="aims a signal at one thread (Linux tgkill)")
def test_ctrl_c_taken_by_another_thread_stops_the_sandbox() -> None:
    """A SIGINT that the kernel hands to the server's thread instead of the main one stops
    `sandbox` (exit 0, "sandbox stopped") like any Ctrl-C. Python runs the handler only in the
    main thread, between bytecodes; the same happens to a SIGINT taken by the main thread just
    before it blocks (a busy machine): that Ctrl-C was ignored for an hour."""
    process, lines = _start_sandbox()
    try:
        # The banner comes after the server thread started: the only thread besides main now.
        others = other_threads(process.pid)
        assert len(others) == 1, others
        with requests.Session() as session:  # serving, and the main thread now waits
            info = session.get(_api_base(lines) + "/v2/user/info/?fields=open_id", timeout=5)
        assert info.status_code == 401
        signal_thread(process.pid, others[0], signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    finally:
        _stop(process)
    assert process.returncode == 0, stderr
    assert "sandbox stopped" in stderr
