"""The background worker of ``serve``: drains posts and runs made over ``/api/v1``.

Theory of operation. The store is the queue: a post is a ``web_posts`` row (its manifest entry
as JSON), a run is a folder under ``<home>/web-runs/<run id>/`` holding its manifest and, once
run, its ``report.json``. Nothing is held only in memory, so a restart loses nothing. Each pass
of the worker:

1. reads the posts that still need work — neither cancelled nor set aside, and the journal
   holds no final state for them (published, sent to the inbox, failed, uncertain) and no
   deferral still in the future — and writes them as one hidden manifest whose entries carry
   ``id`` = the post id;
2. hands that manifest to ``runner.run_manifest``, exactly as ``run`` does: the home's run
   lock, the journal's exactly-once rules (a post killed mid-upload is resumed from the
   journal, a URL init whose answer was lost is ``uncertain``, never sent twice), per-user
   order, pacing, caps, retries and polling;
3. then runs each queued manifest of ``POST /runs`` the same way and writes its report.

A post that stopped being valid while it waited (its video removed or changed) would make every
pass's manifest invalid, so nothing would run: the pass checks each of its posts alone, sets
the invalid ones aside in the store (:meth:`WebPostStore.reject`: state ``rejected``, with
their problems, which ``GET /posts/{id}`` and the posts page show as ``failed``; nothing was
sent for them, and no instance claims them again) and the next pass runs the rest.
``healthz``'s queue depth is counted from the store, so it is right before the first pass.

A ``RunLockedError`` (a ``run`` on the command line holds the home) just waits for the next
pass. The thread wakes when the API queues work (:meth:`PostWorker.wake`) or after
``poll_interval`` seconds, and stops at the end of the current step when asked (the run's stop
event is honoured within moments, as Ctrl-C is for ``run``).

Several instances (PostgreSQL). Each pass claims the posts it runs in the store before
writing them into its manifest (:meth:`WebPostStore.claim`: a conditional UPDATE, ``queued`` ->
``started``, under a lease the pass renews), a creator's posts together and in order, skipping a
creator another instance is running. So two ``serve`` instances on one store never run one post
at once, and a DELETE racing a claim either cancels the post or lets it run, never both. The
claimed posts then run as a shared run of their own (run id ``web-<worker>-<time>``): the
store's ``creator_holds`` keep one worker per creator, its rate windows are counted in the
database, and the fence checks every journal write. After the pass the claims are let go: a post
the journal has is run on by whichever instance claims it next (the journal says what is left),
one it does not have is queued again. A worker killed mid-pass leaves its claims to run out
after the lease (``RunSettings.lease``; on SQLite, where the home's run lock already keeps to
one pass at a time, a restarted ``serve`` takes them at once); the next claim resumes its
uploads from the journal.

This module must not print or log a secret.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from orchestrator.clock import Clock
from orchestrator.config import Settings
from orchestrator.errors import ManifestError, OrchestratorError, RunLockedError
from orchestrator.manifest import check_manifest
from orchestrator.report import render_json
from orchestrator.runner import run_manifest, worker_name
from orchestrator.scheduler import RunOptions
from orchestrator.settings import RunSettings
from orchestrator.store.backend import is_shared
from orchestrator.store.journal import EntryState, Journal, JournalRecord
from orchestrator.store.review import ReviewStore
from orchestrator.store.tokens import TokenStore
from orchestrator.store.web import WebPost, WebPostStore
from orchestrator.transport import HttpTransport, Transport

log = logging.getLogger(__name__)

RUNS_FOLDER = "web-runs"
"""Under the home: one folder per ``POST /runs`` (its manifest, then its ``report.json``)."""
UPLOADS_FOLDER = "web-uploads"
"""Under the home: videos received as multipart uploads, named by their SHA-256."""
REPORT_NAME = "report.json"
FINAL_STATES: Final = frozenset(
    {
        EntryState.PUBLISHED,
        EntryState.SENT_TO_INBOX,
        EntryState.FAILED,
        EntryState.UNCERTAIN,
        EntryState.DECLINED,
    }
)
"""Journal states a post stays in: the worker never takes it again."""
DEFAULT_POLL_INTERVAL = 2.0
SQLITE_WORKER = "serve"
DEFAULT_CLAIM_LEASE = 60.0
"""Seconds a pass's claim on its posts outlives the pass's last renewal (a third of it)."""
STOP_TIMEOUT = 30.0


def post_record(journal: Journal, post_id: str) -> JournalRecord | None:
    """The journal's record of a post (its entry id is the post id)."""
    return journal.get(post_id) or journal.by_entry_id(post_id)


def needs_work(record: JournalRecord | None, now: float) -> bool:
    """Whether a (not cancelled) post with this journal record is due for a pass now."""
    if record is None:
        return True
    if record.state in FINAL_STATES:
        return False
    if record.state is EntryState.AWAITING_REVIEW:
        return False  # until its creator answers (ApiDrain.pending asks the review store)
    if record.state is EntryState.DEFERRED and record.deferred_until is not None:
        return record.deferred_until <= now
    return True


def is_pending(record: JournalRecord | None) -> bool:
    """Whether a (not cancelled) post still counts as queued work (for ``healthz``)."""
    return record is None or record.state not in FINAL_STATES


def run_folder(settings: Settings, run_id: str) -> Path:
    return settings.home / RUNS_FOLDER / run_id


def run_manifest_path(folder: Path) -> Path | None:
    """The manifest ``POST /runs`` stored in ``folder`` (JSON or YAML), if any."""
    for name in ("manifest.json", "manifest.yaml"):
        if (folder / name).is_file():
            return folder / name
    return None


@dataclass(frozen=True)
class PassOutcome:
    """What one pass found: work still queued, and whether it ran anything."""

    queued: int
    ran: bool


class ApiDrain:
    """One pass over the queued posts and runs (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        store: TokenStore,
        *,
        clock: Clock,
        tunables: RunSettings | None = None,
        options: RunOptions | None = None,
        transport_factory: Callable[[], Transport] = HttpTransport,
    ) -> None:
        self._settings = settings
        self._transport_factory = transport_factory
        self._store = store
        self._clock = clock
        self._tunables = tunables
        self._options = options or RunOptions()
        self._posts = WebPostStore(store.database, clock=clock)
        # On SQLite the home's run lock keeps to one pass at a time, so every instance of a
        # home is one worker: a restarted `serve` takes its killed predecessor's claims at once.
        # On a shared store each instance is its own, and a killed one's claims run out.
        self.worker = worker_name() if is_shared(settings) else SQLITE_WORKER
        """This instance in the posts' claims."""
        self._tag = secrets.token_hex(4)
        self.lease = tunables.lease if tunables is not None else DEFAULT_CLAIM_LEASE

    def _journal(self) -> Journal:
        return Journal(self._store.database, self._store.cipher, clock=self._clock, run_id="web")

    def pending(self) -> tuple[list[WebPost], int]:
        """Posts due now, and how many posts are queued in all (due or deferred)."""
        journal = self._journal()
        reviews = ReviewStore(self._store.database, clock=self._clock)
        now = self._clock.time()
        due: list[WebPost] = []
        queued = 0
        for post in self._posts.open_posts():
            record = post_record(journal, post.id)
            if is_pending(record):
                queued += 1
            if needs_work(record, now) or (
                record is not None
                and record.state is EntryState.AWAITING_REVIEW
                and reviews.consent(record.identity) is not None
            ):
                due.append(post)
        due.sort(key=lambda post: (post.created_at, post.id))
        return due, queued

    def queued_runs(self) -> list[str]:
        folder = self._settings.home / RUNS_FOLDER
        if not folder.is_dir():
            return []
        found = [
            (child.stat().st_mtime, child.name)
            for child in folder.iterdir()
            if child.is_dir()
            and not (child / REPORT_NAME).exists()
            and run_manifest_path(child) is not None
        ]
        return [name for _, name in sorted(found)]

    def __call__(self, stop: threading.Event) -> PassOutcome:
        due, queued = self.pending()
        runs = self.queued_runs()
        ran = False
        if due and not stop.is_set():
            self._run_posts(due, stop)
            ran = True
        for run_id in runs:
            if stop.is_set():
                break
            self._run_manifest(run_id, stop)
            ran = True
        if ran:
            _, queued = self.pending()
        return PassOutcome(queued=queued + len(self.queued_runs()), ran=ran)

    def queued_count(self) -> int:
        """Posts and runs still queued (``healthz``'s queue depth), read from the store."""
        return self.pending()[1] + len(self.queued_runs())

    def claim(self, posts: list[WebPost]) -> list[WebPost]:
        """Claim ``posts`` (oldest first) for this worker: each creator's in order, stopping at
        the first one another instance holds, so a creator's posts keep their order."""
        claimed: list[WebPost] = []
        blocked: set[str] = set()
        for post in posts:
            user = post.user_id()
            if user in blocked:
                continue
            if self._posts.claim(post.id, self.worker, lease=self.lease):
                claimed.append(post)
            else:
                blocked.add(user)
        return claimed

    def _run_posts(self, posts: list[WebPost], stop: threading.Event) -> None:
        claimed = self.claim(posts)
        if not claimed:
            return
        # One file per instance: several instances may share a home.
        path = self._write_entries(claimed, f".posts-{self._tag}.json")
        run_id = f"web-{self._tag}-{self._clock.time():.0f}"
        done = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=([post.id for post in claimed], done), daemon=True
        )
        renewer.start()
        try:
            run_manifest(
                self._settings,
                path,
                self._options,
                tunables=self._tunables,
                clock=self._clock,
                stop=stop,
                run_id=run_id,
                transport_factory=self._transport_factory,
            )
        except ManifestError:
            # One post that stopped being valid while it waited must not hold up the others:
            # set it aside with its problems (nothing was sent for it); the next pass runs
            # the rest.
            for post in claimed:
                problems = self._problems_of(post)
                if problems:
                    self._reject(post, problems)
            raise
        finally:
            done.set()
            renewer.join()
            journal = self._journal()
            for post in claimed:
                started = post_record(journal, post.id) is not None
                self._posts.release(post.id, self.worker, started=started)

    def _write_entries(self, posts: list[WebPost], name: str) -> Path:
        """``posts`` as a manifest under the runs folder, each entry's ``id`` its post's."""
        folder = self._settings.home / RUNS_FOLDER
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        entries: list[dict[str, Any]] = []
        for post in posts:
            entry = dict(json.loads(post.entry))
            entry["id"] = post.id
            entries.append(entry)
        path = folder / name
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"version": 1, "entries": entries}), encoding="utf-8")
        temporary.replace(path)
        return path

    def _problems_of(self, post: WebPost) -> list[str]:
        path = self._write_entries([post], f".post-check-{self._tag}.json")
        try:
            return [str(problem) for problem in check_manifest(path).problems]
        finally:
            path.unlink(missing_ok=True)

    def _reject(self, post: WebPost, problems: list[str]) -> None:
        if self._posts.reject(post.id, self.worker, problems):
            log.warning("post %s set aside, nothing sent: %s", post.id, "; ".join(problems))

    def _renew(self, post_ids: list[str], done: threading.Event) -> None:
        """Keep this pass's claims alive until it ends (a third of the lease between)."""
        while not done.wait(self.lease / 3):
            try:
                self._posts.renew(post_ids, self.worker, lease=self.lease)
            except OrchestratorError as exc:  # the pass itself will meet the same store
                log.warning("could not renew the worker's claims: %s", exc)

    def _run_manifest(self, run_id: str, stop: threading.Event) -> None:
        folder = run_folder(self._settings, run_id)
        manifest = run_manifest_path(folder)
        if manifest is None:
            return
        report = run_manifest(
            self._settings,
            manifest,
            self._options,
            tunables=self._tunables,
            clock=self._clock,
            stop=stop,
            run_id=run_id,
        )
        if stop.is_set():
            return  # interrupted: run again after the restart (the journal resumes it)
        temporary = folder / (REPORT_NAME + ".tmp")
        temporary.write_bytes(render_json(report))
        temporary.replace(folder / REPORT_NAME)


class PostWorker:
    """The worker thread: runs ``drain`` passes until stopped; what ``healthz`` asks about."""

    def __init__(
        self,
        drain: ApiDrain | None = None,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self._drain = drain
        self._poll_interval = poll_interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._depth = 0
        self._failed = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="orchestrator-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """New work was queued: start a pass now rather than after the poll interval."""
        self._wake.set()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._failed

    def queue_depth(self) -> int:
        """Posts and runs queued, from the store (the last pass's count if it cannot be read)."""
        if self._drain is not None:
            try:
                return self._drain.queued_count()
            except OrchestratorError:
                return self._depth
        return self._depth

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                self._pass()
                # Woken at once by new work; otherwise look again after the poll interval
                # (deferred posts fall due, a run on the command line lets go of the home).
                self._wake.wait(self._poll_interval)
        except BaseException:
            self._failed = True
            log.exception("the background worker stopped")
            raise

    def _pass(self) -> None:
        if self._drain is None:
            return
        try:
            outcome = self._drain(self._stop)
        except RunLockedError:
            log.info("a run holds the home; the worker waits for it")
            return
        except OrchestratorError as exc:
            # What the worker cannot run now (the app's credentials, the store): keep the
            # thread alive, say why, and look again after the poll interval.
            log.warning("the worker's pass failed: %s%s", exc, f" ({exc.hint})" if exc.hint else "")
            return
        self._depth = outcome.queued
