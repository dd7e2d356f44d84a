"""The built-in TikTok simulator: ``tiktok-api.md`` served over real HTTP on 127.0.0.1.

::

    with Sandbox(SandboxConfig(), clock=ManualClock()) as sb:
        sb.base_url                      # set ORCHESTRATOR_API_BASE to this
        tokens = sb.grant_tokens("sandbox-user-1")
        sb.schedule(Fault(endpoint="upload", call=2, kind="status", status=503))
        ...
        sb.publishes(), sb.calls("upload"), sb.violations()

The sandbox enforces TikTok's rules (OAuth with hex PKCE and rotating refresh tokens,
creator_info, the three inits, chunk PUTs under every rule of §5 and §10, status progression,
rate windows and caps), keeps what it received for inspection, and lists the protocol
violations it saw: what a strict TikTok refuses and what TikTok's integration rules forbid.
Time-based behaviour runs on the injected clock; only ``delay`` and ``drip`` faults take real
time (and ``hold``, until the test releases its gate). Module map: ``config`` (values),
``rules`` (pure checks), ``state`` (memory), ``rates``, ``oauth``, ``posting`` (``endpoint``,
``creator``, ``init_checks``, ``video_init``, ``photo_init``, ``status``), ``upload``
(endpoints), ``faults``, ``pages`` (HTML), ``server`` (HTTP).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from orchestrator.clock import Clock, SystemClock
from orchestrator.sandbox.config import (
    DEFAULT_GRANT_SCOPES,
    FAIL_REASONS,
    KNOWN_SCOPES,
    SandboxConfig,
    SandboxUser,
)
from orchestrator.sandbox.faults import ENDPOINTS, FAULT_KINDS, Fault, FaultSchedule
from orchestrator.sandbox.server import SandboxApp, SandboxHTTPServer
from orchestrator.sandbox.state import PublishRecord, SandboxState

__all__ = [
    "ENDPOINTS",
    "FAULT_KINDS",
    "Fault",
    "PublishRecord",
    "Sandbox",
    "SandboxConfig",
    "SandboxUser",
]

_STOP_TIMEOUT = 10.0


class Sandbox:
    """The simulator on a loopback port, served from a background thread.

    Use it as a context manager (or call :meth:`start` / :meth:`stop`). ``port=0`` picks a free
    port. Every inspection and control method is thread-safe.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        clock: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        """``tls``: serve HTTPS with this server context (tests of certificates and proxies).
        ``server_name``: the host name in :attr:`base_url` and upload URLs instead of the
        bound address (a name only a test's proxy knows leads to this loopback port)."""
        self.config = config or SandboxConfig()
        self.clock: Clock = clock or SystemClock()
        self._host = host
        self._port = port
        self._tls = tls
        self._server_name = server_name
        self._state = SandboxState(self.config, self.clock)
        self._faults = FaultSchedule()
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the port and serve in a background thread (OSError if the port is taken)."""
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        server = SandboxHTTPServer((self._host, self._port), SandboxApp(self._state, self._faults))
        host, port = server.server_address[:2]
        if self._tls is not None:
            # The handshake happens on the handler thread's first read, not in accept().
            server.socket = self._tls.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        scheme = "http" if self._tls is None else "https"
        self._state.base_url = f"{scheme}://{self._server_name or host!s}:{port}"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            # stop() waits for the loop to notice the shutdown: half the interval on average,
            # paid by every test that starts a sandbox.
            kwargs={"poll_interval": 0.01},
            name=f"tiktok-sandbox:{port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, end every open connection and join every thread."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.stopping.set()
        self._faults.open_all()  # a held answer must not keep its thread past the stop
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(_STOP_TIMEOUT)

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- where it is ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` — the API base (``ORCHESTRATOR_API_BASE``)."""
        if not self._state.base_url:
            raise RuntimeError("the sandbox is not started")
        return self._state.base_url

    @property
    def auth_url(self) -> str:
        """The authorize page (``ORCHESTRATOR_AUTH_URL``)."""
        return self.base_url + "/v2/auth/authorize/"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def client_key(self) -> str:
        return self.config.client_key

    @property
    def client_secret(self) -> str:
        return self.config.client_secret

    @property
    def users(self) -> tuple[SandboxUser, ...]:
        return self.config.users

    # -- shortcuts and control ------------------------------------------------------------

    def grant_tokens(self, open_id: str, scopes: Sequence[str] | None = None) -> dict[str, Any]:
        """A TikTok token response for ``open_id``, as if the user had logged in (a test shortcut).

        ``scopes`` defaults to ``user.info.basic``, ``video.publish`` and ``video.upload``.
        """
        if self.config.user(open_id) is None:
            raise ValueError(f"{open_id!r} is not a sandbox user")
        granted = tuple(scopes) if scopes is not None else DEFAULT_GRANT_SCOPES
        unknown = [scope for scope in granted if scope not in KNOWN_SCOPES]
        if unknown:
            raise ValueError(f"unknown scopes {unknown}")
        return self._state.issue_tokens(open_id, granted)

    def schedule(self, fault: Fault) -> None:
        """Add a fault to the schedule (see :mod:`orchestrator.sandbox.faults`)."""
        self._faults.add(fault)

    def held(self, gate: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a request to be held at ``gate`` (a ``hold``
        fault's); False if none was."""
        return self._faults.wait_reached(gate, timeout)

    def release(self, gate: str) -> None:
        """Open ``gate``: the answers held at it go out, later ones are not held."""
        self._faults.open(gate)

    def clear_faults(self) -> None:
        self._faults.clear()

    def pending_faults(self) -> list[Fault]:
        """Scheduled faults that have not fired (every-call faults stay listed)."""
        return self._faults.pending()

    def fail_next_publish(self, open_id: str, fail_reason: str = "internal") -> None:
        """The next publish initialised for ``open_id`` ends FAILED with ``fail_reason``.

        Calls queue: two calls fail the next two publishes.
        """
        if self.config.user(open_id) is None:
            raise ValueError(f"{open_id!r} is not a sandbox user")
        if fail_reason not in FAIL_REASONS:
            raise ValueError(f"unknown fail_reason {fail_reason!r}; one of {FAIL_REASONS}")
        self._state.plan_failure(open_id, fail_reason)

    def change_user(self, user: SandboxUser) -> None:
        """The account's settings changed on TikTok's side (say, a lower
        ``max_video_post_duration_sec``): creator_info answers from ``user`` from now on."""
        self._state.change_user(user)

    def revoke_user_tokens(self, open_id: str) -> None:
        """Invalidate the user's access and refresh tokens (they removed the app)."""
        self._state.revoke_user(open_id)

    def expire_access_tokens(self, open_id: str) -> None:
        """Make the user's current access tokens answer 401 ``access_token_invalid``."""
        self._state.expire_access_tokens(open_id)

    def new_client(self) -> None:
        """Requests from now on come from a new client process (a rerun after a crash): it
        cannot know what the earlier one sent, so a rate window filled by the earlier one's
        requests earns it a 429 but is not counted as its violation."""
        self._state.new_client()

    def post_from_inbox(self, publish_id: str) -> None:
        """The creator finished an inbox draft in the app: it no longer counts as pending."""
        with self._state.lock:
            publish = self._state.publishes.get(publish_id)
            if publish is None or publish.post_mode != "MEDIA_UPLOAD":
                raise ValueError(f"{publish_id!r} is not an inbox publish")
            publish.posted_from_inbox = True

    # -- inspection -----------------------------------------------------------------------

    def calls(self, endpoint: str | None = None) -> int:
        """Requests received by ``endpoint`` (faulted ones included); None: all endpoints."""
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {', '.join(ENDPOINTS)}")
        return self._state.calls(endpoint)

    def call_counts(self) -> dict[str, int]:
        """Requests received per endpoint."""
        return self._state.call_counts()

    def publishes(self) -> list[PublishRecord]:
        """Every publish_id issued, in order."""
        return self._state.publish_records()

    def publish(self, publish_id: str) -> PublishRecord:
        """One publish (KeyError when unknown)."""
        with self._state.lock:
            return self._state.publishes[publish_id].record()

    def violations(self) -> list[str]:
        """Protocol violations seen, in order, each as ``"endpoint: what happened"``."""
        return self._state.violations()

    def issued_secrets(self) -> list[str]:
        """Every secret the sandbox knows: the client secret, each authorization code, access
        token, refresh token and upload-URL token it issued (for audits: none may appear in a
        log line, report or file outside the encrypted store)."""
        return self._state.issued_secrets()

    def unclaimed_rotations(self) -> list[str]:
        """Users one of whose refreshes was answered but never claimed: neither the new access
        token nor the new refresh token was ever presented. The answer was lost, or the client
        died before storing it; with rotating refresh tokens, such a user must log in again."""
        return self._state.unclaimed_rotations()

    def server_errors(self) -> list[str]:
        """Unexpected exceptions inside the sandbox (a bug in it; tests may assert none)."""
        return self._state.server_errors()
