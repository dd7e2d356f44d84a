"""Creators sign in with TikTok to review when their review link has expired or was used
(issue 17: "… or by signing in with TikTok (Login Kit) when the token has expired").

Theory of operation:

1. The expired or used link's page (``GET /review/<token>``) and the review entry page
   (``GET /review`` with no review in the browser's session) offer "Sign in with TikTok". Its
   form posts to ``POST /review/<token>`` (the link is looked up here, from its token, so the
   sign-in knows which creator the link was for) or to ``POST /review/sign-in``.
2. The attempt is the connect flow's (:func:`~orchestrator.web.connect.start_authorization`):
   a fresh state bound to this browser's cookie, PKCE, ``disable_auto_auth=1``, and the one
   registered redirect URI ``/connect/callback/``. The stored state is tagged as a review
   sign-in with the link's id — kept on the server, never taken from the browser. It asks for
   ``user.info.basic`` and ``video.publish`` (what reviewed posts need), plus whatever else the
   link's creator's stored grant holds.
3. The callback checks the state as for connecting, then :func:`finish` exchanges the code. The
   grant's ``open_id`` alone decides who this is (not the link, not the browser). With posts
   awaiting review, a review session opens for all of them: a review link is made for those
   posts and opened at once in this browser (its token is never shown). Otherwise a page says
   the account is not connected here, or has nothing waiting.
4. The fresh grant is stored as the creator's tokens only when the ``open_id`` is already a
   connected creator and the grant holds every scope the stored one does: a creator whose
   tokens need a new login is repaired by signing in, and a narrower grant never replaces a
   wider one. Any other grant is dropped unused — not stored, not logged, and not revoked
   (revoking could end the creator's stored authorization with it); TikTok lets it expire.

Deny, errors, replayed, foreign or expired states and PKCE refusals get the connect flow's
pages. This module must not log or show a token, a code, a state or a review link's token.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

from flask import Blueprint, Response, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue

from orchestrator.errors import OAuthError, OrchestratorError, TransportError
from orchestrator.store.review import DEFAULT_LINK_LIFETIME, ReviewLink, ReviewStore
from orchestrator.store.web import AttemptFor, ConnectState
from orchestrator.tiktok.oauth import OAuthClient
from orchestrator.tiktok.oauth_values import TokenGrant
from orchestrator.tiktok.web_oauth import connect_redirect_uri
from orchestrator.transport import HttpTransport
from orchestrator.web import services
from orchestrator.web.connect import (
    Problem,
    authorize_origin,
    exchange_problem,
    problem_page,
    read_callback,
    start_authorization,
)

log = logging.getLogger(__name__)

blueprint = Blueprint("review_signin", __name__)

REVIEW_SCOPES = ("user.info.basic", "video.publish")
"""What a review sign-in asks for at least: who the creator is, and Direct Post for the posts
they confirm (so a grant that repairs their stored tokens can post them)."""
SESSION_KEY = "review_link"
"""The session key holding the open review's link id (``review.py`` reads it)."""
_RETRY_KEY = "review_sign_in_link"
"""Session key: the review link a sign-in in this browser started from ("" for none)."""


def sign_in_page(
    status: int,
    *,
    title: str,
    message: str,
    action: str | None,
    hint: str = "Or ask the person who sent you the link for a new review link.",
    offer: bool = True,
) -> ResponseReturnValue:
    """A creator's page offering "Sign in with TikTok" (its form posts to ``action``, or to the
    page's own address when ``None``); ``offer=False`` leaves the button out."""
    response = Response(
        render_template(
            "review_signin.html",
            title=title,
            message=message,
            hint=hint,
            action=action,
            offer=offer,
        ),
        status=status,
    )
    # The form is answered with a redirect to TikTok's authorize page, which browsers check
    # against form-action; the review pages' own policy allows 'self' only.
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' https:; frame-ancestors 'none'; base-uri 'none'; "
        f"form-action 'self' {authorize_origin()}"
    )
    return response


def _reviews() -> ReviewStore:
    found = services()
    return ReviewStore(found.tokens.database, clock=found.clock)


@blueprint.post("/review/sign-in")
def sign_in() -> ResponseReturnValue:
    """Sign in with TikTok from the entry page (or Try again): for the link this browser's
    session names, if any."""
    link_id = session.get(_RETRY_KEY) or session.get(SESSION_KEY)
    link = _reviews().get_link(link_id) if isinstance(link_id, str) and link_id else None
    return _start(link)


@blueprint.post("/review/<token>")
def sign_in_for_link(token: str) -> ResponseReturnValue:
    """Sign in with TikTok from an expired or used link's page: bound to that link's creator."""
    link = _reviews().find_link(token)
    if link is None:
        return sign_in_page(
            404,
            title="This review link is not valid",
            message="No review has this link; it may have been copied incompletely.",
            action=url_for("review_signin.sign_in"),
        )
    return _start(link)


def _start(link: ReviewLink | None) -> ResponseReturnValue:
    scopes = set(REVIEW_SCOPES)
    if link is not None:
        stored = services().tokens.get_user(link.open_id)
        if stored is not None:
            scopes |= set(stored.scopes)
    session[_RETRY_KEY] = link.id if link is not None else ""
    what = f"review sign-in (link {link.id})" if link is not None else "review sign-in"
    return start_authorization(
        scopes, AttemptFor.review_sign_in(link.id if link else None), what=what
    )


def _problem(problem: Problem) -> ResponseReturnValue:
    return problem_page(problem, retry_action=url_for("review_signin.sign_in"))


def finish(attempt: ConnectState, state: str) -> ResponseReturnValue:
    """The callback of a review sign-in whose state checked out (``connect.callback``)."""
    found = services()
    answer = read_callback(attempt, state)
    if isinstance(answer, Problem):
        return _problem(answer)
    try:
        with contextlib.closing(HttpTransport()) as transport:
            oauth = OAuthClient.from_settings(found.settings, transport, found.clock)
            grant = oauth.exchange_code(
                answer.code,
                code_verifier=answer.verifier,
                redirect_uri=connect_redirect_uri(found.config.public_url),
            )
    except (OAuthError, TransportError) as exc:
        log.warning("review sign-in: the code exchange failed: %s", exc)
        return _problem(exchange_problem(exc))
    except OrchestratorError as exc:
        log.error("review sign-in: %s", exc)
        return _problem(
            Problem(
                500,
                "The sign-in could not be finished",
                "Something went wrong on this server.",
                "Tell whoever sent you the link; the server log has the details.",
                retry=True,
            )
        )
    if not grant.scopes:  # as `auth login`: the callback's list when the answer has none
        grant = dataclasses.replace(grant, scopes=answer.granted)
    session.pop(_RETRY_KEY, None)
    _keep_if_not_a_downgrade(grant)
    return _open_review(grant.open_id, attempt.purpose.review_link_id)


def _keep_if_not_a_downgrade(grant: TokenGrant) -> None:
    """Store the grant as a connected creator's newer tokens when it holds every stored scope
    (module docstring, point 4)."""
    tokens = services().tokens
    stored = tokens.get_user(grant.open_id)
    if stored is None:
        log.info("review sign-in: %s is not connected here; its grant is dropped", grant.open_id)
        return
    narrower = frozenset(stored.scopes) - grant.scopes
    if narrower:
        log.info(
            "review sign-in: %s granted fewer scopes than stored (%s missing); stored tokens kept",
            grant.open_id,
            ",".join(sorted(narrower)),
        )
        return
    tokens.save_grant(grant, display_name=stored.display_name)
    log.info("review sign-in: %s signed in; their stored tokens were renewed", grant.open_id)


def _open_review(open_id: str, link_id: str | None) -> ResponseReturnValue:
    found = services()
    reviews = _reviews()
    waiting = reviews.waiting(open_id)
    if waiting:
        lifetime = min(DEFAULT_LINK_LIFETIME, found.config.session_lifetime)
        made = reviews.create_link(open_id, [item.identity for item in waiting], lifetime=lifetime)
        reviews.open_link(made.link.id)
        session[SESSION_KEY] = made.link.id
        log.info(
            "review sign-in: %s opened a review of %d post(s) (link %s)",
            open_id,
            len(waiting),
            made.link.id,
        )
        return redirect(url_for("review.next_post"))
    linked = reviews.get_link(link_id) if link_id else None
    other = (
        " The review link you came from was for another TikTok account."
        if linked is not None and linked.open_id != open_id
        else ""
    )
    again = url_for("review_signin.sign_in")
    if found.tokens.get_user(open_id) is None:
        log.info("review sign-in: %s is not a connected creator", open_id)
        return sign_in_page(
            403,
            title="This TikTok account is not connected here",
            message="You signed in with a TikTok account that has no posts on this server." + other,
            action=again,
            hint="Sign in with the account the posts are for, or ask the person who sent you "
            "the link.",
        )
    log.info("review sign-in: %s has nothing awaiting review", open_id)
    return sign_in_page(
        200,
        title="Nothing to review",
        message="No post is waiting for your review: the posts you confirmed or declined are "
        "answered already." + other,
        action=again,
        hint="When new posts wait for you, the person preparing them sends you a link.",
        offer=bool(other),
    )
