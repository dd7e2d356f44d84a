"""`python -m orchestrator sandbox`: serves until Ctrl-C and says how to point the tool at it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests
from click.testing import CliRunner

from orchestrator.cli import cli

REPO = Path(__file__).resolve().parents[2]


def test_sandbox_command_serves_until_interrupted() -> None:
    """It prints URL, client key/secret, users and env lines, answers HTTP, exits 0 on Ctrl-C."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines = []
        for _ in range(40):  # bounded: the banner is about 14 lines
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "TIKTOK_CLIENT_SECRET" in line:
                break
        banner = "".join(lines)
        api_line = next(line for line in lines if "ORCHESTRATOR_API_BASE=" in line)
        base_url = api_line.split("=", 1)[1].strip()
        assert base_url.startswith("http://127.0.0.1:")
        with requests.Session() as session:
            info = session.get(base_url + "/v2/user/info/?fields=open_id", timeout=5)
        assert info.status_code == 401
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
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
