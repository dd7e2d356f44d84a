"""A real ``serve`` stack for the API tests: the sandbox, a home with signed-in creators, the
app under waitress on a free loopback port, the background worker, and an API key."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from orchestrator.clock import SystemClock
from orchestrator.config import Settings, load_web_config
from orchestrator.sandbox import Sandbox, SandboxConfig
from orchestrator.settings import RunSettings
from orchestrator.store.tokens import TokenStore
from orchestrator.store.web import ApiKeyStore
from orchestrator.tiktok.chunks import MIN_CHUNK
from orchestrator.web import create_app
from orchestrator.web.server import MAX_REQUEST_BODY
from orchestrator.web.worker import ApiDrain, PostWorker
from tests.functional.run_support import make_clip, sandbox_settings, sign_in
from tests.support.waitress_thread import LOOP_TIMEOUT, serving
from tests.web.conftest import ADMIN_PASSWORD_HASH

ADMIN_PASSWORD = "correct horse battery staple"
FINISHED_STATES = frozenset({"published", "sent_to_inbox", "failed", "uncertain"})
"""States of ``GET /api/v1/posts/{id}`` after which nothing more happens to a post."""
WAIT_LIMIT = 60.0
"""Seconds a test waits for the worker at most (a bound, not a timing assertion)."""
FAST_RUN_SETTINGS = RunSettings(chunk_size=MIN_CHUNK, poll_first=0.02, poll_max=0.2)
"""The worker's run settings: small chunks, and status polls 20 ms apart instead of the
product's 2 s (the sandbox answers PROCESSING once before PUBLISH_COMPLETE), so a published
post costs no real-time wait."""


@dataclass
class ApiRig:
    sandbox: Sandbox
    settings: Settings
    media: Path
    url: str
    key: str
    worker: PostWorker

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, headers=self.headers, timeout=30, **kwargs)

    def post(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return requests.post(
            self.url + path, headers={**self.headers, **(headers or {})}, timeout=60, **kwargs
        )

    def delete(self, path: str) -> requests.Response:
        return requests.delete(self.url + path, headers=self.headers, timeout=30)

    def clip(self, name: str, size: int | None = None) -> tuple[Path, str]:
        return make_clip(self.media, name, size)

    def wait_for(self, post_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Poll ``GET /posts/{id}`` until ``done`` holds (bounded)."""
        deadline = time.monotonic() + WAIT_LIMIT
        while True:
            body: dict[str, Any] = self.get(f"/api/v1/posts/{post_id}").json()
            if done(body) or time.monotonic() > deadline:
                return body
            time.sleep(0.05)  # polling a real server; nothing asserts on elapsed time


@contextlib.contextmanager
def open_api_rig(
    tmp_path: Path, config: SandboxConfig | None = None, *, worker_running: bool = True
) -> Iterator[ApiRig]:
    import waitress  # type: ignore[import-untyped]

    clock = SystemClock()
    media = tmp_path / "media"
    media.mkdir()
    with Sandbox(config or SandboxConfig(), clock=clock) as sandbox:
        settings = sandbox_settings(sandbox, tmp_path / "home")
        sign_in(settings, sandbox, clock, [user.open_id for user in sandbox.users])
        web_config = load_web_config(
            environ={
                "ORCHESTRATOR_ADMIN_PASSWORD_HASH": ADMIN_PASSWORD_HASH,
                "ORCHESTRATOR_UPLOAD_ROOTS": str(media),
            }
        )
        with TokenStore.open(settings, clock=clock) as store:
            key = ApiKeyStore(store.database, clock=clock).create("tests").value
            drain = ApiDrain(settings, store, clock=clock, tunables=FAST_RUN_SETTINGS)
            worker = PostWorker(drain, poll_interval=0.05)
            app = create_app(
                web_config, settings=settings, clock=clock, token_store=store, worker=worker
            )
            server = waitress.create_server(
                app,
                host="127.0.0.1",
                port=0,
                threads=24,
                max_request_body_size=MAX_REQUEST_BODY,
                asyncore_loop_timeout=LOOP_TIMEOUT,
            )
            with serving(server):
                if worker_running:
                    worker.start()
                try:
                    yield ApiRig(
                        sandbox=sandbox,
                        settings=settings,
                        media=media,
                        url=f"http://127.0.0.1:{server.effective_port}",
                        key=key,
                        worker=worker,
                    )
                finally:
                    worker.stop()


def finished(body: dict[str, object]) -> bool:
    """Whether the post ``body`` (an API answer) has reached a final state."""
    return body["state"] in FINISHED_STATES
