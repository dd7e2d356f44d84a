"""``/api/v1`` over real HTTP (requests → waitress → the app), against the sandbox."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest

from orchestrator.report import report_schema
from tests.functional.run_support import assert_published_once, completed_by_digest
from tests.web.api_rig import ApiRig, finished, open_api_rig

USER = "sandbox-user-1"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[ApiRig]:
    with open_api_rig(tmp_path) as opened:
        yield opened


def test_healthz_needs_no_key_and_reports_store_worker_and_queue(rig: ApiRig) -> None:
    """healthz answers without a key: store reachable, worker alive, queue depth."""
    import requests

    body = requests.get(rig.url + "/api/v1/healthz", timeout=10).json()
    assert body["store_reachable"] is True
    assert body["worker_alive"] is True
    assert body["queue_depth"] == 0


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer tko_not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer wrong"],
)
def test_every_route_without_a_valid_key_is_401_without_detail(
    rig: ApiRig, authorization: str | None
) -> None:
    """No key, a malformed or an unknown key: 401, one message, whatever the route."""
    import requests

    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in [
        ("GET", "/accounts"),
        ("GET", f"/accounts/{USER}"),
        ("GET", f"/accounts/{USER}/creator-info"),
        ("POST", "/posts"),
        ("GET", "/posts/abc"),
        ("DELETE", "/posts/abc"),
        ("POST", "/runs"),
        ("GET", "/runs/abc"),
    ]:
        response = requests.request(method, rig.url + "/api/v1" + path, headers=headers, timeout=10)
        assert response.status_code == 401, (method, path)
        assert response.json() == {
            "code": "unauthorized",
            "message": "a valid API key is required",
            "hint": None,
        }


def test_accounts_list_one_and_unknown(rig: ApiRig) -> None:
    """The connected accounts, one of them, and a 404 in the error shape for another."""
    listed = rig.get("/api/v1/accounts").json()["accounts"]
    assert {account["open_id"] for account in listed} == {u.open_id for u in rig.sandbox.users}
    assert all("token" not in json.dumps(a).replace("token_state", "") for a in listed)
    one = rig.get(f"/api/v1/accounts/{USER}").json()
    assert one["open_id"] == USER
    assert one["token_state"] == "fresh"
    missing = rig.get("/api/v1/accounts/nobody")
    assert missing.status_code == 404
    assert missing.json()["code"] == "unknown_account"
    assert missing.json()["hint"]


def test_creator_info_is_asked_live_with_the_stored_token(rig: ApiRig) -> None:
    """creator-info answers TikTok's creator_info for the account (the sandbox's)."""
    response = rig.get(f"/api/v1/accounts/{USER}/creator-info")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["open_id"] == USER
    assert "PUBLIC_TO_EVERYONE" in body["privacy_level_options"] or body["privacy_level_options"]
    assert body["max_video_post_duration_sec"] > 0
    assert rig.get("/api/v1/accounts/nobody/creator-info").status_code == 404


def test_a_json_post_with_a_video_path_is_published_once_byte_exact(rig: ApiRig) -> None:
    """POST /posts (JSON, video_path under an upload root) → 202 + Location → published."""
    path, digest = rig.clip("a.mp4", 3_000_000)
    entry = {"user_id": USER, "video_path": str(path), "privacy_level": "SELF_ONLY"}
    response = rig.post("/api/v1/posts", json=entry)
    assert response.status_code == 202, response.text
    post_id = response.json()["id"]
    assert response.headers["Location"] == f"/api/v1/posts/{post_id}"
    body = rig.wait_for(post_id, finished)
    assert body["state"] == "published", body
    assert body["publish_id"]
    assert body["bytes_sent"] == path.stat().st_size
    assert_published_once(rig.sandbox, [digest])


def test_a_multipart_upload_is_streamed_to_disk_and_published_byte_exact(rig: ApiRig) -> None:
    """POST /posts as multipart: the video's bytes reach TikTok exactly, once."""
    path, digest = rig.clip("upload.mp4", 2_500_000)
    entry = {"user_id": USER, "mode": "inbox", "description": "from n8n"}
    with path.open("rb") as video:
        response = rig.post(
            "/api/v1/posts",
            data={"entry": json.dumps(entry)},
            files={"video": ("upload.mp4", video, "video/mp4")},
        )
    assert response.status_code == 202, response.text
    body = rig.wait_for(response.json()["id"], finished)
    assert body["state"] == "sent_to_inbox", body
    assert_published_once(rig.sandbox, [digest])
    uploads = rig.settings.home / "web-uploads"
    assert sorted(p.name for p in uploads.iterdir()) == [digest]


def test_a_multipart_upload_that_is_not_a_video_is_422_and_leaves_nothing(rig: ApiRig) -> None:
    """Bytes that are not MP4/MOV/WebM (sniffed, whatever the name says) are refused."""
    response = rig.post(
        "/api/v1/posts",
        data={"entry": json.dumps({"user_id": USER})},
        files={"video": ("clip.mp4", b"<html>not a video</html>" * 100, "video/mp4")},
    )
    assert response.status_code == 422, response.text
    assert response.json()["problems"]
    uploads = rig.settings.home / "web-uploads"
    assert [p.name for p in uploads.iterdir() if not p.name.startswith(".entry")] == []


def test_an_invalid_entry_is_422_listing_every_problem(idle_rig: ApiRig) -> None:
    """validate's checks: every problem at once, each with a location and a fix."""
    response = idle_rig.post(
        "/api/v1/posts",
        json={"user_id": USER, "mode": "sideways", "privacy_level": "EVERYONE", "colour": 1},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_entry"
    assert body["hint"]
    locations = " ".join(problem["location"] for problem in body["problems"])
    assert "mode" in locations
    assert "privacy_level" in locations
    assert "colour" in locations
    assert len(body["problems"]) >= 4  # also: no media source


@pytest.mark.parametrize("how", ["outside", "dotdot", "symlink", "relative"])
def test_a_video_path_outside_the_upload_roots_is_400(
    idle_rig: ApiRig, tmp_path: Path, how: str
) -> None:
    """Outside the roots, with '..', through a symlink out, or relative: 400, nothing queued."""
    outside, _ = idle_rig.clip("x.mp4")
    target = tmp_path / "secret.mp4"
    os.replace(outside, target)
    paths = {
        "outside": str(target),
        "dotdot": str(idle_rig.media / ".." / "secret.mp4"),
        "symlink": str(idle_rig.media / "link.mp4"),
        "relative": "x.mp4",
    }
    (idle_rig.media / "link.mp4").symlink_to(target)
    response = idle_rig.post("/api/v1/posts", json={"user_id": USER, "video_path": paths[how]})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "video_path_outside_roots"
    assert idle_rig.get("/api/v1/healthz").json()["queue_depth"] == 0


def test_twenty_parallel_posts_with_one_key_make_one_post(rig: ApiRig) -> None:
    """20 concurrent duplicates of one request: one post id, one post on TikTok."""
    path, digest = rig.clip("dup.mp4", 1_000_000)
    entry = {"user_id": USER, "video_path": str(path), "privacy_level": "SELF_ONLY"}

    def send(_: int) -> tuple[int, str]:
        response = rig.post("/api/v1/posts", json=entry, headers={"Idempotency-Key": "k-20"})
        return response.status_code, response.json()["id"]

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(send, range(20)))
    assert {status for status, _ in answers} == {202}
    assert len({post_id for _, post_id in answers}) == 1
    body = rig.wait_for(answers[0][1], finished)
    assert body["state"] == "published"
    assert_published_once(rig.sandbox, [digest])


def test_the_same_key_with_another_body_is_409_and_an_entry_id_is_a_key(idle_rig: ApiRig) -> None:
    """Idempotency-Key reused with a different body → 409; an entry's id works as the key."""
    url = {"user_id": USER, "video_url": "https://example.com/v.mp4", "mode": "inbox"}
    first = idle_rig.post("/api/v1/posts", json=url, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 202
    other = idle_rig.post(
        "/api/v1/posts", json={**url, "mode": "direct"}, headers={"Idempotency-Key": "k1"}
    )
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_conflict"
    by_id = [idle_rig.post("/api/v1/posts", json={**url, "id": "clip-7"}) for _ in range(2)]
    assert by_id[0].json()["id"] == by_id[1].json()["id"] != first.json()["id"]


def test_wrong_content_type_bad_json_and_unknown_post(idle_rig: ApiRig) -> None:
    """415 for another body type, 400 for broken JSON, 404 for an unknown post id."""
    assert (
        idle_rig.post("/api/v1/posts", data="x", headers={"Content-Type": "text/plain"}).status_code
        == 415
    )
    broken = idle_rig.post("/api/v1/posts", data="{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    assert broken.json()["code"] == "bad_json"
    for response in (idle_rig.get("/api/v1/posts/nope"), idle_rig.delete("/api/v1/posts/nope")):
        assert response.status_code == 404
        assert response.json()["code"] == "unknown_post"


def test_delete_cancels_a_queued_post_and_refuses_a_started_one(
    idle_rig: ApiRig, tmp_path: Path
) -> None:
    """A queued post is cancelled (and never run); once the journal has it, DELETE is 409."""
    entry = {"user_id": USER, "video_url": "https://example.com/v.mp4", "mode": "inbox"}
    post_id = idle_rig.post("/api/v1/posts", json=entry).json()["id"]
    cancelled = idle_rig.delete(f"/api/v1/posts/{post_id}")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert idle_rig.get(f"/api/v1/posts/{post_id}").json()["state"] == "cancelled"

    path, _ = idle_rig.clip("b.mp4")
    started = idle_rig.post(
        "/api/v1/posts",
        json={"user_id": USER, "video_path": str(path), "privacy_level": "SELF_ONLY"},
    ).json()["id"]
    idle_rig.worker.start()
    body = idle_rig.wait_for(started, finished)
    assert body["state"] == "published"
    refused = idle_rig.delete(f"/api/v1/posts/{started}")
    assert refused.status_code == 409
    assert refused.json()["code"] == "already_started"
    assert sum(completed_by_digest(idle_rig.sandbox).values()) == 1  # the cancelled one: never


def test_a_run_posted_as_yaml_reports_as_run_does(rig: ApiRig) -> None:
    """POST /runs → run id; GET /runs/{id} → the report, valid against report.schema.json."""
    path, digest = rig.clip("r.mp4")
    manifest = (
        "version: 1\nentries:\n"
        f"  - user_id: {USER}\n    video_path: {path}\n    privacy_level: SELF_ONLY\n"
    )
    response = rig.post("/api/v1/runs", data=manifest, headers={"Content-Type": "application/yaml"})
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    assert response.headers["Location"] == f"/api/v1/runs/{run_id}"
    report = None
    for _ in range(1200):
        answer = rig.get(f"/api/v1/runs/{run_id}")
        if answer.status_code == 200:
            report = answer.json()
            break
    assert report is not None
    jsonschema.validate(report, report_schema())
    assert [entry["status"] for entry in report["entries"]] == ["published"]
    assert_published_once(rig.sandbox, [digest])


def test_runs_errors(idle_rig: ApiRig, tmp_path: Path) -> None:
    """An invalid manifest is 422 with every problem; a file outside the roots 400; 404/415."""
    bad = idle_rig.post("/api/v1/runs", json={"version": 2, "entries": []})
    assert bad.status_code == 422
    assert len(bad.json()["problems"]) >= 2
    outside = tmp_path / "o.mp4"
    outside.write_bytes((tmp_path / "media").joinpath(idle_rig.clip("o.mp4")[0].name).read_bytes())
    escaped = idle_rig.post(
        "/api/v1/runs",
        json={"version": 1, "entries": [{"user_id": USER, "video_path": str(outside)}]},
    )
    assert escaped.status_code == 400
    assert idle_rig.get("/api/v1/runs/api-0000").status_code == 404
    assert (
        idle_rig.post("/api/v1/runs", data="x", headers={"Content-Type": "text/csv"}).status_code
        == 415
    )
    runs = idle_rig.settings.home / "web-runs"
    assert not runs.exists() or list(runs.iterdir()) == []


def test_the_openapi_document_validates_and_matches_the_routes(rig: ApiRig) -> None:
    """openapi.json is valid OpenAPI 3.1 and names exactly the app's /api/v1 routes."""
    import requests

    document = requests.get(rig.url + "/api/v1/openapi.json", timeout=10).json()
    assert document["openapi"] == "3.1.0"
    documented = {
        (path, method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }
    from orchestrator.web import create_app  # noqa: F401 - the app under test is rig's

    served = set()
    app = _app_of(rig)
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = rule.rule.removeprefix("/api/v1").replace("<", "{").replace(">", "}")
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                served.add((path, method))
    assert documented == served
    validator = pytest.importorskip("openapi_spec_validator")  # the test extra has it
    validator.validate(document)


def _app_of(rig: ApiRig) -> object:
    from orchestrator.clock import SystemClock
    from orchestrator.config import load_web_config
    from orchestrator.store.tokens import TokenStore
    from orchestrator.web import create_app

    with TokenStore.open(rig.settings, clock=SystemClock()) as store:
        return create_app(
            load_web_config(environ={"ORCHESTRATOR_ADMIN_PASSWORD": "x" * 12}),
            settings=rig.settings,
            clock=SystemClock(),
            token_store=store,
        )


def test_no_key_or_token_in_any_answer(rig: ApiRig) -> None:
    """The API key and stored tokens never come back in an answer."""
    answers = [
        rig.get("/api/v1/accounts").text,
        rig.get(f"/api/v1/accounts/{USER}").text,
        rig.post("/api/v1/posts", json={"user_id": USER}).text,
    ]
    for text in answers:
        assert rig.key not in text
        assert "access_token" not in text
        assert "refresh_token" not in text
    assert hashlib.sha256(rig.key.encode()).hexdigest() not in " ".join(answers)
