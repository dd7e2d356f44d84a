"""TikTok OAuth v2 for a desktop app: PKCE, the authorize URL, the loopback callback, and the
token endpoint (code exchange, refresh, revoke), plus user info to name who signed in.

This module speaks the wire protocol (``tiktok-api.md`` §2, §3a) and returns frozen values with
tokens wrapped in :class:`Secret`. It does not store tokens (``store/tokens.py`` does), print
(``cli.py`` does), or retry (callers decide). Every request goes through a
:class:`~orchestrator.transport.Transport` with bounded timeouts.

OAuth endpoints answer flat JSON and often report failure with HTTP 200, so a response is an
error when it has an ``error`` key, whatever its status.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import http.server
import math
import secrets
import string
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from orchestrator.clock import Clock
from orchestrator.config import DEFAULT_CALLBACK_TIMEOUT as DEFAULT_CALLBACK_TIMEOUT
from orchestrator.config import DEFAULT_SCOPES as DEFAULT_SCOPES
from orchestrator.config import ENV_REDIRECT_URI, Settings
from orchestrator.errors import ApiError, AuthError, ConfigError, OAuthError
from orchestrator.secret import Secret
from orchestrator.tiktok.grants import TokenGrant as TokenGrant
from orchestrator.transport import HttpResponse, Timeouts, Transport

TOKEN_PATH = "/v2/oauth/token/"  # noqa: S105 - a URL path, not a secret
REVOKE_PATH = "/v2/oauth/revoke/"
USER_INFO_PATH = "/v2/user/info/"
USER_INFO_FIELDS = "open_id,union_id,avatar_url,display_name"

VERIFIER_ALPHABET = string.ascii_letters + string.digits + "-._~"
VERIFIER_LENGTH = 64  # RFC 7636 allows 43-128 characters
OAUTH_TIMEOUTS = Timeouts(connect=5.0, read=15.0, total=20.0)
"""Token-endpoint limits: a refresh holds the store's write lock, so it must end quickly."""
_FORM = "application/x-www-form-urlencoded"
_MAX_DESCRIPTION = 300
_MAX_LIFETIME = 20 * 365 * 86400.0
"""Longest token lifetime believed (seconds): TikTok's are 2 hours and 180 days."""


# -- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorizationRequest:
    """One login attempt: the URL to open, and what must be kept to finish it."""

    url: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: Secret = field(repr=False)
    code_verifier: Secret = field(repr=False)


@dataclass(frozen=True)
class AuthorizationCode:
    """What the redirect brought back: the one-time code and the scopes the user granted."""

    code: Secret = field(repr=False)
    granted_scopes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class UserInfo:
    """Who a token belongs to (``/v2/user/info/``)."""

    open_id: str
    union_id: str | None = None
    display_name: str | None = None
    avatar_url: str | None = None


# -- PKCE and the authorize URL -----------------------------------------------------------------


def new_code_verifier(length: int = VERIFIER_LENGTH) -> Secret:
    """A fresh PKCE verifier: ``length`` characters from RFC 7636's unreserved set."""
    if not 43 <= length <= 128:
        raise ValueError("a PKCE verifier has 43 to 128 characters")
    return Secret("".join(secrets.choice(VERIFIER_ALPHABET) for _ in range(length)))


def code_challenge(verifier: Secret) -> str:
    """The S256 challenge *as TikTok's desktop flow wants it*: the **hex** SHA-256 digest.

    RFC 7636 says base64url; TikTok's desktop login deviates and refuses that at token exchange
    ("Code verifier or code challenge is invalid"), so we send 64 lowercase hex characters.
    """
    return hashlib.sha256(verifier.reveal().encode("ascii")).hexdigest()


def parse_scopes(value: object) -> frozenset[str]:
    """Scopes from a comma (or space) separated string, or a list."""
    if isinstance(value, str):
        parts: Iterable[object] = value.replace(" ", ",").split(",")
    elif isinstance(value, list | tuple):
        parts = value
    else:
        return frozenset()
    return frozenset(str(part).strip() for part in parts if str(part).strip())


def build_authorization_request(
    *, auth_url: str, client_key: str, redirect_uri: str, scopes: Iterable[str] = DEFAULT_SCOPES
) -> AuthorizationRequest:
    """A fresh login attempt: new verifier and state, and the authorize URL carrying them."""
    scope_list = tuple(dict.fromkeys(s.strip() for s in scopes if s.strip()))
    if not scope_list:
        raise ConfigError("no scopes requested", hint="pass --scopes user.info.basic,...")
    verifier = new_code_verifier()
    state = Secret(secrets.token_urlsafe(32))
    query = urlencode(
        {
            "client_key": client_key,
            "scope": ",".join(scope_list),
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "state": state.reveal(),
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if urlsplit(auth_url).query else "?"
    return AuthorizationRequest(
        url=f"{auth_url}{separator}{query}",
        redirect_uri=redirect_uri,
        scopes=scope_list,
        state=state,
        code_verifier=verifier,
    )


# -- the redirect back ----------------------------------------------------------------------------


def _state_matches(received: str | None, expected: Secret) -> bool:
    if received is None:
        return False
    return hmac.compare_digest(received.encode(), expected.reveal().encode())


def _single(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DESCRIPTION else text[: _MAX_DESCRIPTION - 1] + "…"


def authorization_from_params(
    params: Mapping[str, list[str]], *, expected_state: Secret
) -> AuthorizationCode:
    """The code from a redirect's query parameters, after checking ``state``.

    Raises ``OAuthError`` for an ``error=`` redirect (the user refused, or TikTok did) and
    ``AuthError`` for a wrong state or a missing code.
    """
    received_state = _single(params, "state")
    error = _single(params, "error")
    # A redirect with a *wrong* state is not ours and changes nothing; an error redirect that
    # carries no state at all is accepted, since all it can do is end this login.
    if not _state_matches(received_state, expected_state) and not (
        error and received_state is None
    ):
        raise AuthError(
            "the redirect's state does not match this login (a link from an older attempt, "
            "or not from TikTok); nothing was exchanged",
            hint="run `auth login` again and use the newest browser tab",
        )
    if error:
        description = _short(_single(params, "error_description") or "no description")
        raise OAuthError(error, description, hint=_oauth_hint(error))
    code = _single(params, "code")
    if not code:
        raise AuthError("the redirect carries neither a code nor an error")
    return AuthorizationCode(Secret(code), parse_scopes(_single(params, "scopes") or ""))


def parse_pasted_redirect(text: str, *, expected_state: Secret) -> AuthorizationCode:
    """The code from the redirected URL a user pasted (``--no-browser``), state checked."""
    text = text.strip()
    if not text:
        raise AuthError(
            "no URL was pasted", hint="paste the whole address the browser was redirected to"
        )
    query = urlsplit(text).query if "://" in text else text.lstrip("?")
    return authorization_from_params(parse_qs(query), expected_state=expected_state)


@dataclass(frozen=True)
class _CallbackOutcome:
    code: AuthorizationCode | None = None
    error: AuthError | None = None


class _CallbackHTTPServer(http.server.ThreadingHTTPServer):
    """The HTTP server with what its handler needs to judge a request.

    One thread per connection, so a browser's idle pre-connection cannot hold up the redirect;
    handler threads are daemons and not joined on close (each ends by its socket timeout).
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, path: str, expected_state: Secret) -> None:
        self.callback_path = path
        self.expected_state = expected_state
        self.outcome: _CallbackOutcome | None = None
        self.stray_requests = 0
        self.done = threading.Event()
        self.outcome_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _CallbackHandler)

    def finish_with(self, outcome: _CallbackOutcome) -> bool:
        """Record the first outcome; False if another request already ended the wait."""
        with self.outcome_lock:
            if self.done.is_set():
                return False
            self.outcome = outcome
            self.done.set()
            return True

    def handle_error(self, request: object, client_address: object) -> None:
        # A browser that hung up mid-answer (BrokenPipe, timeout) needs no traceback on the
        # user's terminal; the outcome, if any, was recorded before answering.
        return


def _normalise_path(path: str) -> str:
    return path.rstrip("/") or "/"


class _CallbackHandler(http.server.BaseHTTPRequestHandler):
    server: _CallbackHTTPServer
    timeout = 10  # a client that connects and sends nothing cannot hold the server
    server_version = "tiktok-orchestrator"
    sys_version = ""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if _normalise_path(parts.path) != _normalise_path(self.server.callback_path):
            self._answer(404, "Not found", "This address is not the sign-in callback.")
            return
        if self.server.done.is_set():
            self._answer(200, "Already done", "This sign-in has finished; close this tab.")
            return
        params = parse_qs(parts.query)
        received_state = _single(params, "state")
        if not _state_matches(received_state, self.server.expected_state) and not (
            _single(params, "error") and received_state is None
        ):
            # Not this login (a stale tab, a forged link, someone typing the address): refuse
            # it and keep waiting, so a stray request cannot end a login in progress.
            self.server.stray_requests += 1
            self._answer(
                400,
                "Wrong sign-in attempt",
                "This redirect does not belong to the sign-in in progress; use the newest tab.",
            )
            return
        try:
            code = authorization_from_params(params, expected_state=self.server.expected_state)
        except AuthError as exc:
            if self._finish(_CallbackOutcome(error=exc)):
                self._answer(400, "Sign-in failed", str(exc))
            else:
                self._answer(200, "Already done", "This sign-in has finished; close this tab.")
            return
        if self._finish(_CallbackOutcome(code=code)):
            self._answer(
                200, "Signed in", "You are signed in. Close this tab and return to the terminal."
            )
        else:
            self._answer(200, "Already done", "This sign-in has finished; close this tab.")

    def _refuse_method(self) -> None:
        self._answer(405, "Method not allowed", "Only GET is accepted here.", allow="GET")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _refuse_method

    def _finish(self, outcome: _CallbackOutcome) -> bool:
        return self.server.finish_with(outcome)

    def _answer(self, status: int, title: str, text: str, *, allow: str | None = None) -> None:
        body = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title></head><body style='font-family:sans-serif'>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        # The page must not leak the code in the URL to another site through a Referer.
        self.send_header("Referrer-Policy", "no-referrer")
        if allow:
            self.send_header("Allow", allow)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The default logs the request line to stderr, and the request line carries the code.
        return


class CallbackServer:
    """A one-shot HTTP server on 127.0.0.1 that waits for TikTok's redirect back.

    It listens on the redirect URI's port from ``__enter__`` (before the browser opens, so the
    redirect cannot arrive first), answers the browser with a short page, ignores other paths
    (``/favicon.ico``) and redirects whose ``state`` is not this login's, and ends on the first
    redirect for this login or when :meth:`wait` times out.
    """

    def __init__(self, redirect_uri: str, expected_state: Secret) -> None:
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost"):
            raise ConfigError(
                f"{ENV_REDIRECT_URI} must be an http loopback URL, got {redirect_uri!r}"
            )
        if parts.port is None:
            raise ConfigError(f"{ENV_REDIRECT_URI} needs a port, got {redirect_uri!r}")
        self.redirect_uri = redirect_uri
        self._port = parts.port
        self._path = parts.path or "/"
        self._expected_state = expected_state
        self._server: _CallbackHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (the redirect URI's)."""
        return self._server.server_address[1] if self._server else self._port

    def __enter__(self) -> CallbackServer:
        try:
            self._server = _CallbackHTTPServer(self._port, self._path, self._expected_state)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on 127.0.0.1:{self._port} for the sign-in redirect "
                f"({exc.strerror or exc})",
                hint=(
                    "free that port, or register another loopback redirect for the app and "
                    f"set {ENV_REDIRECT_URI}"
                ),
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="oauth-callback",
            daemon=True,
        )
        self._thread.start()
        return self

    def wait(self, timeout: float) -> AuthorizationCode:
        """The code from the redirect, or an error when it is refused or ``timeout`` passes."""
        assert self._server is not None, "use CallbackServer as a context manager"
        if not self._server.done.wait(timeout):
            stray = self._server.stray_requests
            extra = (
                f"; {stray} redirect(s) not matching this login's state were refused"
                if stray
                else ""
            )
            raise AuthError(
                f"no sign-in came back to {self.redirect_uri} within {timeout:g} s{extra}",
                hint=(
                    "run `auth login` again; on a machine without a browser use "
                    "`auth login --no-browser`"
                ),
            )
        outcome = self._server.outcome
        assert outcome is not None
        if outcome.error is not None:
            raise outcome.error
        assert outcome.code is not None
        return outcome.code

    def __exit__(self, *_exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None


# -- the token endpoint ----------------------------------------------------------------------------


def _oauth_hint(error: str) -> str | None:
    return {
        "invalid_grant": "the user must sign in again: run `tiktok-orchestrator auth login`",
        "invalid_client": "check TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET",
        "unauthorized_client": "check the app's products and scopes on developers.tiktok.com",
        "invalid_scope": "request only scopes the app has been granted on developers.tiktok.com",
        "access_denied": "the user declined; run `auth login` again to retry",
        "invalid_request": "check TIKTOK_REDIRECT_URI matches the app's registered redirect URI",
    }.get(error)


def _oauth_error_from(body: object, status: int) -> OAuthError | None:
    """The OAuth error a response carries, whatever its HTTP status; None on success."""
    if isinstance(body, dict) and "error" in body:
        error = body["error"]
        if isinstance(error, dict):  # the posting-API envelope, in case a proxy answers with it
            code = str(error.get("code") or "")
            if code in ("", "ok"):
                return None
            message, log_id = error.get("message"), error.get("log_id")
        else:
            code = str(error or "unknown_error")
            message, log_id = body.get("error_description"), body.get("log_id")
        return OAuthError(
            code,
            _short(str(message or "no description")),
            log_id=str(log_id) if log_id else None,
            hint=_oauth_hint(code),
            http_status=status,
        )
    if status >= 400:
        return OAuthError(
            "server_error" if status >= 500 else "http_error",
            f"HTTP {status} without an OAuth error body",
            http_status=status,
        )
    if not isinstance(body, dict):
        return OAuthError(
            "invalid_response",
            f"HTTP {status} with a body that is not a JSON object",
            http_status=status,
        )
    return None


def _seconds(body: Mapping[str, Any], name: str) -> float:
    value = body.get(name)
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise OAuthError(
            "invalid_response", f"the token response's {name!r} is not a number of seconds"
        ) from None
    # NaN or infinity would make a token fresh forever (every comparison with it is false, or
    # it never comes); an absurd lifetime cannot even be shown as a date.
    if not math.isfinite(seconds) or not 0 <= seconds <= _MAX_LIFETIME:
        raise OAuthError(
            "invalid_response",
            f"the token response's {name!r} is not a lifetime in seconds ({value!r})",
        )
    return seconds


def parse_token_response(response: HttpResponse, *, received_at: float) -> TokenGrant:
    """A :class:`TokenGrant` from a token-endpoint answer; ``OAuthError`` for any error."""
    body = response.json()
    error = _oauth_error_from(body, response.status)
    if error is not None:
        raise error
    assert isinstance(body, dict)
    missing = [
        name
        for name in ("access_token", "refresh_token", "open_id")
        if not isinstance(body.get(name), str) or not body[name]
    ]
    missing += [name for name in ("expires_in", "refresh_expires_in") if name not in body]
    if missing:
        raise OAuthError(
            "invalid_response",
            f"the token response lacks {', '.join(missing)}",
            http_status=response.status,
        )
    return TokenGrant(
        open_id=body["open_id"],
        access_token=Secret(body["access_token"]),
        access_expires_at=received_at + _seconds(body, "expires_in"),
        refresh_token=Secret(body["refresh_token"]),
        refresh_expires_at=received_at + _seconds(body, "refresh_expires_in"),
        scopes=parse_scopes(body.get("scope", body.get("scopes", ""))),
        token_type=str(body.get("token_type") or "Bearer"),
    )


class OAuthClient:
    """TikTok's token endpoint and user info, for one app (client key and secret)."""

    def __init__(
        self,
        transport: Transport,
        *,
        api_base: str,
        client_key: str,
        client_secret: Secret,
        clock: Clock,
        timeouts: Timeouts = OAUTH_TIMEOUTS,
    ) -> None:
        self._transport = transport
        self._api_base = api_base.rstrip("/")
        self._client_key = client_key
        self._client_secret = client_secret
        self._clock = clock
        self._timeouts = timeouts

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        transport: Transport,
        clock: Clock,
        *,
        timeouts: Timeouts = OAUTH_TIMEOUTS,
    ) -> OAuthClient:
        """The client for the app configured in ``settings`` (ConfigError if it is not)."""
        client_key, client_secret = settings.require_client()
        return cls(
            transport,
            api_base=settings.api_base,
            client_key=client_key,
            client_secret=client_secret,
            clock=clock,
            timeouts=timeouts,
        )

    def _post_form(self, path: str, fields: Mapping[str, str]) -> HttpResponse:
        # TikTok refuses JSON bodies on the OAuth endpoints.
        return self._transport.request(
            "POST",
            self._api_base + path,
            headers={"Content-Type": _FORM, "Cache-Control": "no-cache"},
            body=urlencode(fields).encode("ascii"),
            timeouts=self._timeouts,
        )

    def _token_request(self, fields: Mapping[str, str]) -> TokenGrant:
        response = self._post_form(TOKEN_PATH, fields)
        # Expiries count from the arrival of the answer, never from hard-coded lifetimes.
        return parse_token_response(response, received_at=self._clock.time())

    def exchange_code(
        self, code: Secret, *, code_verifier: Secret, redirect_uri: str
    ) -> TokenGrant:
        """Trade an authorization code for tokens (the redirect URI must equal the authorize
        one)."""
        return self._token_request(
            {
                "client_key": self._client_key,
                "client_secret": self._client_secret.reveal(),
                "code": code.reveal(),
                "grant_type": "authorization_code",
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier.reveal(),
            }
        )

    def refresh(self, refresh_token: Secret) -> TokenGrant:
        """New tokens for a refresh token. The old refresh token stops working: store the new
        pair before anything else uses it."""
        return self._token_request(
            {
                "client_key": self._client_key,
                "client_secret": self._client_secret.reveal(),
                "grant_type": "refresh_token",
                "refresh_token": refresh_token.reveal(),
            }
        )

    def revoke(self, access_token: Secret) -> None:
        """Revoke the user's authorisation of the app (TikTok answers ``{}``)."""
        response = self._post_form(
            REVOKE_PATH,
            {
                "client_key": self._client_key,
                "client_secret": self._client_secret.reveal(),
                "token": access_token.reveal(),
            },
        )
        error = _oauth_error_from(response.json() if response.body else {}, response.status)
        if error is not None:
            raise error

    def fetch_user_info(self, access_token: Secret) -> UserInfo:
        """Who the token belongs to (needs the ``user.info.basic`` scope)."""
        response = self._transport.request(
            "GET",
            f"{self._api_base}{USER_INFO_PATH}?{urlencode({'fields': USER_INFO_FIELDS})}",
            headers={"Authorization": f"Bearer {access_token.reveal()}"},
            timeouts=self._timeouts,
        )
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        code = str(error.get("code") or "") if isinstance(error, dict) else ""
        if not isinstance(body, dict) or code != "ok" or response.status >= 400:
            detail = error if isinstance(error, dict) else {}
            raise ApiError(
                code or f"http_{response.status}",
                _short(str(detail.get("message") or "user info request failed")),
                http_status=response.status,
                log_id=str(detail["log_id"]) if detail.get("log_id") else None,
                retryable=response.status >= 500 or response.status == 429,
                reauth=code == "access_token_invalid",
            )
        data = body.get("data")
        user = data.get("user") if isinstance(data, dict) else None
        if not isinstance(user, dict) or not user.get("open_id"):
            raise ApiError(
                "invalid_response", "user info without a user", http_status=response.status
            )

        def text(name: str) -> str | None:
            value = user.get(name)
            return str(value) if value else None

        return UserInfo(
            open_id=str(user["open_id"]),
            union_id=text("union_id"),
            display_name=text("display_name"),
            avatar_url=text("avatar_url"),
        )
