"""The rerun policy (SPEC §5): what this run does with an entry, given what the journal knows.

A pure function: :func:`decide` takes the entry's :class:`~orchestrator.store.journal.JournalRecord`
(or None when the journal has never seen it) and what the manifest asks for now, and returns a
:class:`Decision`. It reads no database, sends nothing and knows no clock, so every rule is a row
in a unit-test table (``tests/unit/test_rerun.py``). The journal only reads and writes rows;
the scheduler calls ``decide(journal.get(identity), ...)``.

The rules, in the order they apply:

- never seen: START;
- published or sent to the inbox: ALREADY_DONE, whatever changed since;
- UNCERTAIN (an init whose answer was lost may have posted): UNCERTAIN, never retried, even
  with ``--retry-failed``;
- still ``initialising`` (a run died around an init): a file's lost init is an orphan upload URL
  (nothing publishes before its last byte), so START; a URL or photo init may have posted, so
  UNCERTAIN;
- FAILED: START when the failure was retryable, ``--retry-failed`` is given, or the request
  changed (another caption, another file); else REPEAT_FAILURE, without calling TikTok;
- DECLINED (its creator said "Not this one" on the review page): DECLINED, never posted;
- DEFERRED, AWAITING_REVIEW: START (a post awaiting review goes out only with its creator's
  consent: the poster checks, ``review.py``);
- UPLOADING on the same media: RESUME the transfer on its URL (even an expired one: the engine
  decides between a new init and settling by status); on other media, START if the old upload's
  last chunk was never sent, else RESUME by status (it may have completed);
- UPLOADED or PROCESSING: RESUME by polling only — TikTok has the media; never a new init.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from orchestrator.store.journal import DONE_STATES, EntryState, JournalRecord
from orchestrator.upload.events import ResumePoint, UploadState

__all__ = ["Action", "Decision", "decide"]


class Action(enum.Enum):
    """What this run does with an entry, decided from the journal (SPEC §5)."""

    START = "start"  # a fresh attempt: init and upload
    RESUME = "resume"  # go on with the recorded upload, or poll it; never a new init
    ALREADY_DONE = "already_done"  # published or sent to the inbox in an earlier run
    REPEAT_FAILURE = "repeat_failure"  # a permanent failure, reported without calling TikTok
    UNCERTAIN = "uncertain"  # an init whose answer was lost may have posted: never retried
    DECLINED = "declined"  # its creator declined it on the review page: never posted


@dataclass(frozen=True)
class Decision:
    """The action for one entry and, for RESUME, where to resume from."""

    action: Action
    record: JournalRecord | None = None
    resume_point: ResumePoint | None = None


def decide(
    record: JournalRecord | None,
    *,
    request_digest: str,
    fingerprint: str,
    retry_failed: bool = False,
) -> Decision:
    """The rerun rules of SPEC §5 for one entry.

    ``record`` is the journal's row for the entry (None: never seen); ``request_digest`` and
    ``fingerprint`` describe what the manifest asks for now (the whole request, and the media
    alone); ``retry_failed`` is ``--retry-failed``.
    """
    if record is None:
        return Decision(Action.START)
    state = record.state
    if state in DONE_STATES:
        return Decision(Action.ALREADY_DONE, record)
    if state is EntryState.UNCERTAIN:
        return Decision(Action.UNCERTAIN, record)
    if state is EntryState.INITIALISING:
        # What was being initialised decides, not what the manifest says now. A file's lost
        # init is an orphan upload URL: nothing publishes until its last byte is accepted.
        # A URL or photo init publishes when accepted: it may have posted.
        if record.kind == "file":
            return Decision(Action.START, record)
        return Decision(Action.UNCERTAIN, record)
    if state is EntryState.FAILED:
        changed = record.request_digest != request_digest
        if record.error_retryable or retry_failed or changed:
            return Decision(Action.START, record)
        return Decision(Action.REPEAT_FAILURE, record)
    if state is EntryState.DECLINED:
        return Decision(Action.DECLINED, record)
    if state in (EntryState.DEFERRED, EntryState.AWAITING_REVIEW):
        # Awaiting review: the poster posts it only with its creator's consent (review.py).
        return Decision(Action.START, record)
    assert record.publish_id is not None
    if state is EntryState.UPLOADING:
        return _resume_transfer(record, fingerprint)
    # UPLOADED or PROCESSING: TikTok has the media; only polling is allowed.
    return Decision(
        Action.RESUME,
        record,
        ResumePoint(state=UploadState(state.value), publish_id=record.publish_id),
    )


def _resume_transfer(record: JournalRecord, fingerprint: str) -> Decision:
    assert record.publish_id is not None
    plan = record.plan
    same_media = record.fingerprint is None or record.fingerprint == fingerprint
    if same_media and plan is not None and record.upload_url is not None:
        # Even with an expired URL the engine gets the whole picture: it decides between a
        # new init (the URL died before the last chunk could have gone) and settling by
        # status (the last chunk may have gone: never init again).
        return Decision(
            Action.RESUME,
            record,
            ResumePoint(
                state=UploadState.UPLOADING,
                publish_id=record.publish_id,
                upload_url=record.upload_url,
                url_expires_at=record.url_expires_at,
                plan=plan,
                bytes_confirmed=record.bytes_confirmed,
                source=record.sent_file,
                chunk_digests=record.chunk_digests,
            ),
        )
    # The file under this entry's id is no longer the one being uploaded (it was replaced):
    # its bytes must not be appended to the old file's upload.
    last_chunk = None if plan is None else plan.chunk(plan.total_chunk_count - 1)
    if last_chunk is not None and record.bytes_confirmed < last_chunk.first:
        # The old upload's last chunk was never sent: it cannot complete, so cannot publish.
        return Decision(Action.START, record)
    # The old upload's last chunk may have gone out: TikTok's status settles it.
    return Decision(
        Action.RESUME,
        record,
        ResumePoint(state=UploadState.UPLOADED, publish_id=record.publish_id),
    )
