"""The upload engine's vocabulary: its events, states, resume point and journal interface.

A leaf module (it imports only leaves: ``secret``, ``tiktok.chunks``): the engine
(``upload.machine``, ``upload.driver``) produces these values and the store
(``store.journal``) persists them, so the store never has to import the engine, and importing
the store does not load the HTTP stack.

Every change of an upload's state is one of the :data:`UploadEvent` classes; :data:`TRANSITIONS`
is the table of which event may follow which state. The names of these classes are written to
the journal (``journal_events.event``): renaming one changes what older journals contain.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final, Protocol

from orchestrator.secret import Secret
from orchestrator.tiktok.chunks import ChunkPlan

__all__ = [
    "INIT_PULL",
    "INIT_UPLOAD",
    "TRANSITIONS",
    "ChunkConfirmed",
    "Deferred",
    "Failed",
    "FileIdentity",
    "FinalChunkSending",
    "Initialised",
    "JournalSink",
    "MemoryJournal",
    "NullJournal",
    "Processing",
    "Published",
    "ResumePoint",
    "Resynced",
    "SentToInbox",
    "SourceChanged",
    "Uncertain",
    "UploadEvent",
    "UploadState",
    "Uploaded",
]


# -- where the bytes come from ------------------------------------------------------------------


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


@dataclass(frozen=True)
class FinalChunkSending:
    """The last chunk's bytes have all gone to the connection (or its answer was lost): the
    upload may complete, and so publish, whatever comes back. From here on the machine refuses
    a new init or abandoning the upload; only a status fetch settles it.

    The machine keeps this one to itself: it is not handed to the :class:`JournalSink` (a
    journal knows it already — confirmed bytes reaching the last chunk mean it may have gone,
    see ``UploadMachine.resumed``), so journals written before it existed read the same.
    """


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


INIT_UPLOAD: Final = "init_upload"
"""The table's kind for an Initialised that brings an upload URL (bytes to send)."""
INIT_PULL: Final = "init_pull"
"""The table's kind for an Initialised where TikTok fetches the media itself."""

_TABLE: Final[dict[UploadState, dict[str, UploadState]]] = {
    UploadState.PLANNED: {
        INIT_UPLOAD: UploadState.UPLOADING,
        INIT_PULL: UploadState.UPLOADED,
        "Failed": UploadState.FAILED,
        "Deferred": UploadState.DEFERRED,
        "Uncertain": UploadState.UNCERTAIN,
    },
    UploadState.UPLOADING: {
        "ChunkConfirmed": UploadState.UPLOADING,
        "Resynced": UploadState.UPLOADING,
        INIT_UPLOAD: UploadState.UPLOADING,  # the URL died before the last chunk was sent
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
