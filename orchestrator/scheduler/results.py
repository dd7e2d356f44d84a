"""An entry's line in the run report (:class:`~orchestrator.report.EntryResult`), built from what
the run and the journal know of it: posted, failed, deferred, interrupted, planned.

Everything here builds results; the only write is :func:`interrupted_result`'s, which keeps the
journal honest about an attempt unwound before its init was sent. No network, no threads.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Final

from orchestrator.errors import StoreError
from orchestrator.manifest import Entry
from orchestrator.media import FileMedia, VideoUrlMedia
from orchestrator.outcomes import EntryStatus, ErrorInfo
from orchestrator.report import EntryResult
from orchestrator.rerun import Action, Decision
from orchestrator.scheduler.requests import source_text
from orchestrator.store.journal import (
    EntryMeta,
    EntryState,
    Journal,
    JournalRecord,
)
from orchestrator.tiktok.chunks import plan_chunks
from orchestrator.upload import Deferred, UploadState

if TYPE_CHECKING:
    from orchestrator.scheduler.plan import PlannedEntry
    from orchestrator.store.queue import Claim, WorkQueue

log = logging.getLogger(__name__)

LOST_INIT = (
    "an init was sent before an earlier run stopped and its answer was lost; it may have posted"
)

INTERRUPTED = ErrorInfo(
    "interrupted", "the run was interrupted", retryable=True, hint="run again to go on"
)
BUDGET_SPENT = ErrorInfo(
    "retry_budget_spent",
    "the run's retry budget is spent: TikTok keeps failing",
    retryable=True,
    hint="check TikTok's status and your network, then run again",
)

STATUS_OF: Final[dict[UploadState, EntryStatus]] = {
    UploadState.PLANNED: EntryStatus.FAILED,
    UploadState.UPLOADING: EntryStatus.DEFERRED,
    UploadState.UPLOADED: EntryStatus.PROCESSING,
    UploadState.PROCESSING: EntryStatus.PROCESSING,
    UploadState.PUBLISHED: EntryStatus.PUBLISHED,
    UploadState.SENT_TO_INBOX: EntryStatus.SENT_TO_INBOX,
    UploadState.FAILED: EntryStatus.FAILED,
    UploadState.DEFERRED: EntryStatus.DEFERRED,
    UploadState.UNCERTAIN: EntryStatus.UNCERTAIN,
}
"""The report status of the state an upload ended in."""

_HAS_MEDIA = (EntryState.UPLOADED, EntryState.PROCESSING)
"""Journal states in which TikTok has the media: the entry is ``processing``, never ``failed``."""


def entry_result(
    entry: Entry,
    meta: EntryMeta,
    status: EntryStatus,
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
    """The entry's result; what this run did not learn is taken from its journal ``record``."""
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


def unstarted_result(entry: Entry, error: ErrorInfo) -> EntryResult:
    """The result of an entry the run never reached (interrupted while planning)."""
    return EntryResult(
        index=entry.index,
        id=entry.id,
        user_id=entry.user_id,
        source=source_text(entry),
        mode=str(entry.mode),
        status=EntryStatus.DEFERRED,
        error=error,
    )


def stored_error(record: JournalRecord) -> ErrorInfo:
    """The error an earlier run journalled, with how to get the entry tried again."""
    return ErrorInfo(
        record.error_code or "failed",
        record.error_message or "failed in an earlier run",
        record.error_log_id,
        bool(record.error_retryable),
        (record.error_hint + "; " if record.error_hint else "")
        + "fix the entry (a changed entry is tried again) or run with --retry-failed",
    )


def halted_result(
    entry: Entry, meta: EntryMeta, record: JournalRecord | None, error: ErrorInfo
) -> EntryResult:
    """An entry the run stopped short of: still ``processing`` if TikTok has its media
    (the next run polls it), otherwise ``deferred``."""
    has_media = record is not None and record.state in _HAS_MEDIA
    status = EntryStatus.PROCESSING if has_media else EntryStatus.DEFERRED
    return entry_result(entry, meta, status, record=record, error=error)


def interrupted_result(
    journal: Journal,
    entry: Entry,
    meta: EntryMeta,
    *,
    fence: Claim | None,
    fresh: bool,
    sent: int,
    error: ErrorInfo | None = None,
) -> EntryResult:
    """An upload unwound by RunInterrupted: say where it stands; keep the journal honest."""
    record = journal.get(meta.identity)
    if fresh and record is not None and record.state is EntryState.INITIALISING:
        # RunInterrupted comes from a sleep or a progress report, never from inside a
        # request, and a URL init is only retried after an answer that proves it was not
        # taken: so no init of this attempt was accepted. Say so, or the next run would
        # have to call the entry uncertain.
        journal.record(
            meta.identity,
            entry.user_id,
            Deferred("the run was interrupted before the init was sent"),
            fence=fence,
        )
        record = journal.get(meta.identity)
    status = EntryStatus.DEFERRED
    if record is not None and record.state in _HAS_MEDIA:
        status = EntryStatus.PROCESSING  # TikTok has the media; the next run polls it
    return entry_result(
        entry, meta, status, record=record, error=error or INTERRUPTED, bytes_sent=sent
    )


def claim_lost_result(entry: Entry, meta: EntryMeta, claim: Claim) -> EntryResult:
    """An entry another worker took over from this one: not posted by this worker; its
    outcome is the other worker's (``report --run-id``)."""
    return entry_result(
        entry,
        meta,
        EntryStatus.DEFERRED,
        error=ErrorInfo(
            "claim_lost",
            f"worker {claim.worker} lost its claim on the entry (its lease ran out while it "
            "was paused or cut off); another worker took it over",
            retryable=True,
            hint=f"`tiktok-orchestrator report --run-id {claim.run_id}` shows the outcome; "
            "raise --lease if workers pause for longer than the lease",
        ),
    )


def dry_run_result(
    entry: Entry, meta: EntryMeta, decision: Decision, *, chunk_size: int, note: str | None
) -> EntryResult:
    """What a real run would do with the entry (``planned``), said in the error's message."""
    point = decision.resume_point
    chunks = None
    if decision.action is Action.START:
        what = "would post"
        size = entry.media_info.size if entry.media_info else 0
        if isinstance(entry.media, FileMedia) and size:
            plan = plan_chunks(size, chunk_size)
            chunks = plan.total_chunk_count
            last = plan.chunk(chunks - 1).length
            what += (
                f" {size:,} bytes whole (1 chunk)"
                if chunks == 1
                else f" {size:,} bytes in {chunks} chunks of {plan.chunk_size:,} (last {last:,})"
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
    if note:
        notes.append(note)
    return entry_result(
        entry,
        meta,
        EntryStatus.PLANNED,
        record=decision.record,
        chunks=chunks,
        error=ErrorInfo("dry_run", "; ".join(notes), retryable=True),
    )


_STORED_ERROR_STATUSES: Final = frozenset(
    {EntryStatus.FAILED, EntryStatus.UNCERTAIN, EntryStatus.DEFERRED}
)
"""Statuses of another worker's entry whose error is read back from the journal."""


def others_results(
    queue: WorkQueue,
    journal: Journal,
    by_identity: dict[str, PlannedEntry],
    results: dict[int, EntryResult],
) -> None:
    """Add the entries other workers of a shared run finished to ``results``, as the journal
    has them (so every worker's report is the whole run's)."""
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
            record = journal.get(queued.identity)
        except StoreError:
            record = None
        status = EntryStatus(queued.result)
        error = (
            stored_error(record)
            if record is not None and status in _STORED_ERROR_STATUSES
            else None
        )
        results[planned.entry.index] = entry_result(
            planned.entry, planned.meta, status, record=record, error=error
        )
