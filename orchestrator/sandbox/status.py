"""The status fetch, and the progress of a publish it drives.

Status progresses on status fetches: while bytes arrive, PROCESSING_UPLOAD; once complete,
``processing_polls`` fetches answer PROCESSING_UPLOAD / PROCESSING_DOWNLOAD, then the terminal
status (PUBLISH_COMPLETE with post ids for public direct posts, SEND_TO_USER_INBOX, or FAILED
with a scheduled ``fail_reason``). An upload whose URL expired before its last byte answers
FAILED with ``internal``: nothing was published, a new init may start over.

Must not: do I/O.
"""

from __future__ import annotations

from typing import Any

from orchestrator.sandbox.config import PUBLIC_TO_EVERYONE, SCOPE_VIDEO_PUBLISH, SCOPE_VIDEO_UPLOAD
from orchestrator.sandbox.endpoint import PostingEndpoint
from orchestrator.sandbox.messages import Reply, Request, posting_ok
from orchestrator.sandbox.state import (
    FAILED,
    PROCESSING_DOWNLOAD,
    PROCESSING_UPLOAD,
    PUBLISH_COMPLETE,
    SEND_TO_USER_INBOX,
    Publish,
)


class StatusEndpoint(PostingEndpoint):
    """publish/status/fetch."""

    def status(self, request: Request) -> Reply:
        return self._run(self._status, request)

    def _status(self, request: Request) -> Reply:
        endpoint = "status"
        token = self._token(endpoint, request, SCOPE_VIDEO_PUBLISH, SCOPE_VIDEO_UPLOAD)
        body = self._json_body(endpoint, request)
        publish_id = body.get("publish_id")
        state = self._state
        with state.lock:
            publish = state.publishes.get(publish_id) if isinstance(publish_id, str) else None
            if publish is None:
                raise self._refuse(
                    endpoint,
                    400,
                    "invalid_publish_id",
                    "The publish_id does not exist.",
                    f"unknown publish_id {publish_id!r}",
                )
            if publish.open_id != token.open_id:
                raise self._refuse(
                    endpoint,
                    400,
                    "token_not_authorized_for_specified_publish_id",
                    "The token is not authorized for this publish_id.",
                    f"{token.open_id}'s token asked about {publish.open_id}'s publish",
                )
            self._advance(publish)
            data: dict[str, Any] = {
                "status": publish.status,
                "publicaly_available_post_id": list(publish.post_ids),
            }
            if publish.source == "FILE_UPLOAD":
                data["uploaded_bytes"] = publish.bytes_received
            else:
                data["downloaded_bytes"] = 0
            if publish.status == FAILED:
                data["fail_reason"] = publish.fail_reason
        return posting_ok(data, state.log_id())

    def _advance(self, publish: Publish) -> None:
        """One status fetch's worth of progress (called under the state lock)."""
        if publish.terminal:
            return
        if not publish.completed:
            expires = publish.url_expires_at
            if expires is not None and self._state.now() >= expires:
                publish.status, publish.fail_reason = FAILED, "internal"
            else:
                publish.status = PROCESSING_UPLOAD
            return
        if publish.polls_after_complete < self._config.processing_polls:
            publish.polls_after_complete += 1
            publish.status = (
                PROCESSING_UPLOAD if publish.source == "FILE_UPLOAD" else PROCESSING_DOWNLOAD
            )
            return
        if publish.planned_failure is not None:
            publish.status, publish.fail_reason = FAILED, publish.planned_failure
        elif publish.post_mode == "DIRECT_POST":
            publish.status = PUBLISH_COMPLETE
            if publish.post_info.get("privacy_level") == PUBLIC_TO_EVERYONE:
                publish.post_ids = [self._state.next_post_id()]
        else:
            publish.status = SEND_TO_USER_INBOX
