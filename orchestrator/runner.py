"""The ``run`` use case: wire the store, the lock, the journal and the API, then run the scheduler.

A plain function that runs without the CLI (tests and the sandbox demo call it directly). It
validates the manifest before touching anything, takes the home's run lock before the first
request, and always releases what it opened. It must not print: the caller shows progress
through the observer and renders the returned report.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.clock import Clock, SystemClock
from orchestrator.config import Settings
from orchestrator.errors import ConfigError
from orchestrator.manifest import Manifest, load_manifest
from orchestrator.report import RunReport
from orchestrator.retry import Retrier, RetryBudget, SlidingWindowPacer
from orchestrator.scheduler import NullObserver, Run, RunObserver, RunOptions
from orchestrator.secret import Secret
from orchestrator.store.journal import Journal
from orchestrator.store.lock import RunLock
from orchestrator.store.tokens import TokenProvider, TokenStore
from orchestrator.tiktok.client import TikTokClient
from orchestrator.tiktok.oauth import OAuthClient, TokenGrant
from orchestrator.transport import HttpTransport, Transport
from orchestrator.upload import UploadConfig, Uploader


@dataclass(frozen=True)
class Tunables:
    """Engine settings a run may change (tests shorten them; users rarely need to)."""

    poll_timeout: float = 600.0
    budget_retries: int = 200
    budget_wait: float = 900.0
    upload: UploadConfig | None = None


def run_manifest(
    settings: Settings,
    manifest_path: Path,
    options: RunOptions,
    *,
    tunables: Tunables | None = None,
    clock: Clock | None = None,
    observer: RunObserver | None = None,
    stop: threading.Event | None = None,
    transport_factory: Callable[[], Transport] = HttpTransport,
    manifest: Manifest | None = None,
) -> RunReport:
    """Validate ``manifest_path`` and post what is due; return the report (not yet written).

    Raises ManifestError (nothing sent) for an invalid manifest, RunLockedError if another run
    holds the home, ConfigError when the app credentials are missing.
    """
    clock = clock or SystemClock()
    tunables = tunables or Tunables()
    manifest = manifest or load_manifest(manifest_path)
    if not options.dry_run:
        settings.require_client()
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(TokenStore.open(settings, clock=clock))
        stack.enter_context(RunLock(settings.home))
        transport = transport_factory()
        stack.callback(transport.close)
        budget = RetryBudget(max_retries=tunables.budget_retries, max_wait=tunables.budget_wait)
        retrier = Retrier(clock=clock, budget=budget)
        if settings.client_key and settings.client_secret:
            refresher = OAuthClient.from_settings(settings, transport, clock)
            tokens = TokenProvider(store, refresher, clock=clock)
        else:
            tokens = TokenProvider(store, _NoRefresh(), clock=clock)
        client = TikTokClient(
            settings.api_base,
            transport,
            tokens,
            pacer=SlidingWindowPacer(clock=clock),
            retry=retrier,
            clock=clock,
        )
        base_config = tunables.upload or UploadConfig()
        upload_config = UploadConfig(
            **{**base_config.__dict__, "poll_timeout": tunables.poll_timeout}
        )
        uploader = Uploader(client, transport, retry=retrier, config=upload_config, clock=clock)
        run = Run(
            manifest=manifest,
            journal=Journal(store.database, store.cipher, clock=clock, run_id=_new_run_id()),
            tokens=tokens,
            client=client,
            uploader=uploader,
            budget=budget,
            clock=clock,
            options=options,
            observer=observer or NullObserver(),
            stop=stop or threading.Event(),
        )
        run.run_id = run.journal.run_id
        return run.execute()
    raise AssertionError("unreachable")  # pragma: no cover - ExitStack re-raises


def _new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class _NoRefresh:
    """A refresher for a dry run without app credentials: a refresh is reported, not done."""

    def refresh(self, refresh_token: Secret) -> TokenGrant:
        raise ConfigError(
            "TIKTOK_CLIENT_KEY / TIKTOK_CLIENT_SECRET are needed to refresh tokens",
            hint="export the app's credentials",
        )
