"""The creator's review pages (tiktok-api.md §11) and the operator's review links.

1. The operator makes a link for a creator with posts ``awaiting_review`` (``/review-links``,
   or ``POST /api/v1/reviews``); its token is shown once and kept only hashed.
2. ``GET /review/<token>`` opens the link, once: the browser's session then holds the review
   (an expired or used link gets a page offering "Sign in with TikTok", ``review_signin.py``,
   or to ask the operator for a new link; so does ``/review`` without a review).
3. ``GET /review`` shows the creator's next waiting post: creator_info fetched now (nickname,
   avatar, options; "can't post now" when TikTok says so), a preview (the video streamed from
   here with Range support, photos as a strip), the editable caption, privacy with no default,
   the interaction boxes, the commercial-content disclosure and the declaration.
4. ``POST /review/<identity>/post`` judges the form again with fresh creator_info
   (``orchestrator/review.py``: a crafted form cannot bypass a rule), records the consent in the
   journal and wakes the worker, which posts exactly those settings. ``.../decline`` records
   "Not this one" with the creator's note.

Nothing is sent to TikTok's posting endpoints from here: only creator_info is asked.
This module must not log a review token or an access token.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from orchestrator.errors import ApiError, AuthError, OrchestratorError, TransportError
from orchestrator.review import (
    DECLARATION,
    DECLARATION_BRANDED,
    ReviewRefused,
    declaration,
    read_choices,
    read_note,
    too_long,
)
from orchestrator.store.journal import EntryState, Journal, JournalRecord
from orchestrator.store.review import (
    Consent,
    LinkState,
    ReviewItem,
    ReviewLink,
    ReviewStore,
)
from orchestrator.tiktok.client import CreatorInfo
from orchestrator.web import services
from orchestrator.web.operator import login_required
from orchestrator.web.review_signin import SESSION_KEY, sign_in_page

log = logging.getLogger(__name__)

blueprint = Blueprint("review", __name__)

PRIVACY_LABELS = {
    "PUBLIC_TO_EVERYONE": "Everyone",
    "MUTUAL_FOLLOW_FRIENDS": "Friends",
    "FOLLOWER_OF_CREATOR": "Followers",
    "SELF_ONLY": "Only me",
}
REVIEW_CSP = (
    "default-src 'self'; img-src 'self' https:; media-src 'self' https:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
"""The review page shows the creator's avatar and photos from TikTok's and the operator's https
hosts; scripts stay same-origin (``static/review.js``, no inline script)."""


def _reviews() -> ReviewStore:
    found = services()
    return ReviewStore(found.tokens.database, clock=found.clock)


def _journal() -> Journal:
    found = services()
    return Journal(found.tokens.database, found.tokens.cipher, clock=found.clock, run_id="review")


def review_url(token: str) -> str:
    return f"{services().config.public_url}/review/{token}"


def _page(template: str, status: int = 200, **context: Any) -> ResponseReturnValue:
    response = Response(render_template(template, **context), status=status)
    response.headers["Content-Security-Policy"] = REVIEW_CSP
    return response


def _link_problem(state: LinkState | None, *, action: str | None = None) -> ResponseReturnValue:
    """The page of a link that opens nothing; an expired or used one offers signing in with
    TikTok (posting to ``action``, or to the link's own address)."""
    if state is None:
        return _page(
            "error.html",
            404,
            title="This review link is not valid",
            message="No review has this link.",
            hint="Ask the person who sent it for a new review link.",
        )
    if state is LinkState.USED:
        title = "This review link was already used"
        message = "A review link opens once, in one browser."
    else:
        title, message = "This review link has expired", "Review links are valid for a few days."
    return sign_in_page(410, title=title, message=message, action=action)


# -- the operator's links ------------------------------------------------------------------------


def waiting_by_creator() -> dict[str, list[ReviewItem]]:
    """Posts awaiting review without an answer, by creator (open_id)."""
    reviews = _reviews()
    journal = _journal()
    creators = sorted(
        {r.user_id for r in journal.history() if r.state is EntryState.AWAITING_REVIEW}
    )
    found = {open_id: reviews.waiting(open_id) for open_id in creators}
    return {open_id: items for open_id, items in found.items() if items}


@blueprint.route("/review-links", methods=["GET", "POST"])
@login_required
def review_links() -> ResponseReturnValue:
    """The operator's page: creators with posts awaiting review, and a link for each."""
    new_url = None
    made_for = None
    problem = None
    status = 200
    waiting = waiting_by_creator()
    if request.method == "POST":
        open_id = request.form.get("open_id", "")
        items = waiting.get(open_id, [])
        if not items:
            problem, status = f"{open_id or 'that account'} has no post awaiting review", 400
        else:
            made = _reviews().create_link(open_id, [item.identity for item in items])
            new_url, made_for = review_url(made.token), open_id
    return (
        render_template(
            "review_links.html",
            waiting=waiting,
            new_url=new_url,
            made_for=made_for,
            problem=problem,
        ),
        status,
    )


def api_create_link() -> tuple[Response, int]:
    """``POST /api/v1/reviews`` ``{"user_id": ...}``: a review link for the creator's posts
    awaiting review (``api.py`` routes it; the key is checked there)."""
    from orchestrator.web.api import ApiProblem

    body = request.get_json(silent=True)
    open_id = body.get("user_id") if isinstance(body, dict) else None
    if not isinstance(open_id, str) or not open_id:
        raise ApiProblem(400, "invalid", "the body needs a user_id", 'send {"user_id": "..."}')
    items = _reviews().waiting(open_id)
    if not items:
        raise ApiProblem(
            409,
            "nothing_to_review",
            f"{open_id} has no post awaiting review",
            "post with review: creator first; the worker prepares it (state awaiting_review)",
        )
    made = _reviews().create_link(open_id, [item.identity for item in items])
    return (
        jsonify(
            {
                "review_url": review_url(made.token),
                "user_id": open_id,
                "expires_at": made.link.expires_at,
                "posts": list(made.link.identities),
            }
        ),
        201,
    )


def consent_json(identity: str) -> dict[str, Any] | None:
    """The consent record of a post, for ``GET /api/v1/posts/{id}`` and ``history --json``."""
    found = services()
    consent = ReviewStore(found.tokens.database, clock=found.clock).consent(identity)
    return None if consent is None else consent.as_json()


# -- the creator's pages -------------------------------------------------------------------------


@blueprint.get("/review/<token>")
def open_review(token: str) -> ResponseReturnValue:
    """Open a review link, once; the browser's session holds the review from here."""
    reviews = _reviews()
    link = reviews.find_link(token)
    if link is None:
        return _link_problem(None)
    state = link.state(services().clock.time())
    if state is not LinkState.OPEN or not reviews.open_link(link.id):
        return _link_problem(state if state is not LinkState.OPEN else LinkState.USED)
    session[SESSION_KEY] = link.id
    log.info("review: link %s opened for %s", link.id, link.open_id)
    return redirect(url_for("review.next_post"))


def _session_link() -> ReviewLink | ResponseReturnValue:
    link_id = session.get(SESSION_KEY)
    link = _reviews().get_link(str(link_id)) if link_id else None
    again = url_for("review_signin.sign_in")
    if link is None:
        return sign_in_page(
            403,
            title="Review your posts",
            message="Open the review link you were sent, or sign in with TikTok.",
            action=again,
        )
    if services().clock.time() >= link.expires_at:
        return _link_problem(LinkState.EXPIRED, action=again)
    return link


@dataclass(frozen=True)
class _Creator:
    """creator_info asked now, or why the creator cannot post now."""

    info: CreatorInfo | None
    problem: str | None


def fresh_creator(open_id: str) -> _Creator:
    """creator_info asked now with the creator's stored token (refreshed when stale)."""
    from orchestrator.store.tokens import TokenProvider
    from orchestrator.tiktok.client import TikTokClient
    from orchestrator.tiktok.oauth import OAuthClient
    from orchestrator.transport import HttpTransport

    found = services()
    try:
        found.settings.require_client()
        with contextlib.closing(HttpTransport()) as transport:
            oauth = OAuthClient.from_settings(found.settings, transport, found.clock)
            tokens = TokenProvider(found.tokens, oauth, clock=found.clock)
            client = TikTokClient(found.settings.api_base, transport, tokens, clock=found.clock)
            return _Creator(client.creator_info(open_id), None)
    except AuthError:
        return _Creator(None, "This account needs to be connected again before it can post.")
    except ApiError as exc:
        log.info("review: creator_info for %s: %s", open_id, exc.code)
        return _Creator(None, f"TikTok says you cannot post right now ({exc}). Try again later.")
    except (TransportError, OrchestratorError) as exc:
        log.warning("review: creator_info for %s failed: %s", open_id, exc)
        return _Creator(None, "TikTok could not be reached. Try again in a few minutes.")


@dataclass(frozen=True)
class _Status:
    """Where one reviewed post stands, for the done page."""

    item: ReviewItem
    record: JournalRecord | None
    by_run: bool
    """Prepared by a manifest run, not ``/api/v1/posts``: ``serve`` does not post it; the
    operator's next ``run`` of that manifest does."""


def _statuses(link: ReviewLink) -> list[_Status]:
    reviews, journal, posts = _reviews(), _journal(), services().posts
    found = []
    for identity in link.identities:
        item = reviews.item(identity)
        if item is None:
            continue
        record = journal.get(identity)
        # A post made over /api/v1/posts has its id as the journal's entry id.
        by_run = record is not None and (
            record.entry_id is None or posts.get(record.entry_id) is None
        )
        found.append(_Status(item, record, by_run))
    return found


@blueprint.get("/review")
def next_post() -> ResponseReturnValue:
    """The creator's next post to review, or where their reviewed posts stand."""
    link = _session_link()
    if not isinstance(link, ReviewLink):
        return link
    waiting = [
        item for item in _reviews().waiting(link.open_id) if item.identity in link.identities
    ]
    if not waiting:
        statuses = _statuses(link)
        return _page(
            "review_done.html",
            statuses=statuses,
            by_run=any(
                status.by_run
                and status.record is not None
                and status.record.state is EntryState.AWAITING_REVIEW
                for status in statuses
            ),
        )
    return _review_page(link, waiting[0], remaining=len(waiting))


def _review_page(
    link: ReviewLink,
    item: ReviewItem,
    *,
    remaining: int,
    form: dict[str, str] | None = None,
    problems: tuple[str, ...] = (),
    creator: _Creator | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    creator = creator or fresh_creator(link.open_id)
    long = None if creator.info is None else too_long(item, creator.info)
    form = form or {}
    branded = form.get("brand_content_toggle") == "on"
    return _page(
        "review.html",
        status,
        item=item,
        creator=creator.info,
        cannot_post=creator.problem,
        too_long=long,
        remaining=remaining,
        form=form,
        problems=problems,
        privacy_labels=PRIVACY_LABELS,
        declaration=declaration(branded),
        declaration_plain=DECLARATION,
        declaration_branded=DECLARATION_BRANDED,
    )


def _own_item(link: ReviewLink, identity: str) -> ReviewItem | None:
    if identity not in link.identities:
        return None
    item = _reviews().item(identity)
    return item if item is not None and item.user_id == link.open_id else None


@blueprint.get("/review/media/<identity>")
def media(identity: str) -> ResponseReturnValue:
    """The video of a post under review, with the review's authority (Range requests work)."""
    link = _session_link()
    if not isinstance(link, ReviewLink):
        return link
    item = _own_item(link, identity)
    if item is None or item.kind != "file":
        return _page("error.html", 404, title="Not found", message="No such video.", hint="")
    path = Path(item.media[0])
    if not path.is_file():
        return _page(
            "error.html",
            404,
            title="The video is gone",
            message="The video file is no longer on the server.",
            hint="Ask the person who sent the link.",
        )
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return send_file(path, mimetype=kind, conditional=True, max_age=0)


@blueprint.post("/review/<identity>/post")
def confirm(identity: str) -> ResponseReturnValue:
    """Post: judge the choices with fresh creator_info, record the consent, wake the worker."""
    link = _session_link()
    if not isinstance(link, ReviewLink):
        return link
    item = _own_item(link, identity)
    if item is None:
        return _page("error.html", 404, title="Not found", message="No such post.", hint="")
    form = {name: request.form.get(name, "") for name in request.form}
    remaining = len(_reviews().waiting(link.open_id))
    creator = fresh_creator(link.open_id)
    if creator.info is None:
        return _review_page(link, item, remaining=remaining, form=form, creator=creator, status=409)
    if form.get("media_digest") != item.fingerprint:
        problems: tuple[str, ...] = ("the post changed since this page was opened: look again",)
        return _review_page(
            link, item, remaining=remaining, problems=problems, creator=creator, status=409
        )
    try:
        choices = read_choices(form, item, creator.info)
    except ReviewRefused as exc:
        return _review_page(
            link,
            item,
            remaining=remaining,
            form=form,
            problems=exc.problems,
            creator=creator,
            status=422,
        )
    found = services()
    consent = Consent(
        open_id=link.open_id,
        at=found.clock.time(),
        media_digest=item.fingerprint,
        choices=choices,
        declaration=declaration(choices.brand_content_toggle),
    )
    if _reviews().record_consent(identity, consent):
        log.info("review: %s confirmed %s", link.open_id, identity)
        wake = getattr(found.worker, "wake", None)
        if callable(wake):
            wake()
    return redirect(url_for("review.next_post"))


@blueprint.post("/review/<identity>/decline")
def decline(identity: str) -> ResponseReturnValue:
    """ "Not this one": the post is declined with the creator's note (never posted)."""
    link = _session_link()
    if not isinstance(link, ReviewLink):
        return link
    item = _own_item(link, identity)
    if item is None:
        return _page("error.html", 404, title="Not found", message="No such post.", hint="")
    if _reviews().decline(identity, link.open_id, read_note(request.form)):
        log.info("review: %s declined %s", link.open_id, identity)
    return redirect(url_for("review.next_post"))
