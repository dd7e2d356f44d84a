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

It only reads and writes rows: it must not talk to the network or decide what to do with an
entry.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass
from typing import Any, Final, Protocol

from orchestrator.clock import Clock
from orchestrator.errors import StoreError
from orchestrator.secret import Secret
from orchestrator.store.crypto import TokenCipher
from orchestrator.store.db import StoreConnection, StoreDatabase
from orchestrator.tiktok.chunks import ChunkPlan
from orchestrator.upload.events import (
    ChunkConfirmed,
    Deferred,
    Failed,
    FileIdentity,
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


class EntryState(enum.StrEnum):
    """An entry's state in the journal (the upload engine's states plus ``initialising``)."""

    INITIALISING = "initialising"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    PROCESSING = "processing"
    PUBLISHED = "published"
    SENT_TO_INBOX = "sent_to_inbox"
    FAILED = "failed"
    DEFERRED = "deferred"
    UNCERTAIN = "uncertain"
    AWAITING_REVIEW = "awaiting_review"
    """Prepared; waits for its creator's confirmation on the review page (review.py)."""
    DECLINED = "declined"
    """Its creator declined it on the review page: terminal, never posted."""


DONE_STATES: Final = frozenset({EntryState.PUBLISHED, EntryState.SENT_TO_INBOX})


class Fence(Protocol):
    """Checked inside every journal write transaction for an entry (a shared run's claim,
    store/queue.py): raises ``ClaimLostError`` if the writer no longer holds the entry, so the
    write is rolled back and the writer stops."""

    def check(self, connection: StoreConnection) -> None: ...


@dataclass(frozen=True)
class EntryMeta:
    """What the journal keeps about an entry besides its progress."""

    identity: str
    entry_id: str | None
    user_id: str
    mode: str  # "direct" | "inbox"
    kind: str  # "file" | "video_url" | "photo"
    source: str  # shown in history and reports
    request_digest: str
    fingerprint: str  # the media part of the identity (a file's content fingerprint)


@dataclass(frozen=True)
class JournalRecord:
    """One entry as the journal knows it."""

    identity: str
    entry_id: str | None
    user_id: str
    mode: str
    kind: str
    source: str
    request_digest: str
    fingerprint: str | None
    state: EntryState
    publish_id: str | None
    upload_url: Secret | None
    url_expires_at: float | None
    plan: ChunkPlan | None
    bytes_confirmed: int
    last_status: str | None
    post_ids: tuple[str, ...]
    error_code: str | None
    error_message: str | None
    error_log_id: str | None
    error_retryable: bool | None
    error_hint: str | None
    deferred_until: float | None
    attempts: int
    created_at: float
    updated_at: float
    uploaded_at: float | None
    finished_at: float | None
    sent_file: FileIdentity | None = None
    """UPLOADING only: the file's stat identity when the current upload was initialised."""
    chunk_digests: tuple[str | None, ...] = ()
    """UPLOADING only: the SHA-256 of each chunk confirmed since (None where unknown)."""


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


class Journal:
    """The journal in the state database; thread-safe (one connection per thread)."""

    def __init__(
        self, database: StoreDatabase, cipher: TokenCipher, *, clock: Clock, run_id: str
    ) -> None:
        self._database = database
        self._cipher = cipher
        self._clock = clock
        self.run_id = run_id

    @property
    def database(self) -> StoreDatabase:
        """The state database (creator review keeps its rows beside the journal's)."""
        return self._database

    # -- reading --

    def get(self, identity: str) -> JournalRecord | None:
        row = self._database.fetch_one("SELECT * FROM journal WHERE identity = ?", (identity,))
        return None if row is None else self._record(row)

    def adoptable(self, content_identity: str, entry_id: str) -> JournalRecord | None:
        """The record an entry with the new ``entry_id`` takes over: the one kept under the
        entry's content identity (user, mode, media fingerprint — the legacy form's key), when
        no other id has taken it. An id already in the journal is looked up first, by the
        caller: it always wins over content."""
        record = self.get(content_identity)
        if record is None or record.entry_id not in (None, entry_id):
            return None
        return record

    def by_entry_id(self, entry_id: str) -> JournalRecord | None:
        """A record kept under another key that ``entry_id`` adopted in an earlier run."""
        row = self._database.fetch_one(
            "SELECT * FROM journal WHERE entry_id = ? AND identity <> ? ORDER BY updated_at DESC",
            (entry_id, entry_id),
        )
        return None if row is None else self._record(row)

    def done_without_file(
        self, *, entry_id: str | None, user_id: str, mode: str, source: str
    ) -> JournalRecord | None:
        """The published (or sent) record of an entry whose video file is gone: by its id, or
        for an entry without one by user, mode and the file's path as the journal shows it
        (its content, the usual key, cannot be read any more)."""
        if entry_id is not None:
            record = self.get(entry_id) or self.by_entry_id(entry_id)
            return record if record is not None and record.state in DONE_STATES else None
        row = self._database.fetch_one(
            "SELECT * FROM journal WHERE user_id = ? AND mode = ? AND kind = 'file'"
            " AND source = ? AND entry_id IS NULL AND state IN (?, ?)"
            " ORDER BY updated_at DESC",
            (user_id, mode, source, *sorted(DONE_STATES)),
        )
        return None if row is None else self._record(row)

    def history(
        self, *, user_id: str | None = None, since: float | None = None
    ) -> list[JournalRecord]:
        """Entries, most recently changed first, optionally for one user or since a time."""
        clauses: list[str] = []
        params: list[object] = []
        if user_id is not None:
            clauses.append("user_id = ?")
            params.append(user_id)
        if since is not None:
            clauses.append("updated_at >= ?")
            params.append(since)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._database.fetch_all(
            f"SELECT * FROM journal {where} ORDER BY updated_at DESC",  # noqa: S608 - fixed clauses
            params,
        )
        return [self._record(row) for row in rows]

    def events(self, identity: str) -> list[tuple[float, str, dict[str, object]]]:
        rows = self._database.fetch_all(
            "SELECT at, event, detail FROM journal_events WHERE identity = ? ORDER BY id",
            (identity,),
        )
        return [(row["at"], row["event"], json.loads(row["detail"])) for row in rows]

    def by_publish_id(self, publish_id: str) -> JournalRecord | None:
        """The entry whose current upload is ``publish_id``, if the journal knows it."""
        row = self._database.fetch_one(
            "SELECT * FROM journal WHERE publish_id = ? ORDER BY updated_at DESC", (publish_id,)
        )
        return None if row is None else self._record(row)

    def init_times(self, user_id: str, mode: str, since: float) -> list[float]:
        """When each of the user's inits in ``mode`` was accepted since ``since``, oldest first.

        TikTok counts every accepted init toward the daily direct-post cap and the pending-inbox
        cap (an upload started over counts twice), so this is the journal's side of both caps.
        """
        # User first: this user's rows, then each row's inits (journal_user_mode_identity,
        # journal_events_identity_event_at). SQLite keeps a CROSS JOIN's order; left to itself
        # it starts from every user's inits of the day, a cost that grows with the run.
        rows = self._database.fetch_all(
            """
            SELECT e.at AS at
            FROM journal AS j CROSS JOIN journal_events AS e
            WHERE j.user_id = ? AND j.mode = ? AND e.identity = j.identity
                AND e.event = 'Initialised' AND e.at >= ?
            ORDER BY e.at
            """,
            (user_id, mode, since),
        )
        return [float(row["at"]) for row in rows]

    def recent_inits(self, since: float) -> list[tuple[str, str, float]]:
        """Every init accepted since ``since`` (epoch s), oldest first, as (user_id, endpoint,
        when): ``endpoint`` is the init's rate window (video_init, inbox_init, content_init).

        A run seeds its rate pacing with these: the inits of an earlier run (killed a moment
        ago, say) still fill TikTok's one-minute windows.
        """
        rows = self._database.fetch_all(
            """
            SELECT j.user_id AS user_id, j.mode AS mode, j.kind AS kind, e.at AS at
            FROM journal_events AS e JOIN journal AS j ON j.identity = e.identity
            WHERE e.event = 'Initialised' AND e.at >= ?
            ORDER BY e.at
            """,
            (since,),
        )
        inits = []
        for row in rows:
            if row["kind"] == "photo":
                endpoint = "content_init"
            elif row["mode"] == "inbox":
                endpoint = "inbox_init"
            else:
                endpoint = "video_init"
            inits.append((str(row["user_id"]), endpoint, float(row["at"])))
        return inits

    def _sent_file(
        self, identity: str, plan: ChunkPlan
    ) -> tuple[FileIdentity | None, tuple[str | None, ...]]:
        """The file's stat identity at the current upload's init and the SHA-256 of each chunk
        confirmed since (None where a resync moved past chunks we never saw confirmed)."""
        rows = self._database.fetch_all(
            "SELECT event, detail FROM journal_events WHERE identity = ?"
            " AND id >= (SELECT COALESCE(MAX(id), 0) FROM journal_events"
            "            WHERE identity = ? AND event = 'Initialised') ORDER BY id",
            (identity, identity),
        )
        source: FileIdentity | None = None
        digests: list[str | None] = []
        for row in rows:
            detail = json.loads(row["detail"])
            if row["event"] == "Initialised":
                file = detail.get("file")
                source = None if file is None else FileIdentity(**file)
                digests = []
            elif row["event"] == "ChunkConfirmed":
                index = int(detail["chunk"])
                digests = [*digests[:index], *[None] * (index - len(digests)), detail.get("sha256")]
            elif row["event"] == "Resynced":
                held = plan.next_chunk(int(detail["bytes"]))
                count = held.index if held is not None else plan.total_chunk_count
                digests = digests[:count] + [None] * (count - len(digests))
        return source, tuple(digests)

    # -- writing --

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
        sets: dict[str, object]
        detail: dict[str, object] = {}
        if isinstance(event, Initialised):
            sealed = (
                None
                if event.upload_url is None
                else self._cipher.seal(event.upload_url, open_id=identity, purpose="upload_url")
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

    def _record(self, row: Any) -> JournalRecord:
        upload_url = (
            None
            if row["upload_url"] is None
            else self._cipher.open(row["upload_url"], open_id=row["identity"], purpose="upload_url")
        )
        plan = (
            None
            if row["video_size"] is None
            else ChunkPlan(
                video_size=row["video_size"],
                chunk_size=row["chunk_size"],
                total_chunk_count=row["total_chunk_count"],
            )
        )
        retryable = row["error_retryable"]
        state = EntryState(row["state"])
        sent_file: FileIdentity | None = None
        digests: tuple[str | None, ...] = ()
        if state is EntryState.UPLOADING and plan is not None:
            sent_file, digests = self._sent_file(row["identity"], plan)
        return JournalRecord(
            identity=row["identity"],
            entry_id=row["entry_id"],
            user_id=row["user_id"],
            mode=row["mode"],
            kind=row["kind"],
            source=row["source"],
            request_digest=row["request_digest"],
            fingerprint=row["media_fingerprint"],
            state=state,
            publish_id=row["publish_id"],
            upload_url=upload_url,
            url_expires_at=row["url_expires_at"],
            plan=plan,
            bytes_confirmed=row["bytes_confirmed"],
            last_status=row["last_status"],
            post_ids=tuple(json.loads(row["post_ids"])),
            error_code=row["error_code"],
            error_message=row["error_message"],
            error_log_id=row["error_log_id"],
            error_retryable=None if retryable is None else bool(retryable),
            error_hint=row["error_hint"],
            deferred_until=row["deferred_until"],
            attempts=row["attempts"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            uploaded_at=row["uploaded_at"],
            finished_at=row["finished_at"],
            sent_file=sent_file,
            chunk_digests=digests,
        )


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
