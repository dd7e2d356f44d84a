"""An in-memory TikTok behind the Transport protocol, for deterministic unit tests of the engine.

It follows tiktok-api.md §4-§7 closely enough to check the engine's side of the protocol (chunk
order and headers, 416 with the server's progress, completion, status progression) and can be
told to misbehave per request. The real simulator (`orchestrator.sandbox`) is tested over
loopback in tests/functional; this fake exists so each engine rule has a fast, exact test.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.clock import ManualClock
from orchestrator.errors import ConnectError, RequestTimeout
from orchestrator.transport import Body, FileWindow, HttpResponse, Timeouts

API = "https://api.fake"
UPLOAD = "https://upload.fake/upload/"

# A fault for one request: an HTTP status to answer without processing, or one of
#   "lost"      process the request fully, then lose the answer (ConnectError)
#   "reset"     read half the body, then drop the connection (nothing kept)
#   "timeout"   read the whole body, keep nothing, raise RequestTimeout
Fault = int | str


@dataclass
class Publish:
    publish_id: str
    open_id: str
    endpoint: str
    body: dict[str, Any]
    video_size: int = 0
    chunk_size: int = 0
    chunk_count: int = 0
    received: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    complete: bool = False
    url_alive: bool = True
    polls: int = 0
    status: str = "PROCESSING_UPLOAD"
    fail_reason: str | None = None

    @property
    def sha256(self) -> str | None:
        return self.digest.hexdigest() if self.complete else None


class FakeTikTok:
    """A Transport that plays TikTok's API and upload server."""

    def __init__(self, clock: ManualClock, *, processing_polls: int = 1) -> None:
        self.clock = clock
        self.processing_polls = processing_polls
        self.publishes: list[Publish] = []
        self.violations: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.api_faults: dict[str, list[Fault | Mapping[str, Any]]] = {}
        self.put_faults: dict[int, Fault] = {}
        self.puts = 0
        self.fail_reason: str | None = None
        self.report_uploaded_bytes = True
        self.on_request: Callable[[str, str], None] | None = None
        self._ids = itertools.count(1)

    # -- scripting --

    def fault_api(self, endpoint: str, *faults: Fault | Mapping[str, Any]) -> None:
        """Answer the next calls to ``endpoint`` with these (an int status with an error code,
        "reset", or a full JSON envelope)."""
        self.api_faults.setdefault(endpoint, []).extend(faults)

    def completed(self) -> list[Publish]:
        return [p for p in self.publishes if p.complete]

    # -- Transport --

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        timeouts: Timeouts | None = None,
    ) -> HttpResponse:
        self.requests.append((method, url.split("?")[0]))
        if self.on_request is not None:
            self.on_request(method, url)
        if url.startswith(UPLOAD):
            assert isinstance(body, FileWindow)
            return self._put(url, dict(headers or {}), body)
        assert isinstance(body, bytes)
        return self._api(url[len(API) :], dict(headers or {}), json.loads(body or b"{}"))

    def close(self) -> None:
        return None

    # -- API --

    def _api(self, path: str, headers: dict[str, str], payload: dict[str, Any]) -> HttpResponse:
        endpoint = {
            "/v2/post/publish/video/init/": "video_init",
            "/v2/post/publish/inbox/video/init/": "inbox_init",
            "/v2/post/publish/content/init/": "content_init",
            "/v2/post/publish/status/fetch/": "status",
            "/v2/post/publish/creator_info/query/": "creator_info",
        }[path]
        if not headers.get("Authorization", "").startswith("Bearer "):
            self.violations.append(f"{endpoint} without a bearer token")
        queued = self.api_faults.get(endpoint)
        if queued:
            fault = queued.pop(0)
            if fault == "reset":
                raise ConnectError("connection reset (fake)")
            if fault == "lost":
                answer = getattr(self, f"_{endpoint}")(headers, payload)
                raise ConnectError("connection reset after the request (fake)")
            if isinstance(fault, int):
                code = {401: "access_token_invalid", 429: "rate_limit_exceeded"}.get(
                    fault, "internal_error"
                )
                return _envelope(fault, {}, code)
            if isinstance(fault, Mapping):
                return HttpResponse(200, {}, json.dumps(fault).encode())
        answer = getattr(self, f"_{endpoint}")(headers, payload)
        return answer  # type: ignore[no-any-return]

    def _open_id(self, headers: dict[str, str]) -> str:
        return headers["Authorization"].removeprefix("Bearer ").split(":")[0]

    def _init(
        self, endpoint: str, headers: dict[str, str], payload: dict[str, Any]
    ) -> HttpResponse:
        source = payload["source_info"]
        number = next(self._ids)
        publish = Publish(f"v_{endpoint}~{number}", self._open_id(headers), endpoint, payload)
        self.publishes.append(publish)
        if source["source"] == "PULL_FROM_URL":
            publish.complete = True
            publish.status = "PROCESSING_DOWNLOAD"
            return _envelope(200, {"publish_id": publish.publish_id})
        publish.video_size = source["video_size"]
        publish.chunk_size = source["chunk_size"]
        publish.chunk_count = source["total_chunk_count"]
        upload_url = f"{UPLOAD}?upload_id={number}&upload_token=secret-{number}"
        return _envelope(200, {"publish_id": publish.publish_id, "upload_url": upload_url})

    def _video_init(self, headers: dict[str, str], payload: dict[str, Any]) -> HttpResponse:
        return self._init("video_init", headers, payload)

    def _inbox_init(self, headers: dict[str, str], payload: dict[str, Any]) -> HttpResponse:
        return self._init("inbox_init", headers, payload)

    def _content_init(self, headers: dict[str, str], payload: dict[str, Any]) -> HttpResponse:
        number = next(self._ids)
        publish = Publish(f"p_{number}", self._open_id(headers), "content_init", payload)
        publish.complete = True
        publish.status = "PROCESSING_DOWNLOAD"
        self.publishes.append(publish)
        return _envelope(200, {"publish_id": publish.publish_id})

    def _status(self, headers: dict[str, str], payload: dict[str, Any]) -> HttpResponse:
        publish = next(p for p in self.publishes if p.publish_id == payload["publish_id"])
        if publish.complete:
            publish.polls += 1
            if publish.polls > self.processing_polls and publish.status.startswith("PROCESSING"):
                if self.fail_reason is not None:
                    publish.status, publish.fail_reason = "FAILED", self.fail_reason
                elif publish.endpoint == "inbox_init" or publish.body.get("post_mode") == (
                    "MEDIA_UPLOAD"
                ):
                    publish.status = "SEND_TO_USER_INBOX"
                else:
                    publish.status = "PUBLISH_COMPLETE"
        data: dict[str, Any] = {"status": publish.status}
        if publish.fail_reason:
            data["fail_reason"] = publish.fail_reason
        if self.report_uploaded_bytes:
            data["uploaded_bytes"] = publish.received
        if publish.status == "PUBLISH_COMPLETE":
            data["publicaly_available_post_id"] = [7_000_000_000 + len(self.publishes)]
        return _envelope(200, data)

    def _creator_info(self, headers: dict[str, str], payload: dict[str, Any]) -> HttpResponse:
        return _envelope(200, {"privacy_level_options": ["SELF_ONLY"]})

    # -- upload --

    def _put(self, url: str, headers: dict[str, str], window: FileWindow) -> HttpResponse:
        self.puts += 1
        fault = self.put_faults.get(self.puts)
        number = int(re.search(r"upload_id=(\d+)", url).group(1))  # type: ignore[union-attr]
        publish = next(p for p in self.publishes if p.publish_id.endswith(f"~{number}"))
        if isinstance(fault, int):
            return HttpResponse(fault, {}, b"")
        if fault == "reset":
            window.read(len(window) // 2)
            raise ConnectError("connection reset mid-body (fake)")
        if fault == "timeout":
            _drain(window)
            raise RequestTimeout("timed out (fake)")
        if "authorization" in {k.lower() for k in headers}:
            self.violations.append("upload PUT carried an Authorization header")
        if not publish.url_alive:
            _drain(window)
            return HttpResponse(403, {}, b"")
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", headers.get("Content-Range", ""))
        if match is None:
            self.violations.append("PUT without a valid Content-Range")
            return HttpResponse(400, {}, b"")
        first, last, total = (int(g) for g in match.groups())
        if total != publish.video_size or publish.complete or first != publish.received:
            _drain(window)
            progress = {}
            if publish.received:
                progress = {"content-range": f"bytes 0-{publish.received - 1}/{publish.video_size}"}
            return HttpResponse(416, progress, b"")
        index = first // publish.chunk_size
        expected_last = (
            publish.video_size - 1
            if index == publish.chunk_count - 1
            else first + publish.chunk_size - 1
        )
        if last != expected_last or int(headers.get("Content-Length", -1)) != last - first + 1:
            self.violations.append(f"chunk {index} has range {first}-{last}")
            return HttpResponse(400, {}, b"")
        if headers.get("Content-Type") not in ("video/mp4", "video/quicktime", "video/webm"):
            self.violations.append("chunk without a video Content-Type")
        data = _drain(window)
        if len(data) != last - first + 1:
            self.violations.append("chunk body shorter than its Content-Length")
        publish.digest.update(data)
        publish.received = last + 1
        done = publish.received == publish.video_size
        if done:
            publish.complete = True
        if fault == "lost":
            raise ConnectError("connection reset after the chunk was kept (fake)")
        return HttpResponse(201 if done else 206, {}, b"")


def _drain(window: FileWindow) -> bytes:
    parts = []
    while block := window.read(1 << 20):
        parts.append(block)
    return b"".join(parts)


def _envelope(status: int, data: dict[str, Any], code: str = "ok") -> HttpResponse:
    payload = {"data": data, "error": {"code": code, "message": "", "log_id": f"log-{code}"}}
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(payload).encode())
