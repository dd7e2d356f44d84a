"""The sandbox tested by raw HTTP (requests and http.client, never our client): helpers and
fixtures (a plugin: see tests/support/__init__.py)."""

from __future__ import annotations

import hashlib
import http.client
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from orchestrator.clock import ManualClock
from orchestrator.sandbox import Sandbox, SandboxConfig

MIN_CHUNK = 5_242_880
BASE_URL_PATHS = {
    "authorize": "/v2/auth/authorize/",
    "token": "/v2/oauth/token/",
    "revoke": "/v2/oauth/revoke/",
    "user_info": "/v2/user/info/",
    "creator_info": "/v2/post/publish/creator_info/query/",
    "video_init": "/v2/post/publish/video/init/",
    "inbox_init": "/v2/post/publish/inbox/video/init/",
    "content_init": "/v2/post/publish/content/init/",
    "status": "/v2/post/publish/status/fetch/",
}

# A cheap repeating pattern: byte i of a video is i % 251 (a prime, so chunks differ).
_PERIOD = 251
_BLOCK = bytes(range(_PERIOD)) * (1024 * 1024 // _PERIOD + 2)


def pattern(offset: int, length: int, block: int = 1024 * 1024) -> Iterator[memoryview]:
    """The pattern bytes ``offset .. offset+length-1`` in blocks, without building them whole."""
    view = memoryview(_BLOCK)
    end = offset + length
    while offset < end:
        start = offset % _PERIOD
        take = min(block, end - offset)
        yield view[start : start + take]
        offset += take


def pattern_sha256(length: int) -> str:
    digest = hashlib.sha256()
    for piece in pattern(0, length):
        digest.update(piece)
    return digest.hexdigest()


@dataclass
class PutResult:
    """A chunk PUT's answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_range(self) -> str | None:
        return self.headers.get("content-range")


def put_chunk(
    url: str,
    first: int,
    last: int,
    total: int,
    *,
    content_type: str | None = "video/mp4",
    content_length: int | None = None,
    content_range: str | None = None,
    send_bytes: int | None = None,
    extra_headers: dict[str, str] | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> PutResult:
    """PUT bytes ``first..last`` of the pattern to ``url`` over raw http.client.

    ``content_length`` / ``content_range`` override the honest headers; ``send_bytes`` sends
    fewer (or more) body bytes than declared; ``connection`` reuses a keep-alive connection.
    """
    parts = urlsplit(url)
    own = connection is None
    conn = connection or http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        length = last - first + 1
        conn.putrequest("PUT", f"{parts.path}?{parts.query}", skip_accept_encoding=True)
        if content_type is not None:
            conn.putheader("Content-Type", content_type)
        conn.putheader("Content-Length", str(length if content_length is None else content_length))
        conn.putheader(
            "Content-Range",
            content_range if content_range is not None else f"bytes {first}-{last}/{total}",
        )
        for name, value in (extra_headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        for piece in pattern(first, length if send_bytes is None else send_bytes):
            conn.send(piece)
        response = conn.getresponse()
        body = response.read()
        return PutResult(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        if own:
            conn.close()


class Api:
    """Raw JSON/form calls against a sandbox, for one test."""

    def __init__(self, sandbox: Sandbox, session: requests.Session) -> None:
        self.sandbox = sandbox
        self.http = session

    def url(self, endpoint: str) -> str:
        return self.sandbox.base_url + BASE_URL_PATHS[endpoint]

    def token(self, open_id: str = "sandbox-user-1", scopes: Any = None) -> str:
        return str(self.sandbox.grant_tokens(open_id, scopes)["access_token"])

    def post(self, endpoint: str, token: str | None, body: Any = None) -> requests.Response:
        headers = {"Content-Type": "application/json; charset=UTF-8"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.post(
            self.url(endpoint),
            headers=headers,
            json=body if body is not None else {},
            timeout=30,
        )

    def form(self, endpoint: str, fields: dict[str, str]) -> requests.Response:
        return self.http.post(self.url(endpoint), data=fields, timeout=30)

    def creator_info(self, token: str) -> requests.Response:
        return self.post("creator_info", token)

    def init_video(
        self,
        token: str,
        video_size: int,
        chunk_size: int,
        count: int,
        *,
        privacy: str = "SELF_ONLY",
        endpoint: str = "video_init",
        post_info: dict[str, Any] | None = None,
    ) -> requests.Response:
        source = {
            "source": "FILE_UPLOAD",
            "video_size": video_size,
            "chunk_size": chunk_size,
            "total_chunk_count": count,
        }
        body: dict[str, Any] = {"source_info": source}
        if endpoint == "video_init":
            body["post_info"] = post_info or {"title": "sandbox test", "privacy_level": privacy}
        return self.post(endpoint, token, body)

    def status(self, token: str, publish_id: str) -> requests.Response:
        return self.post("status", token, {"publish_id": publish_id})

    def upload_whole(self, url: str, video_size: int, chunk_size: int, count: int) -> list[int]:
        """PUT every chunk of a plan in order; the status codes."""
        codes = []
        for index in range(count):
            first = index * chunk_size
            last = video_size - 1 if index == count - 1 else first + chunk_size - 1
            codes.append(put_chunk(url, first, last, video_size).status)
        return codes


def error_code(response: requests.Response) -> str:
    return str(response.json()["error"]["code"])


@contextmanager
def running_api(config: SandboxConfig, clock: ManualClock) -> Iterator[Api]:
    """A sandbox with a non-default config, and a session to call it (for one test)."""
    with Sandbox(config, clock=clock) as sb, requests.Session() as session:
        session.trust_env = False
        yield Api(sb, session)
        assert sb.server_errors() == []


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def config() -> SandboxConfig:
    """The sandbox's configuration; tests override this fixture to change it."""
    return SandboxConfig()


@pytest.fixture
def sandbox(config: SandboxConfig, clock: ManualClock) -> Iterator[Sandbox]:
    with Sandbox(config, clock=clock) as running:
        yield running
        assert running.server_errors() == []


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[Api]:
    session = requests.Session()
    session.trust_env = False
    try:
        yield Api(sandbox, session)
    finally:
        session.close()
