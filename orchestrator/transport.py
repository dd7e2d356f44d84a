"""HTTP for the orchestrator: the only module that imports ``requests`` (and ``urllib3``).

One keep-alive ``requests.Session`` per host (scheme + authority), explicit (connect, read)
timeouts on every request, and an optional whole-request deadline so a server that drips bytes
cannot hang a run. ``requests`` exceptions are translated here into :mod:`orchestrator.errors`
types; nothing above this module sees a ``requests`` type.

Uploading: a :class:`FileWindow` body streams one chunk straight from the open file, a socket
block at a time, so memory does not grow with the chunk or the file (a whole ``run`` process
peaks at 54 MiB for a 10 MB or a 4 GB video, benchmarks/README.md). Blocks are
:data:`SEND_BLOCK` bytes: urllib3 sends file bodies in 16 KiB blocks by default, which costs
throughput (see benchmarks/README.md).

The whole-request deadline (``Timeouts.total``) is enforced by a watchdog that shuts the
connection's socket down when the deadline passes: per-operation socket timeouts alone cannot
stop a server that reads or answers one byte at a time. One watchdog thread per transport serves
every request (a timer thread per request cost about 0.3 ms each, benchmarks/README.md).

Security: a plain ``http://`` URL to a host that is not this machine is refused before any
connection (:class:`PlainHttpError`: a bearer token, or an upload URL's own token, would cross
the network in clear), and a certificate that does not verify is a :class:`CertificateError`,
never a retried outage. Proxies (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``) and a private CA
(``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE``) come from :func:`orchestrator.config.load_network`;
the sessions keep ``trust_env`` off so requests never reads ``.netrc`` (whose credentials it
would attach), and loopback never goes through a proxy.

URLs can carry secrets (an ``upload_url`` authorises by its query string), so every URL that
could reach a message goes through :func:`redact_url`, and translated exceptions are raised
``from None``: the original ``requests`` exception text contains the full URL.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, Protocol
from urllib.parse import urlsplit, urlunsplit

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

from orchestrator import __version__
from orchestrator.config import NetworkSettings, is_loopback_host, load_network
from orchestrator.errors import (
    CertificateError,
    ConnectError,
    PlainHttpError,
    RequestTimeout,
    TransportError,
    UploadError,
)

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


class FileWindow:
    """Bytes ``[offset, offset + length)`` of an open binary file, as a request body.

    ``read(n)`` never returns more than ``n`` bytes nor anything past the window, so the body is
    streamed a block at a time and never held whole. ``len()`` is the window's length, which
    ``requests`` sends as Content-Length. ``on_read`` is told the size of each block handed to
    the connection (upload progress). A file that ends inside the window raises
    :class:`UploadError` rather than sending a short body.

    A window is read once; build a new one to send the same range again.
    """

    def __init__(
        self,
        file: BinaryIO,
        offset: int,
        length: int,
        *,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        if offset < 0 or length < 0:
            raise ValueError("a file window needs a non-negative offset and length")
        self._file = file
        self._offset = offset
        self._length = length
        self._sent = 0
        self._on_read = on_read
        self._positioned = False

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return f"FileWindow(offset={self._offset}, length={self._length}, sent={self._sent})"

    @property
    def sent(self) -> int:
        """Bytes handed to the connection so far."""
        return self._sent

    @property
    def exhausted(self) -> bool:
        """Whether every byte of the window has been handed to the connection."""
        return self._sent == self._length

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of what is left of the window (all of it for ``size < 0``)."""
        if not self._positioned:
            self._file.seek(self._offset)
            self._positioned = True
        left = self._length - self._sent
        wanted = left if size < 0 else min(size, left)
        if wanted <= 0:
            return b""
        block = self._file.read(wanted)
        # An unbuffered file may return short reads; keep reading until the block is whole.
        while len(block) < wanted:
            more = self._file.read(wanted - len(block))
            if not more:
                raise UploadError(
                    f"the file ended {self._offset + self._sent + len(block)} bytes in, inside "
                    f"a chunk that should reach byte {self._offset + self._length - 1}",
                    hint="the file changed while it was being uploaded; leave it alone",
                )
            block += more
        self._sent += len(block)
        if self._on_read is not None:
            self._on_read(len(block))
        return block


Body = bytes | FileWindow | IO[bytes] | None


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


class _Exchange:
    """One request in flight with a deadline: the connection it uses, and whether the
    watchdog fired. The watchdog runs in its own thread, so every field is behind the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: urllib3.connection.HTTPConnection | None = None
        self._expired = False
        self._finished = False

    @property
    def expired(self) -> bool:
        with self._lock:
            return self._expired

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._finished

    def attach(self, connection: urllib3.connection.HTTPConnection) -> None:
        with self._lock:
            self._connection = connection
            if self._expired:
                raise TimeoutError("request deadline passed")

    def expire(self) -> None:
        """The deadline passed: unblock whatever the request is waiting on."""
        with self._lock:
            if self._finished:
                return
            self._expired = True
            sock = self._connection.sock if self._connection is not None else None
            if sock is not None:
                # shutdown (not close) wakes a send/recv blocked in the requesting thread and
                # leaves closing the socket to urllib3, which discards the connection.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        with self._lock:
            self._finished = True
            self._connection = None


_WATCHDOG_COMPACT_AT = 1024
"""Finished exchanges stay in the watchdog's heap until their deadline comes up; past this many
entries the heap is rebuilt without them (amortised: the threshold doubles with the live ones)."""


class _Watchdog:
    """One thread that expires each watched exchange when its deadline passes.

    Deadlines wait in a heap ordered by time; the thread sleeps until the earliest one (or until
    an earlier one is added) and expires what is due. Expiring a finished exchange does nothing,
    so a request that ended in time is not touched. The thread starts with the first watched
    request and stops in :meth:`close`; a later request starts a new one.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._wakeup = threading.Condition()
        self._heap: list[tuple[float, int, _Exchange]] = []
        self._order = itertools.count()  # ties in deadline never compare exchanges
        self._compact_at = _WATCHDOG_COMPACT_AT
        self._thread: threading.Thread | None = None
        self._generation = 0

    def watch(self, exchange: _Exchange, seconds: float) -> None:
        """Expire ``exchange`` in ``seconds`` unless it has finished by then."""
        deadline = self._monotonic() + seconds
        with self._wakeup:
            if len(self._heap) >= self._compact_at:
                self._heap = [item for item in self._heap if not item[2].finished]
                heapq.heapify(self._heap)
                self._compact_at = max(_WATCHDOG_COMPACT_AT, 2 * len(self._heap))
            heapq.heappush(self._heap, (deadline, next(self._order), exchange))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run,
                    args=(self._generation,),
                    name="transport-watchdog",
                    daemon=True,
                )
                self._thread.start()
            elif self._heap[0][2] is exchange:
                self._wakeup.notify()  # the new deadline comes first: sleep less

    def close(self) -> None:
        """Stop the thread (deadlines still waiting no longer fire) and wait for it."""
        with self._wakeup:
            thread, self._thread = self._thread, None
            self._generation += 1
            self._heap.clear()
            self._wakeup.notify()
        if thread is not None:
            thread.join()

    def _run(self, generation: int) -> None:
        while True:
            with self._wakeup:
                due = self._due(generation)
            if due is None:
                return
            for exchange in due:
                exchange.expire()

    def _due(self, generation: int) -> list[_Exchange] | None:
        """Wait (lock held) until some exchange is due; ``None`` once closed."""
        while generation == self._generation:
            now = self._monotonic()
            due: list[_Exchange] = []
            while self._heap and (self._heap[0][0] <= now or self._heap[0][2].finished):
                _, _, exchange = heapq.heappop(self._heap)
                if not exchange.finished:
                    due.append(exchange)
            if due:
                return due
            # Bounded by the earliest deadline; without one, only watch() or close() wakes it.
            self._wakeup.wait(self._heap[0][0] - now if self._heap else None)
        return None


# The request in flight in this thread (if it has a deadline): how the connection classes below
# find the watchdog without passing it through requests and urllib3.
_CURRENT_EXCHANGE: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar(
    "orchestrator_transport_exchange", default=None
)


class _WatchedConnectionMixin:
    """Registers the connection with the current :class:`_Exchange` and stops sending once its
    deadline has passed."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        exchange = _CURRENT_EXCHANGE.get()
        if exchange is not None:
            assert isinstance(self, urllib3.connection.HTTPConnection)
            exchange.attach(self)
        super().request(*args, **kwargs)  # type: ignore[misc]

    def send(self, data: Any) -> None:
        exchange = _CURRENT_EXCHANGE.get()
        if exchange is not None and exchange.expired:
            raise TimeoutError("request deadline passed")
        super().send(data)  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


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
            "http": _WatchedHTTPConnectionPool,
            "https": _WatchedHTTPSConnectionPool,
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
        self._watchdog = _Watchdog()

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
        _refuse_plain_http(url, shown)
        exchange = _Exchange() if limits.total is not None else None
        if exchange is not None and limits.total is not None:
            self._watchdog.watch(exchange, limits.total)
        token = _CURRENT_EXCHANGE.set(exchange)
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
            raise _translate(exc, shown, url) from None
        except urllib3.exceptions.HTTPError as exc:
            # What requests does not wrap (a broken body read, for one).
            if exchange is not None and exchange.expired:
                raise RequestTimeout(
                    f"{shown}: no complete answer within {limits.total:g} s"
                ) from None
            raise ConnectError(f"{shown}: connection failed ({type(exc).__name__})") from None
        finally:
            _CURRENT_EXCHANGE.reset(token)
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


def _refuse_plain_http(url: str, shown: str) -> None:
    """PlainHttpError for ``http://`` to a host that is not loopback, before any connection."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "http" and not is_loopback_host(parts.hostname):
        raise PlainHttpError(
            f"{shown}: refusing to send over plain http:// to {parts.hostname}, which is not "
            "this machine (the request's token would cross the network in clear text)",
            hint="use https:// (ORCHESTRATOR_API_BASE, ORCHESTRATOR_AUTH_URL); http:// is "
            "allowed only to 127.0.0.1, ::1 or localhost. An upload URL like this one comes "
            "from the API server: check that ORCHESTRATOR_API_BASE points at TikTok",
        )


def _certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error inside a requests/urllib3 failure, if that is it."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
    return None


def _translate(exc: BaseException, shown: str, url: str) -> TransportError | CertificateError:
    """Our error for a ``requests``/socket failure; its text never includes the URL's query."""
    refused = _certificate_failure(exc)
    if refused is not None:
        host = urlsplit(url).hostname
        reason = refused.verify_message or refused.reason or "certificate verify failed"
        return CertificateError(
            f"{shown}: the TLS certificate of {host} does not verify ({reason}); "
            "nothing was sent to it",
            hint="if the server uses a private CA (or a proxy inspects TLS), set "
            "REQUESTS_CA_BUNDLE (or SSL_CERT_FILE) to the CA's PEM file; otherwise check "
            "ORCHESTRATOR_API_BASE and what sits between this machine and the server",
        )
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return RequestTimeout(f"{shown}: connect timed out", maybe_delivered=False)
    if isinstance(exc, requests.exceptions.Timeout | TimeoutError):
        return RequestTimeout(f"{shown}: timed out")
    if isinstance(exc, requests.exceptions.ConnectionError | OSError):
        return ConnectError(
            f"{shown}: connection failed ({_reason(exc)})", maybe_delivered=_maybe_delivered(exc)
        )
    return TransportError(f"{shown}: {type(exc).__name__}")


def _causes(exc: BaseException) -> Iterable[BaseException]:
    """``exc``, the errors it wraps (requests keeps urllib3's in ``args``), and their causes."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)


def _maybe_delivered(exc: BaseException) -> bool:
    """False only when the connection was never opened, so the server cannot have the request."""
    return not any(
        isinstance(cause, urllib3.exceptions.NewConnectionError | ConnectionRefusedError)
        for cause in _causes(exc)
    )


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
