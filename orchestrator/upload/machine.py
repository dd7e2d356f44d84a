"""The sans-I/O upload state machine: an upload's state, changed only through events.

:class:`UploadMachine` holds where one entry's upload is and refuses any event the table
:data:`~orchestrator.upload.events.TRANSITIONS` does not allow from there, with an
:class:`IllegalTransitionError` naming the legal next steps. It also builds a chunk PUT's
headers and reads its answer (:class:`ChunkAnswer`). It does no I/O: the driver
(``upload.driver``) sends the requests and feeds the machine what happened.

Its state is read-only from outside (properties, no setters): the only way to change it is
:meth:`UploadMachine.record`, which journals each event before applying it — except
:class:`FinalChunkSending`, a fact the machine keeps to itself (see its docstring).
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass

from orchestrator.errors import IllegalTransitionError, UploadError
from orchestrator.secret import Secret
from orchestrator.tiktok.chunks import Chunk, ChunkPlan
from orchestrator.tiktok.client import PublishState
from orchestrator.transport import HttpResponse
from orchestrator.upload.events import (
    INIT_PULL,
    INIT_UPLOAD,
    TRANSITIONS,
    ChunkConfirmed,
    FileIdentity,
    FinalChunkSending,
    Initialised,
    JournalSink,
    Processing,
    Published,
    ResumePoint,
    Resynced,
    SentToInbox,
    SourceChanged,
    Uploaded,
    UploadEvent,
    UploadState,
)
from orchestrator.upload.request import FileSource, UploadRequest

log = logging.getLogger(__name__)

__all__ = ["ChunkAnswer", "ChunkReply", "MachineEvent", "UploadMachine"]

MachineEvent = UploadEvent | FinalChunkSending
"""What :meth:`UploadMachine.record` accepts: the journalled events and the machine's own."""


def _kind(event: UploadEvent) -> str:
    if isinstance(event, Initialised):
        return INIT_UPLOAD if event.upload_url is not None else INIT_PULL
    return type(event).__name__


def _step_names(state: UploadState) -> str:
    names = sorted({"Initialised" if k.startswith("init_") else k for k in TRANSITIONS[state]})
    return ", ".join(names) if names else "nothing (the upload is finished)"


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
        self._request = request
        self._journal = journal
        self._state = UploadState.PLANNED
        self._publish_id: str | None = None
        self._upload_url: Secret | None = None
        self._url_expires_at: float | None = None
        self._plan: ChunkPlan | None = None
        self._bytes_confirmed = 0
        self._final_bytes_maybe_sent = False
        self._post_ids: tuple[str, ...] = ()
        self._last_status: str | None = None
        self._inits = 0
        self._source_identity: FileIdentity | None = None
        self._chunk_digests: tuple[str | None, ...] = ()
        self._source_changes = 0

    @classmethod
    def resumed(
        cls, request: UploadRequest, point: ResumePoint, journal: JournalSink
    ) -> UploadMachine:
        """A machine in the state an earlier run left (nothing is recorded for restoring it)."""
        machine = cls(request, journal)
        machine._state = point.state
        machine._publish_id = point.publish_id
        machine._upload_url = point.upload_url
        machine._url_expires_at = point.url_expires_at
        machine._plan = point.plan
        machine._bytes_confirmed = point.bytes_confirmed
        machine._source_identity = point.source
        machine._chunk_digests = point.chunk_digests
        if point.plan is not None and point.state is UploadState.UPLOADING:
            last = point.plan.chunk(point.plan.total_chunk_count - 1)
            # The journal cannot say whether the last chunk went out before the earlier run
            # stopped: if only it was left, assume it did (never re-init on a maybe).
            machine._final_bytes_maybe_sent = point.bytes_confirmed >= last.first
        return machine

    def record(self, event: MachineEvent) -> None:
        """Apply ``event`` if the table allows it from the current state, journalling it first
        (all but :class:`FinalChunkSending`, which only this machine needs to know)."""
        if isinstance(event, FinalChunkSending):
            self._require(UploadState.UPLOADING, "FinalChunkSending")
            self._final_bytes_maybe_sent = True
            log.debug("%s: the last chunk may have gone", self._request.name)
            return
        kind = _kind(event)
        after = TRANSITIONS[self._state].get(kind)
        if after is None:
            raise IllegalTransitionError(
                f"cannot record {type(event).__name__} while {self._state.value}; "
                f"legal next: {_step_names(self._state)}"
            )
        self._check(event)
        self._journal.record(event)
        self._apply(event)
        self._state = after
        detail = ""
        if isinstance(event, ChunkConfirmed):
            detail = f" (chunk {event.index + 1}, {event.bytes_confirmed} bytes held)"
        log.debug("%s: %s%s -> %s", self._request.name, kind, detail, after.value)

    def _check(self, event: UploadEvent) -> None:
        if isinstance(event, Initialised):
            if self._state is UploadState.UPLOADING and self._final_bytes_maybe_sent:
                raise IllegalTransitionError(
                    "cannot init again after the last chunk was sent (it may publish); "
                    "legal next: settle with a status fetch, then Uploaded or Failed"
                )
            if (event.upload_url is None) != (event.plan is None):
                raise IllegalTransitionError("an upload URL and a chunk plan come together")
        elif isinstance(event, SourceChanged) and self._final_bytes_maybe_sent:
            raise IllegalTransitionError(
                "cannot abandon an upload whose last chunk was sent (it may publish); "
                "legal next: settle with a status fetch, then Uploaded or Failed"
            )
        elif isinstance(event, ChunkConfirmed):
            assert self._plan is not None
            chunk = self._plan.chunk(event.index)
            if event.bytes_confirmed != chunk.end or chunk.first != self._bytes_confirmed:
                raise IllegalTransitionError(
                    f"chunk {event.index} cannot be confirmed at {self._bytes_confirmed} bytes; "
                    f"legal next: ChunkConfirmed for the chunk starting there, or Resynced"
                )
        elif isinstance(event, Resynced):
            assert self._plan is not None
            if not self._plan.is_boundary(event.bytes_confirmed):
                raise IllegalTransitionError("a resync must land on a chunk boundary")
        elif (
            isinstance(event, Uploaded)
            and self._plan is not None
            and self._bytes_confirmed != self._plan.video_size
            and not self._final_bytes_maybe_sent
        ):
            raise IllegalTransitionError(
                "cannot call the upload complete before its last chunk was sent; "
                "legal next: ChunkConfirmed, Resynced, Initialised or Failed"
            )

    def _apply(self, event: UploadEvent) -> None:
        if isinstance(event, Initialised):
            self._publish_id = event.publish_id
            self._upload_url = event.upload_url
            self._url_expires_at = event.url_expires_at
            self._plan = event.plan
            self._bytes_confirmed = 0
            self._final_bytes_maybe_sent = False
            self._inits += 1
            self._source_identity = event.source
            self._chunk_digests = ()
        elif isinstance(event, ChunkConfirmed):
            self._bytes_confirmed = event.bytes_confirmed
            self._chunk_digests = (*self._chunk_digests[: event.index], event.digest)
        elif isinstance(event, Resynced):
            self._bytes_confirmed = event.bytes_confirmed
            assert self._plan is not None
            held = self._plan.next_chunk(event.bytes_confirmed)
            count = held.index if held is not None else self._plan.total_chunk_count
            # Chunks the server holds that we never saw confirmed have no known digest.
            known = self._chunk_digests[:count]
            self._chunk_digests = known + (None,) * (count - len(known))
        elif isinstance(event, SourceChanged):
            self._publish_id = None
            self._upload_url = None
            self._url_expires_at = None
            self._plan = None
            self._bytes_confirmed = 0
            self._source_identity = None
            self._chunk_digests = ()
            self._source_changes += 1
        elif isinstance(event, Processing):
            self._last_status = event.status
        elif isinstance(event, Published):
            self._post_ids = event.post_ids
            self._last_status = PublishState.PUBLISH_COMPLETE
        elif isinstance(event, SentToInbox):
            self._last_status = PublishState.SEND_TO_USER_INBOX

    # -- read-only state (changed only through record) --

    @property
    def request(self) -> UploadRequest:
        """The entry being uploaded."""
        return self._request

    @property
    def state(self) -> UploadState:
        """Where the upload is."""
        return self._state

    @property
    def publish_id(self) -> str | None:
        """TikTok's id of the current upload (None before an init or after a SourceChanged)."""
        return self._publish_id

    @property
    def upload_url(self) -> Secret | None:
        """Where the chunks go (a credential: it authorises by itself)."""
        return self._upload_url

    @property
    def url_expires_at(self) -> float | None:
        """When the upload URL dies (epoch seconds)."""
        return self._url_expires_at

    @property
    def plan(self) -> ChunkPlan | None:
        """The current upload's chunk plan (FILE_UPLOAD only)."""
        return self._plan

    @property
    def bytes_confirmed(self) -> int:
        """Bytes the server holds, as far as we know."""
        return self._bytes_confirmed

    @property
    def final_bytes_maybe_sent(self) -> bool:
        """Whether the last chunk may have gone (it may publish): no new init from here on."""
        return self._final_bytes_maybe_sent

    @property
    def post_ids(self) -> tuple[str, ...]:
        """The post's ids once published (public posts only)."""
        return self._post_ids

    @property
    def last_status(self) -> str | None:
        """TikTok's last publish status seen."""
        return self._last_status

    @property
    def inits(self) -> int:
        """Inits accepted by this machine (a resumed one starts at 0)."""
        return self._inits

    @property
    def source_identity(self) -> FileIdentity | None:
        """The file's stat identity when the current upload was initialised."""
        return self._source_identity

    @property
    def chunk_digests(self) -> tuple[str | None, ...]:
        """The SHA-256 of each confirmed chunk (None where unknown)."""
        return self._chunk_digests

    @property
    def source_changes(self) -> int:
        """Fresh uploads started because the file changed."""
        return self._source_changes

    @property
    def plan_size(self) -> int:
        """The video size of the current plan (0 without one)."""
        return self._plan.video_size if self._plan is not None else 0

    # -- chunk exchanges (sans-I/O) --

    def next_chunk(self) -> Chunk | None:
        """The chunk the server expects next, or ``None`` when it holds every byte."""
        self._require(UploadState.UPLOADING, "next_chunk")
        assert self._plan is not None
        return self._plan.next_chunk(self._bytes_confirmed)

    def chunk_headers(self, chunk: Chunk) -> dict[str, str]:
        """The headers of the PUT carrying ``chunk`` (no Authorization: the URL authorises)."""
        assert self._plan is not None
        source = self._request.source
        assert isinstance(source, FileSource)
        return {
            "Content-Type": source.content_type,
            "Content-Length": str(chunk.length),
            "Content-Range": self._plan.content_range(chunk),
        }

    def url_usable(self, now: float, margin: float) -> bool:
        """Whether the upload URL is still worth a chunk at epoch time ``now``."""
        return self._url_expires_at is None or now < self._url_expires_at - margin

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
        assert self._plan is not None
        if not content_range:
            return 0
        match = _CONTENT_RANGE.match(content_range)
        if match is None:
            raise UploadError(
                f"the upload server sent an unreadable Content-Range {content_range!r}"
            )
        first, last, total = match.groups()
        if int(first) != 0 or (total != "*" and int(total) != self._plan.video_size):
            raise UploadError(
                f"the upload server reports {content_range!r}, which does not match this "
                f"{self._plan.video_size}-byte upload"
            )
        received = int(last) + 1
        if not self._plan.is_boundary(received):
            raise UploadError(
                f"the upload server holds {received} bytes, which is not a chunk boundary"
            )
        return received

    def _require(self, state: UploadState, what: str) -> None:
        if self._state is not state:
            raise IllegalTransitionError(
                f"{what} needs state {state.value}, not {self._state.value}; "
                f"legal next: {_step_names(self._state)}"
            )


# -- the outcome -----------------------------------------------------------------------------------
