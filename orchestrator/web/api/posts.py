"""``/posts``: queue one post (JSON or multipart, see ``submission``), read where it
stands from the store and the journal, cancel it before it starts (or once set aside).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, jsonify, request

from orchestrator.store.journal import JournalRecord
from orchestrator.store.web import IdempotencyConflict, PostState, WebPost
from orchestrator.web.api.base import (
    ID_PATTERN,
    ApiProblem,
    api_journal,
    app_services,
    blueprint,
    require_api_key,
)
from orchestrator.web.api.submission import (
    UploadFiles,
    idempotency_key,
    json_submission,
    multipart_submission,
    validate_entry,
)
from orchestrator.web.worker import UPLOADS_FOLDER, post_record


@blueprint.post("/posts")
@require_api_key
def create_post() -> tuple[Response, int, dict[str, str]]:
    """Queue one post: a manifest entry as JSON, or multipart with the video streamed to
    disk. 202 with the post; the same Idempotency-Key (or entry id) gives the same post."""
    found = app_services()
    uploads = found.settings.home / UPLOADS_FOLDER
    files = UploadFiles(uploads)
    try:
        if request.mimetype == "multipart/form-data":
            submission = multipart_submission(files)
        elif request.mimetype == "application/json":
            submission = json_submission()
        else:
            raise ApiProblem(
                415,
                "unsupported_media_type",
                f"POST /posts takes application/json or multipart/form-data, not "
                f"{request.mimetype or 'no Content-Type'}",
                "set Content-Type: application/json (an entry) or send a multipart form",
            )
        key = idempotency_key(submission.entry)
        # The post's own id becomes the entry's id when the worker runs it.
        entry = {name: value for name, value in submission.entry.items() if name != "id"}
        try:
            validate_entry(entry, uploads)
        except ApiProblem:
            if submission.upload is not None and submission.created_upload:
                submission.upload.unlink(missing_ok=True)
            raise
        try:
            post, made = found.posts.add(
                key,
                body_digest=submission.body_digest,
                entry=json.dumps(entry, ensure_ascii=False),
                upload_path=None if submission.upload is None else str(submission.upload),
            )
        except IdempotencyConflict as exc:
            raise ApiProblem(409, "idempotency_conflict", str(exc), exc.hint) from None
    finally:
        files.discard()
    if made:
        wake = getattr(found.worker, "wake", None)
        if callable(wake):
            wake()
    location = f"/api/v1/posts/{post.id}"
    return jsonify(_post_json(post, None)), 202, {"Location": location}


REJECTED_HINT = (
    "the post became invalid while it waited (its video was removed or changed) and the worker "
    "set it aside: nothing more is sent for it. Fix it and POST it again with a new "
    "Idempotency-Key, or DELETE it to cancel it"
)


def _post_json(post: WebPost, record: JournalRecord | None) -> dict[str, Any]:
    entry = json.loads(post.entry)
    body: dict[str, Any] = {
        "id": post.id,
        "user_id": entry.get("user_id"),
        "mode": entry.get("mode", "direct"),
        "created_at": post.created_at,
        "state": "queued",
    }
    if post.cancelled_at is not None:
        body["state"] = "cancelled"
        body["cancelled_at"] = post.cancelled_at
        return body
    if post.state is PostState.REJECTED:
        body["state"] = "failed"
        body["rejected_at"] = post.rejected_at
        body["error"] = {
            "code": "invalid_entry",
            "message": "; ".join(post.rejection),
            "log_id": None,
            "retryable": False,
            "hint": REJECTED_HINT,
        }
        return body
    if record is None:
        return body
    body.update(
        {
            "state": str(record.state),
            "publish_id": record.publish_id,
            "bytes_sent": record.bytes_confirmed,
            "bytes_total": None if record.plan is None else record.plan.video_size,
            "post_ids": list(record.post_ids),
            "deferred_until": record.deferred_until,
            "attempts": record.attempts,
            "updated_at": record.updated_at,
        }
    )
    from orchestrator.web.review import consent_json

    body["consent"] = consent_json(record.identity)  # the creator's review, when they gave one
    if record.error_code is not None or record.error_message is not None:
        body["error"] = {
            "code": record.error_code,
            "message": record.error_message,
            "log_id": record.error_log_id,
            "retryable": record.error_retryable,
            "hint": record.error_hint,
        }
    return body


def _post(post_id: str) -> WebPost:
    post: WebPost | None = app_services().posts.get(post_id) if ID_PATTERN.match(post_id) else None
    if post is None:
        raise ApiProblem(
            404, "unknown_post", f"no post has id {post_id!r}", "use the id POST /posts answered"
        )
    return post


@blueprint.get("/posts/<post_id>")
@require_api_key
def get_post(post_id: str) -> Response:
    """Where a post stands, from the store (cancelled, set aside) and the journal."""
    post = _post(post_id)
    return jsonify(_post_json(post, post_record(api_journal(), post.id)))


@blueprint.delete("/posts/<post_id>")
@require_api_key
def cancel_post(post_id: str) -> Response:
    """Cancel a post that has not started, or one the worker set aside (409 once the journal
    has it)."""
    post = _post(post_id)
    record = post_record(api_journal(), post.id)
    if record is not None and post.state is not PostState.REJECTED:
        raise ApiProblem(
            409,
            "already_started",
            f"post {post.id} has started ({record.state}); it can no longer be cancelled",
            "a post TikTok received cannot be withdrawn here; delete it in the TikTok app",
        )
    if not app_services().posts.cancel(post.id):
        # A worker (of this or another `serve` instance) took it meanwhile: it runs.
        raise ApiProblem(
            409,
            "already_started",
            f"post {post.id} has started; it can no longer be cancelled",
            "a post TikTok received cannot be withdrawn here; delete it in the TikTok app",
        )
    cancelled: WebPost = app_services().posts.get(post.id)
    return jsonify(_post_json(cancelled, None))
