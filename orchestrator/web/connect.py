"""Creators connect their TikTok accounts: the invite page and the OAuth callback (Login Kit for
Web, ``tiktok-api.md`` §2.1).

Theory of operation:

1. ``GET /connect/<invite>`` names the app and the scopes the invite asks for, with a
   "Continue with TikTok" form (CSRF-protected).
2. ``POST /connect/<invite>`` starts one attempt: a browser cookie (random, ``HttpOnly``,
   ``SameSite=Lax`` so TikTok's top-level redirect back carries it), a fresh OAuth ``state``
   and PKCE verifier. The store keeps the state's hash, bound to the invite and to the cookie's
   hash, with the verifier sealed by the token cipher; the browser goes to TikTok's authorize
   page with ``disable_auto_auth=1``.
3. ``GET /connect/callback/`` consumes the state (unknown, used, expired or another browser's:
   refused, and a replay finds it used), checks the invite is still open, exchanges the code,
   reads the display name and avatar, and stores the tokens through
   :func:`orchestrator.auth.store_authorization` — the row and code path ``auth login`` uses,
   so a creator connecting again replaces their tokens. The invite is then used up. A creator
   who granted fewer scopes than asked keeps a connected account, and the invite stays open so
   "Try again" (bound to this browser's session) can ask once more.

A creator signing in to review (``review_signin.py``) goes through the same attempt and the
same callback (one redirect URI to register): the state is then tagged as a review sign-in
instead of naming an invite, and the callback hands it over after the state checks.

Every failure is a page saying what happened and what to do, with its HTTP status; nothing
here logs or shows a token, an invite token, a state or a code.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, Response, render_template, request, session
from flask.typing import ResponseReturnValue

from orchestrator.auth import store_authorization
from orchestrator.config import ENV_WEB_PKCE
from orchestrator.errors import ConfigError, OAuthError, OrchestratorError, TransportError
from orchestrator.secret import Secret
from orchestrator.store.web import (
    AttemptFor,
    ConnectState,
    Invite,
    InviteState,
    secret_digest,
)
from orchestrator.tiktok.oauth import AuthorizationCode, OAuthClient, parse_scopes
from orchestrator.tiktok.web_oauth import (
    CONNECT_CALLBACK_PATH,
    build_web_authorization_request,
    connect_redirect_uri,
)
from orchestrator.transport import HttpTransport
from orchestrator.web import services
from orchestrator.web.operator import KNOWN_SCOPES

log = logging.getLogger(__name__)

blueprint = Blueprint("connect", __name__, url_prefix="/connect")

BROWSER_COOKIE = "orchestrator_connect"
"""The cookie an attempt's ``state`` is bound to (random; only its hash is stored)."""
ATTEMPT_LIFETIME = 15 * 60.0
"""Seconds from "Continue with TikTok" to the callback (TikTok's codes live ~10 minutes)."""
_RETRY_KEY = "connect_retry"
"""Session key: the invite this browser may start another attempt for (never its token)."""
MSG_PKCE = "Code verifier or code challenge is invalid."

_INVITE_GONE = {
    InviteState.EXPIRED: (
        "This invite has expired",
        "Invites are valid for a limited time.",
    ),
    InviteState.USED: (
        "This invite has been used",
        "Each invite connects one account, once.",
    ),
    InviteState.REVOKED: (
        "This invite was withdrawn",
        "Whoever sent it has revoked it.",
    ),
}
_ASK_FOR_NEW = "Ask whoever sent you the link for a new invite."


@dataclass(frozen=True)
class Problem:
    """A page explaining why connecting did not work."""

    status: int
    title: str
    message: str
    hint: str
    retry: bool = False
    """Offer "Try again" (a new attempt for the same, still open, invite)."""


def problem_page(problem: Problem, *, retry_action: str | None = None) -> ResponseReturnValue:
    """The refusal page; "Try again" posts to ``retry_action`` (default: a new connect attempt
    for this browser's invite)."""
    return (
        render_template(
            "connect_problem.html",
            title=problem.title,
            message=problem.message,
            hint=problem.hint,
            retry=problem.retry,
            retry_action=retry_action,
        ),
        problem.status,
    )


def _scope_rows(scopes: frozenset[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    return [(scope, KNOWN_SCOPES.get(scope, "")) for scope in sorted(scopes)]


def authorize_origin() -> str:
    """TikTok's authorize page's origin (a form answered with a redirect there needs it in the
    page's ``form-action``)."""
    parts = urlsplit(services().settings.auth_url)
    return f"{parts.scheme}://{parts.netloc}"


@blueprint.after_request
def _content_security_policy(response: Response) -> Response:
    # The app's policy, widened for these pages only: their forms are answered with a redirect
    # to TikTok (browsers apply form-action to it), and the creator's avatar is on TikTok's CDN.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' https:; frame-ancestors 'none'; base-uri 'none'; "
        f"form-action 'self' {authorize_origin()}"
    )
    return response


def _open_invite(token: str) -> Invite | Problem:
    found = services()
    invite = found.invites.find_by_token(token)
    if invite is None:
        return Problem(
            404,
            "This invite link is not valid",
            "No invite matches this address; it may have been copied incompletely.",
            _ASK_FOR_NEW,
        )
    state = invite.state(found.clock.time())
    if state is not InviteState.OPEN:
        title, why = _INVITE_GONE[state]
        return Problem(410, title, why, _ASK_FOR_NEW)
    return invite


@blueprint.get("/<token>")
def invite_page(token: str) -> ResponseReturnValue:
    """What connecting means, and the button that starts it."""
    invite = _open_invite(token)
    if isinstance(invite, Problem):
        return problem_page(invite)
    # The form posts back to this address (no action attribute: the invite token is in the
    # address bar already and needs no second copy in the page).
    return render_template("connect.html", invite=invite, scopes=_scope_rows(invite.scopes))


@blueprint.post("/<token>")
def start(token: str) -> ResponseReturnValue:
    """Continue with TikTok: a fresh attempt bound to the invite and this browser."""
    invite = _open_invite(token)
    if isinstance(invite, Problem):
        return problem_page(invite)
    return _start_attempt(invite)


@blueprint.post("/retry")
def retry() -> ResponseReturnValue:
    """Try again, after a refusal or a partial grant: a new attempt for the same invite."""
    found = services()
    invite_id = session.get(_RETRY_KEY)
    invite = found.invites.get(invite_id) if isinstance(invite_id, str) else None
    if invite is None:
        return problem_page(
            Problem(
                400,
                "Nothing to try again",
                "This browser has no connection attempt to repeat.",
                "Open the invite link you were sent again.",
            )
        )
    state = invite.state(found.clock.time())
    if state is not InviteState.OPEN:
        title, why = _INVITE_GONE[state]
        return problem_page(Problem(410, title, why, _ASK_FOR_NEW))
    return _start_attempt(invite)


def _start_attempt(invite: Invite) -> ResponseReturnValue:
    return start_authorization(
        invite.scopes, AttemptFor.invite(invite.id), what=f"connect: invite {invite.id}"
    )


def start_authorization(
    scopes: Iterable[str], purpose: AttemptFor, *, what: str
) -> ResponseReturnValue:
    """Send this browser to TikTok's authorize page for ``scopes``: a fresh state bound to
    ``purpose`` (an invite, or a review sign-in) and to this browser's cookie.
    ``what`` names the attempt in the log."""
    found = services()
    settings = found.settings
    try:
        client_key, _ = settings.require_client()
        authorization = build_web_authorization_request(
            auth_url=settings.auth_url,
            client_key=client_key,
            redirect_uri=connect_redirect_uri(found.config.public_url),
            scopes=sorted(scopes),
            pkce=found.config.pkce,
        )
    except ConfigError as exc:
        log.error("connect: cannot start an attempt: %s", exc)
        return problem_page(
            Problem(
                503,
                "Signing in with TikTok is not set up",
                "This server has no TikTok app configured.",
                "Tell whoever sent you the link; they will find the details in the server log.",
            )
        )
    browser = request.cookies.get(BROWSER_COOKIE) or secrets.token_urlsafe(32)
    state = authorization.state.reveal()
    sealed = found.tokens.cipher.seal(
        authorization.code_verifier,
        open_id=secret_digest(state),
        purpose="connect_verifier",
    )
    found.connect_states.add(state, purpose=purpose, sealed_verifier=sealed, browser=browser)
    log.info("%s: sending a browser to TikTok's authorize page", what)
    # A bare redirect: the body Flask would write repeats the URL, state included.
    response = Response(status=303, headers={"Location": authorization.url})
    response.set_cookie(
        BROWSER_COOKIE,
        browser,
        max_age=int(ATTEMPT_LIFETIME),
        path="/connect/",
        secure=found.config.secure_cookies,
        httponly=True,
        samesite="Lax",
    )
    return response


# -- the callback --------------------------------------------------------------------------------


@blueprint.get(CONNECT_CALLBACK_PATH.removeprefix("/connect"))
def callback() -> ResponseReturnValue:
    """TikTok's redirect back: check the state, store the creator's tokens, say who connected."""
    found = services()
    params = request.args
    state = params.get("state", "")
    attempt = (
        found.connect_states.consume(
            state, browser=request.cookies.get(BROWSER_COOKIE, ""), max_age=ATTEMPT_LIFETIME
        )
        if state
        else None
    )
    if attempt is None:
        log.warning("connect: a callback with an unknown, used, expired or foreign state")
        return problem_page(
            Problem(
                400,
                "This sign-in cannot be finished",
                "The answer from TikTok does not match a sign-in started in this browser: it "
                "was already used, it took too long, or it was started in another browser.",
                "Open the link you were sent (the invite, or your review link) again, in this "
                "browser, and continue from there.",
            )
        )
    if attempt.purpose.review:
        from orchestrator.web import review_signin

        return review_signin.finish(attempt, state)
    invite = found.invites.get(attempt.purpose.invite_id or "")
    if invite is None:
        return problem_page(Problem(404, "This invite is gone", "", _ASK_FOR_NEW))
    invite_state = invite.state(found.clock.time())
    if invite_state is not InviteState.OPEN:
        title, why = _INVITE_GONE[invite_state]
        return problem_page(Problem(410, title, why, _ASK_FOR_NEW))
    # From here on this browser may try again for this invite.
    session[_RETRY_KEY] = invite.id

    answer = read_callback(attempt, state)
    if isinstance(answer, Problem):
        return problem_page(answer)
    return _finish(invite, answer)


@dataclass(frozen=True)
class CallbackAnswer:
    """What TikTok's redirect carries for a state that checked out."""

    code: Secret
    verifier: Secret
    """The attempt's PKCE verifier, opened from the store."""
    granted: frozenset[str]
    """The scopes the callback lists (used when the token answer names none)."""


def read_callback(attempt: ConnectState, state: str) -> CallbackAnswer | Problem:
    """The code of a checked callback with its verifier, or the refusal it stands for."""
    params = request.args
    error = params.get("error")
    if error:
        return refusal(error, params.get("error_type", ""))
    code = params.get("code", "")
    if not code:
        return Problem(
            400,
            "TikTok sent no authorization",
            "The answer from TikTok carries neither a code nor an error.",
            "Try again.",
            retry=True,
        )
    verifier = services().tokens.cipher.open(
        attempt.sealed_verifier, open_id=secret_digest(state), purpose="connect_verifier"
    )
    return CallbackAnswer(Secret(code), verifier, parse_scopes(params.get("scopes", "")))


def refusal(error: str, error_type: str) -> Problem:
    """The page for an ``error=`` callback (the creator or TikTok said no)."""
    if error == "access_denied":
        return Problem(
            403,
            "You did not allow access",
            "TikTok says the request was declined, so no account was connected.",
            "If that was a mistake, try again and press Approve (or Authorize).",
            retry=True,
        )
    if error == "unauthorized_client":
        detail = " (its client key)" if error_type == "client_key" else ""
        return Problem(
            403,
            "TikTok did not let this app connect your account",
            f"TikTok refused the app{detail}: while the app is in sandbox mode, only the "
            "accounts listed as its target users can connect.",
            "Tell whoever sent you the link which TikTok account you used; they can add it as a "
            "target user on developers.tiktok.com (or get the app approved), then try again.",
            retry=True,
        )
    log.warning("connect: TikTok's authorize page answered error=%s", error[:64])
    return Problem(
        502,
        "TikTok could not complete the sign-in",
        f"TikTok answered with the error {error[:64]!r}.",
        "Try again in a few minutes.",
        retry=True,
    )


def exchange_problem(exc: OrchestratorError) -> Problem:
    if isinstance(exc, OAuthError) and exc.description == MSG_PKCE:
        return Problem(
            502,
            "TikTok refused this server's sign-in request",
            f"TikTok answered: {MSG_PKCE}",
            f"The operator must switch {ENV_WEB_PKCE} (s256 or hex) to the reading TikTok "
            "expects for this app, restart the server, then you can try again.",
            retry=True,
        )
    if isinstance(exc, OAuthError) and exc.error == "invalid_grant":
        return Problem(
            400,
            "The sign-in expired",
            "TikTok no longer accepts this sign-in (it took too long, or was already used).",
            "Try again.",
            retry=True,
        )
    if isinstance(exc, OAuthError) and not exc.retryable:
        return Problem(
            502,
            "TikTok refused to finish the sign-in",
            f"TikTok answered: {exc.description}",
            "Tell whoever sent you the link; the server log has the details.",
            retry=True,
        )
    timed_out = isinstance(exc, TransportError)
    return Problem(
        504 if timed_out else 502,
        "TikTok did not answer" if timed_out else "TikTok is having trouble",
        "TikTok's sign-in service could not be reached or failed; no account was connected.",
        "Try again in a few minutes.",
        retry=True,
    )


def _finish(invite: Invite, answer: CallbackAnswer) -> ResponseReturnValue:
    found = services()
    requested = tuple(sorted(invite.scopes))
    try:
        with contextlib.closing(HttpTransport()) as transport:
            oauth = OAuthClient.from_settings(found.settings, transport, found.clock)
            stored = store_authorization(
                oauth,
                found.tokens,
                AuthorizationCode(answer.code, answer.granted),
                code_verifier=answer.verifier,
                redirect_uri=connect_redirect_uri(found.config.public_url),
                requested_scopes=requested,
            )
    except (OAuthError, TransportError) as exc:
        log.warning("connect: invite %s: the code exchange failed: %s", invite.id, exc)
        return problem_page(exchange_problem(exc))
    except OrchestratorError as exc:
        log.error("connect: invite %s: %s", invite.id, exc)
        return problem_page(
            Problem(
                500,
                "The account could not be saved",
                "Something went wrong on this server; no account was connected.",
                "Tell whoever sent you the link; the server log has the details.",
                retry=True,
            )
        )
    user = stored.user
    if not stored.missing_scopes:
        found.invites.mark_used(invite.id, user.open_id)
        session.pop(_RETRY_KEY, None)
    log.info(
        "connect: invite %s connected %s (scopes %s)",
        invite.id,
        user.open_id,
        ",".join(sorted(user.scopes)),
    )
    return render_template(
        "connect_done.html",
        name=user.display_name or user.open_id,
        avatar_url=_https_or_none(stored.avatar_url),
        granted=_scope_rows(frozenset(user.scopes)),
        missing=_scope_rows(stored.missing_scopes),
    )


def _https_or_none(url: str | None) -> str | None:
    """An avatar is shown only from an https address (nothing else is put in an ``src``)."""
    return url if url and url.startswith("https://") else None
