"""Scheduled faults, each kind, on the endpoints they are meant for (raw HTTP)."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from orchestrator.clock import ManualClock
from orchestrator.sandbox import Fault, Sandbox
from tests.support.sandbox_api import MIN_CHUNK, Api, error_code, put_chunk

SIZE = 2 * MIN_CHUNK
CHUNK = MIN_CHUNK
SOCKET_ERRORS = (OSError, http.client.HTTPException)


def _init(api: Api) -> tuple[str, str, str]:
    token = api.token()
    api.creator_info(token)
    data = api.init_video(token, SIZE, CHUNK, 2).json()["data"]
    return token, data["publish_id"], data["upload_url"]


def test_status_fault_answers_in_the_posting_envelope(api: Api, sandbox: Sandbox) -> None:
    """A 503 fault on an init answers internal_error, creates nothing, and fires once."""
    sandbox.schedule(Fault(endpoint="video_init", call=1, kind="status", status=503))
    token = api.token()
    api.creator_info(token)
    first = api.init_video(token, SIZE, CHUNK, 2)
    assert first.status_code == 503
    assert error_code(first) == "internal_error"
    assert first.json()["data"] == {}
    assert first.json()["error"]["log_id"]
    assert sandbox.publishes() == []
    assert api.init_video(token, SIZE, CHUNK, 2).status_code == 200
    assert sandbox.calls("video_init") == 2
    assert sandbox.pending_faults() == []


def test_status_fault_with_a_tiktok_code(api: Api, sandbox: Sandbox) -> None:
    """A fault can carry any status and TikTok code, e.g. a 429 on creator_info."""
    sandbox.schedule(
        Fault(endpoint="creator_info", call=2, status=429, error_code="rate_limit_exceeded")
    )
    token = api.token()
    assert api.creator_info(token).status_code == 200
    limited = api.creator_info(token)
    assert (limited.status_code, error_code(limited)) == (429, "rate_limit_exceeded")


def test_status_fault_on_token_is_flat_oauth_json(api: Api, sandbox: Sandbox) -> None:
    """OAuth endpoints answer faults as flat JSON errors."""
    sandbox.schedule(Fault(endpoint="token", call=1, status=503))
    tokens = sandbox.grant_tokens("sandbox-user-1")
    response = api.form(
        "token",
        {
            "client_key": "sbx_client_key",
            "client_secret": "sbx_client_secret",
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
        },
    )
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert "log_id" in response.json()


def test_every_call_fault(api: Api, sandbox: Sandbox) -> None:
    """call=None applies to every call until cleared."""
    sandbox.schedule(Fault(endpoint="status", call=None, status=500))
    token, publish_id, _ = _init(api)
    assert {api.status(token, publish_id).status_code for _ in range(3)} == {500}
    sandbox.clear_faults()
    assert api.status(token, publish_id).status_code == 200


def test_status_fault_on_upload_keeps_nothing(api: Api, sandbox: Sandbox) -> None:
    """A 503 on a chunk PUT drops the chunk; the same connection then takes the resend."""
    sandbox.schedule(Fault(endpoint="upload", call=1, status=503))
    _, publish_id, url = _init(api)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        failed = put_chunk(url, 0, CHUNK - 1, SIZE, connection=conn)
        retried = put_chunk(url, 0, CHUNK - 1, SIZE, connection=conn)
    finally:
        conn.close()
    assert (failed.status, retried.status) == (503, 206)
    assert sandbox.publish(publish_id).chunks_received == 1


def test_reset_before_body(api: Api, sandbox: Sandbox) -> None:
    """A reset drops the connection unanswered and nothing happens."""
    sandbox.schedule(Fault(endpoint="video_init", call=1, kind="reset"))
    token = api.token()
    api.creator_info(token)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.init_video(token, SIZE, CHUNK, 2)
    assert sandbox.publishes() == []
    assert api.init_video(token, SIZE, CHUNK, 2).status_code == 200


def test_reset_mid_body_keeps_no_bytes(api: Api, sandbox: Sandbox) -> None:
    """A reset after 1,000,000 body bytes: the client sees a reset, the chunk is not counted."""
    sandbox.schedule(Fault(endpoint="upload", call=1, kind="reset_mid_body", after_bytes=1_000_000))
    _, publish_id, url = _init(api)
    with pytest.raises(SOCKET_ERRORS):
        put_chunk(url, 0, CHUNK - 1, SIZE)
    assert sandbox.publish(publish_id).bytes_received == 0
    assert put_chunk(url, 0, CHUNK - 1, SIZE).status == 206


def test_lost_chunk_answer_was_still_accepted(api: Api, sandbox: Sandbox) -> None:
    """'lost': the chunk lands but the answer never comes; a resend learns it from the 416."""
    sandbox.schedule(Fault(endpoint="upload", call=1, kind="lost"))
    _, publish_id, url = _init(api)
    with pytest.raises(SOCKET_ERRORS):
        put_chunk(url, 0, CHUNK - 1, SIZE)
    assert sandbox.publish(publish_id).bytes_received == CHUNK
    resend = put_chunk(url, 0, CHUNK - 1, SIZE)
    assert (resend.status, resend.content_range) == (416, f"bytes 0-{CHUNK - 1}/{SIZE}")
    assert put_chunk(url, CHUNK, SIZE - 1, SIZE).status == 201
    assert sandbox.violations() == []


def test_lost_init_answer_still_creates_the_publish(api: Api, sandbox: Sandbox) -> None:
    """A lost init answer: the publish exists although the client saw only a dropped connection."""
    sandbox.schedule(Fault(endpoint="video_init", call=1, kind="lost"))
    token = api.token()
    api.creator_info(token)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.init_video(token, SIZE, CHUNK, 2)
    assert len(sandbox.publishes()) == 1


def test_delay(api: Api, sandbox: Sandbox) -> None:
    """'delay' answers normally after the given real-time wait."""
    sandbox.schedule(Fault(endpoint="status", call=1, kind="delay", seconds=0.2))
    token, publish_id, _ = _init(api)
    started = time.monotonic()
    response = api.status(token, publish_id)
    assert time.monotonic() - started >= 0.2
    assert response.status_code == 200


def test_delay_beyond_client_timeout_processes_anyway(api: Api, sandbox: Sandbox) -> None:
    """A client timing out on a delayed init still created a publish (the answer came late)."""
    sandbox.schedule(Fault(endpoint="video_init", call=1, kind="delay", seconds=0.5))
    token = api.token()
    api.creator_info(token)
    with pytest.raises(requests.exceptions.Timeout):
        api.http.post(
            api.url("video_init"),
            headers={"Authorization": f"Bearer {token}"},
            json={
                "post_info": {"privacy_level": "SELF_ONLY"},
                "source_info": {
                    "source": "PULL_FROM_URL",
                    "video_url": "https://media.example.com/v",
                },
            },
            timeout=0.1,
        )
    assert len(sandbox.publishes()) == 1


def _raw_status_request(sandbox: Sandbox, token: str, publish_id: str) -> socket.socket:
    body = f'{{"publish_id": "{publish_id}"}}'.encode()
    sock = socket.create_connection(("127.0.0.1", sandbox.port), timeout=5)
    sock.sendall(
        b"POST /v2/post/publish/status/fetch/ HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def test_drip_answers_one_byte_at_a_time(api: Api, sandbox: Sandbox) -> None:
    """'drip' sends the answer byte by byte with a gap, so a deadline can expire mid-answer."""
    sandbox.schedule(Fault(endpoint="status", call=1, kind="drip", seconds=0.05))
    token, publish_id, _ = _init(api)
    with _raw_status_request(sandbox, token, publish_id) as sock:
        started = time.monotonic()
        received = b""
        while len(received) < 8:
            piece = sock.recv(100)
            assert len(piece) == 1
            received += piece
        elapsed = time.monotonic() - started
    assert received == b"HTTP/1.1"
    assert elapsed >= 7 * 0.05
    assert sandbox.calls("status") == 1


def test_stop_is_prompt_during_a_drip(clock: ManualClock) -> None:
    """Stopping the sandbox ends a slow drip at once and joins its thread."""
    sandbox = Sandbox(clock=clock)
    sandbox.start()
    try:
        sandbox.schedule(Fault(endpoint="status", call=None, kind="drip", seconds=5))
        token = sandbox.grant_tokens("sandbox-user-1")["access_token"]
        sock = _raw_status_request(sandbox, token, "v_pub_file~v2-1.1")
    finally:
        started = time.monotonic()
        sandbox.stop()
    sock.close()
    assert time.monotonic() - started < 2


def test_idle_keep_alive_connection_does_not_block_stop(clock: ManualClock) -> None:
    """An open idle keep-alive connection does not hold up stop()."""
    sandbox = Sandbox(clock=clock)
    sandbox.start()
    session = requests.Session()
    try:
        session.get(sandbox.auth_url, timeout=5)
    finally:
        started = time.monotonic()
        sandbox.stop()
        session.close()
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint": "nope"},
        {"endpoint": "status", "kind": "explode"},
        {"endpoint": "status", "kind": "expire"},
        {"endpoint": "status", "call": 0},
        {"endpoint": "status", "status": 42},
        {"endpoint": "upload", "kind": "reset_mid_body", "after_bytes": -1},
        {"endpoint": "status", "kind": "hold"},
        {"endpoint": "status", "kind": "delay", "gate": "g"},
    ],
)
def test_bad_faults_are_refused(kwargs: dict[str, object]) -> None:
    """A fault naming an unknown endpoint or kind, or impossible numbers, is a ValueError."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by field
        Fault(**kwargs)  # type: ignore[arg-type]


def test_faults_count_per_endpoint(api: Api, sandbox: Sandbox) -> None:
    """Call numbers count per endpoint, faulted calls included."""
    sandbox.schedule(Fault(endpoint="creator_info", call=2, status=500))
    token = api.token()
    codes = [api.creator_info(token).status_code for _ in range(3)]
    assert codes == [200, 500, 200]
    assert sandbox.calls("creator_info") == 3
    assert sandbox.calls() == 3
    assert sandbox.call_counts() == {"creator_info": 3}


def test_hold_keeps_the_answer_until_the_gate_opens(api: Api, sandbox: Sandbox) -> None:
    """'hold' processes an init at once but answers only when the test opens its gate."""
    sandbox.schedule(Fault(endpoint="video_init", call=1, kind="hold", gate="init", seconds=30))
    token = api.token()
    api.creator_info(token)
    answers: list[requests.Response] = []
    client = threading.Thread(target=lambda: answers.append(api.init_video(token, SIZE, CHUNK, 2)))
    client.start()
    assert sandbox.held("init", timeout=10)
    assert len(sandbox.publishes()) == 1  # processed while its answer waits
    client.join(0.2)
    assert answers == []
    sandbox.release("init")
    client.join(10)
    assert [a.status_code for a in answers] == [200]
    assert answers[0].json()["data"]["publish_id"] == sandbox.publishes()[0].publish_id
    assert sandbox.server_errors() == []


def test_a_hold_never_released_answers_at_its_bound_and_says_so(clock: ManualClock) -> None:
    """A gate never opened is a test's bug: the answer goes out at the bound, and the sandbox
    records an error naming the endpoint, the call and the gate."""
    with Sandbox(clock=clock) as sandbox, requests.Session() as session:
        api = Api(sandbox, session)
        sandbox.schedule(Fault(endpoint="status", call=1, kind="hold", gate="poll", seconds=0.05))
        token, publish_id, _ = _init(api)
        assert api.status(token, publish_id).status_code == 200
        assert sandbox.held("poll", timeout=0)
        [error] = sandbox.server_errors()
    assert "status call 1" in error
    assert "'poll' never opened" in error


def test_a_gate_opened_first_holds_nothing(api: Api, sandbox: Sandbox) -> None:
    """Releasing a gate before its request arrives lets the request through unheld."""
    sandbox.schedule(Fault(endpoint="status", call=None, kind="hold", gate="poll", seconds=30))
    sandbox.release("poll")
    token, publish_id, _ = _init(api)
    assert api.status(token, publish_id).status_code == 200
    assert sandbox.server_errors() == []


def test_stop_releases_a_held_answer(clock: ManualClock) -> None:
    """Stopping the sandbox opens every gate, so a held request does not hold up stop()."""
    sandbox = Sandbox(clock=clock)
    sandbox.start()
    try:
        sandbox.schedule(Fault(endpoint="status", call=None, kind="hold", gate="g", seconds=30))
        token = sandbox.grant_tokens("sandbox-user-1")["access_token"]
        sock = _raw_status_request(sandbox, token, "v_pub_file~v2-1.1")
        assert sandbox.held("g", timeout=10)
    finally:
        started = time.monotonic()
        sandbox.stop()
    sock.close()
    assert time.monotonic() - started < 2
