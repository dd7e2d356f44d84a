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
from orchestrator.store.web import ApiKeyStore, PostState, WebPostStore
from tests.functional.run_support import (
    TWO_CHUNKS,
    Child,
    Served,
    assert_published_once,
    journal_rows,
    serve,
    wait_until,
)
from tests.web.api_rig import ADMIN_PASSWORD, ApiRig, finished
from tests.web.conftest import csrf_of

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


def _file_post(rig: ApiRig, path: Path) -> str:
    entry = {"user_id": USER, "video_path": str(path), "privacy_level": "SELF_ONLY"}
    response = rig.post("/api/v1/posts", json=entry)
    assert response.status_code == 202, response.text
    post_id: str = response.json()["id"]
    return post_id


def test_queued_work_waits_in_the_store_and_healthz_counts_it(idle_rig: ApiRig) -> None:
    """Posts queued while no worker runs are counted by healthz and run once it starts."""
    first, digest_first = idle_rig.clip("1.mp4")
    second, digest_second = idle_rig.clip("2.mp4")
    ids = [_file_post(idle_rig, first), _file_post(idle_rig, second)]
    assert idle_rig.get("/api/v1/healthz").json()["queue_depth"] == 2
    idle_rig.worker.start()
    states = [idle_rig.wait_for(post_id, finished)["state"] for post_id in ids]
    assert states == ["published", "published"]
    assert idle_rig.get("/api/v1/healthz").json()["queue_depth"] == 0
    assert_published_once(idle_rig.sandbox, [digest_first, digest_second])


def test_a_post_whose_video_went_away_fails_alone_and_the_others_go_on(idle_rig: ApiRig) -> None:
    """A queued post whose file is removed is set aside (failed, nothing sent), not a block
    on every other post."""
    gone, _ = idle_rig.clip("gone.mp4")
    kept, digest_kept = idle_rig.clip("kept.mp4")
    gone_id = _file_post(idle_rig, gone)
    kept_id = _file_post(idle_rig, kept)
    gone.unlink()
    idle_rig.worker.start()
    assert idle_rig.wait_for(kept_id, finished)["state"] == "published"
    failed = idle_rig.wait_for(gone_id, finished)
    assert failed["state"] == "failed"
    assert failed["error"]["code"] == "invalid_entry"
    assert "gone.mp4" in failed["error"]["message"]
    assert "new Idempotency-Key" in failed["error"]["hint"]
    assert_published_once(idle_rig.sandbox, [digest_kept])
    # Set aside in the store, where every instance sees it: no worker's queue has it.
    with TokenStore.open(idle_rig.settings, clock=SystemClock()) as store:
        posts = WebPostStore(store.database, clock=SystemClock())
        assert posts.get(gone_id).state is PostState.REJECTED  # type: ignore[union-attr]
        assert gone_id not in [post.id for post in posts.open_posts()]
    assert not (idle_rig.settings.home / "web-runs" / "rejected").exists()
    assert idle_rig.get("/api/v1/healthz").json()["queue_depth"] == 0


def test_a_post_set_aside_can_be_cancelled_and_the_page_shows_why(idle_rig: ApiRig) -> None:
    """A set-aside post is listed on the operator's posts page as failed with its problem, and
    a DELETE cancels it (it then leaves the page)."""
    gone, _ = idle_rig.clip("gone.mp4")
    gone_id = _file_post(idle_rig, gone)
    gone.unlink()
    idle_rig.worker.start()
    assert idle_rig.wait_for(gone_id, finished)["state"] == "failed"
    page = _posts_page(idle_rig)
    assert gone_id in page
    assert re.search(r"failed — [^<]*gone\.mp4", page), page
    cancelled = idle_rig.delete(f"/api/v1/posts/{gone_id}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    assert idle_rig.get(f"/api/v1/posts/{gone_id}").json()["state"] == "cancelled"
    assert gone_id not in _posts_page(idle_rig)


def _posts_page(rig: ApiRig) -> str:
    session = requests.Session()
    token = csrf_of(session.get(rig.url + "/login", timeout=30).text)
    signed_in = session.post(
        rig.url + "/login", data={"password": ADMIN_PASSWORD, "csrf_token": token}, timeout=30
    )
    assert signed_in.status_code == 200, signed_in.text
    page = session.get(rig.url + "/posts", timeout=30)
    assert page.status_code == 200
    return page.text


def test_delete_after_the_worker_took_the_post_is_409_and_it_posts_once(
    idle_rig: ApiRig,
) -> None:
    """Cancel racing the worker: once a pass has taken the post (its first request is in
    flight, the journal has no row yet), DELETE is a 409 and the post is published once."""
    path, digest = idle_rig.clip("race.mp4")
    idle_rig.sandbox.schedule(Fault("creator_info", call=1, kind="delay", seconds=2.0))
    post_id = _file_post(idle_rig, path)
    idle_rig.worker.start()
    wait_until("the worker's first request", lambda: idle_rig.sandbox.calls("creator_info") >= 1)
    refused = idle_rig.delete(f"/api/v1/posts/{post_id}")
    assert refused.status_code == 409
    assert refused.json()["code"] == "already_started"
    assert idle_rig.wait_for(post_id, finished)["state"] == "published"
    assert_published_once(idle_rig.sandbox, [digest])
