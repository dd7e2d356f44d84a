"""The operator's pages: sign-in, connected accounts, invites, recent posts, run reports and
API keys.

Behind the admin password: a signed session cookie (``HttpOnly``, ``SameSite=Lax``, ``Secure``
when the public URL is https) that expires after ``WebConfig.session_lifetime``. Pages use the
same use cases as the command line (``auth.list_users``, the journal's history,
``lookup.read_run``), so ``auth list``, ``history`` and these pages agree.

A new invite URL or API key is shown once, on the page that answers the form, and is never
stored or logged. This module must not log a password, a token or a key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from orchestrator import auth as auth_use_cases
from orchestrator.config import DEFAULT_SCOPES
from orchestrator.errors import UsageError
from orchestrator.humantime import expiry_text, utc_text
from orchestrator.lookup import read_run
from orchestrator.store.journal import Journal
from orchestrator.store.tokens import DEFAULT_REFRESH_MARGIN
from orchestrator.web import services
from orchestrator.web.security import safe_next

blueprint = Blueprint("operator", __name__)

P = ParamSpec("P")
R = TypeVar("R")

_SIGNED_IN = "operator_since"
POSTS_SHOWN = 100
KNOWN_SCOPES = {
    "user.info.basic": "see the account's display name and avatar",
    "video.publish": "post videos directly to the profile",
    "video.upload": "send videos to the account's TikTok inbox as drafts",
}
"""The scopes an invite may ask for, and what each lets the orchestrator do."""
INVITE_LIFETIMES_DAYS = (1, 7, 30)


def signed_in() -> bool:
    """Whether this request's session is a live operator login."""
    since = session.get(_SIGNED_IN)
    if not isinstance(since, int | float):
        return False
    found = services()
    return 0 <= found.clock.time() - since < found.config.session_lifetime


def login_required(view: Callable[P, R]) -> Callable[P, R | ResponseReturnValue]:
    """Send a visitor without a live login to the sign-in page, coming back here after."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | ResponseReturnValue:
        if not signed_in():
            session.pop(_SIGNED_IN, None)
            return redirect(url_for("operator.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper


@blueprint.app_template_filter("utc")
def _utc_filter(timestamp: float | None) -> str:
    return "-" if timestamp is None else utc_text(timestamp)


@blueprint.app_template_filter("expiry")
def _expiry_filter(timestamp: float, now: float) -> str:
    """When a token expires, and how far off that is (as ``auth list`` shows it)."""
    return expiry_text(timestamp, now)


# -- sign in and out -----------------------------------------------------------------------------


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    found = services()
    target = safe_next(request.values.get("next"), url_for("operator.accounts"))
    if request.method == "GET":
        return render_template("login.html", next=target, problem=None)
    address = request.remote_addr or "unknown"
    wait = found.throttle.retry_after(address)
    if wait > 0:
        minutes = int(wait // 60) + 1
        problem = f"Too many failed sign-ins from your address. Try again in {minutes} minutes."
        return render_template("login.html", next=target, problem=problem), 429
    if not found.password.verify(request.form.get("password", "")):
        found.throttle.failed(address)
        return render_template("login.html", next=target, problem="Wrong password."), 401
    found.throttle.succeeded(address)
    session.clear()
    session.permanent = True
    session[_SIGNED_IN] = found.clock.time()
    return redirect(target)


@blueprint.post("/logout")
def logout() -> ResponseReturnValue:
    session.clear()
    return redirect(url_for("operator.login"))


@blueprint.get("/")
@login_required
def index() -> ResponseReturnValue:
    return redirect(url_for("operator.accounts"))


# -- accounts ------------------------------------------------------------------------------------


@blueprint.get("/accounts")
@login_required
def accounts() -> ResponseReturnValue:
    found = services()
    rows = auth_use_cases.list_users(found.tokens, clock=found.clock, margin=DEFAULT_REFRESH_MARGIN)
    return render_template("accounts.html", rows=rows, now=found.clock.time())


# -- invites -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _InviteForm:
    label: str
    scopes: tuple[str, ...]
    days: int


def _read_invite_form() -> _InviteForm:
    scopes = tuple(s for s in request.form.getlist("scopes") if s in KNOWN_SCOPES)
    try:
        days = int(request.form.get("days", "7"))
    except ValueError:
        days = 0
    return _InviteForm(label=request.form.get("label", "").strip(), scopes=scopes, days=days)


def invite_url(token: str) -> str:
    return f"{services().config.public_url}/connect/{token}"


@blueprint.route("/invites", methods=["GET", "POST"])
@login_required
def invites() -> ResponseReturnValue:
    found = services()
    new_url = None
    problem = None
    status = 200
    if request.method == "POST":
        form = _read_invite_form()
        try:
            if form.days not in INVITE_LIFETIMES_DAYS:
                raise UsageError("choose how long the invite stays valid")
            made = found.invites.create(
                form.label, form.scopes or DEFAULT_SCOPES, lifetime=form.days * 86400.0
            )
            new_url = invite_url(made.token)
        except UsageError as exc:
            problem, status = str(exc), 400
    return (
        render_template(
            "invites.html",
            invites=found.invites.list(),
            now=found.clock.time(),
            new_url=new_url,
            problem=problem,
            known_scopes=KNOWN_SCOPES,
            default_scopes=DEFAULT_SCOPES,
            lifetimes=INVITE_LIFETIMES_DAYS,
        ),
        status,
    )


@blueprint.post("/invites/<invite_id>/revoke")
@login_required
def revoke_invite(invite_id: str) -> ResponseReturnValue:
    found = services()
    if found.invites.get(invite_id) is None:
        abort(404, description=f"There is no invite {invite_id}.")
    found.invites.revoke(invite_id)
    return redirect(url_for("operator.invites"))


# -- posts and reports ---------------------------------------------------------------------------


@blueprint.get("/posts")
@login_required
def posts() -> ResponseReturnValue:
    found = services()
    journal = Journal(found.tokens.database, found.tokens.cipher, clock=found.clock, run_id="web")
    records = journal.history()
    return render_template(
        "posts.html",
        records=records[:POSTS_SHOWN],
        more=max(0, len(records) - POSTS_SHOWN),
        rejected=found.posts.rejected(POSTS_SHOWN),
    )


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    started_at: float
    last_at: float
    entries: int


@blueprint.get("/reports")
@login_required
def reports() -> ResponseReturnValue:
    rows = services().tokens.database.fetch_all(
        "SELECT run_id, min(at) AS started_at, max(at) AS last_at, "
        "count(DISTINCT identity) AS entries FROM journal_events WHERE run_id IS NOT NULL "
        "GROUP BY run_id ORDER BY max(at) DESC LIMIT 100"
    )
    runs = [
        RunSummary(
            run_id=str(row["run_id"]),
            started_at=float(row["started_at"]),
            last_at=float(row["last_at"]),
            entries=int(row["entries"]),
        )
        for row in rows
    ]
    return render_template("reports.html", runs=runs)


@blueprint.get("/reports/<run_id>")
@login_required
def report(run_id: str) -> ResponseReturnValue:
    found = services()
    entries = read_run(found.settings, run_id, clock=found.clock)
    if not entries:
        abort(404, description=f"The store has no run {run_id}.")
    return render_template("report.html", run_id=run_id, entries=entries)


# -- API keys ------------------------------------------------------------------------------------


@blueprint.route("/api-keys", methods=["GET", "POST"])
@login_required
def api_keys() -> ResponseReturnValue:
    found = services()
    new_key = None
    problem = None
    status = 200
    if request.method == "POST":
        try:
            new_key = found.api_keys.create(request.form.get("label", "")).value
        except UsageError as exc:
            problem, status = str(exc), 400
    return (
        render_template(
            "api_keys.html", keys=found.api_keys.list(), new_key=new_key, problem=problem
        ),
        status,
    )


@blueprint.post("/api-keys/<key_id>/revoke")
@login_required
def revoke_api_key(key_id: str) -> ResponseReturnValue:
    found = services()
    if not any(key.id == key_id for key in found.api_keys.list()):
        abort(404, description=f"There is no API key {key_id}.")
    found.api_keys.revoke(key_id)
    return redirect(url_for("operator.api_keys"))
