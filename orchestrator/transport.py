"""HTTP for the orchestrator: the only module that imports ``requests``.

One keep-alive ``requests.Session`` per host (scheme + authority), explicit (connect, read)
timeouts on every request, and an optional whole-request deadline so a server that drips bytes
cannot hang a run. ``requests`` exceptions are translated here into :mod:`orchestrator.errors`
types; nothing above this module sees a ``requests`` type.

URLs can carry secrets (an ``upload_url`` authorises by its query string), so every URL that
could reach a message goes through :func:`redact_url`, and translated exceptions are raised
``from None``: the original ``requests`` exception text contains the full URL.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import requests
import requests.adapters

from orchestrator.errors import ConnectError, RequestTimeout, TransportError

USER_AGENT = "tiktok-orchestrator/0.1"
_RESPONSE_READ_BLOCK = 64 * 1024


@dataclass(frozen=True)
class Timeouts:
    """Timeouts in seconds: ``connect`` to open a connection, ``read`` between two socket reads,
    ``total`` (optional) for the whole exchange including the request body."""

    connect: float = 10.0
    read: float = 60.0
    total: float | None = None

    def __post_init__(self) -> None:
        if self.connect <= 0 or self.read <= 0 or (self.total is not None and self.total <= 0):
            raise ValueError("timeouts must be positive")


@dataclass(frozen=True)
class HttpResponse:
    """A complete HTTP answer: status, headers (lower-case names) and body bytes."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


Body = bytes | IO[bytes] | None


class Transport(Protocol):
    """What the API client and OAuth code need of HTTP (tests may pass a fake)."""

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        timeouts: Timeouts | None = None,
    ) -> HttpResponse: ...

    def close(self) -> None: ...


def redact_url(url: str) -> str:
    """The URL with its query string hidden (upload URLs authorise by their query)."""
    parts = urlsplit(url)
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _host_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class HttpTransport:
    """``requests``-backed transport: one session per host, shared by the threads of a run."""

    def __init__(
        self,
        *,
        timeouts: Timeouts | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        pool_size: int = 16,
    ) -> None:
        self._timeouts = timeouts or Timeouts()
        self._monotonic = monotonic
        self._pool_size = pool_size
        self._sessions: dict[str, requests.Session] = {}
        self._lock = threading.Lock()

    def _session(self, url: str) -> requests.Session:
        key = _host_key(url)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = requests.Session()
                # No retries here: retrying is retry.py's job, with its own policy and budget.
                adapter = requests.adapters.HTTPAdapter(
                    pool_connections=1, pool_maxsize=self._pool_size, max_retries=0
                )
                session.mount(key + "/", adapter)
                session.headers["User-Agent"] = USER_AGENT
                session.trust_env = False
                self._sessions[key] = session
            return session

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        timeouts: Timeouts | None = None,
    ) -> HttpResponse:
        limits = timeouts or self._timeouts
        started = self._monotonic()
        shown = f"{method} {redact_url(url)}"
        try:
            response = self._session(url).request(
                method,
                url,
                headers=dict(headers or {}),
                data=body,
                timeout=(limits.connect, limits.read),
                stream=True,
                allow_redirects=False,
            )
            try:
                content = b"".join(self._read_body(response, limits, started, shown))
            finally:
                response.close()
        except requests.exceptions.Timeout:
            raise RequestTimeout(f"{shown}: timed out") from None
        except requests.exceptions.ConnectionError as exc:
            raise ConnectError(f"{shown}: connection failed ({_reason(exc)})") from None
        except requests.exceptions.RequestException as exc:
            raise TransportError(f"{shown}: {type(exc).__name__}") from None
        return HttpResponse(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=content,
        )

    def _read_body(
        self, response: requests.Response, limits: Timeouts, started: float, shown: str
    ) -> Iterator[bytes]:
        for block in response.iter_content(_RESPONSE_READ_BLOCK):
            if limits.total is not None and self._monotonic() - started > limits.total:
                raise RequestTimeout(f"{shown}: no complete answer within {limits.total:g} s")
            yield block

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()


def _reason(exc: BaseException) -> str:
    """A short, URL-free reason for a connection failure."""
    text = str(exc).lower()
    for needle, reason in (
        ("reset", "connection reset"),
        ("refused", "connection refused"),
        ("aborted", "connection aborted"),
        ("remote end closed", "remote end closed the connection"),
        ("broken pipe", "broken pipe"),
        ("name or service", "host name not resolved"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__
