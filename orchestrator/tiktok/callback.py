"""The loopback callback: a one-shot HTTP server on 127.0.0.1 that waits for TikTok's
redirect back to the desktop app and hands over the code (``auth login``).

Must not: exchange the code (``oauth.OAuthClient`` does), or show anything but a short page.
"""

from __future__ import annotations

import html
import http.server
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from orchestrator.config import ENV_REDIRECT_URI
from orchestrator.errors import AuthError, ConfigError
from orchestrator.secret import Secret
from orchestrator.tiktok.authorize import authorization_from_params, single_param, state_matches
from orchestrator.tiktok.oauth_values import AuthorizationCode


@dataclass(frozen=True)
class _CallbackOutcome:
    code: AuthorizationCode | None = None
    error: AuthError | None = None


class _CallbackHTTPServer(http.server.ThreadingHTTPServer):
    """The HTTP server with what its handler needs to judge a request.

    One thread per connection, so a browser's idle pre-connection cannot hold up the redirect;
    handler threads are daemons and not joined on close (each ends by its socket timeout).
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, path: str, expected_state: Secret) -> None:
        self.callback_path = path
        self.expected_state = expected_state
        self.outcome: _CallbackOutcome | None = None
        self.stray_requests = 0
        self.done = threading.Event()
        self.outcome_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _CallbackHandler)

    def finish_with(self, outcome: _CallbackOutcome) -> bool:
        """Record the first outcome; False if another request already ended the wait."""
        with self.outcome_lock:
            if self.done.is_set():
                return False
            self.outcome = outcome
            self.done.set()
            return True

    def handle_error(self, request: object, client_address: object) -> None:
        # A browser that hung up mid-answer (BrokenPipe, timeout) needs no traceback on the
        # user's terminal; the outcome, if any, was recorded before answering.
        return


def _normalise_path(path: str) -> str:
    return path.rstrip("/") or "/"


class _CallbackHandler(http.server.BaseHTTPRequestHandler):
    server: _CallbackHTTPServer
    timeout = 10  # a client that connects and sends nothing cannot hold the server
    server_version = "tiktok-orchestrator"
    sys_version = ""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if _normalise_path(parts.path) != _normalise_path(self.server.callback_path):
            self._answer(404, "Not found", "This address is not the sign-in callback.")
            return
        if self.server.done.is_set():
            self._answer(200, "Already done", "This sign-in has finished; close this tab.")
            return
        params = parse_qs(parts.query)
        received_state = single_param(params, "state")
        if not state_matches(received_state, self.server.expected_state) and not (
            single_param(params, "error") and received_state is None
        ):
            # Not this login (a stale tab, a forged link, someone typing the address): refuse
            # it and keep waiting, so a stray request cannot end a login in progress.
            self.server.stray_requests += 1
            self._answer(
                400,
                "Wrong sign-in attempt",
                "This redirect does not belong to the sign-in in progress; use the newest tab.",
            )
            return
        try:
            code = authorization_from_params(params, expected_state=self.server.expected_state)
        except AuthError as exc:
            if self._finish(_CallbackOutcome(error=exc)):
                self._answer(400, "Sign-in failed", str(exc))
            else:
                self._answer(200, "Already done", "This sign-in has finished; close this tab.")
            return
        if self._finish(_CallbackOutcome(code=code)):
            self._answer(
                200, "Signed in", "You are signed in. Close this tab and return to the terminal."
            )
        else:
            self._answer(200, "Already done", "This sign-in has finished; close this tab.")

    def _refuse_method(self) -> None:
        self._answer(405, "Method not allowed", "Only GET is accepted here.", allow="GET")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _refuse_method

    def _finish(self, outcome: _CallbackOutcome) -> bool:
        return self.server.finish_with(outcome)

    def _answer(self, status: int, title: str, text: str, *, allow: str | None = None) -> None:
        body = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title></head><body style='font-family:sans-serif'>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        # The page must not leak the code in the URL to another site through a Referer.
        self.send_header("Referrer-Policy", "no-referrer")
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The default logs the request line to stderr, and the request line carries the code.
        return


class CallbackServer:
    """A one-shot HTTP server on 127.0.0.1 that waits for TikTok's redirect back.

    It listens on the redirect URI's port from ``__enter__`` (before the browser opens, so the
    redirect cannot arrive first), answers the browser with a short page, ignores other paths
    (``/favicon.ico``) and redirects whose ``state`` is not this login's, and ends on the first
    redirect for this login or when :meth:`wait` times out.
    """

    def __init__(self, redirect_uri: str, expected_state: Secret) -> None:
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            raise ConfigError(
                f"{ENV_REDIRECT_URI} must be an http loopback URL, got {redirect_uri!r}"
            )
        if parts.port is None:
            raise ConfigError(f"{ENV_REDIRECT_URI} needs a port, got {redirect_uri!r}")
        self.redirect_uri = redirect_uri
        self._port = parts.port
        self._path = parts.path or "/"
        self._expected_state = expected_state
        self._server: _CallbackHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (the redirect URI's)."""
        return self._server.server_address[1] if self._server else self._port

    def __enter__(self) -> CallbackServer:
        try:
            self._server = _CallbackHTTPServer(self._port, self._path, self._expected_state)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on 127.0.0.1:{self._port} for the sign-in redirect "
                f"({exc.strerror or exc})",
                hint=(
                    "free that port, or register another loopback redirect for the app and "
                    f"set {ENV_REDIRECT_URI}"
                ),
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="oauth-callback",
            daemon=True,
        )
        self._thread.start()
        return self

    def wait(self, timeout: float) -> AuthorizationCode:
        """The code from the redirect, or an error when it is refused or ``timeout`` passes."""
        assert self._server is not None, "use CallbackServer as a context manager"
        if not self._server.done.wait(timeout):
            stray = self._server.stray_requests
            extra = (
                f"; {stray} redirect(s) not matching this login's state were refused"
                if stray
                else ""
            )
            raise AuthError(
                f"no sign-in came back to {self.redirect_uri} within {timeout:g} s{extra}",
                hint=(
                    "run `auth login` again; on a machine without a browser use "
                    "`auth login --no-browser`"
                ),
            )
        outcome = self._server.outcome
        assert outcome is not None
        if outcome.error is not None:
            raise outcome.error
        assert outcome.code is not None
        return outcome.code

    def __exit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
