"""What every ``/api/v1`` route shares: the blueprint, the API-key check, the one error shape
(:class:`ApiProblem`), the body limits and readers, and the services of the running app.

Must not: echo a key, a token or an upload URL in any answer or log.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint, Response, g, jsonify, request

from orchestrator.manifest import Problem
from orchestrator.store.journal import Journal
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


MAX_JSON_BODY = 1024 * 1024
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


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


def app_services() -> Any:
    from orchestrator.web import services

    return services()


def api_journal() -> Journal:
    found = app_services()
    return Journal(found.tokens.database, found.tokens.cipher, clock=found.clock, run_id="api")


def read_json_body(limit: int = MAX_JSON_BODY) -> Any:
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


def problem_json(problem: Problem, prefix: str = "") -> dict[str, Any]:
    location = problem.location
    if prefix and location.startswith(prefix):
        location = location[len(prefix) :].lstrip(".") or "entry"
    return {"location": location, "message": problem.message, "fix": problem.fix}
