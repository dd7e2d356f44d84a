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

Where each part lives (data flows down this list, never up):

- ``upload.events`` — a leaf: the events, :class:`UploadState`, :data:`TRANSITIONS`,
  :class:`ResumePoint` and the :class:`JournalSink` protocol (the store imports these);
- ``upload.request`` — what to post: :class:`UploadRequest` and its sources;
- ``upload.machine`` — the sans-I/O :class:`UploadMachine`: state (read-only from outside),
  the transition checks, chunk headers and the meaning of a chunk answer;
- ``upload.run`` — one call's working state (the machine, its file, the shared collaborators)
  and the :class:`UploadOutcome` it ends in;
- ``upload.initialise`` — the init, the one request that can post;
- ``upload.settle`` — settling a maybe-finished upload by its status, and polling;
- ``upload.transfer`` — chunk PUTs through the transport, resyncs, dead URLs, and the checks
  that the file being sent is still the file that was initialised;
- ``upload.driver`` — :class:`Uploader`, which opens the file and runs those steps in order.
  Progress goes to a :class:`ProgressSubscriber`; nothing here prints.
"""

import importlib
from typing import TYPE_CHECKING, Final

from orchestrator.upload.events import (
    TRANSITIONS,
    ChunkConfirmed,
    Deferred,
    Failed,
    FileIdentity,
    FinalChunkSending,
    Initialised,
    JournalSink,
    MemoryJournal,
    NullJournal,
    Processing,
    Published,
    ResumePoint,
    Resynced,
    SentToInbox,
    SourceChanged,
    Uncertain,
    Uploaded,
    UploadEvent,
    UploadState,
)

# The engine (machine, driver, request) is loaded on first use, not on import: the store
# imports ``orchestrator.upload.events``, and Python runs this file first, so an eager import
# here would load the driver, the TikTok client and requests into every store user.
if TYPE_CHECKING:
    from orchestrator.upload.driver import Uploader
    from orchestrator.upload.machine import ChunkAnswer, ChunkReply, MachineEvent, UploadMachine
    from orchestrator.upload.request import (
        CONTENT_TYPES,
        FileSource,
        PhotoSource,
        Source,
        UploadRequest,
        UrlSource,
    )
    from orchestrator.upload.run import UploadOutcome

_LAZY: Final = {
    "UploadOutcome": "run",
    "Uploader": "driver",
    "ChunkAnswer": "machine",
    "ChunkReply": "machine",
    "MachineEvent": "machine",
    "UploadMachine": "machine",
    "CONTENT_TYPES": "request",
    "FileSource": "request",
    "PhotoSource": "request",
    "Source": "request",
    "UploadRequest": "request",
    "UrlSource": "request",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # looked up once
    return value


__all__ = [
    "CONTENT_TYPES",
    "TRANSITIONS",
    "ChunkAnswer",
    "ChunkConfirmed",
    "ChunkReply",
    "Deferred",
    "Failed",
    "FileIdentity",
    "FileSource",
    "FinalChunkSending",
    "Initialised",
    "JournalSink",
    "MachineEvent",
    "MemoryJournal",
    "NullJournal",
    "PhotoSource",
    "Processing",
    "Published",
    "ResumePoint",
    "Resynced",
    "SentToInbox",
    "Source",
    "SourceChanged",
    "Uncertain",
    "UploadEvent",
    "UploadMachine",
    "UploadOutcome",
    "UploadRequest",
    "UploadState",
    "Uploaded",
    "Uploader",
    "UrlSource",
]
