"""``/api/v1``: the HTTP API for workflow tools (n8n, Make, Zapier, Airflow, curl).

Every route but ``/healthz`` needs ``Authorization: Bearer <API key>``; a request without a
valid key is a 401 with no detail (it does not say whether the key was unknown, revoked or
malformed). Errors are one JSON shape: ``{"code", "message", "hint"}``.

This module must not echo a key, a token or an upload URL in any answer or log.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.formparser import parse_form_data

from orchestrator import auth
from orchestrator.errors import (
    ApiError,
    AuthError,
    OrchestratorError,
    StoreError,
    TransportError,
)
from orchestrator.manifest import Problem, check_manifest
from orchestrator.media import FileMedia
from orchestrator.store.journal import Journal, JournalRecord
from orchestrator.store.tokens import DEFAULT_REFRESH_MARGIN, StoredUser
from orchestrator.store.web import ApiKey, IdempotencyConflict, WebPost
from orchestrator.web.worker import (
    REPORT_NAME,
    UPLOADS_FOLDER,
    post_record,
    run_folder,
    run_manifest_path,
)

blueprint = Blueprint("api", __name__)

P = ParamSpec("P")
R = TypeVar("R")


def error_response(status: int, code: str, message: str, hint: str | None = None) -> Response:
    """The API's one error shape."""
    response = jsonify({"code": code, "message": message, "hint": hint})
    response.status_code = status
    return response


def _unauthorized() -> Response:
    response = error_response(401, "unauthorized", "a valid API key is required")
    response.headers["WWW-Authenticate"] = 'Bearer realm="tiktok-orchestrator"'
    return response


def require_api_key(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Answer 401 unless the request carries an active API key; the key is ``g.api_key``."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        from orchestrator.web import services

        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return _unauthorized()
        key: ApiKey | None = services().api_keys.authenticate(value.strip())
        if key is None:
            return _unauthorized()
        g.api_key = key
        return view(*args, **kwargs)

    return wrapper


@blueprint.get("/healthz")
def healthz() -> tuple[Response, int]:
    """No auth: whether the store answers, the worker lives, and how much work is queued."""
    from orchestrator.web import services

    found = services()
    try:
        found.tokens.database.fetch_one("SELECT 1")
        store_ok = True
    except StoreError:
        store_ok = False
    worker_alive = found.worker.alive()
    body = {
        "status": "ok" if store_ok and worker_alive else "unhealthy",
        "store_reachable": store_ok,
        "worker_alive": worker_alive,
        "queue_depth": found.worker.queue_depth(),
    }
    return jsonify(body), 200 if store_ok and worker_alive else 503


# -- what every route shares ---------------------------------------------------------------------

MAX_UPLOAD_BYTES = 4 * 1024**3
"""The largest video a multipart ``POST /posts`` takes (TikTok's own limit, tiktok-api.md)."""
MAX_FORM_FIELDS_BYTES = 1024 * 1024
"""The form fields beside the video (the entry's JSON) may be this long."""
MAX_JSON_BODY = 1024 * 1024
MAX_MANIFEST_BODY = 64 * 1024 * 1024
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class ApiProblem(Exception):
    """A request the API answers with an error: the one JSON shape, and ``problems`` (each
    ``{"location", "message", "fix"}``) for a 422."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        hint: str | None = None,
        problems: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.problems = problems


@blueprint.errorhandler(ApiProblem)
def _api_problem(problem: ApiProblem) -> Response:
    response = error_response(problem.status, problem.code, problem.message, problem.hint)
    if problem.problems is not None:
        body = response.get_json()
        body["problems"] = problem.problems
        response.set_data(json.dumps(body))
    return response


def _services() -> Any:
    from orchestrator.web import services

    return services()


def _journal() -> Journal:
    found = _services()
    return Journal(found.tokens.database, found.tokens.cipher, clock=found.clock, run_id="api")


def _json_body(limit: int = MAX_JSON_BODY) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise ApiProblem(413, "too_large", f"the request body is over {limit} bytes")
    raw = request.get_data(cache=False)
    if len(raw) > limit:
        raise ApiProblem(413, "too_large", f"the request body is over {limit} bytes")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiProblem(
            400, "bad_json", f"the body is not JSON: {exc}", "send one JSON object"
        ) from None


def _problem_json(problem: Problem, prefix: str = "") -> dict[str, Any]:
    location = problem.location
    if prefix and location.startswith(prefix):
        location = location[len(prefix) :].lstrip(".") or "entry"
    return {"location": location, "message": problem.message, "fix": problem.fix}


def _user_json(user: StoredUser, now: float) -> dict[str, Any]:
    return {
        "open_id": user.open_id,
        "display_name": user.display_name,
        "scopes": sorted(user.scopes),
        "token_state": str(user.state(now, DEFAULT_REFRESH_MARGIN)),
        "access_expires_at": user.access_expires_at,
        "refresh_expires_at": user.refresh_expires_at,
        "login_reason": user.login_reason(now),
    }


# -- accounts ------------------------------------------------------------------------------------


@blueprint.get("/accounts")
@require_api_key
def accounts() -> Response:
    """Every connected account with its token health (no token values)."""
    found = _services()
    rows = auth.list_users(found.tokens, clock=found.clock, margin=DEFAULT_REFRESH_MARGIN)
    now = found.clock.time()
    return jsonify({"accounts": [_user_json(row.user, now) for row in rows]})


def _stored_user(open_id: str) -> StoredUser:
    user: StoredUser | None = _services().tokens.get_user(open_id)
    if user is None:
        raise ApiProblem(
            404,
            "unknown_account",
            f"no connected account has open_id {open_id!r}",
            "GET /api/v1/accounts lists them; a creator connects through an invite",
        )
    return user


@blueprint.get("/accounts/<open_id>")
@require_api_key
def account(open_id: str) -> Response:
    """One account as the store knows it."""
    return jsonify(_user_json(_stored_user(open_id), _services().clock.time()))


@blueprint.get("/accounts/<open_id>/creator-info")
@require_api_key
def creator_info(open_id: str) -> Response:
    """TikTok's creator_info for the account, asked now with its stored token (refreshed
    when stale, as a run does)."""
    from orchestrator.store.tokens import TokenProvider
    from orchestrator.tiktok.client import TikTokClient
    from orchestrator.tiktok.oauth import OAuthClient
    from orchestrator.transport import HttpTransport

    _stored_user(open_id)
    found = _services()
    try:
        found.settings.require_client()
        with contextlib.closing(HttpTransport()) as transport:
            oauth = OAuthClient.from_settings(found.settings, transport, found.clock)
            tokens = TokenProvider(found.tokens, oauth, clock=found.clock)
            client = TikTokClient(found.settings.api_base, transport, tokens, clock=found.clock)
            info = client.creator_info(open_id)
    except AuthError as exc:
        raise ApiProblem(409, "needs_login", str(exc), exc.hint) from None
    except ApiError as exc:
        raise ApiProblem(502, exc.code, str(exc), exc.hint) from None
    except TransportError as exc:
        raise ApiProblem(502, "tiktok_unreachable", str(exc), exc.hint) from None
    except OrchestratorError as exc:
        raise ApiProblem(503, "not_configured", str(exc), exc.hint) from None
    return jsonify(
        {
            "open_id": open_id,
            "username": info.username,
            "nickname": info.nickname,
            "avatar_url": info.avatar_url,
            "privacy_level_options": list(info.privacy_level_options),
            "comment_disabled": info.comment_disabled,
            "duet_disabled": info.duet_disabled,
            "stitch_disabled": info.stitch_disabled,
            "max_video_post_duration_sec": info.max_video_post_duration_sec,
        }
    )


# -- posts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Submission:
    """A ``POST /posts`` request read: its entry, the digest that identifies its body, and
    the received video (multipart) if any."""

    entry: dict[str, Any]
    body_digest: str
    upload: Path | None = None
    created_upload: bool = False
    """Whether this request put ``upload`` in place (another post may share the same file)."""


def _check_video_path(value: object) -> str:
    """The resolved path of an entry's ``video_path``, which must be inside an upload root."""
    roots: tuple[Path, ...] = _services().config.upload_roots
    if not roots:
        raise ApiProblem(
            400,
            "video_path_not_allowed",
            "this server takes no video_path: no upload roots are configured",
            "upload the video as multipart/form-data, send video_url, or set "
            "ORCHESTRATOR_UPLOAD_ROOTS on the server",
        )
    if not isinstance(value, str) or not value:
        return str(value)  # the manifest's checks say what is wrong with it
    path = Path(value)
    if ".." in path.parts or not path.is_absolute():
        raise ApiProblem(
            400,
            "video_path_outside_roots",
            "video_path must be an absolute path without '..'",
            "name the file by its absolute path under an upload root",
        )
    resolved = Path(os.path.realpath(path))
    for root in roots:
        if resolved.is_relative_to(Path(os.path.realpath(root))):
            return str(resolved)
    raise ApiProblem(
        400,
        "video_path_outside_roots",
        "video_path is outside the server's upload roots (a symlink counts where it points)",
        "put the file under one of ORCHESTRATOR_UPLOAD_ROOTS, or upload it as multipart",
    )


def _validate_entry(entry: dict[str, Any], folder: Path) -> None:
    """Check one entry as ``validate`` checks a manifest: a 422 lists every problem."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.NamedTemporaryFile(
        "w", dir=folder, prefix=".entry-", suffix=".json", encoding="utf-8", delete=False
    ) as file:
        json.dump({"version": 1, "entries": [entry]}, file, ensure_ascii=False)
        path = Path(file.name)
    try:
        checked = check_manifest(path)
    finally:
        path.unlink(missing_ok=True)
    if checked.problems:
        raise ApiProblem(
            422,
            "invalid_entry",
            f"the entry has {len(checked.problems)} problem(s); nothing was queued",
            "fix each problem listed in `problems` and send the request again",
            problems=[_problem_json(problem, "entries[0]") for problem in checked.problems],
        )


def _digest(entry: Mapping[str, Any], video_sha256: str | None = None) -> str:
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = canonical if video_sha256 is None else f"{canonical}\n{video_sha256}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _entry_object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiProblem(
            422,
            "invalid_entry",
            "the body must be one manifest entry (a JSON object)",
            'e.g. {"user_id": "...", "video_url": "https://...", "mode": "inbox"}',
            problems=[{"location": "entry", "message": "not an object", "fix": None}],
        )
    return dict(value)


def _json_submission() -> _Submission:
    entry = _entry_object(_json_body())
    digest = _digest(entry)
    if "video_path" in entry:
        entry["video_path"] = _check_video_path(entry["video_path"])
    return _Submission(entry=entry, body_digest=digest)


class _UploadFiles:
    """werkzeug's stream factory for the multipart parser: each file part is written straight
    to a file under the home (never held in memory), and every one made is remembered so the
    request can clean up."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.made: list[Path] = []

    def __call__(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by the caller
            dir=self.folder, prefix=".receiving-", delete=False
        )
        self.made.append(Path(file.name))
        return file

    def discard(self) -> None:
        for path in self.made:
            path.unlink(missing_ok=True)


def _multipart_submission(files: _UploadFiles) -> _Submission:
    if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES + (
        MAX_FORM_FIELDS_BYTES
    ):
        raise ApiProblem(
            413, "too_large", "the upload is over 4 GB", "TikTok takes videos up to 4 GB"
        )
    _, form, received = parse_form_data(
        request.environ,
        stream_factory=files,
        max_form_memory_size=MAX_FORM_FIELDS_BYTES,
        silent=False,
    )
    try:
        video = received.get("video")
        if video is None:
            raise ApiProblem(
                422,
                "invalid_entry",
                "the multipart form has no `video` file part",
                "send the video as -F video=@clip.mp4 and the entry as -F 'entry={...}'",
                problems=[{"location": "video", "message": "missing", "fix": "add the file"}],
            )
        video.stream.close()
        path = Path(video.stream.name)
        entry = _entry_object(json.loads(form.get("entry", "{}")))
    except json.JSONDecodeError as exc:
        raise ApiProblem(400, "bad_json", f"the `entry` field is not JSON: {exc}") from None
    finally:
        for other in received.values():
            other.close()
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise ApiProblem(
            413, "too_large", "the video is over 4 GB", "TikTok takes videos up to 4 GB"
        )
    for field in ("video_path", "video_url", "photo_urls"):
        if field in entry:
            raise ApiProblem(
                422,
                "invalid_entry",
                f"a multipart post carries its video: the entry must not set {field}",
                f"remove {field} from the entry",
                problems=[{"location": field, "message": "not allowed here", "fix": None}],
            )
    sha = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1024 * 1024), b""):
            sha.update(block)
    video_sha256 = sha.hexdigest()
    digest = _digest(entry, video_sha256)
    # Named by content: a retried upload lands on the same file, and a file the worker may be
    # sending is never replaced under it.
    final = files.folder / video_sha256
    created = not final.exists()
    if created:
        os.replace(path, final)
    else:
        path.unlink()
    entry["video_path"] = str(final)
    return _Submission(entry=entry, body_digest=digest, upload=final, created_upload=created)


def _idempotency_key(entry: Mapping[str, Any]) -> str:
    header = request.headers.get("Idempotency-Key")
    if header is not None:
        if not _IDEMPOTENCY_KEY.match(header):
            raise ApiProblem(
                400,
                "bad_idempotency_key",
                "Idempotency-Key must be 1-255 printable ASCII characters",
                "use a UUID",
            )
        return "key:" + header
    entry_id = entry.get("id")
    if isinstance(entry_id, str) and entry_id:
        return "id:" + entry_id
    return "none:" + secrets.token_hex(16)


@blueprint.post("/posts")
@require_api_key
def create_post() -> tuple[Response, int, dict[str, str]]:
    """Queue one post: a manifest entry as JSON, or multipart with the video streamed to
    disk. 202 with the post; the same Idempotency-Key (or entry id) gives the same post."""
    found = _services()
    uploads = found.settings.home / UPLOADS_FOLDER
    files = _UploadFiles(uploads)
    try:
        if request.mimetype == "multipart/form-data":
            submission = _multipart_submission(files)
        elif request.mimetype == "application/json":
            submission = _json_submission()
        else:
            raise ApiProblem(
                415,
                "unsupported_media_type",
                f"POST /posts takes application/json or multipart/form-data, not "
                f"{request.mimetype or 'no Content-Type'}",
                "set Content-Type: application/json (an entry) or send a multipart form",
            )
        key = _idempotency_key(submission.entry)
        # The post's own id becomes the entry's id when the worker runs it.
        entry = {name: value for name, value in submission.entry.items() if name != "id"}
        try:
            _validate_entry(entry, uploads)
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
    post: WebPost | None = _services().posts.get(post_id) if _ID.match(post_id) else None
    if post is None:
        raise ApiProblem(
            404, "unknown_post", f"no post has id {post_id!r}", "use the id POST /posts answered"
        )
    return post


@blueprint.post("/reviews")
@require_api_key
def create_review() -> tuple[Response, int]:
    """A review link for a creator's posts awaiting review (``web/review.py``)."""
    from orchestrator.web.review import api_create_link

    return api_create_link()


@blueprint.get("/posts/<post_id>")
@require_api_key
def get_post(post_id: str) -> Response:
    """Where a post stands, from the journal."""
    post = _post(post_id)
    return jsonify(_post_json(post, post_record(_journal(), post.id)))


@blueprint.delete("/posts/<post_id>")
@require_api_key
def cancel_post(post_id: str) -> Response:
    """Cancel a post that has not started (409 once the journal has it)."""
    post = _post(post_id)
    record = post_record(_journal(), post.id)
    if record is not None:
        raise ApiProblem(
            409,
            "already_started",
            f"post {post.id} has started ({record.state}); it can no longer be cancelled",
            "a post TikTok received cannot be withdrawn here; delete it in the TikTok app",
        )
    _services().posts.cancel(post.id)
    cancelled: WebPost = _services().posts.get(post.id)
    return jsonify(_post_json(cancelled, None))


# -- runs ----------------------------------------------------------------------------------------

_YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})


@blueprint.post("/runs")
@require_api_key
def create_run() -> tuple[Response, int, dict[str, str]]:
    """Queue a whole manifest (JSON or YAML body); 202 with the run id."""
    found = _services()
    if request.mimetype == "application/json":
        suffix = ".json"
    elif request.mimetype in _YAML_TYPES:
        suffix = ".yaml"
    else:
        raise ApiProblem(
            415,
            "unsupported_media_type",
            "POST /runs takes a manifest as application/json or application/yaml",
            "set the Content-Type to match the manifest",
        )
    if request.content_length is not None and request.content_length > MAX_MANIFEST_BODY:
        raise ApiProblem(413, "too_large", "the manifest is over 64 MB")
    raw = request.get_data(cache=False)
    run_id = "api-" + secrets.token_hex(8)
    folder = run_folder(found.settings, run_id)
    folder.mkdir(parents=True, mode=0o700)
    staged = folder / f".manifest{suffix}"
    staged.write_bytes(raw)
    try:
        checked = check_manifest(staged)
        if checked.problems:
            raise ApiProblem(
                422,
                "invalid_manifest",
                f"the manifest has {len(checked.problems)} problem(s); nothing was queued",
                "fix each problem listed in `problems` (`tiktok-orchestrator validate` shows "
                "the same)",
                problems=[_problem_json(problem) for problem in checked.problems],
            )
        assert checked.manifest is not None
        for entry in checked.manifest.entries:
            if isinstance(entry.media, FileMedia):
                _check_video_path(str(entry.media.path))
    except BaseException:
        staged.unlink(missing_ok=True)
        folder.rmdir()
        raise
    staged.replace(folder / f"manifest{suffix}")
    wake = getattr(found.worker, "wake", None)
    if callable(wake):
        wake()
    return (
        jsonify({"run_id": run_id, "state": "queued"}),
        202,
        {"Location": f"/api/v1/runs/{run_id}"},
    )


@blueprint.get("/runs/<run_id>")
@require_api_key
def get_run(run_id: str) -> tuple[Response, int]:
    """The run's report (``run --report``'s JSON) once it ran; 202 while it is queued."""
    found = _services()
    folder = run_folder(found.settings, run_id) if _ID.match(run_id) else None
    if folder is None or run_manifest_path(folder) is None:
        raise ApiProblem(
            404, "unknown_run", f"no run has id {run_id!r}", "use the id POST /runs answered"
        )
    report = folder / REPORT_NAME
    if not report.is_file():
        return jsonify({"run_id": run_id, "state": "queued"}), 202
    return Response(report.read_bytes(), mimetype="application/json"), 200


# -- the OpenAPI document ------------------------------------------------------------------------


@blueprint.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document of these routes (no auth: it describes, it holds nothing)."""
    from orchestrator.web.openapi import openapi_document

    return jsonify(openapi_document())
