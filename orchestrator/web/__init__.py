"""The ``serve`` web application: operator pages, creators' connect pages and ``/api/v1``.

:func:`create_app` is the one application factory (Flask's tutorial pattern): configuration and
services are passed in, nothing is global, and tests drive it with Flask's test client. What a
request handler needs is in :class:`WebServices`, reached with :func:`services`.

Blueprints, one job each:

- ``operator.py`` — the operator's pages behind the admin password (accounts, invites, posts,
  reports, API keys);
- ``api/`` — ``/api/v1`` (Bearer API keys; JSON errors);
- ``connect.py`` (when present) — the creators' invite and OAuth callback pages;
- ``review.py`` and ``review_signin.py`` (when present) — the creators' review pages, and
  signing in with TikTok to review when a review link has expired or was used.

Every response carries the security headers of ``security.py``; every state-changing form
outside ``/api/`` must carry the session's CSRF token. This package must not log a password,
token, API key, invite token or upload URL.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from flask import Flask, current_app, render_template, request, session
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from orchestrator.clock import Clock
from orchestrator.config import Settings, WebConfig
from orchestrator.store.db import ensure_private_home
from orchestrator.store.tokens import TokenStore
from orchestrator.store.web import (
    ApiKeyStore,
    ConnectStateStore,
    InviteStore,
    WebPostStore,
    session_signing_key,
)
from orchestrator.web.security import (
    CSRF_FIELD,
    SECURITY_HEADERS,
    LoginThrottle,
    PasswordCheck,
    csrf_token,
    csrf_valid,
)

SESSION_COOKIE = "orchestrator_session"
_EXTENSION = "orchestrator"
MAX_FORM_BYTES = 1024 * 1024
"""Largest form body the pages accept (uploads go through /api/v1, which sets its own cap)."""


class WorkerStatus(Protocol):
    """What ``/api/v1/healthz`` asks of the background worker (``server.py`` supplies it)."""

    def alive(self) -> bool: ...

    def queue_depth(self) -> int: ...


class IdleWorker:
    """A worker that does nothing: for the pages alone, and for tests."""

    def alive(self) -> bool:
        return True

    def queue_depth(self) -> int:
        return 0


@dataclass(frozen=True)
class WebServices:
    """Everything the request handlers use, made once per application."""

    config: WebConfig
    settings: Settings
    clock: Clock
    tokens: TokenStore
    invites: InviteStore
    api_keys: ApiKeyStore
    posts: WebPostStore
    connect_states: ConnectStateStore
    throttle: LoginThrottle
    password: PasswordCheck
    worker: WorkerStatus


def services() -> WebServices:
    """The current application's services (inside a request or an app context)."""
    found: WebServices = current_app.extensions[_EXTENSION]
    return found


def create_app(
    config: WebConfig,
    *,
    settings: Settings,
    clock: Clock,
    token_store: TokenStore,
    worker: WorkerStatus | None = None,
) -> Flask:
    """The web application over an open token store (the caller opens and closes it)."""
    # Uploads and the worker's manifests go under the home, and a run refuses a home others can
    # read: create it private now. (A SQLite store already did; a PostgreSQL one does not.)
    ensure_private_home(settings.home)
    app = Flask(__name__)
    database = token_store.database
    app.config.update(
        # One random key per store, sealed in store_meta: sessions (the operator's, a creator's
        # review) survive a restart and every instance on one PostgreSQL store accepts them.
        # Nothing derived from the password is in a cookie's signature. Rotating it: see
        # ``store.web.SESSION_KEY_NAME``.
        SECRET_KEY=session_signing_key(database, token_store.cipher).reveal(),
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=config.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=config.session_lifetime),
        MAX_FORM_MEMORY_SIZE=MAX_FORM_BYTES,
    )
    if config.trusted_proxies:
        n = config.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n
        )
    app.extensions[_EXTENSION] = WebServices(
        config=config,
        settings=settings,
        clock=clock,
        tokens=token_store,
        invites=InviteStore(database, clock=clock),
        api_keys=ApiKeyStore(database, clock=clock),
        posts=WebPostStore(database, clock=clock),
        connect_states=ConnectStateStore(database, clock=clock),
        throttle=LoginThrottle(clock),
        password=PasswordCheck.from_config(config),
        worker=worker or IdleWorker(),
    )

    from orchestrator.web import api, calendar_page, operator

    app.register_blueprint(operator.blueprint)
    app.register_blueprint(calendar_page.blueprint)
    app.register_blueprint(api.blueprint, url_prefix="/api/v1")
    _register_optional(app, "orchestrator.web.connect")
    _register_optional(app, "orchestrator.web.review")
    _register_optional(app, "orchestrator.web.review_signin")

    app.before_request(_check_csrf)
    app.after_request(_add_security_headers)
    app.register_error_handler(HTTPException, _error_page)
    app.jinja_env.globals["csrf_field"] = CSRF_FIELD
    app.jinja_env.globals["csrf_token"] = lambda: csrf_token(session)
    return app


def _register_optional(app: Flask, module_name: str) -> None:
    """Register a blueprint module that another part of the work may not have landed yet."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return
    app.register_blueprint(module.blueprint)


_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _check_csrf() -> ResponseReturnValue | None:
    """Refuse a state-changing form without this session's CSRF token (the API, which
    authenticates each request with a Bearer key and takes no cookies, is exempt)."""
    if request.method not in _UNSAFE_METHODS or request.blueprint == "api":
        return None
    if csrf_valid(session, request.form.get(CSRF_FIELD)):
        return None
    return (
        render_template(
            "error.html",
            title="This form has expired",
            message="The page was open too long, or was sent from another site.",
            hint="Go back, reload the page and send the form again.",
        ),
        400,
    )


def _add_security_headers(response: Any) -> Any:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _error_page(error: HTTPException) -> ResponseReturnValue:
    """Errors as a page (or, under ``/api/``, the API's JSON shape) — never a traceback."""
    status = error.code or 500
    if request.path.startswith("/api/"):
        from orchestrator.web.api import error_response

        return error_response(status, _API_CODES.get(status, "error"), error.description or "")
    return (
        render_template(
            "error.html",
            title=f"{status} {error.name}",
            message=error.description or "",
            hint="Go back to the accounts page.",
        ),
        status,
    )


_API_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
}
