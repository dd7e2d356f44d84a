"""The journal: what happened to every entry, written before the next step is taken.

The journal is how a rerun knows never to post twice (SPEC §5). It lives in the state database
beside the tokens, one row per entry *identity* (its manifest ``id``, or user + mode + media
fingerprint), plus an append-only event log for ``history``.

Theory of operation:

- Before the first request of a fresh attempt the scheduler calls :meth:`Journal.begin`
  (state ``initialising``). For a URL or photo source that is what makes a lost init answer
  detectable after a crash: a row still ``initialising`` may have posted, so it is
  ``uncertain``, never retried automatically. For a file it is harmless: nothing publishes
  until its last byte is accepted.
- The upload engine reports each transition to a :class:`EntryJournal` (its ``JournalSink``);
  each event is committed (one SQLite transaction, durable in WAL mode) before ``record``
  returns, so the engine takes its next step only once the journal knows the last one.
- The upload URL authorises by itself, so it is sealed like the tokens (AES-GCM, associated
  data = the entry's identity and purpose ``upload_url``).
- ``rerun.decide`` (a pure function, not here) turns a stored row into what this run should do
  with the entry (skip, repeat a failure, poll, resume, start) — the rerun rules of SPEC §5.
- A file upload's ``Initialised`` event keeps the file's stat identity, and each
  ``ChunkConfirmed`` the SHA-256 of the bytes sent (in the events' detail): a rerun in a new
  process compares the file with both before it sends another byte (an UPLOADING
  :class:`JournalRecord` carries them, and ``rerun.decide`` hands them to the engine in the
  ``ResumePoint``).
- Every accepted init is an ``Initialised`` event; TikTok counts each one toward the creator's
  daily caps, so :meth:`Journal.init_times` counts those events, not finished uploads.

Where it lives: the row values (:class:`JournalRecord`, :class:`EntryState`,
:class:`EntryMeta`) and every read are in ``store.journal_rows`` (:class:`JournalReader`); this
module adds the writes — ``begin``, ``settle``, ``record`` with the fence checked inside each
transaction and the sync rule of :meth:`Journal._must_sync` — and re-exports the values.

It only reads and writes rows: it must not talk to the network or decide what to do with an
entry.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Final, Protocol

from orchestrator.errors import StoreError
from orchestrator.store.crypto import TokenCipher
from orchestrator.store.db import StoreConnection
from orchestrator.store.journal_rows import (
    DONE_STATES,
    EntryMeta,
    EntryState,
    JournalReader,
    JournalRecord,
)
from orchestrator.upload.events import (
    ChunkConfirmed,
    Deferred,
    Failed,
    Initialised,
    Processing,
    Published,
    Resynced,
    SentToInbox,
    SourceChanged,
    Uncertain,
    Uploaded,
    UploadEvent,
)

__all__ = [
    "DONE_STATES",
    "EntryJournal",
    "EntryMeta",
    "EntryState",
    "Fence",
    "Journal",
    "JournalReader",
    "JournalRecord",
]


class Fence(Protocol):
    """Checked inside every journal write transaction for an entry (a shared run's claim,
    store/queue.py): raises ``ClaimLostError`` if the writer no longer holds the entry, so the
    write is rolled back and the writer stops."""

    def check(self, connection: StoreConnection) -> None: ...


_NEW_ROW: Final = """
    INSERT INTO journal (identity, entry_id, user_id, mode, kind, source, request_digest,
                         media_fingerprint, state, attempts, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
"""A new journal row for an entry, ``initialising``; callers add their ON CONFLICT clause."""


def _new_row(meta: EntryMeta, *, attempts: int, now: float) -> tuple[object, ...]:
    return (
        meta.identity,
        meta.entry_id,
        meta.user_id,
        meta.mode,
        meta.kind,
        meta.source,
        meta.request_digest,
        meta.fingerprint,
        EntryState.INITIALISING.value,
        attempts,
        now,
        now,
    )


class Journal(JournalReader):
    """The journal in the state database: every read (:class:`JournalReader`) and every
    write; thread-safe (one connection per thread)."""

    def begin(self, meta: EntryMeta, *, fence: Fence | None = None) -> None:
        """A fresh attempt starts: the row says ``initialising`` before any init is sent.

        Synced for URL and photo sources (a lost row would turn a maybe-posted init into a
        retry); for a file, losing it to a power cut leaves an orphan upload URL, never a post.
        """
        now = self._clock.time()
        with self._database.transaction(durable=meta.kind != "file") as connection:
            _check(fence, connection)
            connection.execute(
                _NEW_ROW
                + """
                ON CONFLICT (identity) DO UPDATE SET
                    entry_id = excluded.entry_id, user_id = excluded.user_id,
                    mode = excluded.mode, kind = excluded.kind, source = excluded.source,
                    request_digest = excluded.request_digest,
                    media_fingerprint = excluded.media_fingerprint, state = excluded.state,
                    publish_id = NULL, upload_url = NULL, url_expires_at = NULL,
                    video_size = NULL, chunk_size = NULL, total_chunk_count = NULL,
                    bytes_confirmed = 0, last_status = NULL, post_ids = '[]',
                    error_code = NULL, error_message = NULL, error_log_id = NULL,
                    error_retryable = NULL, error_hint = NULL, deferred_until = NULL,
                    attempts = journal.attempts + 1, updated_at = excluded.updated_at,
                    uploaded_at = NULL, finished_at = NULL
                """,
                _new_row(meta, attempts=1, now=now),
            )
            self._event(connection, meta.identity, "begin", {"source": meta.source}, now)

    def settle(
        self, meta: EntryMeta, event: Failed | Deferred, *, fence: Fence | None = None
    ) -> None:
        """Record a failure or deferral decided before any request (creator_info checks, caps,
        a dead token, publish_at), creating the row if needed, keeping any earlier progress."""
        now = self._clock.time()
        with self._database.transaction() as connection:
            _check(fence, connection)
            connection.execute(
                _NEW_ROW + " ON CONFLICT (identity) DO NOTHING",
                _new_row(meta, attempts=0, now=now),
            )
            row = connection.execute(
                "SELECT state FROM journal WHERE identity = ?", (meta.identity,)
            ).fetchone()
            state = EntryState(row["state"])
            if state not in (EntryState.INITIALISING, EntryState.FAILED, EntryState.DEFERRED):
                # Never overwrite real progress (an upload TikTok has) with a pre-flight verdict.
                return
            connection.execute(
                "UPDATE journal SET request_digest = ?, source = ?, media_fingerprint = ?"
                " WHERE identity = ?",
                (meta.request_digest, meta.source, meta.fingerprint, meta.identity),
            )
            self._apply(connection, meta.identity, meta.user_id, event, now)

    def sink(self, identity: str, user_id: str, fence: Fence | None = None) -> EntryJournal:
        """The upload engine's JournalSink for one entry."""
        return EntryJournal(self, identity, user_id, fence)

    def record(
        self, identity: str, user_id: str, event: UploadEvent, *, fence: Fence | None = None
    ) -> None:
        now = self._clock.time()
        with self._database.transaction(durable=self._must_sync(identity, event)) as connection:
            _check(fence, connection)
            self._apply(connection, identity, user_id, event, now)

    def _must_sync(self, identity: str, event: UploadEvent) -> bool:
        """Whether ``event`` must reach the disk before the engine's next step.

        Every commit survives the process dying; only a power cut can lose the unsynced ones,
        and with them only what a rerun recovers by itself (a resent chunk, a status polled
        again). What must never be lost is anything that forbids a new init: an init that
        succeeded, and the progress that lets the last chunk go. A synced commit also makes
        every earlier one durable, so syncing those few is enough for exactly-once.
        """
        if isinstance(event, Uploaded | Processing | Published | SentToInbox):
            return False
        if isinstance(event, ChunkConfirmed | Resynced):
            row = self._database.fetch_one(
                "SELECT chunk_size, total_chunk_count FROM journal WHERE identity = ?",
                (identity,),
            )
            if row is None or row["chunk_size"] is None:
                return True
            last_chunk_start = (row["total_chunk_count"] - 1) * row["chunk_size"]
            return bool(event.bytes_confirmed >= last_chunk_start)
        return True

    def _apply(
        self,
        connection: StoreConnection,
        identity: str,
        user_id: str,
        event: UploadEvent,
        now: float,
    ) -> None:
        sets, detail = _changes(event, identity, self._cipher, now)
        sets["updated_at"] = now
        columns = ", ".join(f"{name} = ?" for name in sets)
        values = [
            value.value if isinstance(value, EntryState) else value for value in sets.values()
        ]
        cursor = connection.execute(
            f"UPDATE journal SET {columns} WHERE identity = ?",  # noqa: S608 - fixed column names
            [*values, identity],
        )
        if cursor.rowcount != 1:
            raise StoreError(f"the journal has no entry {identity} for user {user_id}")
        self._event(connection, identity, type(event).__name__, detail, now)

    def _event(
        self,
        connection: StoreConnection,
        identity: str,
        event: str,
        detail: dict[str, object],
        now: float,
    ) -> None:
        connection.execute(
            "INSERT INTO journal_events (identity, run_id, at, event, detail)"
            " VALUES (?, ?, ?, ?, ?)",
            (identity, self.run_id, now, event, json.dumps(detail)),
        )


def _changes(
    event: UploadEvent, identity: str, cipher: TokenCipher, now: float
) -> tuple[dict[str, object], dict[str, object]]:
    """What ``event`` changes in the entry's row, and the detail its event-log line keeps."""
    sets: dict[str, object]
    detail: dict[str, object] = {}
    if isinstance(event, Initialised):
        sealed = (
            None
            if event.upload_url is None
            else cipher.seal(event.upload_url, open_id=identity, purpose="upload_url")
        )
        plan = event.plan
        sets = {
            "state": EntryState.UPLOADING if plan is not None else EntryState.UPLOADED,
            "publish_id": event.publish_id,
            "upload_url": sealed,
            "url_expires_at": event.url_expires_at,
            "video_size": plan.video_size if plan else None,
            "chunk_size": plan.chunk_size if plan else None,
            "total_chunk_count": plan.total_chunk_count if plan else None,
            "bytes_confirmed": 0,
        }
        if plan is None:
            sets["uploaded_at"] = now
        detail = {"publish_id": event.publish_id}
        if plan is not None:
            detail["chunks"] = plan.total_chunk_count
            detail["chunk_size"] = plan.chunk_size
        if event.source is not None:
            detail["file"] = asdict(event.source)
    elif isinstance(event, ChunkConfirmed):
        sets = {"bytes_confirmed": event.bytes_confirmed}
        detail = {"chunk": event.index, "bytes": event.bytes_confirmed}
        if event.digest is not None:
            detail["sha256"] = event.digest
    elif isinstance(event, SourceChanged):
        # The upload under way is abandoned before its last byte: like a lost file init,
        # it is an orphan that never publishes; the engine (or a rerun) inits afresh.
        sets = {
            "state": EntryState.INITIALISING,
            "upload_url": None,
            "url_expires_at": None,
            "bytes_confirmed": 0,
        }
        detail = {"reason": event.reason}
    elif isinstance(event, Resynced):
        sets = {"bytes_confirmed": event.bytes_confirmed}
        detail = {"bytes": event.bytes_confirmed}
    elif isinstance(event, Uploaded):
        # The URL is spent: forget it (it is a credential).
        sets = {
            "state": EntryState.UPLOADED,
            "uploaded_at": now,
            "upload_url": None,
        }
    elif isinstance(event, Processing):
        sets = {"state": EntryState.PROCESSING, "last_status": event.status}
        detail = {"status": event.status}
    elif isinstance(event, Published):
        sets = {
            "state": EntryState.PUBLISHED,
            "post_ids": json.dumps(list(event.post_ids)),
            "last_status": "PUBLISH_COMPLETE",
            "finished_at": now,
        }
        detail = {"post_ids": list(event.post_ids)}
    elif isinstance(event, SentToInbox):
        sets = {
            "state": EntryState.SENT_TO_INBOX,
            "last_status": "SEND_TO_USER_INBOX",
            "finished_at": now,
        }
    elif isinstance(event, Failed):
        sets = {
            "state": EntryState.FAILED,
            "error_code": event.code,
            "error_message": event.reason,
            "error_log_id": event.log_id,
            "error_retryable": int(event.retryable),
            "error_hint": event.hint,
            "upload_url": None,
            "finished_at": now,
        }
        detail = {"code": event.code, "retryable": event.retryable}
    elif isinstance(event, Deferred):
        sets = {
            "state": EntryState.DEFERRED,
            "error_code": event.code or "deferred",
            "error_message": event.why,
            "error_log_id": event.log_id,
            "error_retryable": 1,
            "error_hint": event.hint,
            "deferred_until": event.until,
            "upload_url": None,
        }
        detail = {"why": event.why, "until": event.until, "code": event.code or "deferred"}
    elif isinstance(event, Uncertain):
        sets = {
            "state": EntryState.UNCERTAIN,
            "error_code": "uncertain",
            "error_message": event.reason,
            "error_retryable": 0,
            "finished_at": now,
        }
        detail = {"reason": event.reason}
    else:  # pragma: no cover - the union is exhaustive
        raise TypeError(f"not a journal event: {event!r}")
    return sets, detail


@dataclass(frozen=True)
class EntryJournal:
    """One entry's view of the journal: the upload engine's ``JournalSink``."""

    journal: Journal
    identity: str
    user_id: str
    fence: Fence | None = None

    def record(self, event: UploadEvent) -> None:
        self.journal.record(self.identity, self.user_id, event, fence=self.fence)


def _check(fence: Fence | None, connection: StoreConnection) -> None:
    if fence is not None:
        fence.check(connection)
