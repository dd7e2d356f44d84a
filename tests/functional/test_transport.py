"""The HTTP transport over real loopback sockets: streaming bodies, deadlines, error translation."""

from __future__ import annotations

import hashlib
import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.errors import ConnectError, RequestTimeout, UploadError
from orchestrator.transport import FileWindow, HttpTransport, Timeouts, redact_url
from orchestrator.transport import deadline as transport_module


@dataclass
class Received:
    """What the test server saw."""

    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    peak_recv: int = 0


Behaviour = Callable[[BaseHTTPRequestHandler, Received], None]


def _read_body(handler: BaseHTTPRequestHandler, received: Received) -> bytes:
    length = int(handler.headers.get("Content-Length", "0"))
    parts = []
    left = length
    while left:
        block = handler.rfile.read1(min(left, 4 * 1024 * 1024))  # type: ignore[attr-defined]
        if not block:
            break
        received.peak_recv = max(received.peak_recv, len(block))
        parts.append(block)
        left -= len(block)
    return b"".join(parts)


def accept(status: int = 206) -> Behaviour:
    def behave(handler: BaseHTTPRequestHandler, received: Received) -> None:
        body = _read_body(handler, received)
        received.requests.append(
            (
                handler.command,
                handler.path,
                {k.lower(): v for k, v in handler.headers.items()},
                body,
            )
        )
        handler.send_response(status)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"{}")

    return behave


def drip_answer(handler: BaseHTTPRequestHandler, received: Received) -> None:
    """Read the request, then answer one byte every 50 ms, forever-ish."""
    _read_body(handler, received)
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    for _ in range(1000):
        try:
            handler.wfile.write(b"x")
            handler.wfile.flush()
        except OSError:
            return
        time.sleep(0.05)


def drip_head(handler: BaseHTTPRequestHandler, received: Received) -> None:
    """Read the request, then send the whole answer, status line and headers included, one
    byte every 20 ms (the sandbox's ``drip`` fault)."""
    _read_body(handler, received)
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    for index in range(len(raw)):
        try:
            handler.wfile.write(raw[index : index + 1])
            handler.wfile.flush()
        except OSError:
            return
        time.sleep(0.02)
    handler.close_connection = True


def drip_read(handler: BaseHTTPRequestHandler, received: Received) -> None:
    """Read the body 1 KiB every 20 ms (a server that accepts bytes too slowly)."""
    length = int(handler.headers.get("Content-Length", "0"))
    left = length
    while left:
        try:
            block = handler.rfile.read(min(left, 1024))
        except OSError:
            return
        if not block:
            return
        left -= len(block)
        time.sleep(0.02)
    handler.send_response(206)
    handler.end_headers()


def reset(handler: BaseHTTPRequestHandler, received: Received) -> None:
    """Drop the connection with a TCP reset before answering."""
    handler.connection.setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
    )
    handler.close_connection = True
    handler.connection.close()


class _Listener(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 resets bursts of parallel connects


class Server:
    def __init__(self) -> None:
        self.received = Received()
        self.behaviour: Behaviour = accept()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without NODELAY, Nagle and the
                # client's delayed ACK add ~40 ms to every answer (as the sandbox's server says).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: object) -> None:
                return None

            def do_PUT(self) -> None:
                server.behaviour(self, server.received)

            do_POST = do_PUT

        self.httpd = _Listener(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def transport() -> Iterator[HttpTransport]:
    http = HttpTransport(timeouts=Timeouts(connect=2, read=2))
    yield http
    http.close()


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "video.mp4"
    path.write_bytes(bytes(range(256)) * 40_000)  # 10,240,000 bytes
    return path


def test_file_window_streams_exactly_its_range(
    server: Server, transport: HttpTransport, video: Path
) -> None:
    """A PUT of a FileWindow sends exactly its byte range, with its length as Content-Length."""
    data = video.read_bytes()
    seen: list[int] = []
    with video.open("rb") as file:
        window = FileWindow(file, 1_000_003, 5_000_000, on_read=seen.append)
        response = transport.request(
            "PUT",
            server.url + "/upload/?upload_token=secret-token",
            headers={"Content-Range": "bytes 1000003-6000002/10240000"},
            body=window,
        )
    assert response.status == 206
    (method, _path, headers, body) = server.received.requests[0]
    assert method == "PUT"
    assert headers["content-length"] == "5000000"
    assert "transfer-encoding" not in headers
    assert hashlib.sha256(body).digest() == hashlib.sha256(data[1_000_003:6_000_003]).digest()
    assert sum(seen) == 5_000_000
    assert window.exhausted


def test_file_window_reads_in_bounded_blocks() -> None:
    """The window hands out at most the asked block and never past its end."""
    window = FileWindow(io.BytesIO(b"abcdefghij"), 2, 5)
    assert len(window) == 5
    assert window.read(3) == b"cde"
    assert window.read(100) == b"fg"
    assert window.read(1) == b""
    assert window.exhausted


def test_file_window_refuses_a_file_that_ends_early() -> None:
    """A file shorter than the window raises instead of sending a short body."""
    window = FileWindow(io.BytesIO(b"abc"), 0, 10)
    with pytest.raises(UploadError, match="ended"):
        window.read(10)


def test_send_block_is_raised_from_urllib3s_default(
    server: Server, transport: HttpTransport, video: Path
) -> None:
    """The body is handed to the socket in 1 MiB blocks, not urllib3's 16 KiB."""
    blocks: list[int] = []
    with video.open("rb") as file:
        transport.request(
            "PUT", server.url + "/u", body=FileWindow(file, 0, 4_000_000, on_read=blocks.append)
        )
    assert max(blocks) == 1024 * 1024


def test_keep_alive_reuses_one_connection(
    server: Server, transport: HttpTransport, video: Path
) -> None:
    """Several chunk PUTs to one host go over one connection."""
    ports: set[int] = set()

    def remember_peer(handler: BaseHTTPRequestHandler, received: Received) -> None:
        ports.add(handler.client_address[1])
        accept()(handler, received)

    server.behaviour = remember_peer
    with video.open("rb") as file:
        for index in range(3):
            transport.request("PUT", server.url + "/u", body=FileWindow(file, index * 1000, 1000))
    assert len(ports) == 1


def test_slow_drip_answer_is_cut_at_the_deadline(server: Server, transport: HttpTransport) -> None:
    """A server answering one byte at a time cannot hold a request past its total deadline."""
    server.behaviour = drip_answer
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match=r"within 0\.2 s"):
        transport.request("POST", server.url + "/x", body=b"{}", timeouts=Timeouts(2, 2, total=0.2))
    assert time.monotonic() - started < 1.5


def test_answer_cut_by_the_deadline_inside_its_headers_is_a_timeout_not_an_answer(
    server: Server, transport: HttpTransport
) -> None:
    """A deadline that cuts an answer in its headers raises RequestTimeout: the half-read
    status line must not pass for a complete (empty) 200 answer."""
    server.behaviour = drip_head
    with pytest.raises(RequestTimeout, match=r"within 0\.2 s"):
        transport.request("POST", server.url + "/x", body=b"{}", timeouts=Timeouts(2, 2, total=0.2))


def test_slow_reading_server_is_cut_at_the_deadline(
    server: Server, transport: HttpTransport, video: Path
) -> None:
    """A server reading a chunk too slowly cannot hold the upload past its deadline."""
    server.behaviour = drip_read
    started = time.monotonic()
    with video.open("rb") as file, pytest.raises(RequestTimeout):
        transport.request(
            "PUT",
            server.url + "/u?upload_token=tok",
            body=FileWindow(file, 0, 10_000_000),
            timeouts=Timeouts(2, 2, total=0.2),
        )
    assert time.monotonic() - started < 1.5


def test_reset_is_a_connect_error_without_the_url_secret(
    server: Server, transport: HttpTransport
) -> None:
    """A connection reset becomes ConnectError whose message hides the upload token."""
    server.behaviour = reset
    with pytest.raises(ConnectError) as caught:
        transport.request("PUT", server.url + "/u?upload_token=very-secret", body=b"x" * 10)
    assert "very-secret" not in str(caught.value)
    assert caught.value.maybe_delivered
    assert caught.value.__cause__ is None


def test_refused_connection_was_not_delivered(transport: HttpTransport) -> None:
    """Connecting to a closed port is a ConnectError that certainly did not reach a server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectError) as caught:
        transport.request("POST", f"http://127.0.0.1:{port}/x", body=b"{}")
    assert not caught.value.maybe_delivered


def test_redact_url_hides_the_query() -> None:
    """Upload URLs authorise by their query string, which never shows."""
    shown = redact_url("https://up.example.com/upload/?upload_id=1&upload_token=abc")
    assert shown == "https://up.example.com/upload/?<redacted>"


def test_library_debug_logs_never_show_the_upload_token(
    server: Server, transport: HttpTransport, caplog: pytest.LogCaptureFixture
) -> None:
    """Even with urllib3 logging at DEBUG, request lines show no query string."""
    caplog.set_level(logging.DEBUG)
    transport.request(
        "PUT", server.url + "/upload/?upload_id=1&upload_token=very-secret", body=b"x"
    )
    assert "upload_id" in caplog.text or "/upload/" in caplog.text
    assert "very-secret" not in caplog.text


def _watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "transport-watchdog" and t.is_alive()]


def test_deadlines_share_one_watchdog_thread_until_close(server: Server) -> None:
    """Many requests with deadlines use one watchdog thread; closing the transport ends it."""
    http = HttpTransport(timeouts=Timeouts(connect=2, read=2))
    before = len(_watchdog_threads())
    try:
        for _ in range(20):
            http.request("POST", server.url + "/x", body=b"{}", timeouts=Timeouts(2, 2, total=30))
        assert len(_watchdog_threads()) == before + 1
    finally:
        http.close()
    assert len(_watchdog_threads()) == before


def test_watchdog_fires_a_short_deadline_behind_a_long_one() -> None:
    """A deadline added after a much later one still fires on time; the later one does not."""

    class Recorded(transport_module.Exchange):
        def __init__(self) -> None:
            super().__init__()
            self.fired = threading.Event()

        def expire(self) -> None:
            super().expire()
            self.fired.set()

    watchdog = transport_module.Watchdog()
    patient, hasty, finished = Recorded(), Recorded(), Recorded()
    try:
        finished.finish()  # a request that ended before its deadline came up
        watchdog.watch(patient, 60.0)
        watchdog.watch(finished, 0.01)
        watchdog.watch(hasty, 0.05)
        assert hasty.fired.wait(timeout=10), "the short deadline never fired"
        assert hasty.expired
        assert not patient.fired.is_set()
        assert not finished.fired.is_set()
    finally:
        watchdog.close()
    assert not patient.fired.is_set()


def test_watchdog_forgets_finished_requests() -> None:
    """Requests that finished long before their deadline do not pile up in the watchdog."""
    watchdog = transport_module.Watchdog()
    try:
        for _ in range(10_000):
            exchange = transport_module.Exchange()
            watchdog.watch(exchange, 60.0)
            exchange.finish()
        assert len(watchdog._heap) <= 2 * transport_module.WATCHDOG_COMPACT_AT
    finally:
        watchdog.close()


def test_parallel_requests_up_to_the_job_limit_keep_their_connections(server: Server) -> None:
    """64 threads (run's --jobs limit) that request together, then all wait at once (as users
    waiting for their rate window do), find their connections still open for the next request."""
    threads_count, rounds = 64, 3
    in_flight = threading.Barrier(threads_count, timeout=10)
    idle = threading.Barrier(threads_count, timeout=10)
    connections: list[int] = []  # one item per connection the server accepted
    lock = threading.Lock()

    def answer_together(handler: BaseHTTPRequestHandler, received: Received) -> None:
        # One handler object per connection (loopback may reuse a closed one's port).
        if not getattr(handler, "counted", False):
            handler.counted = True  # type: ignore[attr-defined]
            with lock:
                connections.append(1)
        in_flight.wait()  # every request of the round is in flight at once
        accept(200)(handler, received)

    server.behaviour = answer_together
    http = HttpTransport(timeouts=Timeouts(connect=5, read=15))
    failures: list[BaseException] = []

    def client() -> None:
        try:
            for _ in range(rounds):
                http.request("POST", server.url + "/x", body=b"{}")
                idle.wait()  # every connection is back in the pool at once
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    workers = [threading.Thread(target=client) for _ in range(threads_count)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
    finally:
        http.close()
    assert failures == []
    assert len(server.received.requests) == threads_count * rounds
    assert len(connections) == threads_count
