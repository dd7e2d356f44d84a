"""One entry's upload to TikTok: an explicit state machine and the driver that runs it.

Theory of operation
-------------------

An upload moves through these states (SPEC §5, §6; :data:`TRANSITIONS` is the full table)::

    PLANNED ──init, file──▶ UPLOADING ──every byte held──▶ UPLOADED ──status──▶ PROCESSING
       │                    ↺ chunk confirmed,                ▲  │                  │
       │                      resynced, new init              │  └───────┬──────────┘
       ├──init, URL or photo──────────────────────────────────┘          ▼
       │                        │                         PUBLISHED · SENT_TO_INBOX · FAILED
       ▼                        ▼
    FAILED · DEFERRED · UNCERTAIN   FAILED · DEFERRED

Every change of state is an event (:data:`UploadEvent`), and every event is handed to the
:class:`JournalSink` *before* the next request is sent: if the process dies at any moment, the
journal knows at least as much as is needed to continue without posting twice. The events'
allowed order is the table :data:`TRANSITIONS`; :class:`UploadMachine` refuses any other order
with an :class:`IllegalTransitionError` naming the legal next steps.

The rules that keep an upload exactly-once:

- TikTok has no idempotency key: once the last byte of a FILE_UPLOAD (or a URL init) is
  accepted, TikTok publishes, and a second init is a second post. So once the last chunk has
  been *sent* (even if its answer was lost), this engine never inits again for the entry: a lost
  acknowledgement is settled by a status fetch (``uploaded_bytes`` / ``status``).
- Resending a chunk to the *same* upload URL is always safe. A chunk that failed with 5xx, a
  reset or a timeout is resent as the same range; a 416 answer carries the server's progress in
  ``Content-Range``, and the server's progress wins over ours.
- An upload URL that dies (403/404, or its hour is up) *before* the last chunk was sent is
  replaced with a new init: an incomplete upload never publishes.
- A URL or photo init whose answer was lost may have posted: it ends UNCERTAIN, never retried.

The sans-I/O part (:class:`UploadMachine`: state, the transition table, chunk headers and the
meaning of a chunk answer) does no I/O; :class:`Uploader` does the I/O: the API client, chunk
PUTs through the transport, the clock for expiry and polling. Progress goes to a
:class:`ProgressSubscriber`; nothing here prints.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO, Final, Protocol

from orchestrator.clock import Clock, SystemClock
from orchestrator.errors import (
    ApiError,
    AuthError,
    IllegalTransitionError,
    NeedsLoginError,
    OrchestratorError,
    TransportError,
    UploadError,
)
from orchestrator.media import PhotoMedia, VideoUrlMedia
from orchestrator.progress import NullProgress, ProgressSubscriber
from orchestrator.report import ErrorInfo
from orchestrator.retry import Retrier
from orchestrator.secret import Secret
from orchestrator.tiktok.chunks import DEFAULT_CHUNK, Chunk, ChunkPlan, plan_chunks
from orchestrator.tiktok.client import (
    InitResult,
    PostInfo,
    PostMode,
    PublishState,
    PublishStatus,
    TikTokClient,
)
from orchestrator.tiktok.codes import classify_fail_reason
from orchestrator.transport import FileWindow, HttpResponse, Timeouts, Transport

log = logging.getLogger(__name__)

__all__ = [
    "CONTENT_TYPES",
    "TRANSITIONS",
    "ChunkConfirmed",
    "Deferred",
    "ErrorInfo",
    "Failed",
    "FileIdentity",
    "FileSource",
    "Initialised",
    "JournalSink",
    "MemoryJournal",
    "NullJournal",
    "PhotoSource",
    "PostInfo",
    "PostMode",
    "Processing",
    "Published",
    "ResumePoint",
    "Resynced",
    "SentToInbox",
    "SourceChanged",
    "Uncertain",
    "UploadConfig",
    "UploadEvent",
    "UploadMachine",
    "UploadOutcome",
    "UploadRequest",
    "UploadState",
    "Uploaded",
    "Uploader",
    "UrlSource",
]

CONTENT_TYPES: Final = frozenset({"video/mp4", "video/quicktime", "video/webm"})
"""The chunk Content-Types TikTok accepts (§5), one per container."""


# -- the entry to upload -----------------------------------------------------------------------


@dataclass(frozen=True)
class FileSource:
    """A local video sent with FILE_UPLOAD; ``content_type`` follows its container."""

    path: Path
    size: int
    content_type: str

    def __post_init__(self) -> None:
        if self.content_type not in CONTENT_TYPES:
            raise ValueError(
                f"content_type must be one of {sorted(CONTENT_TYPES)}, not {self.content_type!r}"
            )
        if self.size < 1:
            raise ValueError("a video file has at least one byte")


@dataclass(frozen=True)
class FileIdentity:
    """A file's stat identity: any write, truncation, replacement or move changes one field.

    Recorded when an upload is initialised and compared before every chunk (and once more
    before the last byte goes out): the bytes of one upload must all come from one version of
    the file, or TikTok would publish a splice of two.
    """

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, status: os.stat_result) -> FileIdentity:
        """The identity in a ``stat``/``fstat`` result."""
        return cls(
            status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns
        )

    @classmethod
    def of_path(cls, path: Path) -> FileIdentity | None:
        """The identity of the file ``path`` names now (None: it cannot be read)."""
        try:
            return cls.of(path.stat())
        except OSError:
            return None


# TikTok pulls these itself; the manifest's media values are exactly what an init needs.
UrlSource = VideoUrlMedia
"""A video TikTok downloads itself (PULL_FROM_URL) from a verified https URL."""
PhotoSource = PhotoMedia
"""A photo post's images (PULL_FROM_URL only) and which one is the cover."""


Source = FileSource | UrlSource | PhotoSource


@dataclass(frozen=True)
class UploadRequest:
    """Everything the engine needs to post one entry; ``label`` names it in log lines."""

    open_id: str
    mode: PostMode
    source: Source
    post_info: PostInfo
    label: str = ""

    @property
    def name(self) -> str:
        """How log lines name this entry."""
        return self.label or self.open_id


@dataclass(frozen=True)
class UploadConfig:
    """The engine's tunables. Times in seconds, sizes in bytes, rates in bytes per second.

    - ``chunk_size``: preferred chunk size (see ``chunks.DEFAULT_CHUNK``).
    - ``chunk_connect_timeout`` / ``chunk_read_timeout``: per socket operation of a chunk PUT.
    - ``chunk_min_rate`` and ``chunk_min_deadline``: a chunk PUT is abandoned after
      ``max(chunk_min_deadline, length / chunk_min_rate)`` whatever the server does.
    - ``upload_url_ttl``: how long an upload URL lives (TikTok: one hour), counted from the
      moment the init was sent; ``upload_url_margin``: no chunk is started closer to its end.
    - ``max_reinits``: new inits allowed after upload URLs died, per entry and run.
    - ``max_source_changes``: fresh uploads started because the file changed while it was
      being sent, per entry and run; one more change fails the entry ``file_changed``.
    - ``max_resyncs``: 416 answers in a row before the server's progress is called incoherent.
    - ``max_settles``: status fetches to settle a lost last-chunk acknowledgement.
    - ``poll_first`` … ``poll_max``: status polling interval, growing by ``poll_factor``;
      ``poll_timeout``: how long to poll before leaving the entry ``processing``.
    """

    chunk_size: int = DEFAULT_CHUNK
    chunk_connect_timeout: float = 10.0
    chunk_read_timeout: float = 60.0
    chunk_min_rate: float = 100_000.0
    chunk_min_deadline: float = 60.0
    upload_url_ttl: float = 3600.0
    upload_url_margin: float = 30.0
    max_reinits: int = 2
    max_source_changes: int = 2
    max_resyncs: int = 3
    max_settles: int = 3
    poll_first: float = 2.0
    poll_factor: float = 1.5
    poll_max: float = 30.0
    poll_timeout: float = 600.0

    def __post_init__(self) -> None:
        positive = (
            self.chunk_connect_timeout,
            self.chunk_read_timeout,
            self.chunk_min_rate,
            self.chunk_min_deadline,
            self.upload_url_ttl,
            self.poll_first,
            self.poll_max,
        )
        if any(value <= 0 for value in positive):
            raise ValueError("upload timeouts, rates and poll intervals must be positive")
        if self.poll_factor < 1 or self.poll_max < self.poll_first or self.poll_timeout < 0:
            raise ValueError("polling must back off: poll_factor >= 1, poll_max >= poll_first")
        limits = (self.max_reinits, self.max_source_changes, self.max_resyncs, self.max_settles)
        if min(*limits, self.upload_url_margin) < 0:
            raise ValueError("upload limits cannot be negative")

    def chunk_timeouts(self, length: int) -> Timeouts:
        """The timeouts of one chunk PUT of ``length`` bytes."""
        return Timeouts(
            connect=self.chunk_connect_timeout,
            read=self.chunk_read_timeout,
            total=max(self.chunk_min_deadline, length / self.chunk_min_rate),
        )


# -- events and the journal interface ----------------------------------------------------------


@dataclass(frozen=True)
class Initialised:
    """An init was accepted. ``upload_url`` and ``plan`` are set for FILE_UPLOAD; the URL lives
    until ``url_expires_at`` (epoch seconds). A second Initialised replaces a dead upload URL.
    ``source`` is the file's stat identity when it was initialised (FILE_UPLOAD only)."""

    publish_id: str
    upload_url: Secret | None
    url_expires_at: float | None
    plan: ChunkPlan | None
    source: FileIdentity | None = None


@dataclass(frozen=True)
class ChunkConfirmed:
    """The server accepted chunk ``index`` (0-based) and now holds ``bytes_confirmed`` bytes.
    ``digest``: the SHA-256 (hex) of the bytes sent, so a later process can check that the file
    still holds them before it sends the rest."""

    index: int
    bytes_confirmed: int
    digest: str | None = None


@dataclass(frozen=True)
class Resynced:
    """The server's progress (a 416's Content-Range, or a status fetch) replaced ours."""

    bytes_confirmed: int


@dataclass(frozen=True)
class SourceChanged:
    """The file changed while its upload was under way (``reason`` says how). That upload is
    abandoned before its last byte (so it never publishes) and a fresh init follows."""

    reason: str


@dataclass(frozen=True)
class Uploaded:
    """TikTok has the media: every byte sent (or the last chunk's answer was lost after it was
    sent), or a URL init accepted. From here on the entry is polled, never initialised again."""


@dataclass(frozen=True)
class Processing:
    """A status fetch answered ``status`` (not terminal yet)."""

    status: str


@dataclass(frozen=True)
class Published:
    """Posted (``PUBLISH_COMPLETE``); ``post_ids`` are filled for public posts."""

    post_ids: tuple[str, ...]


@dataclass(frozen=True)
class SentToInbox:
    """Delivered to the creator's inbox (``SEND_TO_USER_INBOX``)."""


@dataclass(frozen=True)
class Failed:
    """The entry failed. ``retryable``: a later run may try it again (a new init)."""

    code: str
    reason: str
    retryable: bool
    hint: str | None = None
    log_id: str | None = None


@dataclass(frozen=True)
class Deferred:
    """Not posted now (the creator's caps): ``why``, and ``until`` (epoch s) when known.

    ``code`` is what deferred it (TikTok's ``spam_risk_too_many_posts``, the journal's
    ``daily_cap``…; None: plain ``deferred``), with TikTok's ``log_id`` and a ``hint`` when
    there are any, so the report and ``history`` say why exactly.
    """

    why: str
    until: float | None = None
    code: str | None = None
    log_id: str | None = None
    hint: str | None = None


@dataclass(frozen=True)
class Uncertain:
    """A URL or photo init's answer was lost: it may have posted. Never retried automatically."""

    reason: str


UploadEvent = (
    Initialised
    | ChunkConfirmed
    | Resynced
    | SourceChanged
    | Uploaded
    | Processing
    | Published
    | SentToInbox
    | Failed
    | Deferred
    | Uncertain
)


class JournalSink(Protocol):
    """Where the engine reports each transition, before taking the next step.

    ``record`` must have made the event durable when it returns; if it raises, the engine stops
    without sending anything more.
    """

    def record(self, event: UploadEvent) -> None: ...


class NullJournal:
    """A journal that keeps nothing."""

    def record(self, event: UploadEvent) -> None:
        return None


@dataclass
class MemoryJournal:
    """A journal that keeps the events in a list (for tests and dry runs)."""

    events: list[UploadEvent] = field(default_factory=list)

    def record(self, event: UploadEvent) -> None:
        self.events.append(event)


# -- the state machine -----------------------------------------------------------------------------


class UploadState(enum.Enum):
    """Where an entry's upload is."""

    PLANNED = "planned"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    PROCESSING = "processing"
    PUBLISHED = "published"
    SENT_TO_INBOX = "sent_to_inbox"
    FAILED = "failed"
    DEFERRED = "deferred"
    UNCERTAIN = "uncertain"

    @property
    def is_terminal(self) -> bool:
        """Whether nothing more can happen to the entry in this run or a later one."""
        return not TRANSITIONS[self]


# Event kinds in the table. An Initialised is "init_upload" when it brings an upload URL
# (bytes to send) and "init_pull" when TikTok fetches the media itself.
_INIT_UPLOAD, _INIT_PULL = "init_upload", "init_pull"

_TABLE: Final[dict[UploadState, dict[str, UploadState]]] = {
    UploadState.PLANNED: {
        _INIT_UPLOAD: UploadState.UPLOADING,
        _INIT_PULL: UploadState.UPLOADED,
        "Failed": UploadState.FAILED,
        "Deferred": UploadState.DEFERRED,
        "Uncertain": UploadState.UNCERTAIN,
    },
    UploadState.UPLOADING: {
        "ChunkConfirmed": UploadState.UPLOADING,
        "Resynced": UploadState.UPLOADING,
        _INIT_UPLOAD: UploadState.UPLOADING,  # the URL died before the last chunk was sent
        "SourceChanged": UploadState.PLANNED,  # the file changed: abandon, init afresh
        "Uploaded": UploadState.UPLOADED,
        "Failed": UploadState.FAILED,
        "Deferred": UploadState.DEFERRED,  # the new init was refused for the creator's caps
    },
    UploadState.UPLOADED: {
        "Processing": UploadState.PROCESSING,
        "Published": UploadState.PUBLISHED,
        "SentToInbox": UploadState.SENT_TO_INBOX,
        "Failed": UploadState.FAILED,
    },
    UploadState.PROCESSING: {
        "Processing": UploadState.PROCESSING,
        "Published": UploadState.PUBLISHED,
        "SentToInbox": UploadState.SENT_TO_INBOX,
        "Failed": UploadState.FAILED,
    },
    UploadState.PUBLISHED: {},
    UploadState.SENT_TO_INBOX: {},
    UploadState.FAILED: {},
    UploadState.DEFERRED: {},
    UploadState.UNCERTAIN: {},
}
TRANSITIONS: Final[Mapping[UploadState, Mapping[str, UploadState]]] = MappingProxyType(
    {state: MappingProxyType(moves) for state, moves in _TABLE.items()}
)
"""state → {event kind → next state}: every legal step of an upload, and no other."""


def _kind(event: UploadEvent) -> str:
    if isinstance(event, Initialised):
        return _INIT_UPLOAD if event.upload_url is not None else _INIT_PULL
    return type(event).__name__


def _step_names(state: UploadState) -> str:
    names = sorted({"Initialised" if k.startswith("init_") else k for k in TRANSITIONS[state]})
    return ", ".join(names) if names else "nothing (the upload is finished)"


@dataclass(frozen=True)
class ResumePoint:
    """What a journal knows of an earlier run's upload, to go on without a new init.

    ``state`` is UPLOADING (bytes still to send on ``upload_url`` until ``url_expires_at``,
    ``bytes_confirmed`` of them confirmed), UPLOADED or PROCESSING (poll ``publish_id``).
    ``source`` is the file's stat identity at init and ``chunk_digests`` the SHA-256 of each
    confirmed chunk (None where unknown), so the file can be checked before the rest is sent.
    """

    state: UploadState
    publish_id: str
    upload_url: Secret | None = None
    url_expires_at: float | None = None
    plan: ChunkPlan | None = None
    bytes_confirmed: int = 0
    source: FileIdentity | None = None
    chunk_digests: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        if self.state not in (UploadState.UPLOADING, UploadState.UPLOADED, UploadState.PROCESSING):
            raise ValueError(f"an upload cannot be resumed from {self.state.value}")
        if self.state is UploadState.UPLOADING:
            if self.upload_url is None or self.plan is None or self.url_expires_at is None:
                raise ValueError("resuming a transfer needs its upload URL, expiry and plan")
            if not self.plan.is_boundary(self.bytes_confirmed):
                raise ValueError("bytes_confirmed must be a chunk boundary of the plan")


class ChunkReply(enum.Enum):
    """What a chunk PUT's answer means."""

    ACCEPTED = "accepted"  # 206: chunk kept, more expected
    COMPLETE = "complete"  # 201: the upload is complete
    RESYNC = "resync"  # 416: the server's progress differs; it is in Content-Range
    URL_DEAD = "url_dead"  # 403/404: this upload URL is over
    RETRY = "retry"  # 5xx/429: send the same range again
    REJECTED = "rejected"  # another 4xx: the request itself is wrong


@dataclass(frozen=True)
class ChunkAnswer:
    """A chunk PUT's answer, read: the reply, the HTTP status, and for a resync the bytes the
    server holds."""

    reply: ChunkReply
    status: int
    received: int | None = None


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


class UploadMachine:
    """The state of one entry's upload, changed only through :meth:`record` (sans-I/O)."""

    def __init__(self, request: UploadRequest, journal: JournalSink) -> None:
        self.request = request
        self._journal = journal
        self.state = UploadState.PLANNED
        self.publish_id: str | None = None
        self.upload_url: Secret | None = None
        self.url_expires_at: float | None = None
        self.plan: ChunkPlan | None = None
        self.bytes_confirmed = 0
        self.final_bytes_maybe_sent = False
        self.post_ids: tuple[str, ...] = ()
        self.last_status: str | None = None
        self.inits = 0
        self.source_identity: FileIdentity | None = None
        self.chunk_digests: tuple[str | None, ...] = ()
        self.source_changes = 0

    @classmethod
    def resumed(
        cls, request: UploadRequest, point: ResumePoint, journal: JournalSink
    ) -> UploadMachine:
        """A machine in the state an earlier run left (nothing is recorded for restoring it)."""
        machine = cls(request, journal)
        machine.state = point.state
        machine.publish_id = point.publish_id
        machine.upload_url = point.upload_url
        machine.url_expires_at = point.url_expires_at
        machine.plan = point.plan
        machine.bytes_confirmed = point.bytes_confirmed
        machine.source_identity = point.source
        machine.chunk_digests = point.chunk_digests
        if point.plan is not None and point.state is UploadState.UPLOADING:
            last = point.plan.chunk(point.plan.total_chunk_count - 1)
            # The journal cannot say whether the last chunk went out before the earlier run
            # stopped: if only it was left, assume it did (never re-init on a maybe).
            machine.final_bytes_maybe_sent = point.bytes_confirmed >= last.first
        return machine

    def record(self, event: UploadEvent) -> None:
        """Apply ``event`` if the table allows it from the current state, journalling it first."""
        kind = _kind(event)
        after = TRANSITIONS[self.state].get(kind)
        if after is None:
            raise IllegalTransitionError(
                f"cannot record {type(event).__name__} while {self.state.value}; "
                f"legal next: {_step_names(self.state)}"
            )
        self._check(event)
        self._journal.record(event)
        self._apply(event)
        self.state = after
        log.debug("%s: %s -> %s", self.request.name, kind, after.value)

    def _check(self, event: UploadEvent) -> None:
        if isinstance(event, Initialised):
            if self.state is UploadState.UPLOADING and self.final_bytes_maybe_sent:
                raise IllegalTransitionError(
                    "cannot init again after the last chunk was sent (it may publish); "
                    "legal next: settle with a status fetch, then Uploaded or Failed"
                )
            if (event.upload_url is None) != (event.plan is None):
                raise IllegalTransitionError("an upload URL and a chunk plan come together")
        elif isinstance(event, SourceChanged) and self.final_bytes_maybe_sent:
            raise IllegalTransitionError(
                "cannot abandon an upload whose last chunk was sent (it may publish); "
                "legal next: settle with a status fetch, then Uploaded or Failed"
            )
        elif isinstance(event, ChunkConfirmed):
            assert self.plan is not None
            chunk = self.plan.chunk(event.index)
            if event.bytes_confirmed != chunk.end or chunk.first != self.bytes_confirmed:
                raise IllegalTransitionError(
                    f"chunk {event.index} cannot be confirmed at {self.bytes_confirmed} bytes; "
                    f"legal next: ChunkConfirmed for the chunk starting there, or Resynced"
                )
        elif isinstance(event, Resynced):
            assert self.plan is not None
            if not self.plan.is_boundary(event.bytes_confirmed):
                raise IllegalTransitionError("a resync must land on a chunk boundary")
        elif (
            isinstance(event, Uploaded)
            and self.plan is not None
            and self.bytes_confirmed != self.plan.video_size
            and not self.final_bytes_maybe_sent
        ):
            raise IllegalTransitionError(
                "cannot call the upload complete before its last chunk was sent; "
                "legal next: ChunkConfirmed, Resynced, Initialised or Failed"
            )

    def _apply(self, event: UploadEvent) -> None:
        if isinstance(event, Initialised):
            self.publish_id = event.publish_id
            self.upload_url = event.upload_url
            self.url_expires_at = event.url_expires_at
            self.plan = event.plan
            self.bytes_confirmed = 0
            self.final_bytes_maybe_sent = False
            self.inits += 1
            self.source_identity = event.source
            self.chunk_digests = ()
        elif isinstance(event, ChunkConfirmed):
            self.bytes_confirmed = event.bytes_confirmed
            self.chunk_digests = (*self.chunk_digests[: event.index], event.digest)
        elif isinstance(event, Resynced):
            self.bytes_confirmed = event.bytes_confirmed
            assert self.plan is not None
            held = self.plan.next_chunk(event.bytes_confirmed)
            count = held.index if held is not None else self.plan.total_chunk_count
            # Chunks the server holds that we never saw confirmed have no known digest.
            known = self.chunk_digests[:count]
            self.chunk_digests = known + (None,) * (count - len(known))
        elif isinstance(event, SourceChanged):
            self.publish_id = None
            self.upload_url = None
            self.url_expires_at = None
            self.plan = None
            self.bytes_confirmed = 0
            self.source_identity = None
            self.chunk_digests = ()
            self.source_changes += 1
        elif isinstance(event, Processing):
            self.last_status = event.status
        elif isinstance(event, Published):
            self.post_ids = event.post_ids
            self.last_status = PublishState.PUBLISH_COMPLETE
        elif isinstance(event, SentToInbox):
            self.last_status = PublishState.SEND_TO_USER_INBOX

    @property
    def plan_size(self) -> int:
        """The video size of the current plan (0 without one)."""
        return self.plan.video_size if self.plan is not None else 0

    # -- chunk exchanges (sans-I/O) --

    def next_chunk(self) -> Chunk | None:
        """The chunk the server expects next, or ``None`` when it holds every byte."""
        self._require(UploadState.UPLOADING, "next_chunk")
        assert self.plan is not None
        return self.plan.next_chunk(self.bytes_confirmed)

    def chunk_headers(self, chunk: Chunk) -> dict[str, str]:
        """The headers of the PUT carrying ``chunk`` (no Authorization: the URL authorises)."""
        assert self.plan is not None
        source = self.request.source
        assert isinstance(source, FileSource)
        return {
            "Content-Type": source.content_type,
            "Content-Length": str(chunk.length),
            "Content-Range": self.plan.content_range(chunk),
        }

    def url_usable(self, now: float, margin: float) -> bool:
        """Whether the upload URL is still worth a chunk at epoch time ``now``."""
        return self.url_expires_at is None or now < self.url_expires_at - margin

    def read_chunk_reply(self, chunk: Chunk, response: HttpResponse) -> ChunkAnswer:
        """What the answer to the PUT of ``chunk`` means."""
        status = response.status
        is_last = chunk.end == self.plan_size
        if status == 206:
            return ChunkAnswer(ChunkReply.ACCEPTED, status)
        if status == 201 or (200 <= status < 300 and is_last):
            return ChunkAnswer(ChunkReply.COMPLETE, status)
        if 200 <= status < 300:
            return ChunkAnswer(ChunkReply.ACCEPTED, status)
        if status == 416:
            received = self.server_progress(response.header("content-range"))
            return ChunkAnswer(ChunkReply.RESYNC, status, received)
        if status in (403, 404, 410):
            return ChunkAnswer(ChunkReply.URL_DEAD, status)
        if status >= 500 or status in (408, 429):
            return ChunkAnswer(ChunkReply.RETRY, status)
        return ChunkAnswer(ChunkReply.REJECTED, status)

    def server_progress(self, content_range: str | None) -> int:
        """Bytes the server holds per a 416's ``Content-Range`` (none sent: it holds nothing).

        Raises :class:`UploadError` when the value is unreadable, is for another size, or is
        not a state the server can be in for this plan.
        """
        assert self.plan is not None
        if not content_range:
            return 0
        match = _CONTENT_RANGE.match(content_range)
        if match is None:
            raise UploadError(
                f"the upload server sent an unreadable Content-Range {content_range!r}"
            )
        first, last, total = match.groups()
        if int(first) != 0 or (total != "*" and int(total) != self.plan.video_size):
            raise UploadError(
                f"the upload server reports {content_range!r}, which does not match this "
                f"{self.plan.video_size}-byte upload"
            )
        received = int(last) + 1
        if not self.plan.is_boundary(received):
            raise UploadError(
                f"the upload server holds {received} bytes, which is not a chunk boundary"
            )
        return received

    def _require(self, state: UploadState, what: str) -> None:
        if self.state is not state:
            raise IllegalTransitionError(
                f"{what} needs state {state.value}, not {self.state.value}; "
                f"legal next: {_step_names(self.state)}"
            )


# -- the outcome -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadOutcome:
    """Where one entry ended in this run.

    ``state`` UPLOADED or PROCESSING means TikTok has the media and a later run polls it;
    ``error`` explains any state but PUBLISHED / SENT_TO_INBOX (for UPLOADED / PROCESSING: why
    polling stopped, if not the poll deadline). ``needs_login`` tells the scheduler to stop
    this user's other entries.
    """

    state: UploadState
    publish_id: str | None
    post_ids: tuple[str, ...] = ()
    bytes_confirmed: int = 0
    chunks: int = 0
    inits: int = 0
    chunk_requests: int = 0
    error: ErrorInfo | None = None
    needs_login: bool = False


def _error_info(error: OrchestratorError, code: str | None = None) -> ErrorInfo:
    if isinstance(error, ApiError):
        return ErrorInfo(
            error.code, str(error), retryable=error.retryable, hint=error.hint, log_id=error.log_id
        )
    retryable = isinstance(error, TransportError | AuthError)
    return ErrorInfo(code or type(error).__name__, str(error), retryable=retryable, hint=error.hint)


def _auth_error_info(run: _Run, error: AuthError) -> ErrorInfo:
    """Only a refused refresh token (NeedsLoginError) stops the user's other entries."""
    if isinstance(error, NeedsLoginError):
        run.needs_login = True
        return _error_info(error, "needs_login")
    return _error_info(error, "auth_error")


# -- the driver ------------------------------------------------------------------------------------


class _ServerBusy(Exception):
    """A chunk PUT answered 5xx/408/429: send the same range again."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the upload server answered {status}")
        self.status = status


class _SourceChangedMidChunk(Exception):
    """The file changed while the last chunk was being read: its last bytes were held back."""


class _HashedWindow(FileWindow):
    """A chunk's bytes as sent, hashed as they stream (nothing is read twice or held whole).

    For the last chunk, ``guard`` is asked right before the final block is handed to the
    connection; when it says the file changed, that block is never sent (the read raises
    :class:`_SourceChangedMidChunk`), so the upload cannot complete with mixed bytes.
    """

    def __init__(
        self,
        file: BinaryIO,
        chunk: Chunk,
        *,
        on_read: Callable[[int], None],
        guard: Callable[[], str | None] | None = None,
    ) -> None:
        super().__init__(file, chunk.first, chunk.length, on_read=on_read)
        self._hash = hashlib.sha256()
        self._guard = guard

    def read(self, size: int = -1) -> bytes:
        block = super().read(size)
        if self._guard is not None and block and self.exhausted:
            # The whole chunk has been read from the file and only this block is unsent.
            changed = self._guard()
            if changed is not None:
                raise _SourceChangedMidChunk(changed)
        self._hash.update(block)
        return block

    @property
    def digest(self) -> str | None:
        """The SHA-256 (hex) of the chunk, once every byte was handed to the connection."""
        return self._hash.hexdigest() if self.exhausted else None


class _FinalAckLost(Exception):
    """The last chunk went out whole but no answer came back: settle by status fetch."""

    def __init__(self, cause: TransportError) -> None:
        super().__init__(str(cause))
        self.cause = cause


_MAYBE_KEPT = frozenset({ChunkReply.ACCEPTED, ChunkReply.COMPLETE, ChunkReply.RETRY})


def _chunk_retryable(error: BaseException) -> bool:
    return isinstance(error, TransportError | _ServerBusy)


class _Progress:
    """Forwards progress to a subscriber and keeps the running total, so the engine can say
    "TikTok holds N bytes" and let the subscriber hear the exact correction."""

    def __init__(self, subscriber: ProgressSubscriber) -> None:
        self._subscriber = subscriber
        self.total = 0

    def on_progress(self, bytes_delta: int) -> None:
        if bytes_delta:
            self.total += bytes_delta
            self._subscriber.on_progress(bytes_delta)

    def settle_at(self, held: int) -> None:
        """The bytes the server holds are ``held``: report whatever difference that makes."""
        self.on_progress(held - self.total)


@dataclass
class _Run:
    """Per-run scratch the driver keeps next to the machine (not journalled)."""

    machine: UploadMachine
    progress: _Progress
    file: BinaryIO | None = None
    sent_digest: str | None = None
    chunk_requests: int = 0
    error: ErrorInfo | None = None
    needs_login: bool = False


class Uploader:
    """Runs uploads: one entry at a time per call, any number of calls in parallel threads
    (each call has its own machine, file and journal; client, transport and retrier are
    shared and thread-safe)."""

    def __init__(
        self,
        client: TikTokClient,
        transport: Transport,
        *,
        retry: Retrier,
        config: UploadConfig | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self._transport = transport
        self._retry = retry
        self._config = config or UploadConfig()
        self._clock = clock or SystemClock()

    def upload(
        self,
        request: UploadRequest,
        journal: JournalSink,
        progress: ProgressSubscriber | None = None,
    ) -> UploadOutcome:
        """Post ``request`` from the start: init, send the chunks, poll until done or the poll
        deadline. Every transition goes to ``journal`` before the next request."""
        run = _Run(UploadMachine(request, journal), _Progress(progress or NullProgress()))
        return self._drive(run)

    def resume(
        self,
        request: UploadRequest,
        point: ResumePoint,
        journal: JournalSink,
        progress: ProgressSubscriber | None = None,
    ) -> UploadOutcome:
        """Go on from where an earlier run stopped: send the remaining chunks on the same
        upload URL while it lives (a new init only when it died before the last chunk was
        sent), or poll an upload TikTok already has. Never inits again for UPLOADED or
        PROCESSING."""
        machine = UploadMachine.resumed(request, point, journal)
        source = request.source
        # With a recorded stat identity a changed file is caught (and started over) when the
        # transfer goes on; without one, a different size is all there is to see.
        if machine.plan is not None and (
            not isinstance(source, FileSource)
            or (machine.source_identity is None and source.size != machine.plan.video_size)
        ):
            raise UploadError(
                "the entry's file is not the one the earlier upload was sending",
                hint="a changed file is a new entry; give it a new id",
            )
        run = _Run(machine, _Progress(progress or NullProgress()))
        run.progress.settle_at(machine.bytes_confirmed)
        return self._drive(run)

    # -- steps --

    def _drive(self, run: _Run) -> UploadOutcome:
        machine = run.machine
        source = machine.request.source
        try:
            if isinstance(source, FileSource) and machine.state in (
                UploadState.PLANNED,
                UploadState.UPLOADING,
            ):
                try:
                    run.file = self._open(source)
                except UploadError as error:
                    self._cannot_read(run, error)
                else:
                    if machine.state is UploadState.UPLOADING:
                        self._check_resumed_file(run)
                    if machine.state is UploadState.PLANNED:
                        self._initialise(run)
                    if machine.state is UploadState.UPLOADING:
                        self._transfer(run)
            elif machine.state is UploadState.PLANNED:
                self._initialise(run)
            if machine.state in (UploadState.UPLOADED, UploadState.PROCESSING):
                self._poll(run)
        finally:
            if run.file is not None:
                run.file.close()
            run.file = None
        return self._outcome(run)

    def _open(self, source: FileSource) -> BinaryIO:
        try:
            file = source.path.open("rb")
        except OSError as exc:
            raise UploadError(f"cannot open {source.path}: {exc.strerror}") from None
        size = os.fstat(file.fileno()).st_size
        if size != source.size:
            file.close()
            raise UploadError(
                f"{source.path} is {size} bytes, not the {source.size} it had when validated",
                hint="the file changed after the manifest was checked; run again",
            )
        return file

    def _cannot_read(self, run: _Run, error: UploadError) -> None:
        machine = run.machine
        if machine.state is UploadState.UPLOADING and machine.final_bytes_maybe_sent:
            # An earlier run may have sent the last chunk: TikTok's status decides, not a retry.
            machine.record(Uploaded())
            return
        self._fail(run, _error_info(error, "file_unreadable"))

    # -- the file must stay the file --

    def _file_change(self, run: _Run) -> str | None:
        """How the file differs from the version being uploaded (None: it does not)."""
        machine = run.machine
        source = machine.request.source
        assert isinstance(source, FileSource)
        if machine.source_identity is None:
            return None
        now = FileIdentity.of_path(source.path)
        if now is None:
            return f"{source.path} cannot be read any more"
        if now != machine.source_identity:
            return f"{source.path} was modified, replaced or resized"
        return None

    def _check_resumed_file(self, run: _Run) -> None:
        """Before going on with an earlier process's upload: the file's stat identity must be
        the one recorded at init, and the bytes already sent must still be the file's (each
        confirmed chunk is read again and compared with its recorded digest)."""
        machine = run.machine
        if machine.source_identity is None:
            return  # journalled before identities were kept: nothing to compare
        change = self._file_change(run) or self._sent_bytes_change(run)
        if change is None:
            return
        if machine.final_bytes_maybe_sent:
            self._changed_after_last_chunk(run, change)
            return
        self._source_changed(run, change)

    def _changed_after_last_chunk(self, run: _Run, change: str) -> None:
        """The file changed, and the earlier process may have sent the last chunk: sending
        anything now could complete the upload with bytes of another version, and a new init
        could be a second post. TikTok's status decides: it has every byte (poll it), it gave
        up (Failed), or it lacks bytes nobody will send any more (the upload can never
        complete: fail ``file_changed``, retryable, so a later run posts the file afresh)."""
        machine = run.machine
        assert machine.plan is not None
        assert machine.publish_id is not None
        label = machine.request.name
        log.warning("%s: %s after its last chunk may have been sent; asking TikTok", label, change)
        status: PublishStatus | None = None
        try:
            status = self._client.fetch_status(machine.request.open_id, machine.publish_id)
        except (ApiError, TransportError, AuthError) as error:
            log.info("%s: the status fetch failed (%s)", label, error)
        size = machine.plan.video_size
        if status is not None and status.status == PublishState.FAILED:
            meaning = classify_fail_reason(status.fail_reason)
            self._finish(
                run,
                Failed(
                    status.fail_reason or "failed",
                    f"{change}; TikTok reports FAILED ({status.fail_reason or 'no reason given'})",
                    meaning.retryable,
                    meaning.hint,
                ),
            )
            return
        held = status.uploaded_bytes if status is not None else None
        if (
            status is not None
            and not _holds_everything(status, size)
            and held is not None
            and held < size
        ):
            self._fail(
                run,
                ErrorInfo(
                    "file_changed",
                    f"{change} while it was uploading; TikTok holds {held} of {size} bytes, so "
                    "that upload can never complete and nothing was published",
                    retryable=True,
                    hint="the file was modified while uploading — finish writing it, then rerun",
                ),
            )
            return
        # TikTok has every byte (one version's: the earlier process sent them), or cannot
        # say: poll it, never init again.
        machine.record(Uploaded())

    def _sent_bytes_change(self, run: _Run) -> str | None:
        machine = run.machine
        assert machine.plan is not None
        assert run.file is not None
        done = machine.plan.next_chunk(machine.bytes_confirmed)
        count = done.index if done is not None else machine.plan.total_chunk_count
        for index in range(count):
            recorded = machine.chunk_digests[index] if index < len(machine.chunk_digests) else None
            chunk = machine.plan.chunk(index)
            if recorded is None or _digest_of(run.file, chunk) != recorded:
                return f"chunk {index} no longer holds the bytes already sent"
        return None

    def _source_changed(self, run: _Run, change: str) -> None:
        """Abandon the upload under way (its last byte is never sent, so it never publishes)
        and start a fresh one of the file as it is now, or fail ``file_changed``."""
        machine = run.machine
        source = machine.request.source
        assert isinstance(source, FileSource)
        if machine.source_changes >= self._config.max_source_changes:
            self._fail(
                run,
                ErrorInfo(
                    "file_changed",
                    f"{change} while it was uploading, {machine.source_changes + 1} times; "
                    "nothing was published",
                    retryable=True,
                    hint="the file was modified while uploading — finish writing it, then rerun",
                ),
            )
            return
        log.warning(
            "%s: %s during the upload; abandoning it before its last byte (nothing is "
            "published) and starting over",
            machine.request.name,
            change,
        )
        machine.record(SourceChanged(change))
        run.progress.settle_at(0)
        if run.file is not None:
            run.file.close()
            run.file = None
        try:
            run.file = self._open(source)
        except UploadError as error:
            self._fail(
                run,
                ErrorInfo(
                    "file_changed",
                    f"{change}, and then: {error}",
                    retryable=True,
                    hint="the file was modified while uploading — finish writing it, then rerun",
                ),
            )
            return
        self._initialise(run)

    def _initialise(self, run: _Run) -> None:
        """Init (or init again after a dead URL); records Initialised or a terminal event."""
        machine = run.machine
        request = machine.request
        source = request.source
        sent_at = self._clock.time()
        identity = None
        if run.file is not None:
            # The version being uploaded: every later check compares the file with this.
            identity = FileIdentity.of(os.fstat(run.file.fileno()))
        try:
            plan = (
                plan_chunks(source.size, self._config.chunk_size)
                if isinstance(source, FileSource)
                else None
            )
            result = self._call_init(request, plan)
        except UploadError as error:
            self._fail(run, _error_info(error, "upload_error"))
            return
        except ApiError as error:
            if error.defer:
                # Keep TikTok's own code, log_id and hint: "deferred" alone says nothing.
                self._finish(
                    run,
                    Deferred(str(error), code=error.code, log_id=error.log_id, hint=error.hint),
                )
            else:
                self._fail(run, _error_info(error))
            return
        except TransportError as error:
            if not isinstance(source, FileSource) and error.maybe_delivered:
                # A URL/photo init may have been accepted: a retry could post twice.
                self._finish(
                    run,
                    Uncertain(f"the init's answer was lost ({error}); it may have posted"),
                )
            else:
                self._fail(run, _error_info(error, "transport"))
            return
        except AuthError as error:
            if error.transient:
                # The token endpoint had trouble; the init was refused (401), not sent: later.
                self._finish(run, Deferred(str(error), code="unavailable", hint=error.hint))
            else:
                self._fail(run, _auth_error_info(run, error))
            return
        expires = sent_at + self._config.upload_url_ttl if plan is not None else None
        machine.record(Initialised(result.publish_id, result.upload_url, expires, plan, identity))
        log.info(
            "%s: initialised %s%s",
            request.name,
            result.publish_id,
            f" ({plan.total_chunk_count} chunks of {plan.chunk_size} bytes)" if plan else "",
        )

    def _call_init(self, request: UploadRequest, plan: ChunkPlan | None) -> InitResult:
        source = request.source
        if isinstance(source, PhotoSource):
            return self._client.init_photo(
                request.open_id, request.mode, source.urls, source.cover_index, request.post_info
            )
        video: ChunkPlan | str = plan if plan is not None else _url_of(source)
        if request.mode is PostMode.DIRECT:
            return self._client.init_direct_video(request.open_id, video, request.post_info)
        return self._client.init_inbox_video(request.open_id, video)

    def _transfer(self, run: _Run) -> None:
        """Send chunks until the server holds them all (then Uploaded) or a terminal event."""
        machine = run.machine
        resyncs = 0
        settles = 0
        while machine.state is UploadState.UPLOADING:
            chunk = machine.next_chunk()
            if chunk is None:
                machine.record(Uploaded())
                return
            change = None if machine.final_bytes_maybe_sent else self._file_change(run)
            if change is not None:
                self._source_changed(run, change)
                continue
            if not machine.url_usable(self._clock.time(), self._config.upload_url_margin):
                self._url_dead(run, "the upload URL's hour is up")
                continue
            try:
                answer = self._retry.call(
                    functools.partial(self._put_chunk, run, chunk), retryable=_chunk_retryable
                )
            except _SourceChangedMidChunk as changed:
                if machine.final_bytes_maybe_sent:
                    # An earlier attempt (or process) may have sent the whole last chunk: the
                    # upload cannot be abandoned for a fresh init, TikTok's status decides.
                    self._changed_after_last_chunk(run, str(changed))
                    continue
                self._source_changed(run, str(changed))
                continue
            except _FinalAckLost as lost:
                settles += 1
                self._settle(run, f"the last chunk's answer was lost ({lost})", settles)
                continue
            except (TransportError, _ServerBusy) as error:
                if machine.final_bytes_maybe_sent:
                    settles += 1
                    self._settle(run, f"the last chunk could not be confirmed ({error})", settles)
                    continue
                code = "transport" if isinstance(error, TransportError) else "upload_server_error"
                self._fail(run, ErrorInfo(code, f"chunk {chunk.index}: {error}", retryable=True))
                return
            except UploadError as error:
                if machine.final_bytes_maybe_sent:
                    settles += 1
                    self._settle(run, str(error), settles)
                    continue
                self._fail(run, _error_info(error, "upload_error"))
                return
            reply = answer.reply
            if reply is not ChunkReply.RESYNC:
                resyncs = 0
            if reply is ChunkReply.ACCEPTED:
                if chunk.end == machine.plan_size:
                    self._fail(
                        run,
                        ErrorInfo(
                            "upload_incoherent",
                            "the upload server accepted the last chunk but expects more bytes",
                            retryable=True,
                        ),
                    )
                    return
                machine.record(ChunkConfirmed(chunk.index, chunk.end, run.sent_digest))
            elif reply is ChunkReply.COMPLETE:
                if chunk.end != machine.plan_size:
                    log.warning(
                        "%s: the upload server called chunk %d the end of the upload",
                        machine.request.name,
                        chunk.index,
                    )
                    self._resync(run, machine.plan_size)
                    continue
                machine.record(ChunkConfirmed(chunk.index, chunk.end, run.sent_digest))
            elif reply is ChunkReply.RESYNC:
                assert answer.received is not None
                resyncs += 1
                if resyncs > self._config.max_resyncs:
                    self._fail(
                        run,
                        ErrorInfo(
                            "upload_incoherent",
                            f"the upload server refused the range it asked for {resyncs} times",
                            retryable=True,
                        ),
                    )
                    return
                self._resync(run, answer.received)
            elif reply is ChunkReply.URL_DEAD:
                self._url_dead(run, f"the upload server answered {answer.status}")
            else:
                self._fail(
                    run,
                    ErrorInfo(
                        "upload_rejected",
                        f"the upload server refused chunk {chunk.index} with HTTP {answer.status}",
                        retryable=False,
                        hint="TikTok refused the chunk's headers or length; report it with the log",
                    ),
                )
                return

    def _put_chunk(self, run: _Run, chunk: Chunk) -> ChunkAnswer:
        """One PUT of ``chunk``; raises what the retrier should retry (5xx, transport)."""
        machine = run.machine
        assert run.file is not None
        assert machine.upload_url is not None
        is_last = chunk.end == machine.plan_size
        window = _HashedWindow(
            run.file,
            chunk,
            on_read=run.progress.on_progress,
            guard=functools.partial(self._file_change, run) if is_last else None,
        )
        run.sent_digest = None
        run.chunk_requests += 1
        try:
            response = self._transport.request(
                "PUT",
                machine.upload_url.reveal(),
                headers=machine.chunk_headers(chunk),
                body=window,
                timeouts=self._config.chunk_timeouts(chunk.length),
            )
        except TransportError as error:
            run.progress.on_progress(-window.sent)
            if is_last and window.exhausted:
                machine.final_bytes_maybe_sent = True
                raise _FinalAckLost(error) from None
            raise
        except BaseException:
            run.progress.on_progress(-window.sent)
            raise
        run.sent_digest = window.digest
        try:
            answer = machine.read_chunk_reply(chunk, response)
        finally:
            # Only an accepted chunk keeps its bytes; anything else takes them back.
            kept = response.status in (200, 201, 204, 206)
            if not kept:
                run.progress.on_progress(-window.sent)
        if is_last and window.exhausted and answer.reply in _MAYBE_KEPT:
            # A refusal (403, 416, 400…) says this attempt was not kept; a 5xx after the whole
            # body does not (a gateway may have lost the upstream's acceptance).
            machine.final_bytes_maybe_sent = True
        if answer.reply is ChunkReply.RETRY:
            raise _ServerBusy(answer.status)
        return answer

    def _resync(self, run: _Run, received: int) -> None:
        machine = run.machine
        log.info(
            "%s: the upload server holds %d bytes (we had %d); its progress wins",
            machine.request.name,
            received,
            machine.bytes_confirmed,
        )
        machine.record(Resynced(received))
        run.progress.settle_at(received)

    def _url_dead(self, run: _Run, why: str) -> None:
        """The upload URL cannot be used any more (its hour is up, or the server refused it)."""
        machine = run.machine
        if machine.final_bytes_maybe_sent:
            self._settle(run, why, self._config.max_settles, url_dead=True)
            return
        if machine.inits > self._config.max_reinits:
            self._fail(
                run,
                ErrorInfo(
                    "upload_url_expired",
                    f"{why}; {machine.inits} upload URLs died before the upload finished",
                    retryable=True,
                    hint="the upload is too slow for TikTok's one-hour upload URL; a later run "
                    "starts over",
                ),
            )
            return
        log.info(
            "%s: %s before the last chunk; starting over with a new init (nothing was published)",
            machine.request.name,
            why,
        )
        run.progress.settle_at(0)
        self._initialise(run)

    def _settle(self, run: _Run, why: str, settles: int, *, url_dead: bool = False) -> None:
        """The last chunk may have reached TikTok: ask the status, never init again.

        TikTok reports FAILED → Failed with its reason (an upload left incomplete fails
        ``internal``, retryable). TikTok has everything → Uploaded. TikTok reports fewer bytes
        → resync and resend while the URL lives; when it is dead, Failed (retryable: by
        TikTok's own word nothing will publish). No answer, or out of settle attempts →
        Uploaded: the bytes were all sent, so the entry is polled (now and by later runs) and
        never initialised again.
        """
        machine = run.machine
        assert machine.plan is not None
        assert machine.publish_id is not None
        label = machine.request.name
        log.info("%s: %s; asking TikTok for the status", label, why)
        status: PublishStatus | None = None
        try:
            status = self._client.fetch_status(machine.request.open_id, machine.publish_id)
        except (ApiError, TransportError, AuthError) as error:
            log.info("%s: the status fetch failed too (%s)", label, error)
        size = machine.plan.video_size
        url_alive = not url_dead and machine.url_usable(
            self._clock.time(), self._config.upload_url_margin
        )
        if status is not None and status.status == PublishState.FAILED:
            # TikTok gave up on this publish (an upload left incomplete fails "internal"):
            # its own verdict ends the entry; a retryable reason lets a later run init again.
            meaning = classify_fail_reason(status.fail_reason)
            self._finish(
                run,
                Failed(
                    status.fail_reason or "failed",
                    f"{why}; TikTok reports FAILED ({status.fail_reason or 'no reason given'})",
                    meaning.retryable,
                    meaning.hint,
                ),
            )
            return
        if status is not None and _holds_everything(status, size):
            if machine.bytes_confirmed != size:
                self._resync(run, size)
            machine.record(Uploaded())
            return
        held = status.uploaded_bytes if status is not None else None
        if held is not None and held < size and machine.plan.is_boundary(held):
            if not url_alive:
                self._fail(
                    run,
                    ErrorInfo(
                        "upload_url_expired",
                        f"{why}; TikTok holds {held} of {size} bytes and the upload URL is over",
                        retryable=True,
                        hint="nothing was published; a later run starts the upload over",
                    ),
                )
                return
            if held != machine.bytes_confirmed:
                self._resync(run, held)
            if settles < self._config.max_settles:
                return  # the transfer loop resends from where TikTok is
        elif url_alive and settles < self._config.max_settles:
            return  # resend the last chunk: the same URL cannot post twice
        log.warning(
            "%s: could not confirm the last chunk; treating the upload as sent and polling "
            "(it is never initialised again)",
            label,
        )
        machine.record(Uploaded())

    def _poll(self, run: _Run) -> None:
        """Fetch the status with backoff until terminal or the poll deadline."""
        machine = run.machine
        assert machine.publish_id is not None
        config = self._config
        deadline = self._clock.monotonic() + config.poll_timeout
        interval = config.poll_first
        label = machine.request.name
        while True:
            try:
                status = self._client.fetch_status(machine.request.open_id, machine.publish_id)
            except (ApiError, TransportError) as error:
                run.error = _error_info(error)
                log.info("%s: polling stopped (%s); a later run polls again", label, error)
                return
            except AuthError as error:
                run.error = (
                    _error_info(error, "unavailable")
                    if error.transient
                    else _auth_error_info(run, error)
                )
                return
            if status.status == PublishState.PUBLISH_COMPLETE:
                machine.record(Published(status.post_ids))
                return
            if status.status == PublishState.SEND_TO_USER_INBOX:
                machine.record(SentToInbox())
                return
            if status.status == PublishState.FAILED:
                meaning = classify_fail_reason(status.fail_reason)
                self._finish(
                    run,
                    Failed(
                        status.fail_reason or "failed",
                        f"TikTok reports FAILED ({status.fail_reason or 'no reason given'})",
                        meaning.retryable,
                        meaning.hint,
                    ),
                )
                return
            # Unknown statuses count as still in progress, bounded by the deadline.
            if machine.state is not UploadState.PROCESSING or machine.last_status != status.status:
                machine.record(Processing(status.status))
            if self._clock.monotonic() + interval > deadline:
                log.info(
                    "%s: still %s after %.0f s; a later run polls again",
                    label,
                    status.status,
                    config.poll_timeout,
                )
                return
            self._clock.sleep(interval)
            interval = min(interval * config.poll_factor, config.poll_max)

    # -- endings --

    def _finish(self, run: _Run, event: Failed | Deferred | Uncertain) -> None:
        run.machine.record(event)
        if isinstance(event, Failed):
            run.error = ErrorInfo(
                event.code,
                event.reason,
                retryable=event.retryable,
                hint=event.hint,
                log_id=event.log_id,
            )
        elif isinstance(event, Deferred):
            run.error = ErrorInfo(
                event.code or "deferred",
                event.why,
                retryable=True,
                hint=event.hint,
                log_id=event.log_id,
            )
        else:
            run.error = ErrorInfo("uncertain", event.reason, retryable=False)

    def _fail(self, run: _Run, info: ErrorInfo) -> None:
        self._finish(run, Failed(info.code, info.message, info.retryable, info.hint, info.log_id))

    def _outcome(self, run: _Run) -> UploadOutcome:
        machine = run.machine
        return UploadOutcome(
            state=machine.state,
            publish_id=machine.publish_id,
            post_ids=machine.post_ids,
            bytes_confirmed=machine.bytes_confirmed,
            chunks=machine.plan.total_chunk_count if machine.plan else 0,
            inits=machine.inits,
            chunk_requests=run.chunk_requests,
            error=run.error,
            needs_login=run.needs_login,
        )


def _digest_of(file: BinaryIO, chunk: Chunk) -> str:
    """The SHA-256 (hex) of ``chunk``'s bytes in ``file``, read a block at a time."""
    digest = hashlib.sha256()
    window = FileWindow(file, chunk.first, chunk.length)
    while block := window.read(1 << 20):
        digest.update(block)
    return digest.hexdigest()


def _url_of(source: Source) -> str:
    assert isinstance(source, UrlSource)
    return source.url


def _holds_everything(status: PublishStatus, size: int) -> bool:
    """Whether a (non-FAILED) status says TikTok has every byte or is already past the upload."""
    if status.status in ("", PublishState.PROCESSING_UPLOAD):
        return status.uploaded_bytes is not None and status.uploaded_bytes >= size
    return True
