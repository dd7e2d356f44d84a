"""The background worker of ``serve``: work posted over HTTP survives a SIGKILL of the server."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from orchestrator.clock import SystemClock
from orchestrator.sandbox import Fault
from orchestrator.store.tokens import TokenStore
from orchestrator.store.web import ApiKeyStore
from tests.functional.run_support import (
    TWO_CHUNKS,
    Child,
    Served,
    assert_published_once,
    journal_rows,
    serve,
    wait_until,
)

USER = "sandbox-user-1"
HOLD = 30.0  # seconds the delayed chunk answer would take: far longer than the test waits
_SERVING = re.compile(r"Serving on (http://127\.0\.0\.1:\d+)")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path) as opened:
        yield opened


def _start(served: Served, name: str) -> tuple[Child, str]:
    served.env["ORCHESTRATOR_ADMIN_PASSWORD"] = "correct horse battery staple"
    with socket.socket() as probe:  # a free port (serve takes no 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    child = served.spawn(
        "serve", "--port", str(port), "--upload-roots", str(served.folder), name=name
    )
    found: list[str] = []

    def listening() -> bool:
        match = _SERVING.search(child.stdout)
        if match:
            found.append(match.group(1))
        return bool(match) or child.process.poll() is not None

    wait_until("serve to listen", listening, timeout=30)
    assert found, child.stderr
    return child, found[0]


def test_sigkill_of_serve_mid_upload_then_restart_publishes_exactly_once(
    served: Served,
) -> None:
    """A post killed mid-upload with the server is finished by the next start from the
    journal: one post on TikTok, byte-exact."""
    with TokenStore.open(served.settings, clock=SystemClock()) as store:
        key = ApiKeyStore(store.database, clock=SystemClock()).create("test").value
    headers = {"Authorization": f"Bearer {key}"}
    clip, digest = served.clip("big.mp4", TWO_CHUNKS)
    served.sandbox.schedule(Fault("upload", call=1, kind="delay", seconds=HOLD))

    first, url = _start(served, "first")
    response = requests.post(
        url + "/api/v1/posts",
        json={"user_id": USER, "video_path": str(clip), "privacy_level": "SELF_ONLY"},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 202, response.text
    post_id = response.json()["id"]
    wait_until(
        "the first chunk to be at the server",
        lambda: served.sandbox.calls("upload") >= 1,
        timeout=30,
    )
    first.kill()
    assert first.process.returncode == -9
    assert [row["state"] for row in journal_rows(served.home)] == ["uploading"]

    second, url = _start(served, "second")
    try:
        state: dict[str, object] = {}

        def finished() -> bool:
            state.update(
                requests.get(f"{url}/api/v1/posts/{post_id}", headers=headers, timeout=10).json()
            )
            return state["state"] in ("published", "failed", "uncertain")

        wait_until("the restarted server to finish the post", finished, timeout=60)
        assert state["state"] == "published", state
    finally:
        second.process.terminate()
        second.wait()
    assert_published_once(served.sandbox, [digest])
