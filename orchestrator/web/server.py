"""Running the web application: waitress in front, the background worker beside it.

waitress is the production server (pure Python, threads rather than forks, and it spools large
request bodies to temporary files, which the multipart upload of ``/api/v1/posts`` needs);
Flask's development server is never used. One process serves requests on waitress's threads
and drains posted work on the :class:`~orchestrator.web.worker.PostWorker` thread; stopping
(Ctrl-C, SIGTERM) closes the listener, then stops the worker, then the caller closes the store.

This module must not print (the command line does, through ``on_ready``) or log a secret.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from orchestrator.clock import Clock
from orchestrator.config import Settings, WebConfig
from orchestrator.secret import Secret
from orchestrator.store.tokens import TokenStore
from orchestrator.web import create_app
from orchestrator.web.worker import ApiDrain, PostWorker

log = logging.getLogger(__name__)

WAITRESS_THREADS = 8
MAX_REQUEST_BODY = 4 * 1024**3 + 1024**2
"""The largest request waitress accepts: the API's 4 GB upload cap plus room for the form."""


@dataclass(frozen=True)
class ServeStarted:
    """What the command line shows once the server listens."""

    url: str
    """Where this process listens (for the local browser and health checks)."""
    public_url: str


def serve(
    config: WebConfig,
    *,
    settings: Settings,
    clock: Clock,
    token_store: TokenStore,
    worker: PostWorker | None = None,
    on_ready: Callable[[ServeStarted], None] = lambda _started: None,
) -> None:
    """Serve until interrupted (SIGINT or SIGTERM)."""
    import waitress  # type: ignore[import-untyped]

    # The API's worker drains what /api/v1 queues through the scheduler, as `run` does.
    worker = worker or PostWorker(ApiDrain(settings, token_store, clock=clock))
    app = create_app(config, settings=settings, clock=clock, token_store=token_store, worker=worker)
    # Bound here, not by waitress: a port in use then raises before waitress has opened
    # anything (it would leave its wake-up pipe open).
    listener = bind_listener(config.host, config.port)
    server = waitress.create_server(
        app,
        sockets=[listener],
        threads=WAITRESS_THREADS,
        max_request_body_size=MAX_REQUEST_BODY,
        ident="tiktok-orchestrator",
        expose_tracebacks=False,
    )
    worker.start()
    previous = signal.getsignal(signal.SIGTERM)

    def terminate(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminate)
    try:
        host, port = _listening(server, config)
        shown = f"[{host}]" if ":" in host else host
        on_ready(ServeStarted(url=f"http://{shown}:{port}", public_url=config.public_url))
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.close()
        worker.stop()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (IPv4 or IPv6, as the host is written)."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except BaseException:
        listener.close()
        raise
    return listener


def _listening(server: object, config: WebConfig) -> tuple[str, int]:
    """The address the server bound (the port may have been 0: any free one)."""
    effective_host = getattr(server, "effective_host", None)
    effective_port = getattr(server, "effective_port", None)
    if isinstance(effective_port, int):
        return str(effective_host or config.host), effective_port
    return config.host, config.port


@dataclass(frozen=True)
class WebSandbox:
    """``serve --sandbox``: settings pointing at a running simulator, and the admin password
    made for this session (a sandbox value, printed)."""

    settings: Settings
    admin_password: Secret


@contextlib.contextmanager
def sandbox_settings(base: Settings, *, clock: Clock, redirect_uri: str) -> Iterator[WebSandbox]:
    """A simulator on a free loopback port and a throw-away home, gone afterwards.

    The simulator is a **Web** app (Login Kit for Web, both PKCE readings) with ``redirect_uri``
    (``serve``'s ``{public_url}/connect/callback/``) registered; the sandbox-only loopback
    allowance lets that be ``http://127.0.0.1:PORT/...`` when trying it locally.
    """
    from orchestrator.sandbox import Sandbox, SandboxConfig

    server_log = logging.getLogger("orchestrator.sandbox")
    if not server_log.isEnabledFor(logging.DEBUG):
        server_log.setLevel(logging.WARNING)
    with (
        tempfile.TemporaryDirectory(prefix="tiktok-orchestrator-serve-sandbox-") as scratch,
        Sandbox(
            SandboxConfig(
                app_type="web",
                redirect_uris=(redirect_uri,),
                allow_loopback_http_redirect=True,
            ),
            clock=clock,
        ) as sandbox,
    ):
        settings = base.with_overrides(
            home=Path(scratch) / "home",
            api_base=sandbox.base_url,
            auth_url=sandbox.auth_url,
            client_key=sandbox.client_key,
            client_secret=Secret(sandbox.client_secret),
            token_key=None,
            store_url=None,
        )
        yield WebSandbox(settings=settings, admin_password=Secret(secrets.token_urlsafe(12)))
