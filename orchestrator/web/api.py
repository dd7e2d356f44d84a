"""``/api/v1``: the HTTP API for workflow tools (n8n, Make, Zapier, Airflow, curl).

Every route but ``/healthz`` needs ``Authorization: Bearer <API key>``; a request without a
valid key is a 401 with no detail (it does not say whether the key was unknown, revoked or
malformed). Errors are one JSON shape: ``{"code", "message", "hint"}``.

This module must not echo a key, a token or an upload URL in any answer or log.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import Blueprint, Response, g, jsonify, request

from orchestrator.errors import StoreError
from orchestrator.store.web import ApiKey

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
