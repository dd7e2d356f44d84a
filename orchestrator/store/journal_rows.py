"""The journal's rows as values, and every read of them.

:class:`JournalRecord` is one entry as the journal knows it (decoded from its row, the upload
URL opened, a file upload's sent-file identity and chunk digests gathered from its events);
:class:`JournalReader` answers the questions the rest of the program asks: one entry, the
record an entry adopts, ``history``, an entry's events, and the inits the caps and the rate
pacing count. It only reads: every write, with its fence and sync rules, is in
``store.journal``.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, Final

from orchestrator.clock import Clock
from orchestrator.secret import Secret
from orchestrator.store.crypto import TokenCipher
from orchestrator.store.db import StoreDatabase
from orchestrator.tiktok.chunks import ChunkPlan
from orchestrator.upload.events import FileIdentity

__all__ = ["DONE_STATES", "EntryMeta", "EntryState", "JournalReader", "JournalRecord"]


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


class JournalReader:
    """Reads the journal in the state database; thread-safe (one connection per thread)."""

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
