"""The OAuth endpoints: authorize page, token exchange and refresh, revoke (``tiktok-api.md`` §2).

TikTok's quirks are kept on purpose: token requests must be form-encoded (JSON is refused),
the PKCE challenge is the *hex* SHA-256 of the verifier (base64url is refused with
``invalid_request``), refresh tokens rotate (a used one answers ``invalid_grant``), errors come
as flat JSON at HTTP 200. Codes are single-use and live ``authorization_code_ttl`` seconds.

A sandbox configured as a **Web** app (``app_type="web"``, §2.1) takes the readings of the
challenge listed in ``web_pkce`` (RFC 7636 base64url and/or hex; both by default, since what
TikTok's web flow accepts is unknown), only its registered redirect URIs (exact match), and
``disable_auto_auth``; its consent page's buttons are Approve and Deny.

Reusing a used code or rotated refresh token is always refused, but it is recorded as a
violation only once the client had shown it received what replaced it (it presented the new
access or refresh token): before that, the answer may have been lost on the way or the client
killed before storing it, and no client can know its token is dead.

Must not: do I/O (the server does), or hold secrets anywhere but the state's token tables.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from orchestrator.sandbox.config import APP_WEB, KNOWN_SCOPES, PKCE_HEX, PKCE_S256
from orchestrator.sandbox.messages import (
    Reply,
    Request,
    html_page,
    oauth_error,
    oauth_ok,
    redirect,
)
from orchestrator.sandbox.pages import authorize_page, error_page
from orchestrator.sandbox.rules import (
    MSG_PKCE,
    hex_challenge,
    is_loopback_redirect,
    looks_like_hex_challenge,
    looks_like_s256_challenge,
    media_type,
    s256_challenge,
    valid_code_verifier,
)
from orchestrator.sandbox.state import AuthorizationCode, SandboxState

FORM_TYPE = "application/x-www-form-urlencoded"
AUTHORIZE_PATH = "/v2/auth/authorize/"

# The OAuth parameters a consent form carries back in hidden fields.
_PASSED_THROUGH = (
    "client_key",
    "scope",
    "response_type",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "disable_auto_auth",
)


@dataclass(frozen=True)
class AuthorizeRequest:
    """A validated authorize request."""

    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str
    params: dict[str, str]


def _with_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = urlencode(params)
    if parts.query:
        query = f"{parts.query}&{query}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class OAuthEndpoints:
    """authorize (GET page, POST decision), token (code and refresh grants), revoke."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._config = state.config

    # -- authorize ------------------------------------------------------------------------

    def _redirect_allowed(self, uri: str) -> bool:
        if self._config.redirect_uris:
            return uri in self._config.redirect_uris
        return is_loopback_redirect(uri)

    def _callback_error(
        self, redirect_uri: str, state: str | None, error: str, description: str
    ) -> Reply:
        params = {"error": error, "error_description": description}
        if state is not None:
            params["state"] = state
        return redirect(_with_query(redirect_uri, params))

    def _validate_authorize(
        self, params: dict[str, str], *, note: bool = True
    ) -> AuthorizeRequest | Reply:
        """Check the OAuth parameters; errors before the redirect URI is trusted show a page.

        ``note`` records violations (the GET does; the form's POST repeats the same parameters).
        """

        def flag(text: str) -> None:
            if note:
                self._state.violation("authorize", text)

        if params.get("client_key") != self._config.client_key:
            flag("unknown client_key")
            return html_page(400, error_page("Something went wrong", "client_key is invalid."))
        redirect_uri = params.get("redirect_uri", "")
        if not self._redirect_allowed(redirect_uri):
            flag(f"redirect_uri {redirect_uri!r} is not registered")
            return html_page(
                400, error_page("Something went wrong", "redirect_uri is not registered.")
            )
        csrf = params.get("state")
        if not csrf:
            flag("no state parameter (CSRF protection)")
        if params.get("response_type") != "code":
            flag("response_type is not 'code'")
            return self._callback_error(
                redirect_uri, csrf, "invalid_request", "response_type must be code."
            )
        scopes = tuple(s.strip() for s in params.get("scope", "").split(",") if s.strip())
        unknown = [s for s in scopes if s not in KNOWN_SCOPES]
        if not scopes or unknown:
            flag(f"invalid scope list {params.get('scope', '')!r}")
            return self._callback_error(redirect_uri, csrf, "invalid_scope", "Scope is invalid.")
        challenge = params.get("code_challenge", "")
        if not challenge or params.get("code_challenge_method") != "S256":
            flag("missing code_challenge or code_challenge_method != S256")
            return self._callback_error(
                redirect_uri,
                csrf,
                "invalid_request",
                "code_challenge and code_challenge_method=S256 are required.",
            )
        if self._config.app_type == APP_WEB:
            if params.get("disable_auto_auth", "1") not in ("0", "1"):
                flag("disable_auto_auth is neither 0 nor 1")
            if not any(self._challenge_shapes(challenge)):
                flag(f"code_challenge has none of the accepted shapes {self._config.web_pkce}")
        elif not looks_like_hex_challenge(challenge):
            # TikTok accepts it here and fails the exchange; the violation is noted now.
            flag("code_challenge is not 64 hex characters (hex SHA-256)")
        return AuthorizeRequest(
            redirect_uri=redirect_uri,
            scopes=tuple(dict.fromkeys(scopes)),
            state=csrf,
            code_challenge=challenge,
            params={k: params[k] for k in _PASSED_THROUGH if k in params},
        )

    def _challenge_shapes(self, challenge: str) -> tuple[bool, ...]:
        """Per accepted web reading: whether ``challenge`` has its shape."""
        shapes = {PKCE_S256: looks_like_s256_challenge, PKCE_HEX: looks_like_hex_challenge}
        return tuple(shapes[reading](challenge) for reading in self._config.web_pkce)

    def _challenge_matches(self, verifier: str, challenge: str) -> bool:
        """Whether ``verifier`` answers ``challenge`` under the app type's PKCE readings."""
        if self._config.app_type == APP_WEB:
            derive = {PKCE_S256: s256_challenge, PKCE_HEX: hex_challenge}
            readings = [derive[reading](verifier) for reading in self._config.web_pkce]
        else:
            readings = [hex_challenge(verifier)]
        # Every reading is compared (no early exit), in constant time.
        matches = [hmac.compare_digest(r.encode(), challenge.encode()) for r in readings]
        return any(matches)

    def authorize_page(self, request: Request) -> Reply:
        """GET: the consent page (or an error page / error redirect)."""
        params = {key: values[0] for key, values in request.query.items() if values}
        checked = self._validate_authorize(params)
        if isinstance(checked, Reply):
            return checked
        page = authorize_page(
            client_key=self._config.client_key,
            users=self._config.users,
            scopes=checked.scopes,
            hidden=checked.params,
            action=AUTHORIZE_PATH,
            approve_label="Approve" if self._config.app_type == APP_WEB else "Authorize",
        )
        return html_page(200, page)

    def authorize_decision(self, request: Request) -> Reply:
        """POST from the consent page: redirect with a code, or with ``access_denied``."""
        lists = request.form_lists()
        params = {key: values[0] for key, values in lists.items() if values}
        checked = self._validate_authorize(params, note=False)
        if isinstance(checked, Reply):
            return checked
        if params.get("action") != "authorize":
            return self._callback_error(
                checked.redirect_uri,
                checked.state,
                "access_denied",
                "The user denied the authorization request.",
            )
        user = self._state.user(params.get("open_id", ""))
        if user is None:
            return html_page(400, error_page("Unknown user", "Pick one of the sandbox users."))
        granted = tuple(s for s in checked.scopes if s in lists.get("granted_scope", []))
        if not granted:
            return self._callback_error(
                checked.redirect_uri,
                checked.state,
                "access_denied",
                "The user did not grant any scope.",
            )
        code = AuthorizationCode(
            value=f"{secrets.token_urlsafe(30)}*{self._state.next_serial()}!sbx.va",
            open_id=user.open_id,
            scopes=granted,
            redirect_uri=checked.redirect_uri,
            code_challenge=checked.code_challenge,
            expires_at=self._state.now() + self._config.authorization_code_ttl,
        )
        with self._state.lock:
            self._state.codes[code.value] = code
        params_out = {"code": code.value, "scopes": ",".join(granted)}
        if checked.state is not None:
            params_out["state"] = checked.state
        return redirect(_with_query(checked.redirect_uri, params_out))

    # -- token ----------------------------------------------------------------------------

    def _form_or_error(self, endpoint: str, request: Request) -> dict[str, str] | Reply:
        """The form fields, after the encoding and client checks every OAuth POST shares."""
        state = self._state
        if media_type(request.header("content-type")) != FORM_TYPE:
            state.violation(
                endpoint,
                f"body sent as {request.header('content-type')!r}, not {FORM_TYPE}",
            )
            return oauth_error(
                "invalid_request",
                f"Content-Type must be {FORM_TYPE}.",
                state.log_id(),
            )
        form = request.form()
        key_ok = form.get("client_key") == self._config.client_key
        secret_ok = hmac.compare_digest(
            form.get("client_secret", "").encode(), self._config.client_secret.encode()
        )
        if not (key_ok and secret_ok):
            state.violation(endpoint, "wrong client_key or client_secret")
            return oauth_error("invalid_client", "Client key or secret is invalid.", state.log_id())
        return form

    def token(self, request: Request) -> Reply:
        """POST /v2/oauth/token/: the authorization_code, refresh_token and client_credentials
        grants (a wrong key or secret is ``invalid_client`` for each, checked above)."""
        form = self._form_or_error("token", request)
        if isinstance(form, Reply):
            return form
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._exchange(form)
        if grant == "refresh_token":
            return self._refresh(form)
        if grant == "client_credentials":
            return self._client_token()
        self._state.violation("token", f"unsupported grant_type {grant!r}")
        return oauth_error(
            "unsupported_grant_type", "grant_type is not supported.", self._state.log_id()
        )

    def _exchange(self, form: dict[str, str]) -> Reply:
        state = self._state
        log_id = state.log_id()
        value = form.get("code", "")
        verifier = form.get("code_verifier", "")
        with state.lock:
            code = state.codes.get(value)
            if code is None:
                state.violation("token", "unknown authorization code")
                return oauth_error("invalid_grant", "Authorization code is invalid.", log_id)
            if code.used:
                if state.successor_seen(code.successor):
                    state.violation("token", "authorization code used twice")
                return oauth_error(
                    "invalid_grant", "Authorization code has already been used.", log_id
                )
            # Single use: a failed exchange burns the code too.
            code.used = True
            if state.now() >= code.expires_at:
                return oauth_error("invalid_grant", "Authorization code is expired.", log_id)
        if form.get("redirect_uri") != code.redirect_uri:
            state.violation("token", "redirect_uri differs from the authorize request's")
            return oauth_error(
                "invalid_grant", "redirect_uri does not match the authorize request.", log_id
            )
        if not valid_code_verifier(verifier) or not self._challenge_matches(
            verifier, code.code_challenge
        ):
            state.violation("token", self._pkce_problem(verifier, code.code_challenge))
            return oauth_error("invalid_request", MSG_PKCE, log_id)
        issued = state.issue_tokens(code.open_id, code.scopes)
        code.successor = (issued["access_token"], issued["refresh_token"])
        return oauth_ok(issued)

    def _client_token(self) -> Reply:
        """tiktok-api.md §2.2: the app's own access token (no user, no refresh token)."""
        state = self._state
        with state.lock:
            token = state.random_token("clt.")
            state.client_tokens.append(token)
        return oauth_ok({"access_token": token, "expires_in": 7200, "token_type": "Bearer"})

    def _pkce_problem(self, verifier: str, challenge: str) -> str:
        if not valid_code_verifier(verifier):
            return "code_verifier is not 43-128 characters of [A-Za-z0-9-._~]"
        web = self._config.app_type == APP_WEB
        if challenge == s256_challenge(verifier):
            if web:
                return f"code_challenge is base64url; this web app accepts {self._config.web_pkce}"
            return "code_challenge is base64url(sha256(verifier)); TikTok's desktop flow wants hex"
        if web and challenge == hex_challenge(verifier):
            return f"code_challenge is hex; this web app accepts {self._config.web_pkce}"
        return "code_verifier does not match code_challenge"

    def _refresh(self, form: dict[str, str]) -> Reply:
        state = self._state
        log_id = state.log_id()
        with state.lock:
            token = state.refresh_tokens.get(form.get("refresh_token", ""))
            if token is None:
                state.violation("token", "unknown refresh token")
                return oauth_error("invalid_grant", "Refresh token is invalid.", log_id)
            if token.revoked:
                return oauth_error("invalid_grant", "Refresh token has been revoked.", log_id)
            token.presented = True
            if token.used:
                # Reusing a rotated refresh token is a bug only once the client had the new
                # pair (it used one of them). Otherwise its answer was lost on the way, or the
                # client died before storing it: the client cannot know the old token is dead.
                if state.successor_seen(token.successor):
                    state.violation(
                        "token", f"refresh token of {token.open_id} reused after rotation"
                    )
                return oauth_error(
                    "invalid_grant",
                    "Refresh token is invalid (it was already used: refresh tokens rotate).",
                    log_id,
                )
            if state.now() >= token.expires_at:
                return oauth_error("invalid_grant", "Refresh token is expired.", log_id)
            token.used = True
            issued = state.issue_tokens(token.open_id, token.scopes)
            token.successor = (issued["access_token"], issued["refresh_token"])
            return oauth_ok(issued)

    # -- revoke ---------------------------------------------------------------------------

    def revoke(self, request: Request) -> Reply:
        """POST /v2/oauth/revoke/: the user's authorization ends; ``{}`` even for unknown tokens."""
        form = self._form_or_error("revoke", request)
        if isinstance(form, Reply):
            return form
        value = form.get("token", "")
        if not value:
            self._state.violation("revoke", "no token field")
            return oauth_error("invalid_request", "token is required.", self._state.log_id())
        with self._state.lock:
            access = self._state.access_tokens.get(value)
            refresh = self._state.refresh_tokens.get(value)
            for held in (access, refresh):
                if held is not None:
                    held.presented = True
            owner = access.open_id if access else refresh.open_id if refresh else None
            if owner is not None:
                self._state.revoke_user(owner)
        return oauth_ok({})
