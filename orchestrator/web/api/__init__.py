"""``/api/v1``: the HTTP API for workflow tools (n8n, Make, Zapier, Airflow, curl).

Every route but ``/healthz`` needs ``Authorization: Bearer <API key>``; a request without a
valid key is a 401 with no detail (it does not say whether the key was unknown, revoked or
malformed). Errors are one JSON shape: ``{"code", "message", "hint"}``.

One module per job, all on one blueprint: ``base`` (the blueprint, the key check, the error
shape, body readers), ``accounts``, ``submission`` (reading a ``POST /posts``: JSON or
multipart), ``posts``, ``reviews`` (review links), ``runs``, ``service`` (``/healthz``,
``/openapi.json``). Importing this package registers every route.

No module here may echo a key, a token or an upload URL in any answer or log.
"""

from __future__ import annotations

# The route modules register their views on the blueprint when imported.
from orchestrator.web.api import accounts, posts, reviews, runs, service
from orchestrator.web.api.base import ApiProblem, blueprint, error_response, require_api_key

__all__ = [
    "ApiProblem",
    "accounts",
    "blueprint",
    "error_response",
    "posts",
    "require_api_key",
    "reviews",
    "runs",
    "service",
]
