"""Posting one entry of a user: the run's halt check, the per-user gates, then the dry-run plan
or the upload engine with the entry's journal as its sink.

Called from a user's worker thread. Every failure becomes the entry's result (one entry's bug
must not lose the run's report), except :class:`ClaimLostError` and a connection cut under a
journal write in a shared run, which are the drain's to handle (see ``run.Run._drain``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.clock import Clock, RunInterrupted
from orchestrator.errors import (
    ClaimLostError,
    OrchestratorError,
    StoreConnectionLost,
    StoreError,
    UnsafeConnectionError,
)
from orchestrator.manifest import Entry
from orchestrator.outcomes import EntryStatus, ErrorInfo
from orchestrator.report import EntryResult
from orchestrator.rerun import Action
from orchestrator.retry import RetryBudget
from orchestrator.review import apply_consent, entry_for_checks, needs_review, review_item
from orchestrator.scheduler.gates import (
    DAY,
    CapVerdict,
    TokenStates,
    UserState,
    cap_verdict,
    check_token,
    creator_verdict,
    guard,
    query_creator,
)
from orchestrator.scheduler.observer import RunObserver
from orchestrator.scheduler.plan import PlannedEntry, RunOptions
from orchestrator.scheduler.requests import upload_request
from orchestrator.scheduler.results import (
    BUDGET_SPENT,
    INTERRUPTED,
    STATUS_OF,
    dry_run_result,
    entry_result,
    halted_result,
    interrupted_result,
)
from orchestrator.store.journal import EntryState, Journal
from orchestrator.store.review import ReviewStore
from orchestrator.tiktok.chunks import DEFAULT_CHUNK
from orchestrator.tiktok.client import TikTokClient
from orchestrator.upload import Deferred, Failed, Uploader, UploadState

if TYPE_CHECKING:
    from orchestrator.store.queue import Claim, WorkQueue

log = logging.getLogger(__name__)

AWAITING_REVIEW = ErrorInfo(
    "awaiting_review",
    "waits for its creator's confirmation on the review page",
    retryable=True,
    hint="send the creator a review link (serve: the Reviews page, or POST "
    "/api/v1/reviews); a run after they press Post posts it with their settings",
)


@dataclass
class Halt:
    """Why no new work may start in the run, shared by all of its workers: interrupted (``stop``
    set), a store that cannot be written, a connection refused as unsafe, a spent retry budget.
    """

    stop: threading.Event
    budget: RetryBudget
    store_failure: ErrorInfo | None = None
    unsafe: UnsafeConnectionError | None = None

    def reason(self) -> ErrorInfo | None:
        """Why no new work may start in this run, if it must stop."""
        if self.stop.is_set():
            return INTERRUPTED
        if self.store_failure is not None:
            return self.store_failure
        if self.unsafe is not None:
            return self.refuse(self.unsafe)
        if self.budget.exhausted:
            return BUDGET_SPENT
        return None

    def refuse(self, exc: UnsafeConnectionError) -> ErrorInfo:
        """A connection was refused as unsafe before a byte was sent: stop starting work (every
        later request would meet the same URL or certificate)."""
        if self.unsafe is None:
            log.error("%s; stopping the run", exc)
            self.unsafe = exc
        return ErrorInfo("unsafe_connection", str(exc), retryable=True, hint=exc.hint)

    def store_failed(self, exc: StoreError) -> ErrorInfo:
        """The state database refused a write: stop starting work (an answer that cannot be
        journalled is how a post gets doubled)."""
        error = ErrorInfo(
            "store_error",
            f"the state database cannot be written: {exc}",
            retryable=True,
            hint=exc.hint or "free disk space or fix the home folder, then run again",
        )
        if self.store_failure is None:
            log.error("%s; stopping the run", error.message)
            self.store_failure = error
        return error


def for_the_drain(item: PlannedEntry, exc: StoreError) -> bool:
    """Whether a store error on a claimed entry is the shared drain's to handle: a claim lost
    to another worker, or a connection cut under a journal write (the entry is given back and
    decided again from the journal), rather than a store that cannot be written."""
    return item.fence is not None and isinstance(exc, ClaimLostError | StoreConnectionLost)


@dataclass
class EntryPoster:
    """Posts one entry at a time for the run's workers (see the module docstring)."""

    journal: Journal
    tokens: TokenStates
    client: TikTokClient
    uploader: Uploader
    clock: Clock
    options: RunOptions
    observer: RunObserver
    halt: Halt
    queue: WorkQueue | None = None
    chunk_size: int = DEFAULT_CHUNK

    def post(self, item: PlannedEntry, user: UserState) -> EntryResult:
        """The entry's result, whatever happens (see the module docstring)."""
        try:
            return self._post_one(item, user)
        except RunInterrupted:
            return halted_result(item.entry, item.meta, item.decision.record, INTERRUPTED)
        except UnsafeConnectionError as exc:
            error = self.halt.refuse(exc)
            return halted_result(item.entry, item.meta, item.decision.record, error)
        except StoreError as exc:
            if for_the_drain(item, exc):
                raise
            error = self.halt.store_failed(exc)
            return entry_result(item.entry, item.meta, EntryStatus.FAILED, error=error)
        except Exception as exc:  # one entry's bug must not lose the whole run's report
            log.exception("%s: unexpected error", item.entry.location)
            return entry_result(
                item.entry,
                item.meta,
                EntryStatus.FAILED,
                error=ErrorInfo(
                    "unexpected_error",
                    f"{type(exc).__name__}: {exc}",
                    retryable=True,
                    hint="this is a bug in tiktok-orchestrator; please report it with the log",
                ),
            )

    def _post_one(self, item: PlannedEntry, user: UserState) -> EntryResult:
        entry = item.entry
        halt = self.halt.reason()
        if halt is not None:
            return halted_result(entry, item.meta, item.decision.record, halt)
        if not user.token_checked:
            user.token_checked = True
            guard(
                user,
                "user",
                lambda: check_token(self.tokens, entry.user_id, user, dry_run=self.options.dry_run),
                self.halt.store_failed,
            )
        if user.blocked is not None:
            return self._pre_verdict(item, user.blocked_status, user.blocked)
        if item.may_init and not user.creator_asked:
            user.creator_asked = True
            if not user.creator_skipped:
                guard(
                    user,
                    "posting",
                    lambda: query_creator(self.client, entry.user_id, user),
                    self.halt.store_failed,
                )
        halt = self.halt.reason()
        if halt is not None:
            return halted_result(entry, item.meta, item.decision.record, halt)
        if item.decision.action is Action.START:
            # A transfer being resumed was checked when it started, and TikTok counted its init
            # then: only a new post is held to creator_info's verdict and the caps.
            if user.posting_blocked is not None:
                return self._pre_verdict(item, user.posting_status, user.posting_blocked)
            if needs_review(entry, review_all=self.options.review_all):
                reviewed = self._review_gate(item, user)
                if isinstance(reviewed, EntryResult):
                    return reviewed
                item, entry = reviewed, reviewed.entry
            problem = creator_verdict(entry, user.creator)
            if problem is not None:
                return self._pre_verdict(item, EntryStatus.FAILED, problem)
            cap = self._check_caps(entry, user)
            if cap is not None:
                return self._pre_verdict(item, EntryStatus.DEFERRED, cap.error, cap=cap)
        if self.options.dry_run:
            if item.decision.action is Action.START:
                user.planned_inits[str(entry.mode)] += 1
            return dry_run_result(
                entry, item.meta, item.decision, chunk_size=self.chunk_size, note=user.note
            )
        return self._upload(item, user)

    def _review_gate(self, item: PlannedEntry, user: UserState) -> PlannedEntry | EntryResult:
        """A post for its creator's review: with their consent to this media, the entry as
        they confirmed it (their settings win); without, it waits, journalled
        ``awaiting_review`` once creator_info finds nothing they could not fix on the page."""
        reviews = ReviewStore(self.journal.database, clock=self.clock)
        consent = reviews.consent(item.meta.identity)
        if consent is not None and consent.media_digest == item.meta.fingerprint:
            return dataclasses.replace(item, entry=apply_consent(item.entry, consent))
        creator = user.creator
        checked = item.entry if creator is None else entry_for_checks(item.entry, creator)
        problem = creator_verdict(checked, creator)
        if problem is not None:
            return self._pre_verdict(item, EntryStatus.FAILED, problem)
        if not self.options.dry_run:
            reviews.await_review(item.meta, review_item(item.entry, item.meta), fence=item.fence)
        return entry_result(
            item.entry, item.meta, EntryStatus.AWAITING_REVIEW, error=AWAITING_REVIEW
        )

    def _check_caps(self, entry: Entry, user: UserState) -> CapVerdict | None:
        """The caps' verdict from the inits the journal recorded over the last 24 h."""
        now = self.clock.time()
        mode = str(entry.mode)
        return cap_verdict(
            entry.mode,
            self.journal.init_times(entry.user_id, mode, now - DAY),
            now=now,
            planned=user.planned_inits[mode],
            daily_direct_cap=self.options.daily_direct_cap,
            pending_inbox_cap=self.options.pending_inbox_cap,
        )

    def _pre_verdict(
        self,
        item: PlannedEntry,
        status: EntryStatus,
        error: ErrorInfo,
        *,
        cap: CapVerdict | None = None,
    ) -> EntryResult:
        """Fail or defer an entry before any byte, journalling it unless this is a dry run.

        Only a fresh attempt is journalled: an upload TikTok already has keeps its progress,
        and is reported ``processing`` (it may well be posted; it only cannot be polled now),
        never ``failed``: a person reading "failed" might post it again.
        """
        until = cap.until if cap is not None else None
        record = item.decision.record
        if item.decision.action is not Action.START:
            if record is not None and record.state in (EntryState.UPLOADED, EntryState.PROCESSING):
                status = EntryStatus.PROCESSING
        elif not self.options.dry_run:
            event: Failed | Deferred
            if status is EntryStatus.FAILED:
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
        return entry_result(
            item.entry,
            item.meta,
            status,
            record=record,
            error=error,
            deferred_until=until,
        )

    def _upload(self, item: PlannedEntry, user: UserState) -> EntryResult:
        entry, meta, decision = item.entry, item.meta, item.decision
        request = upload_request(entry)
        sink = self.journal.sink(meta.identity, entry.user_id, item.fence)
        progress = _Progress(self, entry, item.fence)
        total = entry.media_info.size if entry.media_info else 0
        point = decision.resume_point
        # Every byte sent in an earlier run: this run only asks TikTok how it went.
        polling = point is not None and point.state is not UploadState.UPLOADING
        self.observer.entry_started(entry, 0 if polling else total, polling=polling)
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
            return interrupted_result(
                self.journal, entry, meta, fence=item.fence, fresh=fresh, sent=progress.sent
            )
        except UnsafeConnectionError as exc:
            # Refused before its request was sent: the journal reads as if interrupted here.
            return interrupted_result(
                self.journal,
                entry,
                meta,
                fence=item.fence,
                fresh=fresh,
                sent=progress.sent,
                error=self.halt.refuse(exc),
            )
        except StoreError as exc:
            if for_the_drain(item, exc):
                raise
            broken = self.halt.store_failed(exc)
            return entry_result(
                entry, meta, EntryStatus.FAILED, error=broken, bytes_sent=progress.sent
            )
        except OrchestratorError as exc:
            # The engine reports entry failures as outcomes; an error here is one it could not
            # place (the file changed under a resume, an illegal step).
            log.error("%s: %s", entry.location, exc)
            return entry_result(
                entry,
                meta,
                EntryStatus.FAILED,
                error=ErrorInfo(type(exc).__name__, str(exc), retryable=False, hint=exc.hint),
                bytes_sent=progress.sent,
            )
        duration = self.clock.monotonic() - started
        status = STATUS_OF[outcome.state]
        error = outcome.error
        # A token endpoint that failed once (``unavailable``) says nothing about the user's
        # next entry: it is tried, and refreshes again. TikTok's "post later" holds them all.
        if outcome.state is UploadState.DEFERRED and (error is None or error.code != "unavailable"):
            user.posting_blocked = error or ErrorInfo(
                "deferred", "TikTok asked to post later", retryable=True
            )
            user.posting_status = EntryStatus.DEFERRED
        if outcome.needs_login and error is not None:
            user.blocked, user.blocked_status = error, EntryStatus.FAILED
        return entry_result(
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


class _Progress:
    """The engine's progress subscriber: counts bytes, tells the observer, honours ``stop``
    and, in a shared run, stops a chunk as soon as the heartbeat finds the claim lost."""

    def __init__(self, poster: EntryPoster, entry: Entry, claim: Claim | None = None) -> None:
        self._poster = poster
        self._entry = entry
        self._claim = claim
        self.sent = 0

    def on_progress(self, bytes_delta: int) -> None:
        self.sent = max(0, self.sent + bytes_delta)
        self._poster.observer.entry_progress(self._entry, bytes_delta)
        if self._poster.halt.stop.is_set():
            raise RunInterrupted()
        queue, claim = self._poster.queue, self._claim
        if queue is not None and claim is not None and queue.is_lost(claim):
            raise ClaimLostError(
                f"{self._entry.location}: the heartbeat found this worker's claim taken over",
                hint="another worker finishes the entry",
            )
