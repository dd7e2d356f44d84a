"""One run over a manifest: decide, per entry, what is due; then post user by user.

Theory of operation:

1. **Plan** (main thread, no network): every selected entry gets its identity and a decision
   from the journal (``rerun.decide``): already done, a permanent failure to repeat,
   uncertain, resume, or start. Entries whose ``publish_at`` is in the future are deferred.
2. **Users in parallel** (``jobs`` threads), each user's entries in manifest order. Per user:
   a usable token first (a user whose tokens are dead fails alone, with the ``auth login``
   hint); creator_info once, before the first entry that may send an init; then per new entry
   the creator_info checks and the caps (daily direct posts and pending inbox shares, counted
   from the inits the journal recorded over 24 h), then the upload engine with the entry's
   journal as its sink. An entry TikTok already has (uploaded, processing) is only polled.
3. **Stopping early.** TikTok deferring a user (caps, active-user cap) defers that user's
   remaining new posts. The run stops starting work, deferring what is left, when its retry
   budget is spent (a dead API), when the state database cannot be written (sending a request
   whose answer cannot be journalled is how posts get doubled), or when it is interrupted.
4. **Interruption** (``stop`` set, e.g. by Ctrl-C): every sleep of the run (pacing, backoff,
   polling) goes through :class:`InterruptibleClock` and every block of a chunk through the
   progress subscriber; both raise :class:`RunInterrupted`, which unwinds the upload with the
   journal where its last step left it. An entry interrupted before its init was sent is
   journalled ``deferred``, so a URL entry is not mistaken for a lost init on the next run.

It must not print or parse options: progress goes to a :class:`RunObserver`, and the result is
a :class:`~orchestrator.report.RunReport`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from orchestrator.clock import Clock, SystemClock
from orchestrator.errors import (
    ApiError,
    AuthError,
    ClaimLostError,
    MediaError,
    NeedsLoginError,
    OrchestratorError,
    StoreConnectionLost,
    StoreError,
    TransportError,
    UnsafeConnectionError,
)
from orchestrator.manifest import Entry, Manifest, Mode, content_identity, entry_identity
from orchestrator.media import FileMedia, PhotoMedia, VideoUrlMedia, media_fingerprint
from orchestrator.outcomes import ErrorInfo
from orchestrator.preflight import creator_problems
from orchestrator.report import EntryResult, RunReport
from orchestrator.rerun import Action, Decision, decide
from orchestrator.retry import RetryBudget
from orchestrator.secret import Secret
from orchestrator.store.journal import (
    DONE_STATES,
    EntryMeta,
    EntryState,
    Journal,
    JournalRecord,
)
from orchestrator.tiktok.chunks import DEFAULT_CHUNK, plan_chunks
from orchestrator.tiktok.client import CreatorInfo, PostInfo, PostMode, TikTokClient
from orchestrator.upload import (
    Deferred,
    Failed,
    FileSource,
    PhotoSource,
    Uncertain,
    Uploader,
    UploadRequest,
    UploadState,
    UrlSource,
)

if TYPE_CHECKING:
    from orchestrator.store.queue import Claim, WorkQueue

log = logging.getLogger(__name__)

DAY = 86_400.0
_WAIT_SLICE = 0.2
"""Seconds the main thread waits on a worker at a time, so Ctrl-C reaches it promptly."""
QUEUE_POLL = 0.5
"""Seconds a worker of a shared run waits before looking for claimable work again."""
MAX_CONNECTION_CUTS = 3
"""Connection cuts under journal writes a worker of a shared run recovers from per user before
it treats the store as unusable."""
QUEUE_IDLE_LIMIT = 600.0
"""Seconds a worker of a shared run waits with nothing to claim (other workers hold the rest)
before it leaves; a dead worker's claims become claimable within one lease, long before."""


class RunInterrupted(Exception):
    """Raised inside a worker (from a sleep or a progress report) to unwind when the run stops.

    Deliberately not an ``OrchestratorError``: the upload engine must not treat it as a failure
    of the entry. The journal keeps the last confirmed step; the next run resumes from there.
    """


class InterruptibleClock:
    """The run's clock: the same time as ``inner``, but every sleep ends early, raising
    :class:`RunInterrupted`, once ``stop`` is set.

    Pacing waits, retry backoffs and status polling all sleep through the clock, so an
    interrupted run never sits out a 64 s backoff or a 30 s poll interval before stopping.
    """

    def __init__(self, inner: Clock, stop: threading.Event) -> None:
        self._inner = inner
        self._stop = stop
        # A real clock's sleep is replaced by a wait on the event; a manual clock (tests)
        # advances instantly and is only checked around.
        self._real = isinstance(inner, SystemClock)

    def time(self) -> float:
        return self._inner.time()

    def monotonic(self) -> float:
        return self._inner.monotonic()

    def sleep(self, seconds: float) -> None:
        if self._stop.is_set():
            raise RunInterrupted()
        if self._real:
            if seconds > 0 and self._stop.wait(seconds):
                raise RunInterrupted()
            return
        self._inner.sleep(seconds)
        if self._stop.is_set():
            raise RunInterrupted()


@dataclass(frozen=True)
class RunOptions:
    """What the user asked of this run (SPEC §1 ``run`` options)."""

    jobs: int = 4
    dry_run: bool = False
    only_users: frozenset[str] = frozenset()
    limit: int | None = None
    retry_failed: bool = False
    daily_direct_cap: int = 15
    pending_inbox_cap: int = 5

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ValueError("jobs must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")
        if self.daily_direct_cap < 0 or self.pending_inbox_cap < 0:
            raise ValueError("caps cannot be negative")


class TokenStates(Protocol):
    """What the scheduler asks of the token provider (``store.tokens.TokenProvider``)."""

    def access_token(self, open_id: str) -> Secret: ...

    def state(self, open_id: str) -> str:
        """``fresh`` / ``stale`` / ``expired`` / ``needs_login`` (a ``TokenState``)."""
        ...


class RunObserver(Protocol):
    """Where a run reports what it does (the CLI shows it as bars or log lines).

    Called from the worker threads: implementations must be thread-safe and quick.
    """

    def run_started(self, total_entries: int) -> None: ...

    def entry_started(self, entry: Entry, total_bytes: int) -> None: ...

    def entry_progress(self, entry: Entry, bytes_delta: int) -> None: ...

    def entry_finished(self, entry: Entry, result: EntryResult) -> None: ...


class NullObserver:
    def run_started(self, total_entries: int) -> None:
        return None

    def entry_started(self, entry: Entry, total_bytes: int) -> None:
        return None

    def entry_progress(self, entry: Entry, bytes_delta: int) -> None:
        return None

    def entry_finished(self, entry: Entry, result: EntryResult) -> None:
        return None


@dataclass(frozen=True)
class PlannedEntry:
    """An entry with its identity, what would be sent, and the journal's decision."""

    entry: Entry
    meta: EntryMeta
    decision: Decision
    fence: Claim | None = None
    """A shared run's claim on the entry: every journal write for it is checked against it."""

    @property
    def may_init(self) -> bool:
        """Whether posting it may send an init: a fresh attempt, or a transfer to resume
        (whose upload URL may have died before its last chunk, which means a new init)."""
        point = self.decision.resume_point
        if self.decision.action is Action.START:
            return True
        return (
            self.decision.action is Action.RESUME
            and point is not None
            and point.state is UploadState.UPLOADING
        )


@dataclass
class _UserState:
    """What one user's worker learns as it goes (one thread per user: no locking needed)."""

    token_checked: bool = False
    creator_asked: bool = False
    creator: CreatorInfo | None = None
    creator_skipped: bool = False  # dry run: the token would need a refresh first
    note: str | None = None
    # The user's tokens cannot be used: every remaining entry gets this.
    blocked: ErrorInfo | None = None
    blocked_status: str = "failed"
    # TikTok will not take a new post from the user now: every remaining new entry gets this.
    posting_blocked: ErrorInfo | None = None
    posting_status: str = "deferred"
    # Dry run: inits the plan would add, per mode, so the caps are predicted as a run meets them.
    planned_inits: Counter[str] = field(default_factory=Counter)


_Scope = Literal["user", "posting"]


@dataclass
class Run:
    """One run's collaborators; :meth:`execute` does the work.

    ``clock`` should be the :class:`InterruptibleClock` the client and uploader sleep on (the
    runner wires them); ``chunk_size`` is the uploader's preferred chunk size, for the plan a
    dry run shows.
    """

    manifest: Manifest
    journal: Journal
    tokens: TokenStates
    client: TikTokClient
    uploader: Uploader
    budget: RetryBudget
    clock: Clock
    options: RunOptions = field(default_factory=RunOptions)
    observer: RunObserver = field(default_factory=NullObserver)
    stop: threading.Event = field(default_factory=threading.Event)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    chunk_size: int = DEFAULT_CHUNK
    queue: WorkQueue | None = None
    """A shared store's work queue: entries are claimed from it, so workers on several machines
    drain one run exactly once (see :meth:`_drain`). None: this run posts every due entry."""
    _store_failure: ErrorInfo | None = field(default=None, init=False, repr=False)
    _unsafe: UnsafeConnectionError | None = field(default=None, init=False, repr=False)
    _lost: dict[int, EntryResult] = field(default_factory=dict, init=False, repr=False)
    """Shared run: entries another worker took over from this one, by manifest index."""

    def execute(self) -> RunReport:
        """Post what is due; the report of every selected entry, in manifest order.

        Ctrl-C (KeyboardInterrupt in the calling thread) at any point ends the run with a
        report marked ``interrupted``; it is never raised from here. An
        UnsafeConnectionError (plain HTTP off the machine, a certificate that does not verify)
        stops the run like a broken store, then is raised once every worker has stopped.
        """
        started = datetime.fromtimestamp(self.clock.time(), UTC)
        selected = self._selected()
        results: dict[int, EntryResult] = {}
        interrupted = False
        try:
            planned = self.plan(selected)
            self.observer.run_started(len(planned))
            if self.queue is not None:
                interrupted = self._drain(self.queue, planned, results)
                planned = []  # each one claimed and done here, or reported from the journal
            due: dict[str, list[PlannedEntry]] = {}
            for item in planned:
                settled = self._settled_without_network(item)
                if settled is not None:
                    results[item.entry.index] = settled
                    self.observer.entry_finished(item.entry, settled)
                else:
                    due.setdefault(item.entry.user_id, []).append(item)
            if due:
                interrupted = self._post_all(due, results)
        except KeyboardInterrupt:
            # Interrupted while planning (fingerprints, journal reads): nothing was sent.
            interrupted = True
            self.stop.set()
        for entry in selected:
            if entry.index not in results:
                results[entry.index] = _unstarted_result(entry, _INTERRUPTED)
        if self._unsafe is not None:
            raise self._unsafe
        finished = datetime.fromtimestamp(self.clock.time(), UTC)
        return RunReport(
            run_id=self.run_id,
            started_at=started,
            finished_at=finished,
            manifest=str(self.manifest.path),
            dry_run=self.options.dry_run,
            interrupted=interrupted or self.stop.is_set(),
            entries=tuple(results[entry.index] for entry in selected),
        )

    # -- planning ------------------------------------------------------------------------------

    def _selected(self) -> list[Entry]:
        entries: Sequence[Entry] = self.manifest.entries
        if self.options.only_users:
            entries = [e for e in entries if e.user_id in self.options.only_users]
        if self.options.limit is not None:
            entries = entries[: self.options.limit]
        return list(entries)

    def plan(self, entries: Sequence[Entry] | None = None) -> list[PlannedEntry]:
        """Identity and journal decision for each selected entry (no network, no writes)."""
        planned = []
        chosen = self._selected() if entries is None else entries
        for entry, key in zip(chosen, journal_keys(chosen, self.journal), strict=True):
            fingerprint = key.fingerprint
            if key.note is not None:
                log.info("%s: %s", entry.location, key.note)
            meta = EntryMeta(
                identity=key.identity,
                entry_id=entry.id,
                user_id=entry.user_id,
                mode=str(entry.mode),
                kind=_kind(entry),
                source=_source_text(entry),
                request_digest=_request_digest(entry, fingerprint),
                fingerprint=fingerprint,
            )
            decision = decide(
                self.journal.get(meta.identity),
                request_digest=meta.request_digest,
                fingerprint=fingerprint,
                retry_failed=self.options.retry_failed,
            )
            planned.append(PlannedEntry(entry, meta, decision))
        return planned

    def _settled_without_network(self, item: PlannedEntry) -> EntryResult | None:
        entry, decision = item.entry, item.decision
        record = decision.record
        if decision.action is Action.ALREADY_DONE:
            assert record is not None
            return self._result(entry, item.meta, "already_done", record=record)
        if decision.action is Action.REPEAT_FAILURE:
            assert record is not None
            return self._result(
                entry, item.meta, "failed", record=record, error=_stored_error(record)
            )
        if decision.action is Action.UNCERTAIN:
            assert record is not None
            if record.state is not EntryState.UNCERTAIN and not self.options.dry_run:
                self.journal.record(
                    item.meta.identity, entry.user_id, Uncertain(_LOST_INIT), fence=item.fence
                )
                record = self.journal.get(item.meta.identity) or record
            return self._result(
                entry,
                item.meta,
                "uncertain",
                record=record,
                error=ErrorInfo(
                    "uncertain",
                    record.error_message or _LOST_INIT,
                    record.error_log_id,
                    retryable=False,
                    hint="check the creator's profile; if it did not post, give the entry a new "
                    "`id` in the manifest and run again",
                ),
            )
        if (
            decision.action is Action.START
            and entry.publish_at is not None
            and entry.publish_at.timestamp() > self.clock.time()
        ):
            return self._result(
                entry,
                item.meta,
                "deferred",
                record=record,
                deferred_until=entry.publish_at,
                error=ErrorInfo(
                    "scheduled",
                    f"publish_at is {entry.publish_at.isoformat()}",
                    retryable=True,
                    hint="a run after that time posts it",
                ),
            )
        return None

    # -- posting -------------------------------------------------------------------------------

    def _post_all(
        self, due: dict[str, list[PlannedEntry]], results: dict[int, EntryResult]
    ) -> bool:
        """Post each user's entries in a worker thread; True if interrupted."""
        lock = threading.Lock()

        def work(user_id: str) -> None:
            user = _UserState()
            for item in due[user_id]:
                result = self._post_guarded(item, user)
                with lock:
                    results[item.entry.index] = result
                self.observer.entry_finished(item.entry, result)

        pool = ThreadPoolExecutor(
            max_workers=min(self.options.jobs, len(due)), thread_name_prefix="user"
        )
        futures = [pool.submit(work, user_id) for user_id in due]
        try:
            return self._wait_for_workers(futures)
        finally:
            pool.shutdown(wait=True)

    def _wait_for_workers(self, futures: list[Future[None]]) -> bool:
        """Wait for every worker; on Ctrl-C, set ``stop`` and still wait. True if interrupted."""
        try:
            _wait_all(futures)
            return False
        except KeyboardInterrupt:
            self.stop.set()
            log.warning("interrupted: finishing the current step of each upload, then stopping")
        while True:
            try:
                _wait_all(futures)
                return True
            except KeyboardInterrupt:
                # Workers stop at their next sleep or chunk block; a second Ctrl-C cannot make
                # them stop sooner, and leaving now would lose the report.
                log.warning("still finishing the current steps (the journal is safe)")

    # -- a shared run: claim entries from the queue -----------------------------------------

    def _drain(
        self, queue: WorkQueue, planned: Sequence[PlannedEntry], results: dict[int, EntryResult]
    ) -> bool:
        """Enqueue the run's entries (once, whichever worker comes first) and work on what this
        worker can claim, user by user, until none is left; True if interrupted.

        A claimed entry is decided again from the journal (another worker may have taken it
        further before it died), then settled or posted exactly as in a run of one machine.
        Entries other workers finished are reported from the journal.
        """
        by_identity = {item.meta.identity: item for item in planned}
        queue.enqueue([(item.meta.identity, item.entry.user_id) for item in planned])
        lock = threading.Lock()
        idle_since = [self.clock.monotonic()]

        def work() -> None:
            try:
                claim_until_drained()
            except RunInterrupted:
                return
            except StoreError as exc:
                self._store_failed(exc)

        def claim_until_drained() -> None:
            while self._halt_reason() is None and queue.remaining() > 0:
                took = False
                for user_id in queue.waiting_users():
                    if queue.try_hold_user(user_id):
                        took = True
                        try:
                            self._drain_user(queue, user_id, by_identity, results, lock)
                        finally:
                            queue.release_user(user_id)
                        with lock:
                            idle_since[0] = self.clock.monotonic()
                        break
                if not took:
                    with lock:
                        idle = self.clock.monotonic() - idle_since[0]
                    if idle > QUEUE_IDLE_LIMIT:
                        log.warning(
                            "nothing to claim for %.0f s: leaving the rest of run %s to the "
                            "workers holding it",
                            idle,
                            queue.run_id,
                        )
                        return
                    self.clock.sleep(QUEUE_POLL)

        threads = max(1, min(self.options.jobs, len({i.entry.user_id for i in planned})))
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="claim")
        futures = [pool.submit(work) for _ in range(threads)]
        try:
            interrupted = self._wait_for_workers(futures)
        finally:
            pool.shutdown(wait=True)
        self._report_others(queue, by_identity, results)
        for index, lost in self._lost.items():
            results.setdefault(index, lost)  # not finished by the other worker yet
        return interrupted

    def _drain_user(
        self,
        queue: WorkQueue,
        user_id: str,
        by_identity: dict[str, PlannedEntry],
        results: dict[int, EntryResult],
        lock: threading.Lock,
    ) -> None:
        """Claim and do the user's entries one by one while this worker holds the user."""
        user = _UserState()
        cuts = 0
        while self._halt_reason() is None:
            try:
                claim = queue.claim(user_id)
            except ClaimLostError as exc:
                log.warning("%s", exc)
                return
            if claim is None:
                return
            planned = by_identity[claim.identity]
            try:
                decision = decide(
                    self.journal.get(claim.identity),
                    request_digest=planned.meta.request_digest,
                    fingerprint=planned.meta.fingerprint,
                    retry_failed=self.options.retry_failed,
                )
                item = PlannedEntry(planned.entry, planned.meta, decision, fence=claim)
                result = self._settled_without_network(item) or self._post_guarded(item, user)
            except ClaimLostError as exc:
                # Another worker has the entry now (this one was paused or cut off past its
                # lease): it finishes it, and the user's next entries with it.
                log.warning("%s: %s", planned.entry.location, exc)
                # Only if the entry's own claim is still this worker's (the user's hold was
                # lost): free it at once for the worker that holds the user now.
                queue.release(claim)
                with lock:
                    self._lost[planned.entry.index] = self._claim_lost(planned, claim)
                return
            except StoreError as exc:
                if isinstance(exc, StoreConnectionLost) and cuts < MAX_CONNECTION_CUTS:
                    cuts += 1
                    # The write may not have been committed: give the entry back and decide
                    # it again from the journal, as a worker taking it over would.
                    log.warning(
                        "%s: the connection to the store was cut during a journal write (%s); "
                        "deciding the entry again from the journal",
                        planned.entry.location,
                        exc,
                    )
                    queue.release(claim)
                    continue
                result = self._result(
                    planned.entry, planned.meta, "failed", error=self._store_failed(exc)
                )
            if self._halt_reason() is not None:
                # Stopping: whatever this entry reached, the journal has it; the worker that
                # claims it next decides from there.
                queue.release(claim)
            elif not queue.complete(claim, result.status):
                log.warning("%s: the claim ran out before it was done", planned.entry.location)
            with lock:
                results[planned.entry.index] = result
            self.observer.entry_finished(planned.entry, result)

    def _claim_lost(self, planned: PlannedEntry, claim: Claim) -> EntryResult:
        """An entry another worker took over from this one: not posted by this worker; its
        outcome is the other worker's (``report --run-id``)."""
        return self._result(
            planned.entry,
            planned.meta,
            "deferred",
            error=ErrorInfo(
                "claim_lost",
                f"worker {claim.worker} lost its claim on the entry (its lease ran out while it "
                "was paused or cut off); another worker took it over",
                retryable=True,
                hint=f"`tiktok-orchestrator report --run-id {claim.run_id}` shows the outcome; "
                "raise --lease if workers pause for longer than the lease",
            ),
        )

    def _report_others(
        self,
        queue: WorkQueue,
        by_identity: dict[str, PlannedEntry],
        results: dict[int, EntryResult],
    ) -> None:
        """The entries other workers finished, as the journal has them (so every worker's
        report is the whole run's)."""
        try:
            items = queue.items()
        except StoreError as exc:
            log.error("cannot read the other workers' results: %s", exc)
            return
        for queued in items:
            planned = by_identity.get(queued.identity)
            if planned is None or planned.entry.index in results or queued.result is None:
                continue
            try:
                record = self.journal.get(queued.identity)
            except StoreError:
                record = None
            error = (
                _stored_error(record)
                if record is not None and queued.result in ("failed", "uncertain", "deferred")
                else None
            )
            results[planned.entry.index] = self._result(
                planned.entry, planned.meta, queued.result, record=record, error=error
            )

    def _post_guarded(self, item: PlannedEntry, user: _UserState) -> EntryResult:
        try:
            return self._post_one(item, user)
        except RunInterrupted:
            return self._halted(item, _INTERRUPTED)
        except UnsafeConnectionError as exc:
            return self._halted(item, self._refuse(exc))
        except StoreError as exc:
            if _for_the_drain(item, exc):
                raise
            error = self._store_failed(exc)
            return self._result(item.entry, item.meta, "failed", error=error)
        except Exception as exc:  # one entry's bug must not lose the whole run's report
            log.exception("%s: unexpected error", item.entry.location)
            return self._result(
                item.entry,
                item.meta,
                "failed",
                error=ErrorInfo(
                    "unexpected_error",
                    f"{type(exc).__name__}: {exc}",
                    retryable=True,
                    hint="this is a bug in tiktok-orchestrator; please report it with the log",
                ),
            )

    def _halted(self, item: PlannedEntry, error: ErrorInfo) -> EntryResult:
        """An entry the run stopped short of: still ``processing`` if TikTok has its media
        (the next run polls it), otherwise ``deferred``."""
        record = item.decision.record
        has_media = record is not None and record.state in (
            EntryState.UPLOADED,
            EntryState.PROCESSING,
        )
        status = "processing" if has_media else "deferred"
        return self._result(item.entry, item.meta, status, record=record, error=error)

    def _halt_reason(self) -> ErrorInfo | None:
        """Why no new work may start in this run, if it must stop."""
        if self.stop.is_set():
            return _INTERRUPTED
        if self._store_failure is not None:
            return self._store_failure
        if self._unsafe is not None:
            return self._refuse(self._unsafe)
        if self.budget.exhausted:
            return _BUDGET_SPENT
        return None

    def _refuse(self, exc: UnsafeConnectionError) -> ErrorInfo:
        """A connection was refused as unsafe before a byte was sent: stop starting work (every
        later request would meet the same URL or certificate)."""
        if self._unsafe is None:
            log.error("%s; stopping the run", exc)
            self._unsafe = exc
        return ErrorInfo("unsafe_connection", str(exc), retryable=True, hint=exc.hint)

    def _store_failed(self, exc: StoreError) -> ErrorInfo:
        """The state database refused a write: stop starting work (an answer that cannot be
        journalled is how a post gets doubled)."""
        error = ErrorInfo(
            "store_error",
            f"the state database cannot be written: {exc}",
            retryable=True,
            hint=exc.hint or "free disk space or fix the home folder, then run again",
        )
        if self._store_failure is None:
            log.error("%s; stopping the run", error.message)
            self._store_failure = error
        return error

    def _post_one(self, item: PlannedEntry, user: _UserState) -> EntryResult:
        entry = item.entry
        halt = self._halt_reason()
        if halt is not None:
            return self._halted(item, halt)
        if not user.token_checked:
            user.token_checked = True
            self._guard(user, "user", lambda: self._check_token(entry.user_id, user))
        if user.blocked is not None:
            return self._pre_verdict(item, user.blocked_status, user.blocked)
        if item.may_init and not user.creator_asked:
            user.creator_asked = True
            if not user.creator_skipped:
                self._guard(user, "posting", lambda: self._query_creator(entry.user_id, user))
        halt = self._halt_reason()
        if halt is not None:
            return self._halted(item, halt)
        if item.decision.action is Action.START:
            # A transfer being resumed was checked when it started, and TikTok counted its init
            # then: only a new post is held to creator_info's verdict and the caps.
            if user.posting_blocked is not None:
                return self._pre_verdict(item, user.posting_status, user.posting_blocked)
            problem = _check_against_creator(entry, user.creator)
            if problem is not None:
                return self._pre_verdict(item, "failed", problem)
            cap = self._check_caps(entry, user)
            if cap is not None:
                error, until = cap
                return self._pre_verdict(item, "deferred", error, until=until)
        if self.options.dry_run:
            return self._dry_run_result(item, user)
        return self._upload(item, user)

    def _check_token(self, user_id: str, user: _UserState) -> None:
        if not self.options.dry_run:
            self.tokens.access_token(user_id)  # refreshes a stale token (a write)
            return
        # A dry run writes nothing: an expired token (which a refresh would replace, rotating
        # the refresh token: a write) is only reported, and creator_info is not asked with it.
        # A stale one still works for a few minutes and is used as it is.
        state = self.tokens.state(user_id)
        if state == "needs_login":
            self.tokens.access_token(user_id)  # raises NeedsLoginError with the reason
        if state == "expired":
            user.creator_skipped = True
            user.note = "the access token has expired: a real run refreshes it first"

    def _query_creator(self, user_id: str, user: _UserState) -> None:
        user.creator = self.client.creator_info(user_id)

    def _guard(self, user: _UserState, scope: _Scope, step: Callable[[], None]) -> None:
        """Run a per-user step; a failure stops that user's entries (``scope`` "user") or
        their new posts ("posting"), never the run. RunInterrupted passes through."""
        status = "failed"
        try:
            step()
            return
        except NeedsLoginError as exc:
            error = ErrorInfo("needs_login", str(exc), retryable=True, hint=exc.hint)
        except AuthError as exc:
            transient = exc.transient
            status = "deferred" if transient else "failed"
            error = ErrorInfo(
                "unavailable" if transient else "auth_error",
                str(exc),
                retryable=True,
                hint=exc.hint or "run `tiktok-orchestrator auth login` for this user",
            )
        except ApiError as exc:
            deferred = exc.defer or exc.retryable
            status = "deferred" if deferred else "failed"
            error = ErrorInfo(exc.code, str(exc), exc.log_id, deferred, exc.hint)
        except StoreError as exc:
            error = self._store_failed(exc)
        except UnsafeConnectionError:
            raise  # the run stops (see _post_guarded)
        except TransportError as exc:
            status = "deferred"
            error = ErrorInfo(
                "unavailable",
                str(exc),
                retryable=True,
                hint="TikTok could not be reached; run again later",
            )
        except OrchestratorError as exc:
            error = ErrorInfo(type(exc).__name__, str(exc), retryable=False, hint=exc.hint)
        if scope == "user":
            user.blocked, user.blocked_status = error, status
        else:
            user.posting_blocked, user.posting_status = error, status

    def _check_caps(
        self, entry: Entry, user: _UserState
    ) -> tuple[ErrorInfo, datetime | None] | None:
        """The daily direct-post cap and the pending-inbox cap, from the journal's inits."""
        now = self.clock.time()
        mode = str(entry.mode)
        times = self.journal.init_times(entry.user_id, mode, now - DAY)
        planned = user.planned_inits[mode]
        used = len(times) + planned
        if entry.mode is Mode.DIRECT:
            cap = self.options.daily_direct_cap
            code = "daily_cap"
            message = f"{used} direct posts in the last 24 h (cap {cap})"
            hint = "a later run posts it; TikTok allows about 15 direct posts a day (--daily-cap)"
        else:
            cap = self.options.pending_inbox_cap
            code = "pending_inbox_cap"
            message = f"{used} inbox shares in the last 24 h (cap {cap})"
            hint = (
                "the creator must post or delete drafts in the app; a later run sends it "
                "(--inbox-cap)"
            )
        if used < cap:
            return None
        # The window has room again once enough of the oldest inits have left it.
        leaving = used - cap
        until = datetime.fromtimestamp(times[leaving] + DAY, UTC) if leaving < len(times) else None
        if until is not None:
            message += f"; room again at {until.isoformat(timespec='seconds')}"
        return ErrorInfo(code, message, retryable=True, hint=hint), until

    def _pre_verdict(
        self,
        item: PlannedEntry,
        status: str,
        error: ErrorInfo,
        *,
        until: datetime | None = None,
    ) -> EntryResult:
        """Fail or defer an entry before any byte, journalling it unless this is a dry run.

        Only a fresh attempt is journalled: an upload TikTok already has keeps its progress,
        and is reported ``processing`` (it may well be posted; it only cannot be polled now),
        never ``failed``: a person reading "failed" might post it again.
        """
        record = item.decision.record
        if item.decision.action is not Action.START:
            if record is not None and record.state in (EntryState.UPLOADED, EntryState.PROCESSING):
                status = "processing"
        elif not self.options.dry_run:
            event: Failed | Deferred
            if status == "failed":
                event = Failed(error.code, error.message, error.retryable, error.hint, error.log_id)
            else:
                event = Deferred(
                    error.message,
                    until.timestamp() if until else None,
                    code=error.code,
                    log_id=error.log_id,
                    hint=error.hint,
                )
            self.journal.settle(item.meta, event, fence=item.fence)
        return self._result(
            item.entry,
            item.meta,
            status,
            record=record,
            error=error,
            deferred_until=until,
        )

    def _dry_run_result(self, item: PlannedEntry, user: _UserState) -> EntryResult:
        entry, decision = item.entry, item.decision
        point = decision.resume_point
        chunks = None
        if decision.action is Action.START:
            user.planned_inits[str(entry.mode)] += 1
            what = "would post"
            size = entry.media_info.size if entry.media_info else 0
            if isinstance(entry.media, FileMedia) and size:
                plan = plan_chunks(size, self.chunk_size)
                chunks = plan.total_chunk_count
                last = plan.chunk(chunks - 1).length
                what += (
                    f" {size:,} bytes whole (1 chunk)"
                    if chunks == 1
                    else f" {size:,} bytes in {chunks} chunks of {plan.chunk_size:,} "
                    f"(last {last:,})"
                )
            elif isinstance(entry.media, VideoUrlMedia):
                what += " from its URL (TikTok pulls it)"
            else:
                what += " as a photo post"
        elif point is not None and point.state is UploadState.UPLOADING:
            assert point.plan is not None
            what = (
                f"would resume upload {point.publish_id} at {point.bytes_confirmed:,} of "
                f"{point.plan.video_size:,} bytes"
            )
        else:
            publish_id = point.publish_id if point is not None else "?"
            what = f"would poll {publish_id} (TikTok has the media)"
        notes = [what]
        if user.note:
            notes.append(user.note)
        return self._result(
            entry,
            item.meta,
            "planned",
            record=decision.record,
            chunks=chunks,
            error=ErrorInfo("dry_run", "; ".join(notes), retryable=True),
        )

    def _upload(self, item: PlannedEntry, user: _UserState) -> EntryResult:
        entry, meta, decision = item.entry, item.meta, item.decision
        request = _upload_request(entry)
        sink = self.journal.sink(meta.identity, entry.user_id, item.fence)
        progress = _Progress(self, entry, item.fence)
        total = entry.media_info.size if entry.media_info else 0
        self.observer.entry_started(entry, total)
        started = self.clock.monotonic()
        fresh = decision.action is not Action.RESUME or decision.resume_point is None
        try:
            if fresh:
                # Before the first init: a URL init lost to a crash is then known as uncertain.
                self.journal.begin(meta, fence=item.fence)
                outcome = self.uploader.upload(request, sink, progress)
            else:
                assert decision.resume_point is not None
                outcome = self.uploader.resume(request, decision.resume_point, sink, progress)
        except RunInterrupted:
            return self._interrupted(item, fresh, progress.sent)
        except UnsafeConnectionError as exc:
            # Refused before its request was sent: the journal reads as if interrupted here.
            return self._interrupted(item, fresh, progress.sent, self._refuse(exc))
        except StoreError as exc:
            if _for_the_drain(item, exc):
                raise
            broken = self._store_failed(exc)
            return self._result(entry, meta, "failed", error=broken, bytes_sent=progress.sent)
        except OrchestratorError as exc:
            # The engine reports entry failures as outcomes; an error here is one it could not
            # place (the file changed under a resume, an illegal step).
            log.error("%s: %s", entry.location, exc)
            return self._result(
                entry,
                meta,
                "failed",
                error=ErrorInfo(type(exc).__name__, str(exc), retryable=False, hint=exc.hint),
                bytes_sent=progress.sent,
            )
        duration = self.clock.monotonic() - started
        status = _STATUS_OF[outcome.state]
        error = outcome.error
        # A token endpoint that failed once (``unavailable``) says nothing about the user's
        # next entry: it is tried, and refreshes again. TikTok's "post later" holds them all.
        if outcome.state is UploadState.DEFERRED and (error is None or error.code != "unavailable"):
            user.posting_blocked = error or ErrorInfo(
                "deferred", "TikTok asked to post later", retryable=True
            )
            user.posting_status = "deferred"
        if outcome.needs_login and error is not None:
            user.blocked, user.blocked_status = error, "failed"
        return self._result(
            entry,
            meta,
            status,
            record=self.journal.get(meta.identity),
            error=error,
            bytes_sent=progress.sent,
            chunks=outcome.chunks,
            attempts=outcome.inits,
            duration=duration,
            publish_id=outcome.publish_id,
            post_ids=outcome.post_ids,
        )

    def _interrupted(
        self, item: PlannedEntry, fresh: bool, sent: int, error: ErrorInfo | None = None
    ) -> EntryResult:
        """An upload unwound by RunInterrupted: say where it stands; keep the journal honest."""
        record = self.journal.get(item.meta.identity)
        if fresh and record is not None and record.state is EntryState.INITIALISING:
            # RunInterrupted comes from a sleep or a progress report, never from inside a
            # request, and a URL init is only retried after an answer that proves it was not
            # taken: so no init of this attempt was accepted. Say so, or the next run would
            # have to call the entry uncertain.
            self.journal.record(
                item.meta.identity,
                item.entry.user_id,
                Deferred("the run was interrupted before the init was sent"),
                fence=item.fence,
            )
            record = self.journal.get(item.meta.identity)
        status = "deferred"
        if record is not None and record.state in (EntryState.UPLOADED, EntryState.PROCESSING):
            status = "processing"  # TikTok has the media; the next run polls it
        return self._result(
            item.entry,
            item.meta,
            status,
            record=record,
            error=error or _INTERRUPTED,
            bytes_sent=sent,
        )

    def _result(
        self,
        entry: Entry,
        meta: EntryMeta,
        status: str,
        *,
        record: JournalRecord | None = None,
        error: ErrorInfo | None = None,
        bytes_sent: int = 0,
        chunks: int | None = None,
        attempts: int = 0,
        duration: float = 0.0,
        publish_id: str | None = None,
        post_ids: tuple[str, ...] = (),
        deferred_until: datetime | None = None,
    ) -> EntryResult:
        if record is not None:
            publish_id = publish_id or record.publish_id
            post_ids = post_ids or record.post_ids
            if chunks is None and record.plan is not None:
                chunks = record.plan.total_chunk_count
        return EntryResult(
            index=entry.index,
            id=entry.id or meta.identity,
            user_id=entry.user_id,
            source=meta.source,
            mode=str(entry.mode),
            status=status,
            publish_id=publish_id,
            post_ids=post_ids,
            bytes=bytes_sent,
            chunks=chunks or 0,
            attempts=attempts,
            duration_s=duration,
            deferred_until=deferred_until,
            error=error,
        )


_LOST_INIT = (
    "an init was sent before an earlier run stopped and its answer was lost; it may have posted"
)

_INTERRUPTED = ErrorInfo(
    "interrupted", "the run was interrupted", retryable=True, hint="run again to go on"
)
_BUDGET_SPENT = ErrorInfo(
    "retry_budget_spent",
    "the run's retry budget is spent: TikTok keeps failing",
    retryable=True,
    hint="check TikTok's status and your network, then run again",
)

_STATUS_OF = {
    UploadState.PLANNED: "failed",
    UploadState.UPLOADING: "deferred",
    UploadState.UPLOADED: "processing",
    UploadState.PROCESSING: "processing",
    UploadState.PUBLISHED: "published",
    UploadState.SENT_TO_INBOX: "sent_to_inbox",
    UploadState.FAILED: "failed",
    UploadState.DEFERRED: "deferred",
    UploadState.UNCERTAIN: "uncertain",
}


def _for_the_drain(item: PlannedEntry, exc: StoreError) -> bool:
    """Whether a store error on a claimed entry is the shared drain's to handle: a claim lost
    to another worker, or a connection cut under a journal write (the entry is given back and
    decided again from the journal), rather than a store that cannot be written."""
    return item.fence is not None and isinstance(exc, ClaimLostError | StoreConnectionLost)


def _wait_all(futures: Sequence[Future[None]]) -> None:
    """Wait for every worker, in slices so that KeyboardInterrupt reaches this thread."""
    for future in futures:
        while True:
            try:
                future.result(timeout=_WAIT_SLICE)
                break
            except TimeoutError:
                continue


class _Progress:
    """The engine's progress subscriber: counts bytes, tells the observer, honours ``stop``
    and, in a shared run, stops a chunk as soon as the heartbeat finds the claim lost."""

    def __init__(self, run: Run, entry: Entry, claim: Claim | None = None) -> None:
        self._run = run
        self._entry = entry
        self._claim = claim
        self.sent = 0

    def on_progress(self, bytes_delta: int) -> None:
        self.sent = max(0, self.sent + bytes_delta)
        self._run.observer.entry_progress(self._entry, bytes_delta)
        if self._run.stop.is_set():
            raise RunInterrupted()
        queue, claim = self._run.queue, self._claim
        if queue is not None and claim is not None and queue.is_lost(claim):
            raise ClaimLostError(
                f"{self._entry.location}: the heartbeat found this worker's claim taken over",
                hint="another worker finishes the entry",
            )


def _check_against_creator(entry: Entry, creator: CreatorInfo | None) -> ErrorInfo | None:
    """TikTok's integration rules: honour the creator's options before sending a byte."""
    return None if creator is None else creator_problems(entry, creator)


def _unstarted_result(entry: Entry, error: ErrorInfo) -> EntryResult:
    """The result of an entry the run never reached (interrupted while planning)."""
    return EntryResult(
        index=entry.index,
        id=entry.id,
        user_id=entry.user_id,
        source=_source_text(entry),
        mode=str(entry.mode),
        status="deferred",
        error=error,
    )


def _kind(entry: Entry) -> str:
    if isinstance(entry.media, FileMedia):
        return "file"
    if isinstance(entry.media, VideoUrlMedia):
        return "video_url"
    return "photo"


@dataclass(frozen=True)
class JournalKey:
    """Which journal record an entry is: its ``identity`` and media ``fingerprint``, and a
    ``note`` when that is not its own key (it adopted an earlier form's record, or its file is
    gone and the record says it was posted)."""

    identity: str
    fingerprint: str
    note: str | None = None


def journal_keys(entries: Sequence[Entry], journal: Journal) -> list[JournalKey]:
    """The journal identity of each entry (reads only).

    An entry is its ``id`` (or, without one, its content identity: user, mode, media
    fingerprint). An ``id`` new to the journal whose content identity holds a record adopts
    that record — the same post given an id later is not posted again — unless another entry
    of the manifest is that record already (an entry without an id, or an earlier id). A file
    that is gone is matched to its published record by id, or by user, mode and path.
    """
    # Many entries may share one video (one clip to several accounts): hash each file once.
    fingerprints: dict[object, str] = {}
    for entry in entries:
        if entry.media not in fingerprints:
            try:
                fingerprints[entry.media] = media_fingerprint(entry.media)
            except MediaError as exc:
                # The upload reports the file's problem; the identity must still be stable.
                fingerprints[entry.media] = f"unreadable:{exc}"
    # Records that entries without an id are, by their own key: never adopted by an id.
    taken = {
        entry_identity(entry, fingerprints[entry.media]) for entry in entries if entry.id is None
    }
    keys = []
    for entry in entries:
        fingerprint = fingerprints[entry.media]
        own = entry_identity(entry, fingerprint)
        record: JournalRecord | None = None
        note = None
        if fingerprint.startswith("unreadable:") and isinstance(entry.media, FileMedia):
            record = journal.done_without_file(
                entry_id=entry.id,
                user_id=entry.user_id,
                mode=str(entry.mode),
                source=_source_text(entry),
            )
            if record is not None:
                note = f"the video file is gone; already done ({record.state.value} earlier)"
        elif entry.id is not None and journal.get(entry.id) is None:
            record = journal.by_entry_id(entry.id)
            if record is None:
                content = content_identity(entry.user_id, entry.mode, fingerprint)
                if content not in taken:
                    record = journal.adoptable(content, entry.id)
            if record is not None and record.identity in taken:
                record = None
            if record is not None:
                done = "already done" if record.state in DONE_STATES else record.state.value
                note = f"{done} (adopted the journal record of {record.identity})"
        if record is None:
            keys.append(JournalKey(own, fingerprint))
            continue
        taken.add(record.identity)
        keys.append(JournalKey(record.identity, fingerprint, note))
    return keys


def posted_check(journal: Journal) -> Callable[[str | None, str, Mode, Path], bool]:
    """Manifest validation's question to the journal about a video file that is gone: is
    that entry posted already (then the file is not needed)?"""

    def posted(entry_id: str | None, user_id: str, mode: Mode, path: Path) -> bool:
        record = journal.done_without_file(
            entry_id=entry_id, user_id=user_id, mode=str(mode), source=_display_path(path)
        )
        return record is not None

    return posted


def _source_text(entry: Entry) -> str:
    media = entry.media
    if isinstance(media, FileMedia):
        return _display_path(media.path)
    if isinstance(media, VideoUrlMedia):
        return media.url
    return " ".join(media.urls)


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _request_digest(entry: Entry, fingerprint: str) -> str:
    """What would be sent, fingerprinted: a change lets a permanent failure be retried."""
    material = {
        "fingerprint": fingerprint,
        "mode": str(entry.mode),
        "caption": entry.caption,
        "title": entry.title,
        "privacy_level": str(entry.privacy_level),
        "disable_comment": entry.disable_comment,
        "disable_duet": entry.disable_duet,
        "disable_stitch": entry.disable_stitch,
        "is_aigc": entry.is_aigc,
        "brand_content_toggle": entry.brand_content_toggle,
        "brand_organic_toggle": entry.brand_organic_toggle,
        "video_cover_timestamp_ms": entry.video_cover_timestamp_ms,
        "auto_add_music": entry.auto_add_music,
        "cover_index": entry.media.cover_index if isinstance(entry.media, PhotoMedia) else None,
    }
    encoded = json.dumps(material, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def _stored_error(record: JournalRecord) -> ErrorInfo:
    return ErrorInfo(
        record.error_code or "failed",
        record.error_message or "failed in an earlier run",
        record.error_log_id,
        bool(record.error_retryable),
        (record.error_hint + "; " if record.error_hint else "")
        + "fix the entry (a changed entry is tried again) or run with --retry-failed",
    )


def _upload_request(entry: Entry) -> UploadRequest:
    media = entry.media
    source: FileSource | UrlSource | PhotoSource
    if isinstance(media, FileMedia):
        assert entry.media_info is not None, "a validated file entry has been probed"
        source = FileSource(media.path, entry.media_info.size, str(entry.media_info.content_type))
    else:
        source = media  # a URL or photo source is what the init sends, as the manifest has it
    if entry.is_photo:
        post_info = PostInfo(
            privacy_level=str(entry.privacy_level),
            title=entry.title or "",
            description=entry.caption,
            disable_comment=entry.disable_comment,
            brand_content_toggle=entry.brand_content_toggle,
            brand_organic_toggle=entry.brand_organic_toggle,
            auto_add_music=entry.auto_add_music,
        )
    else:
        post_info = PostInfo(
            privacy_level=str(entry.privacy_level),
            title=entry.caption,
            disable_comment=entry.disable_comment,
            disable_duet=entry.disable_duet,
            disable_stitch=entry.disable_stitch,
            video_cover_timestamp_ms=entry.video_cover_timestamp_ms,
            brand_content_toggle=entry.brand_content_toggle,
            brand_organic_toggle=entry.brand_organic_toggle,
            is_aigc=entry.is_aigc,
        )
    mode = PostMode.DIRECT if entry.mode is Mode.DIRECT else PostMode.INBOX
    return UploadRequest(entry.user_id, mode, source, post_info, label=entry.location)
