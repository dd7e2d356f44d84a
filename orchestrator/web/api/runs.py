"""``/runs``: queue a whole manifest (JSON or YAML), read its report once it ran."""

from __future__ import annotations

import secrets

from flask import Response, jsonify, request

from orchestrator.manifest import check_manifest
from orchestrator.media import FileMedia
from orchestrator.web.api.base import (
    ID_PATTERN,
    ApiProblem,
    app_services,
    blueprint,
    problem_json,
    require_api_key,
)
from orchestrator.web.api.submission import check_video_path
from orchestrator.web.worker import REPORT_NAME, run_folder, run_manifest_path

_YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})

MAX_MANIFEST_BODY = 64 * 1024 * 1024


@blueprint.post("/runs")
@require_api_key
def create_run() -> tuple[Response, int, dict[str, str]]:
    """Queue a whole manifest (JSON or YAML body); 202 with the run id."""
    found = app_services()
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
                problems=[problem_json(problem) for problem in checked.problems],
            )
        assert checked.manifest is not None
        for entry in checked.manifest.entries:
            if isinstance(entry.media, FileMedia):
                check_video_path(str(entry.media.path))
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
    found = app_services()
    folder = run_folder(found.settings, run_id) if ID_PATTERN.match(run_id) else None
    if folder is None or run_manifest_path(folder) is None:
        raise ApiProblem(
            404, "unknown_run", f"no run has id {run_id!r}", "use the id POST /runs answered"
        )
    report = folder / REPORT_NAME
    if not report.is_file():
        return jsonify({"run_id": run_id, "state": "queued"}), 202
    return Response(report.read_bytes(), mimetype="application/json"), 200
