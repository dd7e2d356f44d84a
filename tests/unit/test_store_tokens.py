"""The token store and provider: states, rotation, needs-login, retries, serialised refresh."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import responses

from orchestrator.clock import ManualClock
from orchestrator.config import Settings
from orchestrator.errors import (
    AuthError,
    ConnectError,
    NeedsLoginError,
    OAuthError,
    StoreCorruptError,
)
from orchestrator.retry import Retrier, RetryBudget
from orchestrator.secret import Secret
from orchestrator.store.tokens import (
    REFRESH_POLICY,
    StoredUser,
    TokenProvider,
    TokenState,
    TokenStore,
)
from orchestrator.tiktok.client import STATUS_PATH, TikTokClient
from orchestrator.tiktok.oauth import TokenGrant
from orchestrator.transport import HttpTransport

HOUR = 3600.0
DAY = 86400.0


class FakeTokenEndpoint:
    """Rotates refresh tokens like TikTok: each refresh spends the token it was given."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.valid: dict[str, str] = {}  # refresh token -> open_id
        self.calls: list[str] = []
        self.failures: list[BaseException] = []
        self.counter = 0
        self.lock = threading.Lock()
        self.answer_for: str | None = None

    def issue(self, open_id: str, *, access_ttl: float = 2 * HOUR) -> TokenGrant:
        with self.lock:
            self.counter += 1
            n = self.counter
            refresh = f"rft.{open_id}.{n}"
            self.valid[refresh] = open_id
        now = self.clock.time()
        return TokenGrant(
            open_id=open_id,
            access_token=Secret(f"act.{open_id}.{n}"),
            access_expires_at=now + access_ttl,
            refresh_token=Secret(refresh),
            refresh_expires_at=now + 180 * DAY,
            scopes=frozenset(),
        )

    def refresh(self, refresh_token: Secret) -> TokenGrant:
        with self.lock:
            self.calls.append(refresh_token.reveal())
            if self.failures:
                raise self.failures.pop(0)
            open_id = self.valid.pop(refresh_token.reveal(), None)
        if open_id is None:
            raise OAuthError("invalid_grant", "Refresh token is invalid or expired.")
        return self.issue(self.answer_for or open_id)


@pytest.fixture
def endpoint(clock: ManualClock) -> FakeTokenEndpoint:
    return FakeTokenEndpoint(clock)


@pytest.fixture
def provider(store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock) -> TokenProvider:
    return TokenProvider(store, endpoint, clock=clock)


def seed(
    store: TokenStore,
    endpoint: FakeTokenEndpoint,
    open_id: str = "u1",
    *,
    access_ttl: float = 2 * HOUR,
    scopes: frozenset[str] = frozenset({"user.info.basic", "video.publish"}),
) -> TokenGrant:
    issued = endpoint.issue(open_id, access_ttl=access_ttl)
    grant = TokenGrant(
        open_id=issued.open_id,
        access_token=issued.access_token,
        access_expires_at=issued.access_expires_at,
        refresh_token=issued.refresh_token,
        refresh_expires_at=issued.refresh_expires_at,
        scopes=scopes,
    )
    store.save_grant(grant, display_name="User One")
    return grant


def user_at(access_in: float, refresh_in: float, needs_login: str | None = None) -> StoredUser:
    now = 1_000_000.0
    return StoredUser(
        open_id="u",
        display_name=None,
        scopes=frozenset(),
        access_expires_at=now + access_in,
        refresh_expires_at=now + refresh_in,
        needs_login=needs_login,
        created_at=now,
        updated_at=now,
        generation=1,
    )


@pytest.mark.parametrize(
    ("access_in", "refresh_in", "needs_login", "expected"),
    [
        (HOUR, DAY, None, TokenState.FRESH),
        (301, DAY, None, TokenState.FRESH),
        (300, DAY, None, TokenState.STALE),
        (1, DAY, None, TokenState.STALE),
        (0, DAY, None, TokenState.EXPIRED),
        (-HOUR, DAY, None, TokenState.EXPIRED),
        (-HOUR, 0, None, TokenState.NEEDS_LOGIN),
        (HOUR, DAY, "rejected", TokenState.NEEDS_LOGIN),
    ],
)
def test_states_from_expiries_and_margin(
    access_in: float, refresh_in: float, needs_login: str | None, expected: TokenState
) -> None:
    """fresh / stale (within the 5 min margin) / expired / needs login, per SPEC §4."""
    assert user_at(access_in, refresh_in, needs_login).state(1_000_000.0) is expected


def test_margin_is_configurable() -> None:
    """A 1 h margin makes a token with 30 min left stale."""
    user = user_at(1800, DAY)
    assert user.state(1_000_000.0, margin=300) is TokenState.FRESH
    assert user.state(1_000_000.0, margin=HOUR) is TokenState.STALE


def test_saved_user_reads_back_without_secrets_in_repr(
    store: TokenStore, endpoint: FakeTokenEndpoint
) -> None:
    """A saved user lists with its scopes and name; reprs never show token values."""
    grant = seed(store, endpoint)
    [user] = store.list_users()
    assert user.open_id == "u1"
    assert user.display_name == "User One"
    assert user.scopes == {"user.info.basic", "video.publish"}
    credentials = store.credentials("u1")
    assert credentials is not None
    assert credentials.access_token == grant.access_token
    assert grant.access_token.reveal() not in repr(credentials)
    assert grant.refresh_token.reveal() not in repr(grant)


def test_tokens_are_not_in_the_database_file(
    store: TokenStore, endpoint: FakeTokenEndpoint, home: Path
) -> None:
    """Neither token appears in plaintext in any file of the home."""
    grant = seed(store, endpoint)
    for path in home.iterdir():
        data = path.read_bytes()
        assert grant.access_token.reveal().encode() not in data, path
        assert grant.refresh_token.reveal().encode() not in data, path


def test_missing_scopes(store: TokenStore, endpoint: FakeTokenEndpoint) -> None:
    """Granted scopes are stored and checked: a scope not granted is reported missing."""
    seed(store, endpoint, scopes=frozenset({"video.upload"}))
    user = store.get_user("u1")
    assert user is not None
    assert user.missing_scopes(["video.upload", "video.publish"]) == {"video.publish"}


def test_remove_forgets_the_user(store: TokenStore, endpoint: FakeTokenEndpoint) -> None:
    """remove() deletes the row; removing again reports False."""
    seed(store, endpoint)
    assert store.remove("u1")
    assert store.get_user("u1") is None
    assert not store.remove("u1")


def test_swapped_token_columns_are_detected(
    store: TokenStore, endpoint: FakeTokenEndpoint, home: Path
) -> None:
    """A row edited to swap its access and refresh values fails instead of being used."""
    seed(store, endpoint)
    raw = sqlite3.connect(home / "state.db")
    raw.execute("UPDATE users SET access_token = refresh_token, refresh_token = access_token")
    raw.commit()
    raw.close()
    with pytest.raises(StoreCorruptError):
        store.credentials("u1")
    assert [user.open_id for user in store.list_users()] == ["u1"]  # listing still works


@responses.activate
def test_client_given_the_provider_sends_the_stored_token_and_the_rotated_one_after_a_401(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """The API client, handed the provider as its token source, sends the stored access
    token; on a 401 access_token_invalid the provider refreshes once, the retry carries the
    new token and the rotation is in the store for the next run."""
    grant = seed(store, endpoint)
    api = "https://api.test"
    refused = {"data": {}, "error": {"code": "access_token_invalid", "message": "", "log_id": "l"}}
    answer = {"data": {"status": "PUBLISH_COMPLETE"}, "error": {"code": "ok", "message": ""}}
    responses.post(api + STATUS_PATH, json=refused, status=401)
    responses.post(api + STATUS_PATH, json=answer)
    transport = HttpTransport()
    try:
        client = TikTokClient(api, transport, provider, retry=Retrier(clock=clock), clock=clock)
        assert client.fetch_status("u1", "p-1").status == "PUBLISH_COMPLETE"
    finally:
        transport.close()
    sent = [call.request.headers["Authorization"] for call in responses.calls]
    assert sent[0] == f"Bearer {grant.access_token.reveal()}"
    assert endpoint.calls == [grant.refresh_token.reveal()]
    assert sent[1] == f"Bearer {provider.access_token('u1').reveal()}" != sent[0]


def test_fresh_token_is_returned_without_refresh(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint
) -> None:
    """A fresh access token is handed out as stored; TikTok is not called."""
    grant = seed(store, endpoint)
    assert provider.access_token("u1") == grant.access_token
    assert endpoint.calls == []


def test_stale_token_is_refreshed_and_rotation_stored(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """Within the margin the token is refreshed; the rotated refresh token is what is stored."""
    grant = seed(store, endpoint)
    clock.advance(2 * HOUR - 200)
    token = provider.access_token("u1")
    assert token != grant.access_token
    assert endpoint.calls == [grant.refresh_token.reveal()]
    stored = store.credentials("u1")
    assert stored is not None
    assert stored.access_token == token
    assert stored.refresh_token != grant.refresh_token
    assert stored.refresh_token.reveal() in endpoint.valid
    assert stored.user.access_expires_at == clock.time() + 2 * HOUR
    assert stored.user.scopes == {"user.info.basic", "video.publish"}  # kept: none in answer
    # A second refresh works only because the rotated token was kept.
    clock.advance(2 * HOUR)
    assert provider.access_token("u1") != token
    assert len(endpoint.calls) == 2


def test_expired_token_is_refreshed(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """An expired access token with a live refresh token is refreshed before use."""
    grant = seed(store, endpoint)
    clock.advance(3 * HOUR)
    assert provider.access_token("u1") != grant.access_token


def test_expired_refresh_token_needs_login_without_calling_tiktok(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """After the refresh token's expiry the user needs login; no refresh is attempted."""
    seed(store, endpoint)
    clock.advance(181 * DAY)
    with pytest.raises(NeedsLoginError) as caught:
        provider.access_token("u1")
    assert "refresh token expired" in str(caught.value)
    assert "auth login" in (caught.value.hint or "")
    assert endpoint.calls == []


def test_invalid_grant_marks_needs_login(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """A rejected refresh token marks the user 'needs login', persistently."""
    seed(store, endpoint)
    endpoint.valid.clear()
    clock.advance(3 * HOUR)
    with pytest.raises(NeedsLoginError, match="rejected the refresh token"):
        provider.access_token("u1")
    user = store.get_user("u1")
    assert user is not None
    assert user.state(clock.time()) is TokenState.NEEDS_LOGIN
    with pytest.raises(NeedsLoginError):
        provider.access_token("u1")
    assert len(endpoint.calls) == 1


def test_unknown_user_needs_login(provider: TokenProvider) -> None:
    """A user not in the store gets NeedsLoginError with the `auth login` hint."""
    with pytest.raises(NeedsLoginError, match="not in the token store") as caught:
        provider.access_token("nobody")
    assert "auth login" in (caught.value.hint or "")


def test_server_errors_during_refresh_are_retried_with_backoff(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """Two 5xx answers then success: three calls, two jittered waits (at most 1 s, then at most
    2 s), refreshed token."""
    grant = seed(store, endpoint)
    clock.advance(3 * HOUR)
    endpoint.failures = [
        OAuthError("server_error", "HTTP 503", http_status=503),
        ConnectError("POST /v2/oauth/token/: connection failed (connection reset)"),
    ]
    clock.slept.clear()
    assert provider.access_token("u1") != grant.access_token
    assert len(endpoint.calls) == 3
    assert len(clock.slept) == 2
    assert 0 <= clock.slept[0] <= 1.0
    assert 0 <= clock.slept[1] <= 2.0


def test_refresh_failing_every_attempt_fails_the_user_only(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """Three connection failures: AuthError for that user; the stored tokens are untouched."""
    grant = seed(store, endpoint)
    clock.advance(3 * HOUR)
    endpoint.failures = [ConnectError("down")] * 3
    with pytest.raises(AuthError, match="after 3 attempts"):
        provider.access_token("u1")
    stored = store.credentials("u1")
    assert stored is not None
    assert stored.refresh_token == grant.refresh_token
    assert stored.user.needs_login is None


def test_stale_token_is_used_when_refresh_is_down(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """A stale (not yet expired) token is still handed out if the token endpoint is down."""
    grant = seed(store, endpoint)
    clock.advance(2 * HOUR - 100)
    endpoint.failures = [ConnectError("down")] * 3
    assert provider.access_token("u1") == grant.access_token


def test_refusal_other_than_invalid_grant_is_not_retried(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """invalid_client is reported at once with its hint, and does not mark needs login."""
    seed(store, endpoint)
    clock.advance(3 * HOUR)
    endpoint.failures = [
        OAuthError("invalid_client", "Client key is invalid", hint="check TIKTOK_CLIENT_KEY")
    ]
    with pytest.raises(AuthError, match="invalid_client") as caught:
        provider.access_token("u1")
    assert caught.value.hint == "check TIKTOK_CLIENT_KEY"
    assert len(endpoint.calls) == 1
    user = store.get_user("u1")
    assert user is not None
    assert user.needs_login is None


def test_answer_for_another_user_is_not_stored(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """A token answer naming another open_id is refused; nothing is written."""
    seed(store, endpoint)
    clock.advance(3 * HOUR)
    endpoint.answer_for = "intruder"
    with pytest.raises(AuthError, match="another user"):
        provider.access_token("u1")
    assert store.get_user("intruder") is None


def test_rejection_refreshes_once(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint
) -> None:
    """A 401 on a fresh token refreshes once and returns the new token."""
    grant = seed(store, endpoint)
    new = provider.refresh_after_rejection("u1", grant.access_token)
    assert new != grant.access_token
    assert len(endpoint.calls) == 1


def test_rejection_of_an_already_replaced_token_does_not_refresh_again(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint
) -> None:
    """If another thread already refreshed, the rejected token's replacement is returned."""
    grant = seed(store, endpoint)
    first = provider.refresh_after_rejection("u1", grant.access_token)
    second = provider.refresh_after_rejection("u1", grant.access_token)
    assert second == first
    assert len(endpoint.calls) == 1


def test_forced_refresh_refreshes_a_fresh_token(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint
) -> None:
    """`auth refresh` refreshes even a fresh token, and bumps the generation."""
    seed(store, endpoint)
    before = store.get_user("u1")
    after = provider.refresh("u1")
    assert before is not None
    assert after.generation == before.generation + 1
    assert len(endpoint.calls) == 1


def test_threads_refreshing_one_user_send_one_refresh(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """Eight threads needing a stale user's token cause one refresh; all get the new token."""
    seed(store, endpoint)
    clock.advance(3 * HOUR)
    results: list[Secret] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        try:
            results.append(provider.access_token("u1"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(endpoint.calls) == 1
    assert len(set(results)) == 1


def test_two_stores_on_one_home_refresh_once(
    home: Path, store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """Two independent stores (as two processes would have) serialise through the database:
    the second waits while the first refreshes, then uses the first's tokens."""
    seed(store, endpoint)
    clock.advance(3 * HOUR)
    entered, release = threading.Event(), threading.Event()
    original = endpoint.refresh

    def slow_refresh(refresh_token: Secret) -> TokenGrant:
        entered.set()
        release.wait(5)
        return original(refresh_token)

    endpoint.refresh = slow_refresh  # type: ignore[method-assign]
    with TokenStore.open(Settings(home=home), clock=clock) as other:
        results: list[Secret] = []

        def use(provider: TokenProvider) -> None:
            results.append(provider.access_token("u1"))

        one = threading.Thread(target=use, args=(TokenProvider(store, endpoint, clock=clock),))
        two = threading.Thread(target=use, args=(TokenProvider(other, endpoint, clock=clock),))
        one.start()
        assert entered.wait(5)
        two.start()
        two.join(timeout=0.3)
        assert two.is_alive(), "the second store must wait for the first one's transaction"
        release.set()
        one.join()
        two.join()
    assert len(endpoint.calls) == 1
    assert len(set(results)) == 1


def test_refusals_are_not_retried(
    provider: TokenProvider, store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """A non-retryable OAuth error (invalid_grant) is final on the first attempt, no wait."""
    seed(store, endpoint)
    clock.advance(3 * HOUR)
    endpoint.failures = [OAuthError("invalid_grant", "no")]
    clock.slept.clear()
    with pytest.raises(NeedsLoginError):
        provider.access_token("u1")
    assert len(endpoint.calls) == 1
    assert clock.slept == []


def test_refresh_backoff_is_full_jitter_bounded_by_the_policy(
    store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """Each wait is the random draw times the policy's ceiling (1 s, then 2 s): jittered, never
    above the ceiling, slept on the injected clock."""
    draws = iter([0.5, 0.25])
    retrier = Retrier(REFRESH_POLICY, clock=clock, draw=lambda: next(draws))
    provider = TokenProvider(store, endpoint, clock=clock, retry=retrier)
    grant = seed(store, endpoint)
    clock.advance(3 * HOUR)
    endpoint.failures = [
        ConnectError("POST /v2/oauth/token/: connection failed (connection reset)"),
        OAuthError("server_error", "HTTP 503", http_status=503),
    ]
    clock.slept.clear()
    assert provider.access_token("u1") != grant.access_token
    assert clock.slept == [0.5, 0.5]
    assert [REFRESH_POLICY.ceiling(n) for n in (1, 2)] == [1.0, 2.0]


def test_refresh_retries_draw_from_the_runs_budget(
    store: TokenStore, endpoint: FakeTokenEndpoint, clock: ManualClock
) -> None:
    """With the run's budget spent down to one retry, a dead token endpoint gets two calls for
    the first user and one for the next: refreshes do not retry outside the run's budget."""
    budget = RetryBudget(max_retries=1, max_wait=600)
    provider = TokenProvider(
        store, endpoint, clock=clock, retry=Retrier(clock=clock, budget=budget)
    )
    seed(store, endpoint, "u1")
    seed(store, endpoint, "u2")
    clock.advance(3 * HOUR)
    down = ConnectError("POST /v2/oauth/token/: connection failed (connection refused)")
    endpoint.failures = [down] * 6
    endpoint.calls.clear()
    with pytest.raises(AuthError, match="refreshing the token failed"):
        provider.access_token("u1")
    assert len(endpoint.calls) == 2
    with pytest.raises(AuthError, match="refreshing the token failed"):
        provider.access_token("u2")
    assert len(endpoint.calls) == 3
    assert budget.retries == 1
    assert budget.exhausted
