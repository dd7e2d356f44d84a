"""`serve --sandbox` as a user starts it: the printed invite completes a creator connect.

The real command runs as a subprocess on a loopback port; a real HTTP client (cookies kept,
redirects followed by hand) opens the invite it printed, goes through the simulator's consent
page and lands on "Connected as …".
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin

import pytest

from tests.web.test_connect import Browser, forms_of

READY_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    """A running `serve --sandbox`: where it listens and what it printed."""

    base: str
    admin_password: str
    invite_url: str
    lines: list[str]


def _read_until_ready(
    process: subprocess.Popen[str], lines: list[str]
) -> tuple[dict[str, str], threading.Thread]:
    """The values `serve` prints once it listens (read on a thread: no wall-clock sleep)."""
    found: dict[str, str] = {}
    ready = threading.Event()
    stdout = process.stdout
    assert stdout is not None

    def read() -> None:
        for line in stdout:
            lines.append(line)
            if match := re.search(r"admin password: (\S+)", line):
                found["password"] = match.group(1)
            if match := re.search(r"invite a sandbox creator: (\S+)", line):
                found["invite"] = match.group(1)
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    ready.wait(READY_TIMEOUT)
    return found, reader


@contextlib.contextmanager
def serve_sandbox(*extra: str) -> Iterator[Served]:
    """`tiktok-orchestrator serve --sandbox --port P` until the block ends (then SIGTERM)."""
    port = free_port()
    lines: list[str] = []
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "serve", "--sandbox", "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    found, reader = _read_until_ready(process, lines)
    try:
        assert "invite" in found, "serve --sandbox printed no invite:\n" + "".join(lines)
        yield Served(
            base=f"http://127.0.0.1:{port}",
            admin_password=found["password"],
            invite_url=found["invite"],
            lines=lines,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.slow
def test_serve_sandbox_printed_invite_completes_a_connect() -> None:
    """The invite `serve --sandbox` prints → Continue with TikTok → the simulator's consent
    page → Approve → "Connected as Sandbox One"; the operator's accounts page lists the
    creator (the sandbox is a Web app registering serve's own loopback callback)."""
    with serve_sandbox() as served:
        assert served.invite_url.startswith(f"{served.base}/connect/")
        creator = Browser([])
        page = creator.get(served.invite_url)
        assert page.status_code == 200, page.text
        to_tiktok = creator.submit(page)
        assert to_tiktok.status_code == 303, to_tiktok.text
        authorize = creator.get(to_tiktok.headers["Location"])
        assert authorize.status_code == 200, authorize.text
        form = forms_of(authorize.text)[0]
        fields = [*form["fields"], ("open_id", form["options"][0]), *form["checks"]]
        fields.append(form["buttons"]["Approve"])
        answer = creator.post(urljoin(authorize.url, form["action"]), fields)
        assert answer.status_code == 302, answer.text
        callback = str(answer.headers["Location"])
        assert callback.startswith(f"{served.base}/connect/callback/?"), callback
        done = creator.get(callback)
        assert done.status_code == 200, done.text
        assert "Connected as Sandbox One" in done.text

        operator = Browser([])
        login = operator.get(f"{served.base}/login")
        fields = [*forms_of(login.text)[0]["fields"], ("password", served.admin_password)]
        signed_in = operator.post(f"{served.base}/login", fields)
        assert signed_in.status_code == 302, signed_in.text
        accounts = operator.get(urljoin(served.base, signed_in.headers["Location"]))
        assert accounts.status_code == 200
        assert "Sandbox One" in accounts.text
        creator.http.close()
        operator.http.close()
