"""How ``POST /posts`` reads its request: an entry as JSON, or multipart with the video
streamed to disk under its content hash; the entry's checks, the body digest and the
idempotency key that make a retried request the same post.

Must not: keep a partial upload (a refused or broken request leaves no file behind).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from flask import request
from werkzeug.formparser import parse_form_data

from orchestrator.manifest import check_manifest
from orchestrator.web.api.base import ApiProblem, app_services, problem_json, read_json_body

MAX_UPLOAD_BYTES = 4 * 1024**3
"""The largest video a multipart ``POST /posts`` takes (TikTok's own limit, tiktok-api.md)."""
MAX_FORM_FIELDS_BYTES = 1024 * 1024
"""The form fields beside the video (the entry's JSON) may be this long."""
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True)
class Submission:
    """A ``POST /posts`` request read: its entry, the digest that identifies its body, and
    the received video (multipart) if any."""

    entry: dict[str, Any]
    body_digest: str
    upload: Path | None = None
    created_upload: bool = False
    """Whether this request put ``upload`` in place (another post may share the same file)."""


def check_video_path(value: object) -> str:
    """The resolved path of an entry's ``video_path``, which must be inside an upload root."""
    roots: tuple[Path, ...] = app_services().config.upload_roots
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


def validate_entry(entry: dict[str, Any], folder: Path) -> None:
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
            problems=[problem_json(problem, "entries[0]") for problem in checked.problems],
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


def json_submission() -> Submission:
    entry = _entry_object(read_json_body())
    digest = _digest(entry)
    if "video_path" in entry:
        entry["video_path"] = check_video_path(entry["video_path"])
    return Submission(entry=entry, body_digest=digest)


class UploadFiles:
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


def multipart_submission(files: UploadFiles) -> Submission:
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
    return Submission(entry=entry, body_digest=digest, upload=final, created_upload=created)


def idempotency_key(entry: Mapping[str, Any]) -> str:
    header = request.headers.get("Idempotency-Key")
    if header is not None:
        if not IDEMPOTENCY_KEY.match(header):
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
