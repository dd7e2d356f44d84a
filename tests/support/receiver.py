"""A local notification receiver on 127.0.0.1 for Apprise's json:// and form:// targets.

Three behaviours, each on its own port: ``ok`` keeps every message and answers 200, ``error``
answers 500, ``hang`` reads the request and never answers (until the test is over).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


@dataclass
class Receiver:
    """One listening receiver: its port and what it was sent."""

    behaviour: str
    port: int = 0
    received: list[dict[str, object]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)

    def url(self, scheme: str = "json", path: str = "/") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def receiving(behaviour: str) -> Iterator[Receiver]:
    """A receiver with ``behaviour`` (``ok``, ``error`` or ``hang``) for the block's length."""
    receiver = Receiver(behaviour)
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.raw.append(body)
            if receiver.behaviour == "hang":
                release.wait(30)  # never answers while the test runs
                return
            kind = self.headers.get("Content-Type", "")
            if "json" in kind:
                receiver.received.append(json.loads(body))
            else:
                form = parse_qs(body.decode())
                receiver.received.append({k: v[0] for k, v in form.items()})
            status = 200 if receiver.behaviour == "ok" else 500
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    # serve_forever looks for shutdown() every poll_interval (default 0.5 s: half a second of
    # waiting per receiver at the end of every test).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        release.set()
        server.shutdown()
        server.server_close()
