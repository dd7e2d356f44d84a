"""The per-user gates and the caps, without a server: tables of (journal, now, limits) → verdict
and (token state or gate error) → what holds the user's entries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from orchestrator.clock import RunInterrupted
from orchestrator.errors import (
    ApiError,
    AuthError,
    ConnectError,
    IllegalTransitionError,
    NeedsLoginError,
    OAuthError,
    PlainHttpError,
    StoreError,
)
from orchestrator.manifest import Mode
from orchestrator.outcomes import ErrorInfo
from orchestrator.scheduler.gates import (
    DAY,
    Scope,
    UserState,
    cap_verdict,
    check_token,
    creator_verdict,
    guard,
)
from orchestrator.secret import Secret
from tests.unit.entries import open_creator, video_entry

HOUR = 3600.0
NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC).timestamp()
"""One o'clock in the morning: yesterday evening's posts are still inside the 24 h window."""


def _hourly(count: int, first: float) -> list[float]:
    return [first + i * HOUR / 2 for i in range(count)]


def _verdict(
    mode: Mode, times: list[float], *, planned: int = 0, direct: int = 15, inbox: int = 5
) -> tuple[str, datetime | None] | None:
    verdict = cap_verdict(
        mode, times, now=NOW, planned=planned, daily_direct_cap=direct, pending_inbox_cap=inbox
    )
    return None if verdict is None else (verdict.error.code, verdict.until)


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


# 15 direct inits, one every half hour from 17:00 yesterday to 00:00 today.
EVENING = _hourly(15, NOW - 8 * HOUR)


@pytest.mark.parametrize(
    ("case", "mode", "times", "planned", "expected"),
    [
        ("room for one more direct post", Mode.DIRECT, EVENING[:14], 0, None),
        (
            "the 16th direct post waits until the oldest init is 24 h old; midnight does not "
            "reset the window (14 of the 15 inits were yesterday)",
            Mode.DIRECT,
            EVENING,
            0,
            ("daily_cap", _at(NOW - 8 * HOUR + DAY)),
        ),
        (
            "inits older than 24 h leave the window",
            Mode.DIRECT,
            [NOW - DAY - 1, *EVENING[:14]],
            0,
            None,
        ),
        (
            "two over the cap: room again when the two oldest have left",
            Mode.DIRECT,
            _hourly(17, NOW - 9 * HOUR),
            0,
            ("daily_cap", _at(NOW - 9 * HOUR + 2 * HOUR / 2 + DAY)),
        ),
        (
            "a dry run counts the posts it would have sent",
            Mode.DIRECT,
            EVENING[:13],
            2,
            ("daily_cap", _at(EVENING[0] + DAY)),
        ),
        (
            "only planned posts: held, with no time to name",
            Mode.DIRECT,
            [],
            15,
            ("daily_cap", None),
        ),
        ("room for one more inbox share", Mode.INBOX, EVENING[:4], 0, None),
        (
            "the 6th pending inbox share waits",
            Mode.INBOX,
            EVENING[:5],
            0,
            ("pending_inbox_cap", _at(EVENING[0] + DAY)),
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_the_caps_hold_an_entry_until_the_24_hour_window_has_room(
    case: str,
    mode: Mode,
    times: list[float],
    planned: int,
    expected: tuple[str, datetime | None] | None,
) -> None:
    """Daily direct-post cap (15) and pending-inbox cap (5), over a sliding 24 h window."""
    assert _verdict(mode, times, planned=planned) == expected, case


def test_a_cap_of_zero_holds_every_new_post() -> None:
    """``--daily-cap 0`` posts nothing directly, and cannot say when it would."""
    assert _verdict(Mode.DIRECT, [], direct=0) == ("daily_cap", None)
    assert _verdict(Mode.INBOX, [], inbox=0) == ("pending_inbox_cap", None)


def test_a_capped_entry_says_how_many_posts_when_room_returns_and_the_option() -> None:
    """The message counts the posts and names the time; the hint names the option to change."""
    direct = cap_verdict(Mode.DIRECT, EVENING, now=NOW, daily_direct_cap=15, pending_inbox_cap=5)
    assert direct is not None
    assert direct.error.message == (
        "15 direct posts in the last 24 h (cap 15); room again at 2026-12-07T17:00:00+00:00"
    )
    assert direct.error.retryable
    assert direct.error.hint is not None
    assert "--daily-cap" in direct.error.hint
    inbox = cap_verdict(Mode.INBOX, EVENING[:5], now=NOW, daily_direct_cap=15, pending_inbox_cap=5)
    assert inbox is not None
    assert inbox.error.message.startswith("5 inbox shares in the last 24 h (cap 5)")
    assert inbox.error.hint is not None
    assert "--inbox-cap" in inbox.error.hint


# -- the per-user gates ---------------------------------------------------------------------------


class FakeTokens:
    """A token provider whose user is in ``state``; ``access_token`` raises ``error`` if set."""

    def __init__(self, state: str, error: Exception | None = None) -> None:
        self._state = state
        self._error = error
        self.asked = 0

    def access_token(self, open_id: str) -> Secret:
        self.asked += 1
        if self._error is not None:
            raise self._error
        return Secret("token")

    def state(self, open_id: str) -> str:
        return self._state


def _never_store_failure(exc: StoreError) -> ErrorInfo:
    raise AssertionError(f"the store was not asked to fail: {exc}")


DEAD = NeedsLoginError("user-1", "the refresh token was revoked")


@pytest.mark.parametrize(
    ("state", "dry_run", "error", "asked", "blocked", "creator_skipped"),
    [
        ("fresh", False, None, 1, None, False),
        ("stale", False, None, 1, None, False),  # a real run refreshes it here
        ("expired", False, None, 1, None, False),
        ("needs_login", False, DEAD, 1, "needs_login", False),
        ("fresh", True, None, 0, None, False),
        ("stale", True, None, 0, None, False),  # still works for minutes: used as it is
        ("expired", True, None, 0, None, True),  # a refresh would write: creator_info skipped
        ("needs_login", True, DEAD, 1, "needs_login", False),
    ],
)
def test_the_token_gate_by_token_state(
    state: str,
    dry_run: bool,
    error: Exception | None,
    asked: int,
    blocked: str | None,
    creator_skipped: bool,
) -> None:
    """Token state (and dry run) → whether the token is fetched (refreshed), and what holds the
    user: a dead token fails every entry of the user with the ``auth login`` hint."""
    tokens = FakeTokens(state, error)
    user = UserState()
    guard(
        user,
        "user",
        lambda: check_token(tokens, "user-1", user, dry_run=dry_run),
        _never_store_failure,
    )
    assert tokens.asked == asked
    assert (user.blocked.code if user.blocked else None) == blocked
    assert user.creator_skipped is creator_skipped
    assert (user.note is not None) is creator_skipped
    if blocked is not None:
        assert user.blocked_status == "failed"
        assert user.blocked is not None
        assert user.blocked.hint is not None
        assert "auth login" in user.blocked.hint


def _auth_error_from(cause: Exception) -> AuthError:
    try:
        raise AuthError("user-1: the token could not be refreshed") from cause
    except AuthError as exc:
        return exc


def _api(**flags: bool) -> ApiError:
    return ApiError("spam_risk_too_many_posts", "too many posts", http_status=200, **flags)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (DEAD, "failed", "needs_login"),
        (_auth_error_from(ConnectError("connection refused")), "deferred", "unavailable"),
        (_auth_error_from(OAuthError("server_error", "down")), "deferred", "unavailable"),
        (_auth_error_from(OAuthError("invalid_client", "bad key")), "failed", "auth_error"),
        (_api(defer=True), "deferred", "spam_risk_too_many_posts"),
        (_api(retryable=True), "deferred", "spam_risk_too_many_posts"),
        (_api(), "failed", "spam_risk_too_many_posts"),
        (ConnectError("connection refused"), "deferred", "unavailable"),
        (IllegalTransitionError("a bug"), "failed", "IllegalTransitionError"),
    ],
)
@pytest.mark.parametrize("scope", ["user", "posting"])
def test_a_failed_gate_holds_the_users_entries_with_a_status_and_a_fix(
    error: Exception, status: str, code: str, scope: Scope
) -> None:
    """Gate error → (status, code) held over the user's entries ("user" scope) or only over
    their new posts ("posting" scope); never raised."""
    user = UserState()

    def failing() -> None:
        raise error

    guard(user, scope, failing, _never_store_failure)
    held, held_status = (
        (user.blocked, user.blocked_status)
        if scope == "user"
        else (user.posting_blocked, user.posting_status)
    )
    other = user.posting_blocked if scope == "user" else user.blocked
    assert held is not None
    assert (held_status, held.code) == (status, code)
    assert held.message == str(error)
    assert other is None


def test_a_gate_that_passes_holds_nothing() -> None:
    """A usable token: the user's entries go on."""
    user = UserState()
    guard(user, "user", lambda: None, _never_store_failure)
    assert user.blocked is None
    assert user.posting_blocked is None


def test_a_store_that_cannot_be_written_during_a_gate_is_reported_to_the_run() -> None:
    """A refresh whose rotated token cannot be stored: the run is told (it stops starting work)
    and the user's entries fail with the store's error."""
    told: list[StoreError] = []
    stored = ErrorInfo("store_error", "the state database cannot be written", retryable=True)

    def store_failed(exc: StoreError) -> ErrorInfo:
        told.append(exc)
        return stored

    def failing() -> None:
        raise StoreError("disk full")

    user = UserState()
    guard(user, "user", failing, store_failed)
    assert [str(exc) for exc in told] == ["disk full"]
    assert (user.blocked, user.blocked_status) == (stored, "failed")


@pytest.mark.parametrize(
    "error",
    [PlainHttpError("http://api.example.com is not loopback"), RunInterrupted()],
)
def test_an_unsafe_connection_or_an_interruption_passes_through_the_gate(
    error: Exception,
) -> None:
    """Those stop the run, not the user: the gate does not swallow them."""

    def failing() -> None:
        raise error

    user = UserState()
    with pytest.raises(type(error)):
        guard(user, "user", failing, _never_store_failure)
    assert user.blocked is None


@pytest.mark.parametrize(
    ("creator_asked", "verdict"),
    [(False, None), (True, "creator_info_mismatch")],
)
def test_the_creator_gate_applies_creator_info_only_once_asked(
    creator_asked: bool, verdict: str | None
) -> None:
    """No creator_info (a dry run with an expired token): no verdict; asked: its rules apply."""
    creator = open_creator(stitch_disabled=True) if creator_asked else None
    error = creator_verdict(video_entry(), creator)
    assert (error.code if error else None) == verdict
