"""The per-user gates an entry passes before a byte is sent, and their verdicts.

Per user, once: a usable token (a user whose tokens are dead fails alone, with the
``auth login`` hint) and creator_info (before the first entry that may send an init). Per new
entry: the creator's settings (:func:`creator_verdict`) and the caps (:func:`cap_verdict`: daily
direct posts and pending inbox shares, counted from the inits the journal recorded over 24 h).

:func:`guard` turns a gate's error into the :class:`ErrorInfo` and status that hold the user's
remaining entries (``user`` scope) or only their new posts (``posting`` scope); it never stops
the run, except for an unsafe connection. The caps and creator checks are pure functions; the
gates read tokens and ask creator_info, and write nothing but what the token provider writes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from orchestrator.errors import (
    ApiError,
    AuthError,
    NeedsLoginError,
    OrchestratorError,
    StoreError,
    TransportError,
    UnsafeConnectionError,
)
from orchestrator.manifest import Entry, Mode
from orchestrator.outcomes import EntryStatus, ErrorInfo
from orchestrator.preflight import creator_problems
from orchestrator.secret import Secret
from orchestrator.tiktok.client import CreatorInfo, TikTokClient

DAY = 86_400.0
"""The caps' window, in seconds: TikTok counts posts over the last 24 hours."""

Scope = Literal["user", "posting"]
"""What a failed gate holds: all of the user's remaining entries, or only their new posts."""


class TokenStates(Protocol):
    """What the scheduler asks of the token provider (``store.tokens.TokenProvider``)."""

    def access_token(self, open_id: str) -> Secret: ...

    def state(self, open_id: str) -> str:
        """``fresh`` / ``stale`` / ``expired`` / ``needs_login`` (a ``TokenState``)."""
        ...


@dataclass
class UserState:
    """What one user's worker learns as it goes (one thread per user: no locking needed)."""

    token_checked: bool = False
    creator_asked: bool = False
    creator: CreatorInfo | None = None
    creator_skipped: bool = False  # dry run: the token would need a refresh first
    note: str | None = None
    # The user's tokens cannot be used: every remaining entry gets this.
    blocked: ErrorInfo | None = None
    blocked_status: EntryStatus = EntryStatus.FAILED
    # TikTok will not take a new post from the user now: every remaining new entry gets this.
    posting_blocked: ErrorInfo | None = None
    posting_status: EntryStatus = EntryStatus.DEFERRED
    # Dry run: inits the plan would add, per mode, so the caps are predicted as a run meets them.
    planned_inits: Counter[str] = field(default_factory=Counter)


def check_token(tokens: TokenStates, user_id: str, user: UserState, *, dry_run: bool) -> None:
    """The user's token gate; raises the token provider's error when the token is unusable.

    A real run refreshes a stale or expired token here (a write). A dry run writes nothing: an
    expired token (which a refresh would replace, rotating the refresh token) is only noted and
    creator_info is not asked with it; a stale one still works for a few minutes and is used.
    """
    if not dry_run:
        tokens.access_token(user_id)
        return
    state = tokens.state(user_id)
    if state == "needs_login":
        tokens.access_token(user_id)  # raises NeedsLoginError with the reason
    if state == "expired":
        user.creator_skipped = True
        user.note = "the access token has expired: a real run refreshes it first"


def query_creator(client: TikTokClient, user_id: str, user: UserState) -> None:
    """The user's creator_info gate: asked once, kept for the user's entries."""
    user.creator = client.creator_info(user_id)


def guard(
    user: UserState,
    scope: Scope,
    step: Callable[[], None],
    store_failed: Callable[[StoreError], ErrorInfo],
) -> None:
    """Run a per-user gate; a failure holds that user's entries (``scope`` "user") or their new
    posts ("posting"), never the run: ``store_failed`` is told of a store that cannot be
    written (the run stops starting work) and an unsafe connection is raised. RunInterrupted
    passes through."""
    status = EntryStatus.FAILED
    try:
        step()
        return
    except NeedsLoginError as exc:
        error = ErrorInfo("needs_login", str(exc), retryable=True, hint=exc.hint)
    except AuthError as exc:
        transient = exc.transient
        status = EntryStatus.DEFERRED if transient else EntryStatus.FAILED
        error = ErrorInfo(
            "unavailable" if transient else "auth_error",
            str(exc),
            retryable=True,
            hint=exc.hint or "run `tiktok-orchestrator auth login` for this user",
        )
    except ApiError as exc:
        deferred = exc.defer or exc.retryable
        status = EntryStatus.DEFERRED if deferred else EntryStatus.FAILED
        error = ErrorInfo(exc.code, str(exc), exc.log_id, deferred, exc.hint)
    except StoreError as exc:
        error = store_failed(exc)
    except UnsafeConnectionError:
        raise  # the run stops
    except TransportError as exc:
        status = EntryStatus.DEFERRED
        error = ErrorInfo(
            "unavailable",
            str(exc),
            retryable=True,
            hint="TikTok could not be reached; run again later",
        )
    except OrchestratorError as exc:
        error = ErrorInfo(type(exc).__name__, str(exc), retryable=False, hint=exc.hint)
    if scope == "user":
        user.blocked, user.blocked_status = error, status
    else:
        user.posting_blocked, user.posting_status = error, status


def creator_verdict(entry: Entry, creator: CreatorInfo | None) -> ErrorInfo | None:
    """TikTok's integration rules: honour the creator's options before sending a byte (no
    verdict when creator_info was not asked)."""
    return None if creator is None else creator_problems(entry, creator)


@dataclass(frozen=True)
class CapVerdict:
    """An entry held by a cap: why, and when the window has room again (None: not known)."""

    error: ErrorInfo
    until: datetime | None


def cap_verdict(
    mode: Mode,
    init_times: Sequence[float],
    *,
    now: float,
    planned: int = 0,
    daily_direct_cap: int,
    pending_inbox_cap: int,
) -> CapVerdict | None:
    """The daily direct-post cap or the pending-inbox cap, whichever ``mode`` is held to.

    ``init_times`` are the user's journalled inits in ``mode`` (epoch seconds, oldest first);
    those older than 24 h before ``now`` do not count. ``planned`` adds the inits a dry run
    would have sent by now. None when there is room for one more.
    """
    times = [t for t in init_times if t >= now - DAY]
    used = len(times) + planned
    if mode is Mode.DIRECT:
        cap = daily_direct_cap
        code = "daily_cap"
        message = f"{used} direct posts in the last 24 h (cap {cap})"
        hint = "a later run posts it; TikTok allows about 15 direct posts a day (--daily-cap)"
    else:
        cap = pending_inbox_cap
        code = "pending_inbox_cap"
        message = f"{used} inbox shares in the last 24 h (cap {cap})"
        hint = (
            "the creator must post or delete drafts in the app; a later run sends it (--inbox-cap)"
        )
    if used < cap:
        return None
    # The window has room again once enough of the oldest inits have left it.
    leaving = used - cap
    until = datetime.fromtimestamp(times[leaving] + DAY, UTC) if leaving < len(times) else None
    if until is not None:
        message += f"; room again at {until.isoformat(timespec='seconds')}"
    return CapVerdict(ErrorInfo(code, message, retryable=True, hint=hint), until)
