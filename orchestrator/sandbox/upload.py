"""Chunk PUTs to an ``upload_url`` (``tiktok-api.md`` §5), split in two steps around the body.

:meth:`UploadEndpoint.begin` checks the headers against the publish's plan and its progress and
either refuses (an answer) or hands out a :class:`ChunkTicket`; the server then streams the body
into the ticket's hash (never holding the chunk in memory, never holding the state lock);
:meth:`UploadEndpoint.finish` commits the chunk (206 more expected, 201 complete) or
:meth:`UploadEndpoint.abandon` drops it when the body never fully arrived.

Answers: 400 bad headers or length · 403 URL expired · 404 no such upload · 416 the range is not
the next expected chunk (with ``Content-Range: bytes 0-LAST/TOTAL`` progress when any bytes are
held; a resend of an accepted chunk also gets 416, which is how a client learns progress).
Two PUTs of one chunk may stream at once (a client resending while the server has not yet
seen the first connection die): each hashes into its own copy, the first to finish commits and
the other is answered 416.
Must not: do I/O.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from orchestrator.sandbox.messages import Reply, Request, upload_reply
from orchestrator.sandbox.rules import VIDEO_CONTENT_TYPES, media_type, parse_content_range
from orchestrator.sandbox.state import FAILED, Publish, SandboxState

logger = logging.getLogger(__name__)


@dataclass
class ChunkTicket:
    """Permission to stream one chunk: where it goes and the hash to continue."""

    publish_id: str
    first: int
    length: int
    total: int
    hasher: Any


class UploadEndpoint:
    """The ``/upload/`` PUT endpoint."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state

    def _reply(self, status: int, publish: Publish | None, why: str) -> Reply:
        """The answer (no body, tiktok-api.md §5); ``why`` goes to the debug log only."""
        logger.debug("upload answers %d: %s", status, why)
        if publish is None or publish.plan is None:
            return upload_reply(status, 0, 0)
        return upload_reply(status, publish.bytes_received, publish.plan.video_size)

    def _find(self, request: Request) -> Publish | None:
        """The publish an upload URL belongs to (its token checked), under the state lock."""
        publish_id = self._state.uploads.get(request.arg("upload_id") or "")
        publish = self._state.publishes.get(publish_id) if publish_id else None
        if publish is None or publish.upload_token is None:
            return None
        given = (request.arg("upload_token") or "").encode()
        if not hmac.compare_digest(given, publish.upload_token.encode()):
            return None
        return publish

    def expire(self, request: Request) -> None:
        """Make this request's upload URL expire now (the ``expire`` fault)."""
        with self._state.lock:
            publish = self._find(request)
            if publish is not None:
                publish.url_expires_at = self._state.now()

    def _expired(self, publish: Publish) -> bool:
        expires = publish.url_expires_at
        return expires is not None and self._state.now() >= expires

    def begin(self, request: Request) -> ChunkTicket | Reply:
        """Check a chunk PUT's URL and headers; a ticket to stream the body, or the refusal."""
        state = self._state
        with state.lock:
            publish = self._find(request)
            if publish is None or publish.plan is None:
                state.violation("upload", "PUT to an unknown upload URL")
                return self._reply(404, None, "The upload does not exist.")
            plan = publish.plan
            if request.header("authorization") is not None:
                state.violation(
                    "upload",
                    f"chunk PUT for {publish.publish_id} carried an Authorization header "
                    "(the upload URL authorises; never send the token there)",
                )
            if self._expired(publish):
                return self._reply(403, publish, "The upload URL has expired.")
            content_type = media_type(request.header("content-type"))
            if content_type not in VIDEO_CONTENT_TYPES:
                return self._bad(publish, f"Content-Type {content_type!r} is not a video type")
            length_text = request.header("content-length")
            if length_text is None or not length_text.strip().isdigit():
                return self._bad(publish, "Content-Length is missing or not a number")
            length = int(length_text)
            parsed = parse_content_range(request.header("content-range"))
            if parsed is None:
                return self._bad(publish, "Content-Range is missing or malformed")
            first, last, total = parsed
            if total != plan.video_size:
                return self._bad(
                    publish, f"Content-Range total {total} is not video_size {plan.video_size}"
                )
            if last - first + 1 != length:
                return self._bad(
                    publish,
                    f"Content-Length {length} does not match Content-Range bytes {first}-{last}",
                )
            if publish.completed or not self._is_next_chunk(publish, first, last):
                self._note_mismatch(publish, first, last, request.connection)
                publish.refused_416_to = request.connection
                return self._reply(416, publish, "The range does not match the upload's progress.")
            publish.refused_416_to = None
            return ChunkTicket(
                publish_id=publish.publish_id,
                first=first,
                length=length,
                total=total,
                hasher=publish.hasher.copy(),
            )

    def _bad(self, publish: Publish, why: str) -> Reply:
        self._state.violation("upload", f"{publish.publish_id}: {why}")
        return self._reply(400, publish, why)

    @staticmethod
    def _is_next_chunk(publish: Publish, first: int, last: int) -> bool:
        plan = publish.plan
        assert plan is not None
        return (first, last) == plan.chunk_range(publish.chunks_received)

    def _note_mismatch(self, publish: Publish, first: int, last: int, connection: str) -> None:
        """A 416 is a violation unless it is a first resend of an already accepted chunk (a
        second one is a violation when sent on the connection that was answered the 416)."""
        plan = publish.plan
        assert plan is not None
        index = first // plan.chunk_size
        resend = index < publish.chunks_received and plan.chunk_range(index) == (first, last)
        if publish.refused_416_to == connection:
            self._state.violation(
                "upload",
                f"{publish.publish_id}: sent bytes {first}-{last} after a 416 without resyncing "
                "to the server's Content-Range",
            )
        elif not resend:
            if publish.completed:
                expected = "nothing more (the upload is complete)"
            else:
                exp_first, exp_last = plan.chunk_range(publish.chunks_received)
                expected = f"bytes {exp_first}-{exp_last}"
            self._state.violation(
                "upload",
                f"{publish.publish_id}: sent bytes {first}-{last}, expected {expected} "
                "(chunks go in order, each exactly as planned)",
            )

    def finish(self, ticket: ChunkTicket, hasher: Any) -> Reply:
        """Commit a fully received chunk: 206 more expected, 201 upload complete."""
        state = self._state
        with state.lock:
            publish = state.publishes[ticket.publish_id]
            plan = publish.plan
            assert plan is not None
            if publish.bytes_received != ticket.first:
                # Another PUT of this chunk finished first: the two overlapped.
                state.violation(
                    "upload",
                    f"{publish.publish_id}: two PUTs of the chunk at byte {ticket.first} "
                    "overlapped (chunks go one at a time)",
                )
                return self._reply(416, publish, "The range does not match the upload's progress.")
            if self._expired(publish):
                return self._reply(403, publish, "The upload URL expired during the upload.")
            publish.hasher = hasher
            publish.bytes_received += ticket.length
            publish.chunks_received += 1
            if publish.chunks_received < plan.total_chunk_count:
                return self._reply(206, publish, "Chunk accepted.")
            publish.completed = True
            publish.sha256 = hasher.hexdigest()
            key = (publish.open_id, publish.sha256)
            earlier = state.digests.get(key)
            # Uploading a video again after TikTok reported its earlier upload FAILED is the
            # documented way to retry (tiktok-api.md §9): only a live earlier post makes this
            # one a second post.
            if earlier is not None and state.publishes[earlier].status != FAILED:
                state.violation(
                    "upload",
                    f"{publish.publish_id}: byte-identical video already uploaded by "
                    f"{publish.open_id} as {earlier} (a second post of the same video)",
                )
            else:
                state.digests[key] = publish.publish_id
            return self._reply(201, publish, "Upload complete.")

    def abandon(self, ticket: ChunkTicket) -> None:
        """The body did not fully arrive: nothing of it counts (its hash copy is dropped)."""
        logger.debug("chunk of %s abandoned after a short body", ticket.publish_id)
