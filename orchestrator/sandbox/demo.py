"""``run --sandbox``: the whole pipeline against the simulator, with nothing to set up.

Starts the simulator in-process on a free loopback port, makes a throw-away home, and signs
each sandbox user in through the orchestrator's own OAuth code (PKCE, loopback callback, code
exchange), with :mod:`orchestrator.sandbox.consent` playing the person at the browser. The
caller then runs the real pipeline with the settings it yields. Everything is gone afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from orchestrator import auth
from orchestrator.clock import SystemClock
from orchestrator.config import Settings
from orchestrator.sandbox import Sandbox, SandboxConfig
from orchestrator.sandbox.consent import consent
from orchestrator.secret import Secret
from orchestrator.store.tokens import TokenStore
from orchestrator.transport import HttpTransport


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def sandbox_session(base: Settings, *, config: SandboxConfig | None = None) -> Iterator[Settings]:
    """Yield settings pointing at a running simulator with every sandbox user signed in."""
    clock = SystemClock()
    # The simulator logs each request it serves; in the demo the orchestrator's own lines are
    # the story, so the simulator's are kept for -v.
    server_log = logging.getLogger("orchestrator.sandbox")
    if not server_log.isEnabledFor(logging.DEBUG):
        server_log.setLevel(logging.WARNING)
    with (
        tempfile.TemporaryDirectory(prefix="tiktok-orchestrator-sandbox-") as scratch,
        Sandbox(config or SandboxConfig(), clock=clock) as sandbox,
    ):
        settings = base.with_overrides(
            home=Path(scratch) / "home",
            api_base=sandbox.base_url,
            auth_url=sandbox.auth_url,
            client_key=sandbox.client_key,
            client_secret=Secret(sandbox.client_secret),
            redirect_uri=f"http://127.0.0.1:{_free_loopback_port()}/callback/",
            token_key=None,
        )
        with (
            TokenStore.open(settings, clock=clock) as store,
            contextlib.closing(HttpTransport()) as transport,
        ):
            for user in sandbox.config.users:
                auth.login(
                    settings,
                    store=store,
                    transport=transport,
                    clock=clock,
                    open_browser=True,
                    show_url=lambda _url: None,
                    read_pasted_url=_no_paste,
                    launch_browser=_consent_as(user.open_id),
                    timeout=30.0,
                )
        yield settings


def _consent_as(open_id: str) -> auth.BrowserLauncher:
    def launch(url: str) -> bool:
        # A browser runs beside the waiting callback server, as a real one would.
        threading.Thread(target=consent, args=(url,), kwargs={"user": open_id}, daemon=True).start()
        return True

    return launch


def _no_paste() -> str:
    raise AssertionError("the sandbox signs in through the loopback callback")
