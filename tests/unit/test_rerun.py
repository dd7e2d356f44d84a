"""The rerun policy as a table: (journal record, entry now) → decision, with no database."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from orchestrator.rerun import Action, decide
from orchestrator.secret import Secret
from orchestrator.store.journal import EntryState, JournalRecord
from orchestrator.tiktok.chunks import MIN_CHUNK, plan_chunks
from orchestrator.upload.events import FileIdentity, UploadState

PLAN = plan_chunks(2 * MIN_CHUNK + 10, MIN_CHUNK)  # two chunks: the last starts at MIN_CHUNK
URL = Secret("http://upload.example/upload/?upload_id=1&upload_token=SEKRIT")
FILE = FileIdentity(1, 2, PLAN.video_size, 3, 4)

BASE = JournalRecord(
    identity="entry-1",
    entry_id="entry-1",
    user_id="user-1",
    mode="direct",
    kind="file",
    source="a.mp4",
    request_digest="d1",
    fingerprint="f1",
    state=EntryState.INITIALISING,
    publish_id=None,
    upload_url=None,
    url_expires_at=None,
    plan=None,
    bytes_confirmed=0,
    last_status=None,
    post_ids=(),
    error_code=None,
    error_message=None,
    error_log_id=None,
    error_retryable=None,
    error_hint=None,
    deferred_until=None,
    attempts=1,
    created_at=1000.0,
    updated_at=1000.0,
    uploaded_at=None,
    finished_at=None,
)


def row(state: EntryState, **fields: Any) -> JournalRecord:
    """A journal record in ``state``; an upload's fields are filled where the state has them."""
    if state in (
        EntryState.UPLOADING,
        EntryState.UPLOADED,
        EntryState.PROCESSING,
        EntryState.PUBLISHED,
        EntryState.SENT_TO_INBOX,
    ):
        fields.setdefault("publish_id", "pub-1")
    if state is EntryState.UPLOADING:
        fields = {"upload_url": URL, "url_expires_at": 4000.0, "plan": PLAN, **fields}
    return replace(BASE, state=state, **fields)


UPLOADING = EntryState.UPLOADING
FAILED = EntryState.FAILED
# id: (record, what the entry asks now, expected action, expected resume state or None)
TABLE: dict[str, tuple[JournalRecord | None, dict[str, Any], Action, UploadState | None]] = {
    "never seen": (None, {}, Action.START, None),
    "published": (row(EntryState.PUBLISHED), {}, Action.ALREADY_DONE, None),
    "published, then caption changed and --retry-failed": (
        row(EntryState.PUBLISHED),
        {"request_digest": "d2", "retry_failed": True},
        Action.ALREADY_DONE,
        None,
    ),
    "sent to inbox": (row(EntryState.SENT_TO_INBOX), {}, Action.ALREADY_DONE, None),
    "uncertain": (row(EntryState.UNCERTAIN), {}, Action.UNCERTAIN, None),
    "awaiting review: the poster asks for the creator's consent": (
        row(EntryState.AWAITING_REVIEW),
        {},
        Action.START,
        None,
    ),
    "declined by the creator, even with --retry-failed and a new caption": (
        row(EntryState.DECLINED),
        {"request_digest": "d2", "retry_failed": True},
        Action.DECLINED,
        None,
    ),
    "uncertain with --retry-failed and a new caption": (
        row(EntryState.UNCERTAIN, kind="video_url"),
        {"retry_failed": True, "request_digest": "d2"},
        Action.UNCERTAIN,
        None,
    ),
    "initialising a file (orphan upload URL)": (
        row(EntryState.INITIALISING),
        {},
        Action.START,
        None,
    ),
    "initialising a URL video (may have posted)": (
        row(EntryState.INITIALISING, kind="video_url"),
        {},
        Action.UNCERTAIN,
        None,
    ),
    "initialising a photo post (may have posted)": (
        row(EntryState.INITIALISING, kind="photo"),
        {},
        Action.UNCERTAIN,
        None,
    ),
    "permanent failure": (
        row(FAILED, error_code="x", error_retryable=False),
        {},
        Action.REPEAT_FAILURE,
        None,
    ),
    "permanent failure, --retry-failed": (
        row(FAILED, error_retryable=False),
        {"retry_failed": True},
        Action.START,
        None,
    ),
    "permanent failure, request changed": (
        row(FAILED, error_retryable=False),
        {"request_digest": "d2"},
        Action.START,
        None,
    ),
    "permanent failure, same request, other media fingerprint only": (
        row(FAILED, error_retryable=False),
        {"fingerprint": "f2"},
        Action.REPEAT_FAILURE,
        None,
    ),
    "retryable failure": (row(FAILED, error_retryable=True), {}, Action.START, None),
    "deferred": (row(EntryState.DEFERRED, error_retryable=True), {}, Action.START, None),
    "uploading, same media": (row(UPLOADING), {}, Action.RESUME, UploadState.UPLOADING),
    "uploading, URL expired long ago (the engine decides)": (
        row(UPLOADING, url_expires_at=0.0),
        {},
        Action.RESUME,
        UploadState.UPLOADING,
    ),
    "uploading, request changed but same media": (
        row(UPLOADING),
        {"request_digest": "d2"},
        Action.RESUME,
        UploadState.UPLOADING,
    ),
    "uploading, legacy row without a fingerprint": (
        row(UPLOADING, fingerprint=None),
        {"fingerprint": "anything"},
        Action.RESUME,
        UploadState.UPLOADING,
    ),
    "uploading, file replaced before its last chunk": (
        row(UPLOADING),
        {"fingerprint": "f2"},
        Action.START,
        None,
    ),
    "uploading, file replaced with only the last chunk left": (
        row(UPLOADING, bytes_confirmed=MIN_CHUNK),
        {"fingerprint": "f2"},
        Action.RESUME,
        UploadState.UPLOADED,
    ),
    "uploading, URL forgotten, only the last chunk left": (
        row(UPLOADING, upload_url=None, bytes_confirmed=MIN_CHUNK),
        {},
        Action.RESUME,
        UploadState.UPLOADED,
    ),
    "uploaded": (
        row(EntryState.UPLOADED),
        {"request_digest": "d2", "fingerprint": "f2"},
        Action.RESUME,
        UploadState.UPLOADED,
    ),
    "processing, with --retry-failed": (
        row(EntryState.PROCESSING),
        {"retry_failed": True},
        Action.RESUME,
        UploadState.PROCESSING,
    ),
    "adopted legacy row (kept under the content identity, no entry id)": (
        row(EntryState.PUBLISHED, identity="user-1/direct/f1", entry_id=None),
        {},
        Action.ALREADY_DONE,
        None,
    ),
}


@pytest.mark.parametrize(
    ("record", "asks", "action", "resume_state"), TABLE.values(), ids=list(TABLE)
)
def test_rerun_table(
    record: JournalRecord | None,
    asks: dict[str, Any],
    action: Action,
    resume_state: UploadState | None,
) -> None:
    """Each journal state, kind and change of the entry leads to the SPEC §5 decision."""
    options: dict[str, Any] = {"request_digest": "d1", "fingerprint": "f1", **asks}
    decision = decide(record, **options)
    assert decision.action is action
    assert decision.record is record
    if resume_state is None:
        assert decision.resume_point is None
    else:
        assert decision.resume_point is not None
        assert decision.resume_point.state is resume_state
        assert decision.resume_point.publish_id == "pub-1"


def test_every_journal_state_is_in_the_table() -> None:
    """The table covers every state a journal row can be in, and an unknown entry."""
    states = {record.state for record, *_ in TABLE.values() if record is not None}
    assert states == set(EntryState)
    assert any(record is None for record, *_ in TABLE.values())


def test_a_resumed_transfer_carries_what_the_journal_knows() -> None:
    """A transfer resumes on its URL, expiry, plan and confirmed bytes, with the file's stat
    identity and each confirmed chunk's SHA-256, so the engine checks the file first."""
    record = row(UPLOADING, bytes_confirmed=MIN_CHUNK, sent_file=FILE, chunk_digests=("a" * 64,))
    point = decide(record, request_digest="d1", fingerprint="f1").resume_point
    assert point is not None
    assert point.upload_url == URL
    assert point.url_expires_at == 4000.0
    assert point.plan == PLAN
    assert point.bytes_confirmed == MIN_CHUNK
    assert point.source == FILE
    assert point.chunk_digests == ("a" * 64,)
