"""The ``run`` use case: wire the store, the lock, the journal and the API, then run the scheduler.

A plain function that runs without the CLI (tests and the sandbox demo call it directly). It
takes the home's run lock before anything else (a second run must exit at once, sending
nothing), validates the manifest, and always releases what it opened. It must not print: the
caller shows progress through the observer and renders the returned report.

With a shared (PostgreSQL) store there is no home lock: the process is one worker of a shared
run, claiming entries from the store's queue (``store/queue.py``) under a heartbeat-renewed
lease, and pacing each user's requests by rate windows kept in the store.

A dry run is wired so that it cannot write: its token source never refreshes (a refresh
rotates the refresh token, a write), and the scheduler records nothing in the journal. It does
not take the run lock either: it only reads, so it plans while a real run holds the home, and
a real run is never kept waiting by a dry one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from orchestrator.clock import Clock, InterruptibleClock, SystemClock
from orchestrator.config import Settings
from orchestrator.errors import AuthError, NeedsLoginError, StoreMissingError, UsageError
from orchestrator.manifest import Manifest, load_manifest
from orchestrator.report import RunReport
from orchestrator.retry import (
    TIKTOK_LIMITS,
    Retrier,
    RetryBudget,
    SlidingWindowPacer,
)
from orchestrator.scheduler import (
    NullObserver,
    Run,
    RunObserver,
    RunOptions,
    journal_keys,
    posted_check,
)
from orchestrator.secret import Secret
from orchestrator.settings import RunSettings
from orchestrator.store.backend import has_state, is_shared
from orchestrator.store.db import DB_FILENAME, ensure_private_home
from orchestrator.store.journal import Journal
from orchestrator.store.lock import RunLock
from orchestrator.store.postgres import PostgresDatabase
from orchestrator.store.queue import Heartbeat, WorkQueue
from orchestrator.store.shared_pacing import SharedPacer
from orchestrator.store.tokens import TokenProvider, TokenState, TokenStore
from orchestrator.tiktok.client import API_TIMEOUTS, TikTokClient
from orchestrator.tiktok.oauth import OAUTH_TIMEOUTS, OAuthClient
from orchestrator.transport import HttpTransport, Transport
from orchestrator.upload import Uploader

log = logging.getLogger(__name__)

INIT_WINDOW = TIKTOK_LIMITS["video_init"].window
"""Seconds of earlier runs' inits that still count in TikTok's init windows."""


def run_manifest(
    settings: Settings,
    manifest_path: Path,
    options: RunOptions,
    *,
    tunables: RunSettings | None = None,
    clock: Clock | None = None,
    observer: RunObserver | None = None,
    stop: threading.Event | None = None,
    transport_factory: Callable[[], Transport] = HttpTransport,
    manifest: Manifest | None = None,
    run_id: str | None = None,
) -> RunReport:
    """Validate ``manifest_path`` and post what is due; return the report (not yet written).

    Raises RunLockedError (nothing sent, nothing read) if another run holds the home,
    ManifestError (nothing sent) for an invalid manifest, ConfigError when the app credentials
    are missing for a real run. Ctrl-C during the run ends it with an ``interrupted`` report.

    With a shared (PostgreSQL) store there is no home lock: this process is one worker of the
    run named ``run_id`` (default: derived from the manifest's bytes, so workers given the same
    file share its work), claiming entries from the store's queue; its report covers the whole
    run. ``run_id`` is otherwise this run's own (default: a random one). ``tunables`` are the
    run's :class:`RunSettings` (default: ``RunSettings()``), used as given.
    """
    shared = is_shared(settings)
    clock = clock or SystemClock()
    tunables = tunables or RunSettings()
    stop = stop or threading.Event()
    if not options.dry_run:
        settings.require_client()
    if settings.expect_state and not shared:
        require_state(settings.home)
    # A dry run reads only (SPEC: reading commands create nothing): on a home with no state
    # database yet nobody signed in and nothing was posted, so an empty throw-away store in a
    # temporary folder stands in for it, and the home is not created.
    unsigned_home = options.dry_run and not has_state(settings)
    if not unsigned_home:
        ensure_private_home(settings.home)
    with contextlib.ExitStack() as stack:
        if not shared and not options.dry_run:
            # The lock first: a second run leaves before validating or opening anything.
            # (A shared store's workers coordinate through its queue instead; a dry run only
            # reads, so it neither needs the lock nor may block a real run with it.)
            stack.enter_context(RunLock(settings.home))
        if manifest is None and not has_state(settings):
            # No journal yet, so nothing can have been posted: the manifest alone decides, and
            # an invalid one is refused before a store is created for it.
            manifest = load_manifest(manifest_path)
            _check_only_users(manifest, options.only_users)
        store_settings = settings
        if unsigned_home:
            scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="orchestrator-"))
            store_settings = settings.with_overrides(home=Path(scratch), token_key=None)
        store = stack.enter_context(TokenStore.open(store_settings, clock=clock))
        if shared and not options.dry_run:
            # Workers given the same manifest join the same shared run.
            run_id = run_id or shared_run_id(manifest_path)
        run_id = run_id or _new_run_id()
        journal = Journal(store.database, store.cipher, clock=clock, run_id=run_id)
        # The journal first: a video that is gone only matters if its entry is not posted yet.
        manifest = manifest or load_manifest(manifest_path, posted=posted_check(journal))
        _check_only_users(manifest, options.only_users)
        for note in manifest.notes:
            log.warning("note: %s", note)
        transport = transport_factory()
        stack.callback(transport.close)
        # Every wait of the run sleeps on this clock, so Ctrl-C is honoured within moments.
        run_clock = InterruptibleClock(clock, stop)
        budget = RetryBudget(max_retries=tunables.budget_retries, max_wait=tunables.budget_wait)
        retrier = Retrier(tunables.retry_policy, clock=run_clock, budget=budget)
        tokens: TokenProvider | ReadOnlyTokens
        if options.dry_run:
            nobody = f"no state database in {settings.home} yet, so nobody signed in on this home"
            tokens = ReadOnlyTokens(
                store, clock=clock, missing=nobody if unsigned_home else "not in the token store"
            )
        else:
            refresher = OAuthClient.from_settings(
                settings, transport, clock, timeouts=tunables.api_timeouts or OAUTH_TIMEOUTS
            )
            tokens = TokenProvider(store, refresher, clock=run_clock, retry=retrier)
        pacer: SlidingWindowPacer
        if isinstance(store.database, PostgresDatabase):
            # Counted in the database: the windows hold across workers and reruns.
            pacer = SharedPacer(store.database, clock=run_clock)
        else:
            pacer = SlidingWindowPacer(clock=run_clock)
            _seed_pacing(pacer, journal, clock.time())
        client = TikTokClient(
            settings.api_base,
            transport,
            tokens,
            pacer=pacer,
            retry=retrier,
            clock=run_clock,
            timeouts=tunables.api_timeouts or API_TIMEOUTS,
        )
        uploader = Uploader(client, transport, retry=retrier, config=tunables, clock=run_clock)
        queue: WorkQueue | None = None
        if shared and not options.dry_run:
            # A dry run writes nothing, so it claims nothing: it plans every entry itself.
            assert isinstance(store.database, PostgresDatabase)
            queue = stack.enter_context(
                WorkQueue(
                    store.database,
                    run_id=run_id,
                    worker=worker_name(),
                    lease=tunables.lease,
                )
            )
            stack.enter_context(Heartbeat(queue, stop))
            log.info("worker %s of shared run %s", queue.worker, run_id)
        run = Run(
            manifest=manifest,
            journal=journal,
            tokens=tokens,
            client=client,
            uploader=uploader,
            budget=budget,
            clock=run_clock,
            options=options,
            observer=observer or NullObserver(),
            stop=stop,
            run_id=run_id,
            chunk_size=tunables.preferred_chunk_size,
            queue=queue,
        )
        report = run.execute()
        if budget.exhausted:
            log.warning(
                "the run's retry budget was spent (%d retries, %.0f s of backoff): "
                "TikTok kept failing; what was left is deferred",
                budget.retries,
                budget.waited,
            )
        return report
    raise AssertionError("unreachable")  # pragma: no cover - ExitStack re-raises


def check_with_journal(
    settings: Settings, manifest_path: Path, *, clock: Clock | None = None
) -> tuple[Manifest, list[str]]:
    """Validate a manifest as a run would (reads only): a video file that is gone is a note
    for an entry the journal holds as posted, and each entry that would adopt a journal
    record (an ``id`` added to a posted entry) is named. Raises ManifestError as
    ``load_manifest`` does. Without a state database yet, the manifest alone decides."""
    clock = clock or SystemClock()
    if not has_state(settings):
        return load_manifest(manifest_path), []
    with TokenStore.open(settings, clock=clock) as store:
        journal = Journal(store.database, store.cipher, clock=clock, run_id="validate")
        manifest = load_manifest(manifest_path, posted=posted_check(journal))
        keys = journal_keys(manifest.entries, journal)
    notes = [
        f"{entry.location}: {key.note}"
        for entry, key in zip(manifest.entries, keys, strict=True)
        if key.note is not None
    ]
    return manifest, notes


def require_state(home: Path) -> None:
    """Refuse a home without a state database (``--expect-state``), creating nothing.

    A CI runner whose saved home was lost (an evicted cache, a failed save) would otherwise
    start from nothing: no journal, so every entry posts again. Checked before the home is
    created, so a refused run leaves no trace for the next one to mistake for state."""
    if not (home / DB_FILENAME).is_file():
        raise StoreMissingError(
            f"no state database in {home}, but --expect-state (or ORCHESTRATOR_EXPECT_STATE) "
            "says one must exist; nothing was sent and nothing was created",
            hint="restore the home's state.db (and its token key) from where you keep it, or "
            "drop --expect-state / ORCHESTRATOR_EXPECT_STATE for a first run",
        )


def _check_only_users(manifest: Manifest, only_users: frozenset[str]) -> None:
    """Refuse ``--only-user`` values the manifest does not have (a typo must not look like a
    run with nothing to do)."""
    present = {entry.user_id for entry in manifest.entries}
    unknown = sorted(only_users - present)
    if unknown:
        raise UsageError(
            f"--only-user {', '.join(unknown)}: not a user_id of any entry in {manifest.path}",
            hint=f"the manifest's users are: {', '.join(sorted(present)) or '(none)'}",
        )


def _seed_pacing(pacer: SlidingWindowPacer, journal: Journal, now: float) -> None:
    """Count the inits of the last minute, from earlier runs, in this run's rate windows: a
    rerun straight after a crash must not send a seventh init into a full window."""
    ages: dict[tuple[str, str], list[float]] = {}
    for user_id, endpoint, at in journal.recent_inits(now - INIT_WINDOW):
        ages.setdefault((user_id, endpoint), []).append(now - at)
    for (user_id, endpoint), seen in ages.items():
        pacer.seed(user_id, endpoint, seen)


def _new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def shared_run_id(manifest_path: Path) -> str:
    """The default id of a shared run: from the manifest's bytes, so every worker given the
    same file joins the same run (a changed manifest is a new run)."""
    try:
        digest = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
    except OSError:
        digest = hashlib.sha256(str(manifest_path).encode()).hexdigest()
    return f"m-{digest[:12]}"


def worker_name() -> str:
    """This worker in a shared run's queue and reports: host, process and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class ReadOnlyTokens:
    """A dry run's token source: the stored access token while it works, never a refresh.

    A refresh rotates the refresh token, which is a write a dry run must not make; a token
    that has expired (or a 401 that would need a refresh) is an :class:`AuthError` instead.
    """

    def __init__(
        self, store: TokenStore, *, clock: Clock, missing: str = "not in the token store"
    ) -> None:
        self._store = store
        self._clock = clock
        self._missing = missing
        """Why a user the store does not hold cannot post (the home may have no store)."""

    def state(self, open_id: str) -> TokenState:
        user = self._store.get_user(open_id)
        if user is None:
            return TokenState.NEEDS_LOGIN
        return user.state(self._clock.time())

    def access_token(self, open_id: str) -> Secret:
        credentials = self._store.credentials(open_id)
        if credentials is None:
            raise NeedsLoginError(open_id, self._missing)
        now = self._clock.time()
        reason = credentials.user.login_reason(now)
        if reason is not None:
            raise NeedsLoginError(open_id, reason)
        if now >= credentials.user.access_expires_at:
            raise AuthError(
                f"user {open_id}: the access token has expired and a dry run does not refresh it",
                hint="a real run refreshes it; or run `tiktok-orchestrator auth refresh`",
            )
        return credentials.access_token

    def refresh_after_rejection(self, open_id: str, rejected: Secret) -> Secret:
        raise AuthError(
            f"user {open_id}: TikTok refused the access token and a dry run does not refresh it",
            hint="a real run refreshes it; or run `tiktok-orchestrator auth refresh`",
        )
