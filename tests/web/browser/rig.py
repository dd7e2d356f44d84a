"""The whole web side on loopback for a real browser: the app under waitress with the API's
background worker, the simulator as a **Web** app registering the app's callback (the
sandbox-only loopback allowance), a store, an upload root — on the system clock, as `serve`.

Shared by the browser journey (tests/web/browser) and ``docs/screenshots.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.clock import SystemClock
from orchestrator.config import Settings, WebConfig
from orchestrator.sandbox import Sandbox, SandboxConfig, SandboxUser
from orchestrator.secret import Secret
from orchestrator.settings import RunSettings
from orchestrator.store.tokens import TokenStore
from orchestrator.tiktok.chunks import MIN_CHUNK
from orchestrator.web import create_app
from orchestrator.web.server import MAX_REQUEST_BODY
from orchestrator.web.worker import ApiDrain, PostWorker
from tests.support.waitress_thread import LOOP_TIMEOUT, serving

ADMIN_PASSWORD = "operator-pw"


@dataclass
class WebRig:
    base: str
    sandbox: Sandbox
    settings: Settings
    store: TokenStore
    media: Path


@contextlib.contextmanager
def web_rig(tmp_path: Path, users: tuple[SandboxUser, ...] = ()) -> Iterator[WebRig]:
    """The rig; ``users`` replaces the sandbox's default accounts when given."""
    import waitress  # type: ignore[import-untyped]

    holder: dict[str, Any] = {}

    def dispatch(environ: Any, start_response: Any) -> Any:
        return holder["app"](environ, start_response)

    server = waitress.create_server(
        dispatch,
        host="127.0.0.1",
        port=0,
        threads=8,
        max_request_body_size=MAX_REQUEST_BODY,
        asyncore_loop_timeout=LOOP_TIMEOUT,
    )
    base = f"http://127.0.0.1:{server.effective_port}"
    clock = SystemClock()
    media = tmp_path / "media"
    media.mkdir(parents=True, exist_ok=True)
    sandbox_config = SandboxConfig(
        app_type="web",
        redirect_uris=(f"{base}/connect/callback/",),
        allow_loopback_http_redirect=True,
        **({"users": users} if users else {}),
    )
    with Sandbox(sandbox_config, clock=clock) as sandbox:
        settings = Settings(
            home=tmp_path / "home",
            api_base=sandbox.base_url,
            auth_url=sandbox.auth_url,
            client_key=sandbox.client_key,
            client_secret=Secret(sandbox.client_secret),
        )
        config = WebConfig(
            public_url=base, admin_password=Secret(ADMIN_PASSWORD), upload_roots=(media,)
        )
        with TokenStore.open(settings, clock=clock) as store:
            drain = ApiDrain(
                settings, store, clock=clock, tunables=RunSettings(chunk_size=MIN_CHUNK)
            )
            worker = PostWorker(drain, poll_interval=0.05)
            holder["app"] = create_app(
                config, settings=settings, clock=clock, token_store=store, worker=worker
            )
            with serving(server):
                worker.start()
                try:
                    yield WebRig(
                        base=base, sandbox=sandbox, settings=settings, store=store, media=media
                    )
                finally:
                    worker.stop()
