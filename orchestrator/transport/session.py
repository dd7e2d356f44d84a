"""The HTTP session factory and :class:`HttpTransport`: one keep-alive ``requests.Session``
per host, the environment's proxies and CA bundle, chunk bodies sent in :data:`SEND_BLOCK`
blocks, and the whole answer read under the deadline.

Must not: let ``requests`` read the environment or ``.netrc`` (``trust_env`` is off; proxies
and CAs come from :func:`orchestrator.config.load_network`), or log a URL's query string.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3.exceptions

from orchestrator import __version__
from orchestrator.config import NetworkSettings, load_network
from orchestrator.errors import ConnectError, RequestTimeout
from orchestrator.transport.deadline import (
    CURRENT_EXCHANGE,
    Exchange,
    Watchdog,
    WatchedHTTPConnectionPool,
    WatchedHTTPSConnectionPool,
)
from orchestrator.transport.interface import Body, HttpResponse, Timeouts, redact_url
from orchestrator.transport.translate import refuse_plain_http, translate

USER_AGENT = f"tiktok-orchestrator/{__version__}"
_RESPONSE_READ_BLOCK = 64 * 1024

SEND_BLOCK = 1024 * 1024
"""Bytes read from a file body and handed to the socket at a time. urllib3's default, 16 KiB,
is about 19 % slower where the client is the bottleneck (benchmarks/README.md)."""


POOL_SIZE = 64
"""Idle keep-alive connections kept per host: as many as ``run --jobs`` allows threads. Whenever
more connections than this are idle at once (users waiting for their rate window, say), urllib3
closes the extra ones, and their next requests each open a new connection (a TLS handshake
each, against TikTok). Connections are opened on demand only, so a large pool costs nothing
when few threads run."""


_QUERY = re.compile(r"\?[^\s\"']*")

# urllib3 logs request lines (path and query included) at DEBUG: an upload URL's token would
# reach any log configured that verbosely. These are the loggers that print URLs.
_URL_LOGGERS = ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry")


class _RedactQueries(logging.Filter):
    """Rewrites a urllib3 log record with every URL query string hidden."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "?" in text:
            record.msg, record.args = _QUERY.sub("?<redacted>", text), ()
        return True


def _guard_library_logs() -> None:
    """Attach the redacting filter to urllib3's URL-printing loggers, once."""
    for name in _URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactQueries) for f in logger.filters):
            logger.addFilter(_RedactQueries())


def _host_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _UploadAdapter(requests.adapters.HTTPAdapter):
    """An adapter whose connections send bodies in ``send_block`` blocks and honour the
    watchdog; no retries (retrying is retry.py's job, with its own policy and budget)."""

    def __init__(self, *, send_block: int, pool_maxsize: int) -> None:
        # Set before super().__init__, which calls init_poolmanager.
        self._send_block = send_block
        super().__init__(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        pool_kwargs["blocksize"] = self._send_block
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        # A fresh dict: urllib3 shares the module-level default between managers.
        self.poolmanager.pool_classes_by_scheme = {
            "http": WatchedHTTPConnectionPool,
            "https": WatchedHTTPSConnectionPool,
        }


class HttpTransport:
    """``requests``-backed transport: one session per host, shared by the threads of a run."""

    def __init__(
        self,
        *,
        timeouts: Timeouts | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        pool_size: int = POOL_SIZE,
        send_block: int = SEND_BLOCK,
        network: NetworkSettings | None = None,
    ) -> None:
        """``network`` defaults to the environment's proxies and CA bundle (ConfigError if
        one of them is invalid)."""
        if send_block < 1:
            raise ValueError("send_block must be positive")
        _guard_library_logs()
        self._network = network if network is not None else load_network()
        self._timeouts = timeouts or Timeouts()
        self._monotonic = monotonic
        self._pool_size = pool_size
        self._send_block = send_block
        self._sessions: dict[str, requests.Session] = {}
        self._lock = threading.Lock()
        self._watchdog = Watchdog()

    def _session(self, url: str) -> requests.Session:
        key = _host_key(url)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = requests.Session()
                adapter = _UploadAdapter(send_block=self._send_block, pool_maxsize=self._pool_size)
                session.mount(key + "/", adapter)
                session.headers["User-Agent"] = USER_AGENT
                # Off, so requests reads neither .netrc nor the environment itself; what the
                # environment says about proxies and CAs comes from config.load_network.
                session.trust_env = False
                parts = urlsplit(url)
                proxy = self._network.proxy_for(parts.scheme, parts.hostname, parts.port)
                if proxy is not None:
                    session.proxies = {parts.scheme: proxy.reveal()}
                if self._network.ca_bundle is not None:
                    session.verify = str(self._network.ca_bundle)
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
        """Send one request and read the whole answer.

        A :class:`FileWindow` body is streamed from its file (a chunk PUT). With
        ``timeouts.total`` set, the exchange is abandoned when it passes, whatever the server
        does; that raises :class:`RequestTimeout`.
        """
        limits = timeouts or self._timeouts
        started = self._monotonic()
        shown = f"{method} {redact_url(url)}"
        refuse_plain_http(url, shown)
        exchange = Exchange() if limits.total is not None else None
        if exchange is not None and limits.total is not None:
            self._watchdog.watch(exchange, limits.total)
        token = CURRENT_EXCHANGE.set(exchange)
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
        except (requests.exceptions.RequestException, OSError) as exc:
            if exchange is not None and exchange.expired:
                raise RequestTimeout(
                    f"{shown}: no complete answer within {limits.total:g} s"
                ) from None
            raise translate(exc, shown, url) from None
        except urllib3.exceptions.HTTPError as exc:
            # What requests does not wrap (a broken body read, for one).
            if exchange is not None and exchange.expired:
                raise RequestTimeout(
                    f"{shown}: no complete answer within {limits.total:g} s"
                ) from None
            raise ConnectError(f"{shown}: connection failed ({type(exc).__name__})") from None
        finally:
            CURRENT_EXCHANGE.reset(token)
            if exchange is not None:
                exchange.finish()
        if exchange is not None and exchange.expired:
            # The watchdog cut the connection: what was read may be a fragment that parsed as
            # an answer (a status line whose headers ended early reads as a 200 with no body).
            raise RequestTimeout(f"{shown}: no complete answer within {limits.total:g} s")
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
        self._watchdog.close()
