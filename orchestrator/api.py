"""The public Python API: drive the orchestrator from Python (Airflow, Prefect, Dagster, a web app).

A small, typed surface over the same use cases the command line runs; the CLI (and the web
server) are thin layers over it. Nothing here prints or reads the environment itself: settings
come from :func:`load_settings` (the options you pass, then the environment, as for the CLI)
unless you pass a :class:`Settings`. Errors are :class:`OrchestratorError` subclasses, each
with a ``hint``; the exit code a CLI run would end with is not decided here.

::

    from orchestrator import api

    problems = api.validate("videos.yaml")           # [] when the manifest is valid
    report = api.run("videos.yaml", jobs=4)          # a RunReport, as the JSON report
    failed = [e for e in report.entries if e.status in ("failed", "uncertain")]

Only the names in ``__all__`` are the API; anything else in the package may change.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.auth import RefreshOutcome
from orchestrator.clock import Clock, SystemClock
from orchestrator.config import Settings, load_settings
from orchestrator.errors import OrchestratorError, StoreMissingError
from orchestrator.lookup import PostStatus
from orchestrator.manifest import Problem
from orchestrator.report import EntryResult, RunReport, report_document
from orchestrator.store.queue import DEFAULT_LEASE
from orchestrator.store.tokens import DEFAULT_REFRESH_MARGIN, TokenState

if TYPE_CHECKING:
    from orchestrator.manifest import ManifestCheck
    from orchestrator.scheduler import RunObserver

__all__ = [
    "EntryResult",
    "OrchestratorError",
    "PostStatus",
    "Problem",
    "RefreshOutcome",
    "RunReport",
    "Settings",
    "TokenState",
    "UserSummary",
    "list_users",
    "load_settings",
    "post_status",
    "refresh_users",
    "report_document",
    "run",
    "validate",
]

ManifestSource = str | os.PathLike[str] | Sequence[Mapping[str, Any]]
"""A manifest file's path, or its entries as a list of mappings (the manifest's entry fields)."""


def run(
    manifest: ManifestSource,
    *,
    settings: Settings | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    jobs: int = 4,
    dry_run: bool = False,
    only_users: Iterable[str] = (),
    limit: int | None = None,
    retry_failed: bool = False,
    review: str | None = None,
    daily_cap: int = 15,
    inbox_cap: int = 5,
    poll_timeout: float = 600.0,
    chunk_size: int | None = None,
    run_id: str | None = None,
    lease: float = DEFAULT_LEASE,
    observer: RunObserver | None = None,
    clock: Clock | None = None,
) -> RunReport:
    """Validate a manifest and post what is due, exactly as ``tiktok-orchestrator run`` does.

    ``manifest`` is a manifest file (JSON or YAML), or a list of entries (mappings with the
    manifest's entry fields, e.g. ``{"user_id": ..., "video_path": ..., "description": ...}``);
    relative media paths in entries resolve against ``base_dir`` (default: the current folder),
    where the entries are written for the run's length as a hidden JSON manifest.

    The keyword options are the ``run`` command's (``daily_cap`` is ``--daily-cap``,
    ``review="creator"`` is ``--review creator``, and so on).
    ``observer`` is told of each step (see ``orchestrator.scheduler.RunObserver``); ``clock``
    replaces the system clock (tests).

    Returns the report (not written anywhere: ``orchestrator.report.write_reports`` writes the
    JSON, JUnit and Markdown forms; :func:`report_document` gives the JSON report's data).
    Raises ``ManifestError`` (nothing sent) for an invalid manifest, ``ConfigError`` without
    app credentials, ``RunLockedError`` while another run holds the home. A rerun never posts
    twice: the journal in the home remembers every entry.
    """
    from orchestrator.runner import run_manifest
    from orchestrator.scheduler import RunOptions
    from orchestrator.settings import RunSettings

    options = RunOptions(
        jobs=jobs,
        dry_run=dry_run,
        only_users=frozenset(only_users),
        limit=limit,
        retry_failed=retry_failed,
        review_all=review == "creator",
        daily_direct_cap=daily_cap,
        pending_inbox_cap=inbox_cap,
    )
    tunables = RunSettings(poll_timeout=poll_timeout, chunk_size=chunk_size, lease=lease)
    with _manifest_file(manifest, base_dir) as path:
        return run_manifest(
            settings or load_settings(),
            path,
            options,
            tunables=tunables,
            clock=clock,
            observer=observer,
            run_id=run_id,
        )


@contextlib.contextmanager
def _manifest_file(
    manifest: ManifestSource, base_dir: str | os.PathLike[str] | None
) -> Iterator[Path]:
    if isinstance(manifest, str | os.PathLike):
        yield Path(manifest)
        return
    folder = Path(base_dir) if base_dir is not None else Path.cwd()
    document = {"version": 1, "entries": [dict(entry) for entry in manifest]}
    with tempfile.NamedTemporaryFile(
        "w",
        dir=folder,
        prefix=".tiktok-orchestrator-entries-",
        suffix=".json",
        encoding="utf-8",
        delete=False,
    ) as file:
        json.dump(document, file, ensure_ascii=False, default=str)
        path = Path(file.name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def validate(
    manifest: str | os.PathLike[str],
    *,
    online: bool = False,
    settings: Settings | None = None,
) -> list[Problem]:
    """Every problem in a manifest file, in file order; an empty list when it is valid.

    Offline (the default) it checks the schema, the semantics and the media files, as a run
    would: a video file that is gone is no problem for an entry the home's journal holds as
    posted. It sends nothing. ``online=True`` also checks each user's token, scopes and
    creator_info, as ``validate --online`` does (its problems have the location ``online``);
    it posts nothing.
    """
    settings = settings or load_settings()
    checked = _check_against_journal(settings, Path(manifest))
    if checked.manifest is None or not online:
        return list(checked.problems)
    from orchestrator.preflight import check_online

    settings.require_client()
    found = check_online(settings, checked.manifest, clock=SystemClock())
    return [Problem("online", problem) for problem in found.problems]


def _check_against_journal(settings: Settings, path: Path) -> ManifestCheck:
    """``check_manifest`` with the journal's view of what is posted (reads only; a home
    without a state database has none, and is not created)."""
    from orchestrator.manifest import check_manifest
    from orchestrator.scheduler import posted_check
    from orchestrator.store.backend import is_shared
    from orchestrator.store.db import DB_FILENAME
    from orchestrator.store.journal import Journal
    from orchestrator.store.tokens import TokenStore

    if not is_shared(settings) and not (settings.home / DB_FILENAME).exists():
        return check_manifest(path)
    clock = SystemClock()
    with TokenStore.open(settings, clock=clock, create=False) as store:
        journal = Journal(store.database, store.cipher, clock=clock, run_id="validate")
        return check_manifest(path, posted=posted_check(journal))


@dataclass(frozen=True)
class UserSummary:
    """One stored user (no token values): what ``auth list`` shows.

    Times are Unix timestamps. ``login_reason`` says why the user must run ``auth login``
    again (None while the refresh token works); ``refresh_dies_soon`` warns that it expires
    within a few days.
    """

    open_id: str
    display_name: str | None
    scopes: frozenset[str]
    access_expires_at: float
    refresh_expires_at: float
    state: TokenState
    login_reason: str | None
    refresh_dies_soon: bool


def list_users(
    *, settings: Settings | None = None, clock: Clock | None = None
) -> list[UserSummary]:
    """Every user in the token store with their token state now. Sends no request; a home
    nobody signed in on has no users (and is not created)."""
    from orchestrator import auth
    from orchestrator.store.tokens import TokenStore

    clock = clock or SystemClock()
    try:
        with TokenStore.open(settings or load_settings(), clock=clock, create=False) as store:
            rows = auth.list_users(store, clock=clock, margin=DEFAULT_REFRESH_MARGIN)
    except StoreMissingError:
        return []
    return [
        UserSummary(
            open_id=row.user.open_id,
            display_name=row.user.display_name,
            scopes=row.user.scopes,
            access_expires_at=row.user.access_expires_at,
            refresh_expires_at=row.user.refresh_expires_at,
            state=row.state,
            login_reason=row.login_reason,
            refresh_dies_soon=row.refresh_dies_soon,
        )
        for row in rows
    ]


def refresh_users(
    open_ids: Sequence[str] = (),
    *,
    all_users: bool = False,
    settings: Settings | None = None,
    clock: Clock | None = None,
) -> list[RefreshOutcome]:
    """Refresh the named users' tokens now (or every stored user's with ``all_users``), each on
    its own: one failing does not stop the others; its outcome carries the error.

    Raises ``UsageError`` for an unknown user or for neither/both of ``open_ids`` and
    ``all_users``, ``ConfigError`` without app credentials, ``UnsafeConnectionError`` for plain
    HTTP off the machine or a certificate that does not verify. With ``all_users`` a home nobody
    signed in on gives an empty list.
    """
    from orchestrator import auth
    from orchestrator.store.tokens import TokenProvider, TokenStore
    from orchestrator.tiktok.oauth import OAuthClient
    from orchestrator.transport import HttpTransport

    auth.check_refresh_selection(open_ids, all_users=all_users)
    settings = settings or load_settings()
    settings.require_client()
    clock = clock or SystemClock()
    try:
        store = TokenStore.open(settings, clock=clock, create=False)
    except StoreMissingError:
        if not all_users:
            raise
        return []
    with store, contextlib.closing(HttpTransport()) as transport:
        oauth = OAuthClient.from_settings(settings, transport, clock)
        provider = TokenProvider(store, oauth, clock=clock)
        return auth.refresh_users(store, provider, list(open_ids), all_users=all_users)


def post_status(
    publish_id: str,
    user: str,
    *,
    settings: Settings | None = None,
    clock: Clock | None = None,
) -> PostStatus:
    """Ask TikTok where ``publish_id`` (posted for the user ``user``, an open_id) is now.

    The answer carries TikTok's status, what its ``fail_reason`` means (retryable or not, and
    the fix), and the journal's entry when this home posted it. Raises ``ApiError`` (e.g.
    ``invalid_publish_id``), ``NeedsLoginError``, ``TransportError``.
    """
    from orchestrator.lookup import fetch_post_status

    return fetch_post_status(
        settings or load_settings(), publish_id, user, clock=clock or SystemClock()
    )
