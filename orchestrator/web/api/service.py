"""The routes about the service itself: ``/healthz`` (no auth) and ``/openapi.json``."""

from __future__ import annotations

from flask import Response, jsonify

from orchestrator.errors import StoreError
from orchestrator.web.api.base import blueprint


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


@blueprint.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 document of these routes (no auth: it describes, it holds nothing)."""
    from orchestrator.web.openapi import openapi_document

    return jsonify(openapi_document())
