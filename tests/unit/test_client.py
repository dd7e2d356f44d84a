"""The API client against `responses`: envelopes, typed errors, retries, refresh, pacing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
import responses

from orchestrator.clock import ManualClock
from orchestrator.errors import ApiError, ConnectError, UploadError
from orchestrator.retry import Retrier, SlidingWindowPacer
from orchestrator.secret import Secret
from orchestrator.tiktok.chunks import plan_chunks
from orchestrator.tiktok.client import (
    CONTENT_INIT_PATH,
    CREATOR_INFO_PATH,
    INBOX_INIT_PATH,
    STATUS_PATH,
    VIDEO_INIT_PATH,
    PostInfo,
    PostMode,
    TikTokClient,
    parse_status,
)
from orchestrator.transport import HttpTransport

API = "https://api.test"


class FakeTokens:
    """An AccessTokenSource whose refresh hands out tok-2, tok-3, …"""

    def __init__(self) -> None:
        self.current = Secret("tok-1")
        self.refreshed_after: list[Secret] = []

    def access_token(self, open_id: str) -> Secret:
        return self.current

    def refresh_after_rejection(self, open_id: str, rejected: Secret) -> Secret:
        self.refreshed_after.append(rejected)
        self.current = Secret(f"tok-{len(self.refreshed_after) + 1}")
        return self.current


def ok(data: dict[str, object]) -> dict[str, object]:
    return {"data": data, "error": {"code": "ok", "message": "", "log_id": "log-ok"}}


def err(code: str, message: str = "nope", log_id: str = "log-123") -> dict[str, object]:
    return {"data": {}, "error": {"code": code, "message": message, "log_id": log_id}}


@pytest.fixture
def tokens() -> FakeTokens:
    return FakeTokens()


@pytest.fixture
def client(clock: ManualClock, tokens: FakeTokens) -> Iterator[TikTokClient]:
    transport = HttpTransport()
    yield TikTokClient(
        API,
        transport,
        tokens,
        pacer=SlidingWindowPacer(clock=clock),
        retry=Retrier(clock=clock, draw=lambda: 1.0),
        clock=clock,
    )
    transport.close()


POST_INFO = PostInfo(privacy_level="SELF_ONLY", title="Launch #day", is_aigc=True)


@responses.activate
def test_creator_info_is_parsed_and_sent_with_the_bearer_token(client: TikTokClient) -> None:
    """creator_info: POST with Bearer and JSON content type, answer parsed into CreatorInfo."""
    responses.post(
        API + CREATOR_INFO_PATH,
        json=ok(
            {
                "creator_username": "ann",
                "creator_nickname": "Ann",
                "creator_avatar_url": "https://a/x.jpg",
                "privacy_level_options": ["PUBLIC_TO_EVERYONE", "SELF_ONLY"],
                "comment_disabled": True,
                "duet_disabled": False,
                "stitch_disabled": False,
                "max_video_post_duration_sec": 300,
            }
        ),
    )
    info = client.creator_info("u1")
    assert info.username == "ann"
    assert info.privacy_level_options == ("PUBLIC_TO_EVERYONE", "SELF_ONLY")
    assert info.comment_disabled
    assert info.max_video_post_duration_sec == 300
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == "Bearer tok-1"
    assert sent.headers["Content-Type"] == "application/json; charset=UTF-8"


@responses.activate
def test_direct_file_init_sends_the_plan_and_returns_a_hidden_upload_url(
    client: TikTokClient,
) -> None:
    """A FILE_UPLOAD direct init sends post_info and the chunk plan; the upload URL is a Secret."""
    responses.post(
        API + VIDEO_INIT_PATH,
        json=ok({"publish_id": "v_pub_file~v2-1.1", "upload_url": "https://up/x?upload_token=S"}),
    )
    plan = plan_chunks(50_000_123, 10_000_000)
    result = client.init_direct_video("u1", plan, POST_INFO)
    assert result.publish_id == "v_pub_file~v2-1.1"
    assert result.upload_url is not None
    assert result.upload_url.reveal() == "https://up/x?upload_token=S"
    assert "upload_token" not in repr(result)
    body = json.loads(responses.calls[0].request.body)
    assert body["source_info"] == {
        "source": "FILE_UPLOAD",
        "video_size": 50_000_123,
        "chunk_size": 10_000_000,
        "total_chunk_count": 5,
    }
    assert body["post_info"]["privacy_level"] == "SELF_ONLY"
    assert body["post_info"]["brand_content_toggle"] is False
    assert body["post_info"]["brand_organic_toggle"] is False
    assert body["post_info"]["is_aigc"] is True


@responses.activate
def test_inbox_url_init_sends_source_info_only(client: TikTokClient) -> None:
    """The inbox endpoint gets source_info alone; a URL init has no upload URL."""
    responses.post(API + INBOX_INIT_PATH, json=ok({"publish_id": "v_inbox_url~v2.9"}))
    result = client.init_inbox_video("u1", "https://media.example.com/a.mp4")
    assert result.upload_url is None
    body = json.loads(responses.calls[0].request.body)
    assert body == {
        "source_info": {"source": "PULL_FROM_URL", "video_url": "https://media.example.com/a.mp4"}
    }


@responses.activate
def test_photo_init_body(client: TikTokClient) -> None:
    """A photo post sends media_type, post_mode, the images and the cover index."""
    responses.post(API + CONTENT_INIT_PATH, json=ok({"publish_id": "p_pub_url~v2.1"}))
    client.init_photo(
        "u1",
        PostMode.INBOX,
        ["https://m/1.jpg", "https://m/2.jpg"],
        1,
        PostInfo(title="t", description="d"),
    )
    body = json.loads(responses.calls[0].request.body)
    assert body["media_type"] == "PHOTO"
    assert body["post_mode"] == "MEDIA_UPLOAD"
    assert "privacy_level" not in body["post_info"]
    assert body["source_info"] == {
        "source": "PULL_FROM_URL",
        "photo_images": ["https://m/1.jpg", "https://m/2.jpg"],
        "photo_cover_index": 1,
    }


@pytest.mark.parametrize("spelled", ["²", "٣", "1e3", "-5", ""])
def test_status_byte_counts_that_are_no_plain_number_are_unknown(spelled: str) -> None:
    """uploaded_bytes spelled with other scripts' digits ("²" passes str.isdigit) or not as a
    plain count reads as unknown, never as an exception."""
    status = parse_status({"status": "PROCESSING_UPLOAD", "uploaded_bytes": spelled})
    assert status.uploaded_bytes is None
    assert parse_status({"uploaded_bytes": "1024"}).uploaded_bytes == 1024


@responses.activate
def test_status_reads_tiktoks_misspelt_post_id_field(client: TikTokClient) -> None:
    """publicaly_available_post_id (sic) becomes post_ids, as strings."""
    responses.post(
        API + STATUS_PATH,
        json=ok(
            {
                "status": "PUBLISH_COMPLETE",
                "publicaly_available_post_id": [7_300_000_000_000_000_001],
                "uploaded_bytes": 100,
            }
        ),
    )
    status = client.fetch_status("u1", "v_pub_file~v2-1.1")
    assert status.status == "PUBLISH_COMPLETE"
    assert status.post_ids == ("7300000000000000001",)
    assert status.uploaded_bytes == 100
    assert status.is_terminal
    assert json.loads(responses.calls[0].request.body) == {"publish_id": "v_pub_file~v2-1.1"}


@responses.activate
def test_error_code_with_http_200_is_a_failure_with_its_log_id(client: TikTokClient) -> None:
    """HTTP 200 carrying spam_risk_too_many_posts raises a deferring ApiError with the log_id."""
    responses.post(API + VIDEO_INIT_PATH, json=err("spam_risk_too_many_posts"), status=200)
    with pytest.raises(ApiError) as caught:
        client.init_direct_video("u1", "https://media.example.com/a.mp4", POST_INFO)
    error = caught.value
    assert (error.code, error.http_status, error.log_id) == (
        "spam_risk_too_many_posts",
        200,
        "log-123",
    )
    assert error.defer
    assert not error.retryable
    assert error.hint
    assert len(responses.calls) == 1


@responses.activate
def test_invalid_param_and_invalid_params_are_both_permanent(client: TikTokClient) -> None:
    """Either spelling is a permanent error, not retried."""
    for code in ("invalid_param", "invalid_params"):
        responses.post(API + VIDEO_INIT_PATH, json=err(code), status=400)
        with pytest.raises(ApiError) as caught:
            client.init_direct_video("u1", plan_chunks(1000), POST_INFO)
        assert not caught.value.retryable
    assert len(responses.calls) == 2


@responses.activate
def test_401_refreshes_once_and_retries_once(client: TikTokClient, tokens: FakeTokens) -> None:
    """access_token_invalid: the token is refreshed, and the retry carries the new one."""
    responses.post(API + STATUS_PATH, json=err("access_token_invalid"), status=401)
    responses.post(API + STATUS_PATH, json=ok({"status": "PROCESSING_UPLOAD"}))
    assert client.fetch_status("u1", "p").status == "PROCESSING_UPLOAD"
    assert tokens.refreshed_after == [Secret("tok-1")]
    assert responses.calls[1].request.headers["Authorization"] == "Bearer tok-2"


@responses.activate
def test_second_401_is_not_refreshed_again(client: TikTokClient, tokens: FakeTokens) -> None:
    """A token refused twice raises after one refresh and two requests."""
    responses.post(API + STATUS_PATH, json=err("access_token_invalid"), status=401)
    with pytest.raises(ApiError) as caught:
        client.fetch_status("u1", "p")
    assert caught.value.reauth
    assert len(tokens.refreshed_after) == 1
    assert len(responses.calls) == 2


@responses.activate
def test_5xx_is_retried_with_backoff(client: TikTokClient, clock: ManualClock) -> None:
    """internal_error twice, then ok: three requests and two backoffs."""
    responses.post(API + STATUS_PATH, json=err("internal_error"), status=500)
    responses.post(API + STATUS_PATH, json=err("internal_error"), status=503)
    responses.post(API + STATUS_PATH, json=ok({"status": "PROCESSING_UPLOAD"}))
    client.fetch_status("u1", "p")
    assert len(responses.calls) == 3
    assert clock.slept == [1.0, 2.0]


@responses.activate
def test_non_json_gateway_error_is_retryable(client: TikTokClient) -> None:
    """A 502 HTML page is an unknown server error: retried up to five attempts."""
    responses.post(API + STATUS_PATH, body="<html>bad gateway</html>", status=502)
    with pytest.raises(ApiError) as caught:
        client.fetch_status("u1", "p")
    assert caught.value.code == "http_502"
    assert len(responses.calls) == 5


@responses.activate
def test_429_waits_for_the_window_then_retries(client: TikTokClient, clock: ManualClock) -> None:
    """rate_limit_exceeded holds the user's init window for a minute, then the init goes."""
    responses.post(API + VIDEO_INIT_PATH, json=err("rate_limit_exceeded"), status=429)
    responses.post(API + VIDEO_INIT_PATH, json=ok({"publish_id": "v1", "upload_url": "https://u"}))
    client.init_direct_video("u1", plan_chunks(1000), POST_INFO)
    assert len(responses.calls) == 2
    assert sum(clock.slept) >= 60.0


@responses.activate
def test_lost_answer_to_a_url_init_is_not_resent(client: TikTokClient) -> None:
    """A reset after a PULL_FROM_URL init may have posted: raised at once, never resent."""
    responses.post(API + VIDEO_INIT_PATH, body=requests.exceptions.ConnectionError("reset"))
    with pytest.raises(ConnectError) as caught:
        client.init_direct_video("u1", "https://media.example.com/a.mp4", POST_INFO)
    assert caught.value.maybe_delivered
    assert len(responses.calls) == 1


@responses.activate
def test_lost_answer_to_a_file_init_is_resent(client: TikTokClient) -> None:
    """A FILE_UPLOAD init cannot publish without bytes, so a reset is retried."""
    responses.post(API + VIDEO_INIT_PATH, body=requests.exceptions.ConnectionError("reset"))
    responses.post(API + VIDEO_INIT_PATH, json=ok({"publish_id": "v1", "upload_url": "https://u"}))
    assert client.init_direct_video("u1", plan_chunks(1000), POST_INFO).publish_id == "v1"


@responses.activate
def test_ok_without_publish_id_is_an_error(client: TikTokClient) -> None:
    """An ok answer missing the publish_id is reported, not silently accepted."""
    responses.post(API + VIDEO_INIT_PATH, json=ok({}))
    with pytest.raises(ApiError, match="publish_id"):
        client.init_direct_video("u1", plan_chunks(1000), POST_INFO)


@responses.activate
def test_errors_never_show_the_token(client: TikTokClient) -> None:
    """No error message carries the access token."""
    responses.post(API + STATUS_PATH, json=err("invalid_publish_id", "bad id"), status=400)
    with pytest.raises(ApiError) as caught:
        client.fetch_status("u1", "p")
    assert "tok-1" not in str(caught.value)
    assert "tok-1" not in repr(caught.value.args)


def test_direct_post_without_privacy_level_is_refused_before_sending(
    client: TikTokClient,
) -> None:
    """A direct post needs a privacy level; the error says where to set it."""
    with pytest.raises(UploadError, match="privacy_level"):
        client.init_direct_video("u1", plan_chunks(1000), PostInfo())
