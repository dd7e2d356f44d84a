"""HTTP for the sandbox: a threaded HTTP/1.1 keep-alive server on loopback, and the fault engine.

Theory of operation. Each connection gets a thread. A request is routed by path to one of the
endpoint names of :mod:`orchestrator.sandbox.faults`, counted (its 1-based call number), and
checked against the fault schedule. Ordinary requests have their (small) body read whole and
handed to the endpoint code as a :class:`Request`; chunk PUTs are streamed: the headers go to
:meth:`UploadEndpoint.begin`, the body is read in 1 MiB blocks into a reusable buffer and fed
to a running SHA-256, and only then committed. Memory stays bounded whatever the upload size.

Faults act on the socket: ``reset`` closes it with SO_LINGER 0 (the peer sees a connection
reset), ``lost`` does the same after the request was processed, ``drip`` writes the answer one
byte at a time, ``hold`` keeps the answer until the test opens the fault's gate. A refusal of a
request whose body was not read drains the body first, so a keep-alive client sees the answer
(a 416 with progress) instead of a broken pipe.

Must not: decide TikTok's rules (the endpoint modules do), or log a query string (upload URLs
carry their token there).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from orchestrator.sandbox.faults import Fault, FaultSchedule
from orchestrator.sandbox.messages import (
    Reply,
    Request,
    html_page,
    oauth_error,
    posting_error,
    upload_reply,
)
from orchestrator.sandbox.oauth import OAuthEndpoints
from orchestrator.sandbox.pages import error_page
from orchestrator.sandbox.posting import PostingEndpoints
from orchestrator.sandbox.state import SandboxState
from orchestrator.sandbox.upload import UploadEndpoint

logger = logging.getLogger(__name__)

READ_BLOCK = 1024 * 1024  # body reads: large blocks keep loopback throughput high
MAX_SMALL_BODY = 1024 * 1024  # JSON and form bodies
DRAIN_LIMIT = 256 * 1024 * 1024  # refused bodies up to this are read and dropped (keep-alive)
IDLE_TIMEOUT = 120.0  # seconds a connection may sit idle or stall mid-body

# path → (endpoint name, allowed methods). Paths end with a slash, as TikTok's do.
ROUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "/v2/auth/authorize/": ("authorize", ("GET", "POST")),
    "/v2/oauth/token/": ("token", ("POST",)),
    "/v2/oauth/revoke/": ("revoke", ("POST",)),
    "/v2/user/info/": ("user_info", ("GET",)),
    "/v2/post/publish/creator_info/query/": ("creator_info", ("POST",)),
    "/v2/post/publish/video/init/": ("video_init", ("POST",)),
    "/v2/post/publish/inbox/video/init/": ("inbox_init", ("POST",)),
    "/v2/post/publish/content/init/": ("content_init", ("POST",)),
    "/v2/post/publish/status/fetch/": ("status", ("POST",)),
    "/upload/": ("upload", ("PUT",)),
}
_OAUTH_ENDPOINTS = ("token", "revoke")


class SandboxApp:
    """The endpoints behind the server, wired to one state and one fault schedule."""

    def __init__(self, state: SandboxState, faults: FaultSchedule) -> None:
        self.state = state
        self.faults = faults
        self.oauth = OAuthEndpoints(state)
        self.posting = PostingEndpoints(state)
        self.upload = UploadEndpoint(state)
        self._handlers: dict[tuple[str, str], Callable[[Request], Reply]] = {
            ("authorize", "GET"): self.oauth.authorize_page,
            ("authorize", "POST"): self.oauth.authorize_decision,
            ("token", "POST"): self.oauth.token,
            ("revoke", "POST"): self.oauth.revoke,
            ("user_info", "GET"): self.posting.user_info,
            ("creator_info", "POST"): self.posting.creator_info,
            ("video_init", "POST"): self.posting.video_init,
            ("inbox_init", "POST"): self.posting.inbox_init,
            ("content_init", "POST"): self.posting.content_init,
            ("status", "POST"): self.posting.status,
        }

    def handle(self, endpoint: str, request: Request) -> Reply:
        """Answer a request whose body was read whole (every endpoint but upload)."""
        return self._handlers[(endpoint, request.method)](request)

    def fault_reply(self, endpoint: str, fault: Fault) -> Reply:
        """A scheduled ``status`` fault in the endpoint's own envelope."""
        log_id = self.state.log_id()
        if endpoint in _OAUTH_ENDPOINTS:
            code = fault.error_code or (
                "temporarily_unavailable" if fault.status == 503 else "server_error"
            )
            return oauth_error(code, fault.text(), log_id, status=fault.status)
        if endpoint == "authorize":
            return html_page(fault.status, error_page("Something went wrong", fault.text()))
        if endpoint == "upload":
            reply = upload_reply(fault.status, 0, 0)
            return Reply(fault.status, reply.body, reply.content_type)
        return posting_error(fault.status, fault.code(), fault.text(), log_id)


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its connections, so it can stop promptly."""

    daemon_threads = False  # server_close() joins handler threads: nothing outlives a test
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops bursts of parallel connects into SYN retries

    def __init__(self, address: tuple[str, int], app: SandboxApp) -> None:
        self.app = app
        self.stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, SandboxRequestHandler)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            if self.stopping.is_set():
                _shutdown_quietly(connection)
            else:
                self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Wake every handler thread: their sockets read EOF and writes fail."""
        with self._connections_lock:
            for connection in self._connections:
                _shutdown_quietly(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients vanish mid-request all the time in fault tests; that is not worth a traceback.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


def _shutdown_quietly(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class _ConnectionGone(Exception):
    """The client closed or reset the connection, or stalled past the idle timeout."""


class SandboxRequestHandler(BaseHTTPRequestHandler):
    """One connection: parse each request, apply faults, answer."""

    protocol_version = "HTTP/1.1"
    server_version = "TikTokSandbox/1.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    server: SandboxHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle plus the client's
        # delayed ACK adds ~40 ms to every answer.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer: bytearray | None = None
        self._answered = False
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        # The default logs the request line, query string (an upload token) included.
        return

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    # -- dispatch -------------------------------------------------------------------------

    @property
    def _state(self) -> SandboxState:
        return self.server.app.state

    def _dispatch(self) -> None:
        self._answered = False
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            connection=f"{self.client_address[0]}:{self.client_address[1]}",
        )
        try:
            self._serve(request)
        except _ConnectionGone:
            self.close_connection = True
        except Exception as exc:
            logger.exception("sandbox error answering %s %s", request.method, request.path)
            self._state.server_error(f"{request.method} {request.path}: {exc!r}")
            self.close_connection = True
            if not self._answered:
                reply = posting_error(500, "internal_error", "Sandbox error.", self._state.log_id())
                with contextlib.suppress(OSError):
                    self._send(reply.with_close())

    def _serve(self, request: Request) -> None:
        app = self.server.app
        route = ROUTES.get(request.path)
        if route is None:
            if request.path + "/" in ROUTES:
                self._state.violation(
                    ROUTES[request.path + "/"][0], f"path {request.path} lacks its trailing slash"
                )
            self._send(
                self._drained(
                    posting_error(404, "not_found", "Not found.", self._state.log_id()), request
                )
            )
            return
        endpoint, methods = route
        if request.method not in methods:
            refusal = posting_error(
                405, "method_not_allowed", "Method not allowed.", self._state.log_id()
            )
            self._send(self._drained(refusal, request))
            return
        call = self._state.count_call(endpoint)
        fault = app.faults.pick(endpoint, call)
        kind = fault.kind if fault is not None else None
        if kind is not None:
            logger.info("fault %r on %s call %d", kind, endpoint, call)
        if kind == "reset":
            self._reset()
            return
        if kind == "reset_mid_body":
            assert fault is not None
            self._discard(min(fault.after_bytes, self._content_length(request) or 0))
            self._reset()
            return
        if kind == "status":
            assert fault is not None
            self._send(self._drained(app.fault_reply(endpoint, fault), request))
            return
        if kind == "expire":
            app.upload.expire(request)
        reply = self._upload(request) if endpoint == "upload" else self._small(endpoint, request)
        logger.info("%s %s -> %d", request.method, request.path, reply.status)
        if kind == "lost":
            self._reset()
            return
        if kind == "delay":
            assert fault is not None
            self.server.stopping.wait(fault.seconds)
        if kind == "drip":
            assert fault is not None
            self._drip(reply, fault.seconds)
            return
        if kind == "hold":
            assert fault is not None
            assert fault.gate is not None
            if not app.faults.hold(fault.gate, fault.seconds):
                self._state.server_error(
                    f"{endpoint} call {call}: held {fault.seconds:g} s and gate "
                    f"{fault.gate!r} never opened (open it with Sandbox.release)"
                )
        self._send(reply)

    # -- bodies ---------------------------------------------------------------------------

    def _content_length(self, request: Request) -> int | None:
        """The declared body length; None when absent or unusable."""
        text = request.header("content-length")
        if text is None or not text.strip().isdigit():
            return None
        return int(text)

    def _block(self) -> memoryview:
        if self._buffer is None:
            self._buffer = bytearray(READ_BLOCK)
        return memoryview(self._buffer)

    def _read_into(self, view: memoryview) -> int:
        try:
            count = self.rfile.readinto(view)
        except (OSError, ValueError) as exc:  # reset, timeout, or closed by a stop
            raise _ConnectionGone from exc
        return count or 0

    def _stream(self, length: int, sink: Callable[[memoryview], object]) -> int:
        """Feed ``length`` body bytes to ``sink`` in blocks; the count actually received."""
        block = self._block()
        received = 0
        while received < length:
            count = self._read_into(block[: min(READ_BLOCK, length - received)])
            if count == 0:
                break
            sink(block[:count])
            received += count
        return received

    def _discard(self, length: int) -> None:
        self._stream(length, lambda _data: None)

    def _drained(self, reply: Reply, request: Request) -> Reply:
        """Before answering a request whose body is unread: drop the body, or close after."""
        length = self._content_length(request)
        chunked = "chunked" in (request.header("transfer-encoding") or "").lower()
        if chunked or (length is None and request.header("content-length") is not None):
            reply = reply.with_close()
        elif length:
            if length > DRAIN_LIMIT:
                reply = reply.with_close()
            elif self._stream(length, lambda _data: None) < length:
                raise _ConnectionGone
        return reply

    def _small(self, endpoint: str, request: Request) -> Reply:
        """Read a JSON or form body whole and let the endpoint answer."""
        if "chunked" in (request.header("transfer-encoding") or "").lower():
            return posting_error(
                411, "invalid_params", "Content-Length is required.", self._state.log_id()
            ).with_close()
        length = self._content_length(request) or 0
        if length > MAX_SMALL_BODY:
            return posting_error(
                413, "invalid_params", "Request body too large.", self._state.log_id()
            ).with_close()
        body = b""
        if length:
            try:
                body = self.rfile.read(length)
            except (OSError, ValueError) as exc:
                raise _ConnectionGone from exc
            if len(body) < length:
                raise _ConnectionGone
        full = Request(
            request.method, request.path, request.query, request.headers, body, request.connection
        )
        return self.server.app.handle(endpoint, full)

    def _upload(self, request: Request) -> Reply:
        """Stream one chunk PUT into the publish's running hash."""
        upload = self.server.app.upload
        ticket = upload.begin(request)
        if isinstance(ticket, Reply):
            return self._drained(ticket, request)
        hasher = ticket.hasher
        try:
            received = self._stream(ticket.length, hasher.update)
        except _ConnectionGone:
            upload.abandon(ticket)
            raise
        if received < ticket.length:
            upload.abandon(ticket)
            raise _ConnectionGone
        return upload.finish(ticket, hasher)

    # -- answers --------------------------------------------------------------------------

    def _head(self, reply: Reply) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        if reply.content_type is not None:
            headers.append(("Content-Type", reply.content_type))
        headers.extend(reply.headers)
        headers.append(("Content-Length", str(len(reply.body))))
        if reply.close:
            headers.append(("Connection", "close"))
        return headers

    def _send(self, reply: Reply) -> None:
        self._answered = True
        try:
            self.send_response(reply.status)
            for name, value in self._head(reply):
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError as exc:
            raise _ConnectionGone from exc

    def _drip(self, reply: Reply, gap: float) -> None:
        """Write the whole answer one byte at a time, ``gap`` seconds apart, then close."""
        self._answered = True
        self.close_connection = True
        phrase = self.responses.get(reply.status, ("",))[0]
        lines = [f"HTTP/1.1 {reply.status} {phrase}"]
        lines += [f"{name}: {value}" for name, value in self._head(reply)]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body
        for index in range(len(raw)):
            if self.server.stopping.wait(gap):
                return
            try:
                self.wfile.write(raw[index : index + 1])
            except OSError:
                return  # the client gave up: that is what a drip is for

    def _reset(self) -> None:
        """Close the connection with an RST and no answer."""
        self._answered = True
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # rfile/wfile hold references that would keep the socket open after close(); detaching
        # closes the descriptor now (linger 0 turns the close into an RST) and leaves the
        # wrappers harmlessly pointing at a closed socket.
        with contextlib.suppress(OSError):
            os.close(self.connection.detach())
