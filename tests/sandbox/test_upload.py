"""Chunk plans at init and chunk PUTs (tiktok-api.md §5 and §10), by raw HTTP."""

from __future__ import annotations

import http.client
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from orchestrator.clock import ManualClock
from orchestrator.sandbox import Fault, Sandbox
from tests.support.sandbox_api import MIN_CHUNK, Api, error_code, pattern, pattern_sha256, put_chunk

# A quick two-chunk plan: the last chunk absorbs one extra byte.
SIZE = 2 * MIN_CHUNK + 1
CHUNK = MIN_CHUNK


def _init(api: Api, size: int = SIZE, chunk: int = CHUNK, count: int = 2) -> tuple[str, str]:
    token = api.token()
    api.creator_info(token)
    response = api.init_video(token, size, chunk, count)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return data["publish_id"], data["upload_url"]


def test_doc_example_plan_is_accepted_and_completed(api: Api, sandbox: Sandbox) -> None:
    """50,000,123 bytes in 10,000,000-byte chunks: K=5, the last chunk is 10,000,123 bytes."""
    size, chunk = 50_000_123, 10_000_000
    publish_id, url = _init(api, size, chunk, 5)
    codes = [put_chunk(url, i * chunk, i * chunk + chunk - 1, size).status for i in range(4)]
    last = put_chunk(url, 40_000_000, 50_000_122, size)
    assert codes == [206, 206, 206, 206]
    assert last.status == 201
    assert last.content_range == "bytes 0-50000122/50000123"
    record = sandbox.publish(publish_id)
    assert record.completed
    assert (record.chunks_received, record.bytes_received) == (5, size)
    assert (record.video_size, record.chunk_size, record.total_chunk_count) == (size, chunk, 5)
    assert record.sha256 == pattern_sha256(size)
    assert sandbox.violations() == []


def test_chunk_put_answers_have_status_and_content_range_but_no_body(
    api: Api, sandbox: Sandbox
) -> None:
    """tiktok-api.md §5 documents a chunk PUT's status codes and Content-Range only: the
    sandbox answers 206, 201 and its refusals with an empty body, so no client comes to
    depend on an invented envelope."""
    _, url = _init(api)
    accepted = put_chunk(url, 0, CHUNK - 1, SIZE)
    mismatch = put_chunk(url, 0, CHUNK - 1, SIZE)  # already held: 416 with progress
    done = put_chunk(url, CHUNK, SIZE - 1, SIZE)
    sandbox.schedule(Fault("upload", call=None, status=503))
    busy = put_chunk(url, CHUNK, SIZE - 1, SIZE)
    assert [r.status for r in (accepted, mismatch, done, busy)] == [206, 416, 201, 503]
    assert [r.body for r in (accepted, mismatch, done, busy)] == [b""] * 4
    assert [r.headers.get("content-length") for r in (accepted, done, busy)] == ["0"] * 3
    assert "content-type" not in accepted.headers
    assert mismatch.content_range == f"bytes 0-{CHUNK - 1}/{SIZE}"
    assert done.content_range == f"bytes 0-{SIZE - 1}/{SIZE}"


def test_206_carries_progress(api: Api) -> None:
    """A 206 says how many bytes the server holds."""
    _, url = _init(api)
    result = put_chunk(url, 0, CHUNK - 1, SIZE)
    assert result.status == 206
    assert result.content_range == f"bytes 0-{CHUNK - 1}/{SIZE}"


@pytest.mark.parametrize(
    ("size", "chunk", "count", "message"),
    [
        (50_000_123, 10_000_000, 6, "The chunk size is invalid"),  # ceil, not floor
        (50_000_123, 10_000_000, 4, "The chunk size is invalid"),
        (20_000_000, 5_000_000, 4, "The chunk size is invalid"),  # "5 MB" as 10^6 is too small
        (200_000_000, 64_000_001, 3, "The chunk size is invalid"),  # over 64,000,000
        (66_259_900, 66_259_900, 1, "The chunk size is invalid"),  # whole, seen refused live
        (64_000_001, 64_000_001, 1, "The chunk size is invalid"),  # whole just over the bound
        (20_000_000, 30_000_000, 1, "The chunk size is invalid"),  # chunk larger than video
        (70_000_000, 40_000_000, 1, "The chunk size is invalid"),  # over 64 MB: K >= 2 (§5.3)
        (4_000_000, 2_000_000, 2, "The chunk size is invalid"),  # under 5 MB goes whole
        (6_000_000_000, 64_000_000, 93, "The chunk size is invalid"),  # over 4 GB
        (20_000_000, 10_000_000, 0, "The chunk size is invalid"),
        (4_000_000_000, 5_242_880, 1001, "The chunk size is invalid"),  # K > 1000
    ],
)
def test_invalid_plans_are_refused(
    api: Api, sandbox: Sandbox, size: int, chunk: int, count: int, message: str
) -> None:
    """Plans breaking §5/§10 get 400 invalid_params with TikTok's message, and nothing starts."""
    token = api.token()
    api.creator_info(token)
    response = api.init_video(token, size, chunk, count)
    assert response.status_code == 400
    assert error_code(response) == "invalid_params"
    assert response.json()["error"]["message"] == message
    assert response.json()["data"] == {}
    assert sandbox.publishes() == []
    assert any(v.startswith("video_init:") for v in sandbox.violations())


def test_ceil_plan_violation_names_the_rule(api: Api, sandbox: Sandbox) -> None:
    """A ceil plan is called out as such in the violations list."""
    token = api.token()
    api.creator_info(token)
    api.init_video(token, 50_000_123, 10_000_000, 6)
    assert any("ceil plan" in v for v in sandbox.violations())


@pytest.mark.parametrize(
    ("size", "chunk", "count"),
    [
        (64_000_000, 64_000_000, 1),  # whole at the bound
        (1_000, 1_000, 1),  # a tiny video goes whole
        (2 * MIN_CHUNK, MIN_CHUNK, 2),  # chunk at the 5 MiB bound
        (128_000_000, 64_000_000, 2),  # chunk at the 64 MB bound
        (191_999_999, 64_000_000, 2),  # last chunk 127,999,999 < 2·chunk and ≤ 128,000,000
        # K = floor(12e6 / 8e6) = 1, the last (only) chunk holds the rest: 12,000,000 <
        # 2·chunk and ≤ 128 MB. §5 has no "one chunk means chunk_size == video_size" rule.
        (12_000_000, 8_000_000, 1),
        (20_000_000, 15_000_000, 1),
        (4 * 1024**3, 64_000_000, 67),  # 4 GiB
    ],
)
def test_valid_plans_are_accepted(api: Api, size: int, chunk: int, count: int) -> None:
    """Plans within both readings of "MB" get a publish_id and an upload_url."""
    token = api.token()
    api.creator_info(token)
    response = api.init_video(token, size, chunk, count)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["upload_url"].startswith("http://127.0.0.1:")


def test_out_of_order_chunk_is_416_without_progress(api: Api, sandbox: Sandbox) -> None:
    """Sending the second chunk first gets 416 and no Content-Range (nothing held)."""
    publish_id, url = _init(api)
    result = put_chunk(url, CHUNK, SIZE - 1, SIZE)
    assert result.status == 416
    assert result.content_range is None
    assert sandbox.publish(publish_id).bytes_received == 0
    assert any("expected bytes 0-" in v for v in sandbox.violations())


def test_resend_of_accepted_chunk_is_416_with_progress(api: Api, sandbox: Sandbox) -> None:
    """A resend (e.g. after a lost answer) learns the server's progress; then the upload goes on."""
    publish_id, url = _init(api)
    assert put_chunk(url, 0, CHUNK - 1, SIZE).status == 206
    resend = put_chunk(url, 0, CHUNK - 1, SIZE)
    assert resend.status == 416
    assert resend.content_range == f"bytes 0-{CHUNK - 1}/{SIZE}"
    assert put_chunk(url, CHUNK, SIZE - 1, SIZE).status == 201
    assert sandbox.publish(publish_id).sha256 == pattern_sha256(SIZE)
    assert sandbox.violations() == []


def test_resend_after_completion_is_416_with_full_progress(api: Api) -> None:
    """After the last byte, any chunk PUT says everything is held."""
    _, url = _init(api)
    api.upload_whole(url, SIZE, CHUNK, 2)
    again = put_chunk(url, CHUNK, SIZE - 1, SIZE)
    assert again.status == 416
    assert again.content_range == f"bytes 0-{SIZE - 1}/{SIZE}"


def test_client_ignoring_416_is_a_violation(api: Api, sandbox: Sandbox) -> None:
    """Sending another wrong range on the connection that was answered 416 is recorded as
    ignoring the 416."""
    _, url = _init(api, 3 * CHUNK, CHUNK, 3)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        first = put_chunk(url, CHUNK, 2 * CHUNK - 1, 3 * CHUNK, connection=conn)
        second = put_chunk(url, 2 * CHUNK, 3 * CHUNK - 1, 3 * CHUNK, connection=conn)
    finally:
        conn.close()
    assert (first.status, second.status) == (416, 416)
    assert any("after a 416 without resyncing" in v for v in sandbox.violations())


def test_new_client_resending_an_accepted_chunk_after_a_416_is_no_violation(
    api: Api, sandbox: Sandbox
) -> None:
    """A process killed before it read a 416 leaves the next process (a new connection)
    resending the chunk the journal last knew: a 416 again, but not a violation."""
    _, url = _init(api)
    assert put_chunk(url, 0, CHUNK - 1, SIZE).status == 206
    assert put_chunk(url, 0, CHUNK - 1, SIZE).status == 416  # the killed process's resend
    again = put_chunk(url, 0, CHUNK - 1, SIZE)  # the next process, on its own connection
    assert again.status == 416
    assert again.content_range == f"bytes 0-{CHUNK - 1}/{SIZE}"
    assert sandbox.violations() == []


def test_wrong_chunk_size_is_416(api: Api) -> None:
    """The right start with the wrong end (not the planned chunk) is refused with 416."""
    _, url = _init(api, 3 * CHUNK, CHUNK, 3)
    assert put_chunk(url, 0, CHUNK - 2, 3 * CHUNK).status == 416


@pytest.mark.parametrize(
    "overrides",
    [
        {"content_type": "application/octet-stream"},
        {"content_type": None},
        {"content_range": f"bytes 0-{CHUNK - 1}/{SIZE + 1}"},  # wrong total
        {"content_range": f"bytes=0-{CHUNK - 1}/{SIZE}"},  # malformed
        {"content_range": f"bytes {CHUNK - 1}-0/{SIZE}"},  # inverted
        {"content_length": CHUNK - 1, "send_bytes": CHUNK - 1},  # length ≠ range
    ],
)
def test_bad_headers_are_400(api: Api, sandbox: Sandbox, overrides: dict[str, object]) -> None:
    """Wrong Content-Type, Content-Range or Content-Length: 400, nothing accepted."""
    publish_id, url = _init(api)
    result = put_chunk(url, 0, CHUNK - 1, SIZE, **overrides)  # type: ignore[arg-type]
    assert result.status == 400
    assert sandbox.publish(publish_id).bytes_received == 0
    assert sandbox.violations()


@pytest.mark.parametrize("content_type", ["video/quicktime", "video/webm", "Video/MP4; x=1"])
def test_every_video_content_type_is_accepted(api: Api, content_type: str) -> None:
    """MP4, MOV and WebM media types are accepted (parameters and case ignored)."""
    _, url = _init(api)
    assert put_chunk(url, 0, CHUNK - 1, SIZE, content_type=content_type).status == 206


def test_expired_url_is_403(api: Api, clock: ManualClock, sandbox: Sandbox) -> None:
    """An upload_url stops working after upload_url_ttl on the sandbox clock."""
    publish_id, url = _init(api)
    assert put_chunk(url, 0, CHUNK - 1, SIZE).status == 206
    clock.advance(sandbox.config.upload_url_ttl)
    assert put_chunk(url, CHUNK, SIZE - 1, SIZE).status == 403
    assert not sandbox.publish(publish_id).completed


def test_unknown_upload_or_token_is_404(api: Api) -> None:
    """A made-up upload_id, or the right id with a wrong token, is 404."""
    _, url = _init(api)
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    assert put_chunk(f"{base}?upload_id=nope&upload_token=x", 0, CHUNK - 1, SIZE).status == 404
    upload_id = parts.query.split("&")[0]
    assert put_chunk(f"{base}?{upload_id}&upload_token=wrong", 0, CHUNK - 1, SIZE).status == 404


def test_authorization_header_on_chunk_is_a_violation(api: Api, sandbox: Sandbox) -> None:
    """The URL authorises: a Bearer header on a chunk PUT is recorded (and still accepted)."""
    _, url = _init(api)
    result = put_chunk(url, 0, CHUNK - 1, SIZE, extra_headers={"Authorization": "Bearer x"})
    assert result.status == 206
    assert any("Authorization header" in v for v in sandbox.violations())


def test_truncated_body_counts_for_nothing(api: Api, sandbox: Sandbox) -> None:
    """A chunk whose body stops early is dropped whole; the same chunk can be sent again."""
    publish_id, url = _init(api)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("PUT", f"{parts.path}?{parts.query}")
    conn.putheader("Content-Type", "video/mp4")
    conn.putheader("Content-Length", str(CHUNK))
    conn.putheader("Content-Range", f"bytes 0-{CHUNK - 1}/{SIZE}")
    conn.endheaders()
    conn.send(b"\0" * 1000)
    conn.close()
    assert put_chunk(url, 0, CHUNK - 1, SIZE).status == 206
    assert put_chunk(url, CHUNK, SIZE - 1, SIZE).status == 201
    assert sandbox.publish(publish_id).sha256 == pattern_sha256(SIZE)


def test_refused_chunk_keeps_the_connection_usable(api: Api) -> None:
    """A refused chunk's body is drained, so the next request on the same connection works."""
    _, url = _init(api)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        bad = put_chunk(url, CHUNK, SIZE - 1, SIZE, connection=conn)
        good = put_chunk(url, 0, CHUNK - 1, SIZE, connection=conn)
        done = put_chunk(url, CHUNK, SIZE - 1, SIZE, connection=conn)
    finally:
        conn.close()
    assert (bad.status, good.status, done.status) == (416, 206, 201)


def test_expire_fault_expires_the_url_now(api: Api, sandbox: Sandbox) -> None:
    """An 'expire' fault makes that chunk PUT (and later ones) 403."""
    _, url = _init(api)
    sandbox.schedule(Fault(endpoint="upload", call=2, kind="expire"))
    assert put_chunk(url, 0, CHUNK - 1, SIZE).status == 206
    assert put_chunk(url, CHUNK, SIZE - 1, SIZE).status == 403
    assert put_chunk(url, CHUNK, SIZE - 1, SIZE).status == 403


def test_identical_video_twice_is_a_violation(api: Api, sandbox: Sandbox) -> None:
    """Uploading byte-identical videos for the same user is recorded (a duplicate post)."""
    for _ in range(2):
        _, url = _init(api)
        assert api.upload_whole(url, SIZE, CHUNK, 2) == [206, 201]
    assert any("byte-identical" in v for v in sandbox.violations())


def test_whole_small_video_completes_with_201(api: Api, sandbox: Sandbox) -> None:
    """A video under 5 MB goes in one PUT and completes."""
    publish_id, url = _init(api, 1_000, 1_000, 1)
    assert put_chunk(url, 0, 999, 1_000).status == 201
    assert sandbox.publish(publish_id).sha256 == pattern_sha256(1_000)


def test_overlapping_puts_of_one_chunk_commit_once(api: Api, sandbox: Sandbox) -> None:
    """Two PUTs of the same chunk at once: the first to finish counts, the other gets 416."""
    publish_id, url = _init(api)
    parts = urlsplit(url)
    slow = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        slow.putrequest("PUT", f"{parts.path}?{parts.query}")
        slow.putheader("Content-Type", "video/mp4")
        slow.putheader("Content-Length", str(CHUNK))
        slow.putheader("Content-Range", f"bytes 0-{CHUNK - 1}/{SIZE}")
        slow.endheaders()
        pieces = list(pattern(0, CHUNK))
        slow.send(pieces[0])
        assert put_chunk(url, 0, CHUNK - 1, SIZE).status == 206
        for piece in pieces[1:]:
            slow.send(piece)
        late = slow.getresponse()
        late.read()
    finally:
        slow.close()
    assert late.status == 416
    assert late.getheader("Content-Range") == f"bytes 0-{CHUNK - 1}/{SIZE}"
    assert sandbox.publish(publish_id).bytes_received == CHUNK
    assert any("overlapped" in v for v in sandbox.violations())


def test_parallel_uploads_of_different_users_stay_apart(api: Api, sandbox: Sandbox) -> None:
    """Three users uploading at once each get exactly their own bytes."""
    sizes = {"sandbox-user-1": SIZE, "sandbox-user-2": SIZE + 7, "sandbox-user-3": SIZE + 250}
    targets = {}
    for open_id, size in sizes.items():
        token = api.token(open_id)
        api.creator_info(token)
        data = api.init_video(token, size, CHUNK, 2).json()["data"]
        targets[open_id] = (data["publish_id"], data["upload_url"])

    def upload(open_id: str) -> list[int]:
        size = sizes[open_id]
        return api.upload_whole(targets[open_id][1], size, CHUNK, 2)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip(sizes, pool.map(upload, sizes), strict=True))
    assert all(codes == [206, 201] for codes in results.values())
    for open_id, size in sizes.items():
        assert sandbox.publish(targets[open_id][0]).sha256 == pattern_sha256(size)


def test_identical_video_after_tiktok_reported_failed_is_a_retry_not_a_duplicate(
    api: Api, sandbox: Sandbox
) -> None:
    """Uploading a video again once TikTok said its upload FAILED is the documented retry, not
    a second post; a third upload while the second one is live is a duplicate again."""
    sandbox.fail_next_publish("sandbox-user-1", "internal")
    token = api.token()
    first, url = _init(api)
    assert api.upload_whole(url, SIZE, CHUNK, 2) == [206, 201]
    statuses = [api.status(token, first).json()["data"]["status"] for _ in range(2)]
    assert statuses == ["PROCESSING_UPLOAD", "FAILED"]
    _, url = _init(api)
    assert api.upload_whole(url, SIZE, CHUNK, 2) == [206, 201]
    assert sandbox.violations() == []
    _, url = _init(api)
    assert api.upload_whole(url, SIZE, CHUNK, 2) == [206, 201]
    assert any("byte-identical" in v for v in sandbox.violations())
