"""The multi-user token store and the token provider every API call asks for a token.

:class:`TokenStore` keeps one row per TikTok user (``open_id``): granted scopes, the access and
refresh tokens (encrypted, see ``crypto.py``) with their expiries, and why the user must sign in
again if they must. :class:`TokenProvider` hands out access tokens and refreshes them.

Theory of operation for refresh (TikTok rotates refresh tokens: each refresh returns a new one
and the old one stops working, so two refreshers using the same token lock the user out):

1. Read the row without locking. A fresh token is returned at once (the common case).
2. Otherwise take this process's lock for the user (threads), then the database write lock
   (``BEGIN IMMEDIATE``: other processes), and read the row again. If someone else refreshed
   meanwhile, use their tokens: nobody sends a refresh token that may already be spent.
3. Send the refresh while holding both locks, and store the new access token *and* the rotated
   refresh token in that same transaction. ``invalid_grant`` marks the user "needs login" in
   it. The write lock is held across the HTTP call on purpose; the token endpoint's timeouts
   (``oauth.OAUTH_TIMEOUTS``) and three attempts (``REFRESH_POLICY``: ``retry.py``'s jittered
   backoff, drawn from the run's retry budget when there is a run) keep that well under the
   database's ``busy_timeout``, so waiting processes get their turn rather than an error.

This module must not print, log token values, or call TikTok for anything but a refresh.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from orchestrator.clock import Clock
from orchestrator.config import Settings
from orchestrator.errors import (
    AuthError,
    NeedsLoginError,
    OAuthError,
    StoreCorruptError,
    TransportError,
)
from orchestrator.humantime import utc_text
from orchestrator.retry import Retrier, RetryPolicy
from orchestrator.secret import Secret
from orchestrator.store.backend import is_shared, open_database
from orchestrator.store.crypto import TokenCipher, open_cipher
from orchestrator.store.db import DEFAULT_BUSY_TIMEOUT, StoreConnection, StoreDatabase
from orchestrator.tiktok.oauth_values import TokenGrant

log = logging.getLogger(__name__)

DEFAULT_REFRESH_MARGIN = 300.0
"""Seconds before expiry from which an access token counts as stale and is refreshed first."""
REFRESH_ATTEMPTS = 3
REFRESH_FIRST_BACKOFF = 1.0

T = TypeVar("T")


class TokenState(enum.StrEnum):
    """A user's token state (SPEC §4)."""

    FRESH = "fresh"
    """The access token is good for longer than the refresh margin."""
    STALE = "stale"
    """The access token expires within the margin: refresh before use."""
    EXPIRED = "expired"
    """The access token has expired; the refresh token still works."""
    NEEDS_LOGIN = "needs_login"
    """The refresh token expired or was rejected: the user must run ``auth login``."""


@dataclass(frozen=True)
class StoredUser:
    """What the store knows about a user, without the token values."""

    open_id: str
    display_name: str | None
    scopes: frozenset[str]
    access_expires_at: float
    refresh_expires_at: float
    needs_login: str | None
    created_at: float
    updated_at: float
    generation: int

    def state(self, now: float, margin: float = DEFAULT_REFRESH_MARGIN) -> TokenState:
        """This user's state at ``now`` with a refresh margin of ``margin`` seconds."""
        if self.needs_login is not None or now >= self.refresh_expires_at:
            return TokenState.NEEDS_LOGIN
        if now >= self.access_expires_at:
            return TokenState.EXPIRED
        if self.access_expires_at - now <= margin:
            return TokenState.STALE
        return TokenState.FRESH

    def login_reason(self, now: float) -> str | None:
        """Why the user must sign in again, or ``None`` if the refresh token still works."""
        if self.needs_login is not None:
            return self.needs_login
        if now >= self.refresh_expires_at:
            return f"the refresh token expired on {utc_text(self.refresh_expires_at)}"
        return None

    def missing_scopes(self, required: Iterable[str]) -> frozenset[str]:
        """The scopes in ``required`` that the user did not grant."""
        return frozenset(required) - self.scopes


@dataclass(frozen=True)
class StoredCredentials:
    """A user's record with the decrypted token values."""

    user: StoredUser
    access_token: Secret = field(repr=False)
    refresh_token: Secret = field(repr=False)


@dataclass(frozen=True)
class ImportedGrant:
    """Tokens read from a file for ``auth import``, with when they were obtained (the file's
    ``obtained_at``, else the file's modification time)."""

    grant: TokenGrant
    display_name: str | None
    obtained_at: float


@dataclass(frozen=True)
class SkippedGrant:
    """A user ``auth import`` left as it was, and why."""

    open_id: str
    reason: str


class TokenRefresher(Protocol):
    """What the provider needs of the OAuth client (``OAuthClient`` provides it)."""

    def refresh(self, refresh_token: Secret) -> TokenGrant: ...


# -- rows ----------------------------------------------------------------------------------------

_SELECT_USERS = (
    "SELECT open_id, display_name, scopes, access_token, access_expires_at, refresh_token, "
    "refresh_expires_at, needs_login, created_at, updated_at, generation FROM users"
)
_SELECT_USER = _SELECT_USERS + " WHERE open_id = ?"


def _scopes_text(scopes: Iterable[str]) -> str:
    return ",".join(sorted(scopes))


def _user_from_row(row: Any) -> StoredUser:
    return StoredUser(
        open_id=row["open_id"],
        display_name=row["display_name"],
        scopes=frozenset(s for s in str(row["scopes"]).split(",") if s),
        access_expires_at=float(row["access_expires_at"]),
        refresh_expires_at=float(row["refresh_expires_at"]),
        needs_login=row["needs_login"],
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        generation=int(row["generation"]),
    )


def _credentials_from_row(row: Any, cipher: TokenCipher) -> StoredCredentials:
    user = _user_from_row(row)
    return StoredCredentials(
        user=user,
        access_token=cipher.open(
            bytes(row["access_token"]), open_id=user.open_id, purpose="access"
        ),
        refresh_token=cipher.open(
            bytes(row["refresh_token"]), open_id=user.open_id, purpose="refresh"
        ),
    )


def _select(connection: StoreConnection, open_id: str, *, lock_suffix: str = "") -> Any:
    """The user's row or None; ``lock_suffix`` (``FOR UPDATE`` on PostgreSQL) holds it until
    the transaction ends, so refreshers on other machines queue behind this one."""
    return connection.execute(_SELECT_USER + lock_suffix, (open_id,)).fetchone()


def _write_grant(
    connection: StoreConnection,
    cipher: TokenCipher,
    grant: TokenGrant,
    *,
    display_name: str | None,
    now: float,
) -> None:
    """Insert or replace a user's tokens in the caller's transaction; clears "needs login".

    A grant without scopes (a refresh answer may omit them) keeps the stored ones; a missing
    display name keeps the stored one.
    """
    open_id = grant.open_id
    connection.execute(
        """
        INSERT INTO users (open_id, display_name, scopes, access_token, access_expires_at,
                           refresh_token, refresh_expires_at, needs_login, created_at,
                           updated_at, generation)
        VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, 1)
        ON CONFLICT (open_id) DO UPDATE SET
            display_name       = COALESCE(excluded.display_name, users.display_name),
            scopes             = CASE WHEN excluded.scopes = '' THEN users.scopes
                                      ELSE excluded.scopes END,
            access_token       = excluded.access_token,
            access_expires_at  = excluded.access_expires_at,
            refresh_token      = excluded.refresh_token,
            refresh_expires_at = excluded.refresh_expires_at,
            needs_login        = NULL,
            updated_at         = excluded.updated_at,
            generation         = users.generation + 1
        """,
        (
            open_id,
            display_name,
            _scopes_text(grant.scopes),
            cipher.seal(grant.access_token, open_id=open_id, purpose="access"),
            grant.access_expires_at,
            cipher.seal(grant.refresh_token, open_id=open_id, purpose="refresh"),
            grant.refresh_expires_at,
            now,
            now,
        ),
    )


def _mark_needs_login(
    connection: StoreConnection, open_id: str, reason: str, *, now: float
) -> None:
    connection.execute(
        "UPDATE users SET needs_login = ?, updated_at = ?, generation = generation + 1 "
        "WHERE open_id = ?",
        (reason, now, open_id),
    )


# -- the store -----------------------------------------------------------------------------------


class TokenStore:
    """The users and their encrypted tokens in the state database."""

    def __init__(self, database: StoreDatabase, cipher: TokenCipher, *, clock: Clock) -> None:
        self.database = database
        self.cipher = cipher
        self._clock = clock

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        clock: Clock,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        create: bool = True,
    ) -> TokenStore:
        """Open the store (``settings.home``'s file, or the shared PostgreSQL one): database
        checked and migrated, key verified. Without ``create`` (read-only commands) a home
        with no state database raises ``StoreMissingError`` and nothing is created."""
        database = open_database(settings, busy_timeout=busy_timeout, create=create)
        try:
            cipher = open_cipher(
                database,
                env_key=settings.token_key_bytes(),
                home=settings.home,
                shared=is_shared(settings),
            )
        except BaseException:
            database.close()
            raise
        log.debug("token key from %s", cipher.source.description)
        return cls(database, cipher, clock=clock)

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> TokenStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def list_users(self) -> list[StoredUser]:
        """Every stored user, by open_id (no token value is decrypted)."""
        rows = self.database.fetch_all(_SELECT_USERS + " ORDER BY open_id")
        return [_user_from_row(row) for row in rows]

    def get_user(self, open_id: str) -> StoredUser | None:
        row = self.database.fetch_one(_SELECT_USER, (open_id,))
        return None if row is None else _user_from_row(row)

    def credentials(self, open_id: str) -> StoredCredentials | None:
        """The user's record and decrypted tokens, or ``None`` if the user is not stored."""
        row = self.database.fetch_one(_SELECT_USER, (open_id,))
        return None if row is None else _credentials_from_row(row, self.cipher)

    def save_grant(self, grant: TokenGrant, *, display_name: str | None = None) -> StoredUser:
        """Store a user's new tokens (after a login), replacing any older ones."""
        return self.save_grants([(grant, display_name)])[0]

    def save_grants(self, grants: Sequence[tuple[TokenGrant, str | None]]) -> list[StoredUser]:
        """Store several users' tokens in one transaction: all of them or none."""
        now = self._clock.time()
        with self.database.transaction() as connection:
            for grant, display_name in grants:
                _write_grant(connection, self.cipher, grant, display_name=display_name, now=now)
            rows = [_select(connection, grant.open_id) for grant, _ in grants]
        return [_user_from_row(row) for row in rows if row is not None]

    def import_grants(
        self, grants: Sequence[ImportedGrant], *, force: bool = False
    ) -> tuple[list[StoredUser], list[SkippedGrant]]:
        """Store imported tokens in one transaction, except (unless ``force``) where the store
        holds a newer grant for the user: TikTok rotates refresh tokens, so replacing a newer
        one with an older one loses the only refresh token that still works."""
        now = self._clock.time()
        skipped: list[SkippedGrant] = []
        saved: list[str] = []
        with self.database.transaction() as connection:
            for item in grants:
                open_id = item.grant.open_id
                row = _select(connection, open_id, lock_suffix=self.database.lock_suffix)
                reason = None if row is None or force else self._newer_in_store(row, item)
                if reason is not None:
                    skipped.append(SkippedGrant(open_id, reason))
                    continue
                _write_grant(
                    connection, self.cipher, item.grant, display_name=item.display_name, now=now
                )
                saved.append(open_id)
            rows = [_select(connection, open_id) for open_id in saved]
        return [_user_from_row(row) for row in rows if row is not None], skipped

    def _newer_in_store(self, row: Any, item: ImportedGrant) -> str | None:
        """Why the stored grant is newer than ``item`` (so importing it would lose the live
        refresh token), or None."""
        stored = _user_from_row(row)
        if stored.login_reason(self._clock.time()) is not None:
            return None  # nothing live to lose
        try:
            current = _credentials_from_row(row, self.cipher)
        except StoreCorruptError:
            return None  # a damaged row: importing is the repair
        if current.refresh_token == item.grant.refresh_token:
            return None  # the same grant again
        if item.obtained_at < stored.updated_at:
            return (
                f"the store's tokens were written {utc_text(stored.updated_at)}, after the file's "
                f"were obtained ({utc_text(item.obtained_at)}); a refresh has rotated them since"
            )
        if (
            item.grant.access_expires_at < stored.access_expires_at
            and item.grant.refresh_expires_at <= stored.refresh_expires_at
        ):
            return (
                f"the file's tokens expire before the stored ones (access token "
                f"{utc_text(item.grant.access_expires_at)} < {utc_text(stored.access_expires_at)})"
            )
        return None

    def mark_needs_login(self, open_id: str, reason: str) -> None:
        """Record that ``open_id`` must sign in again, and why."""
        with self.database.transaction() as connection:
            _mark_needs_login(connection, open_id, reason, now=self._clock.time())

    def remove(self, open_id: str) -> bool:
        """Forget a user's tokens; ``False`` if the user was not stored."""
        with self.database.transaction() as connection:
            cursor = connection.execute("DELETE FROM users WHERE open_id = ?", (open_id,))
            return int(cursor.rowcount) > 0


# -- the provider --------------------------------------------------------------------------------


def is_transient_refresh_error(exc: BaseException) -> bool:
    """Connection errors and server trouble (5xx, ``server_error``) at the token endpoint.

    Retrying after a lost answer is no worse than not retrying: if TikTok did rotate the token,
    the retry gets ``invalid_grant`` (the user must sign in again either way).
    """
    if isinstance(exc, TransportError):
        return True
    return isinstance(exc, OAuthError) and exc.retryable


REFRESH_POLICY = RetryPolicy(
    max_attempts=REFRESH_ATTEMPTS,
    base=REFRESH_FIRST_BACKOFF,
    cap=4 * REFRESH_FIRST_BACKOFF,
    retryable=is_transient_refresh_error,
)
"""How a refresh is retried: ``retry.py``'s full-jitter backoff, kept short because the
database write lock is held across the call (at most 1 + 2 s of waiting in three attempts)."""


@dataclass(frozen=True)
class _RefreshResult:
    credentials: StoredCredentials | None = None
    needs_login: NeedsLoginError | None = None


class TokenProvider:
    """Access tokens per user, refreshed when stale; implements ``AccessTokenSource``.

    Safe to share between threads of a run, and between processes using the same home.
    """

    def __init__(
        self,
        store: TokenStore,
        refresher: TokenRefresher,
        *,
        clock: Clock,
        margin: float = DEFAULT_REFRESH_MARGIN,
        retry: Retrier | None = None,
        policy: RetryPolicy = REFRESH_POLICY,
    ) -> None:
        """``retry`` is the run's :class:`Retrier` (its clock and retry budget) when there is a
        run; without one, refreshes get a retrier of their own on ``clock``. ``policy`` says
        how one refresh is retried (:data:`REFRESH_POLICY`)."""
        if margin < 0:
            raise ValueError("margin must be >= 0")
        self._store = store
        self._refresher = refresher
        self._clock = clock
        self.margin = margin
        self._retry = retry if retry is not None else Retrier(policy, clock=clock)
        self._policy = policy
        self._guard = threading.Lock()
        self._user_locks: dict[str, threading.Lock] = {}

    def _user_lock(self, open_id: str) -> threading.Lock:
        with self._guard:
            return self._user_locks.setdefault(open_id, threading.Lock())

    def _stored(self, open_id: str) -> StoredCredentials:
        credentials = self._store.credentials(open_id)
        if credentials is None:
            raise NeedsLoginError(open_id, "not in the token store")
        return credentials

    def state(self, open_id: str) -> TokenState:
        """The user's token state now (``NEEDS_LOGIN`` for an unknown user)."""
        user = self._store.get_user(open_id)
        if user is None:
            return TokenState.NEEDS_LOGIN
        return user.state(self._clock.time(), self.margin)

    def access_token(self, open_id: str) -> Secret:
        """A usable access token for ``open_id``, refreshed first if stale or expired."""
        credentials = self._stored(open_id)
        now = self._clock.time()
        state = credentials.user.state(now, self.margin)
        if state is TokenState.FRESH:
            return credentials.access_token
        if state is TokenState.NEEDS_LOGIN:
            raise NeedsLoginError(open_id, credentials.user.login_reason(now) or "sign in again")
        try:
            refreshed = self._refresh_serialised(
                open_id,
                still_needed=lambda current: (
                    current.user.state(self._clock.time(), self.margin) is not TokenState.FRESH
                ),
            )
        except AuthError as exc:
            if isinstance(exc, NeedsLoginError) or state is not TokenState.STALE:
                raise
            # A stale token still works for a few minutes: use it rather than fail the user
            # over a token endpoint that is down right now.
            if self._clock.time() < credentials.user.access_expires_at:
                log.warning("user %s: %s; using the current token until it expires", open_id, exc)
                return credentials.access_token
            raise
        return refreshed.access_token

    def refresh_after_rejection(self, open_id: str, rejected: Secret) -> Secret:
        """TikTok refused ``rejected`` (401): refresh once, unless another thread or process
        already replaced it, in which case its newer token is returned."""
        refreshed = self._refresh_serialised(
            open_id, still_needed=lambda current: current.access_token == rejected
        )
        return refreshed.access_token

    def refresh(self, open_id: str) -> StoredUser:
        """Refresh now whatever the state (``auth refresh``); if another process refreshed
        between our look and our lock, its result is kept instead of refreshing twice."""
        user = self._store.get_user(open_id)
        if user is None:
            raise NeedsLoginError(open_id, "not in the token store")
        seen = user.generation
        refreshed = self._refresh_serialised(
            open_id, still_needed=lambda current: current.user.generation == seen
        )
        return refreshed.user

    def _refresh_serialised(
        self, open_id: str, *, still_needed: Callable[[StoredCredentials], bool]
    ) -> StoredCredentials:
        with self._user_lock(open_id):
            result = self._refresh_in_transaction(open_id, still_needed)
        if result.needs_login is not None:
            raise result.needs_login
        assert result.credentials is not None
        return result.credentials

    def _refresh_in_transaction(
        self, open_id: str, still_needed: Callable[[StoredCredentials], bool]
    ) -> _RefreshResult:
        store = self._store
        # Alone: TikTok is asked inside this transaction, and no other write's commit may
        # wait for that answer.
        with store.database.transaction(alone=True) as connection:
            row = _select(connection, open_id, lock_suffix=store.database.lock_suffix)
            if row is None:
                raise NeedsLoginError(open_id, "not in the token store")
            current = _credentials_from_row(row, store.cipher)
            now = self._clock.time()
            reason = current.user.login_reason(now)
            if reason is not None:
                raise NeedsLoginError(open_id, reason)
            if not still_needed(current):
                log.debug("user %s: tokens were refreshed by someone else; using those", open_id)
                return _RefreshResult(credentials=current)
            try:
                grant = self._retry.call(
                    lambda: self._refresher.refresh(current.refresh_token), policy=self._policy
                )
            except OAuthError as exc:
                if exc.error != "invalid_grant":
                    raise AuthError(
                        f"user {open_id}: refreshing the token failed: {exc}", hint=exc.hint
                    ) from exc
                reason = f"TikTok rejected the refresh token ({exc.description})"
                # Committed with this transaction, so every later caller sees it at once.
                _mark_needs_login(connection, open_id, reason, now=self._clock.time())
                log.warning("user %s: %s; needs login", open_id, reason)
                return _RefreshResult(needs_login=NeedsLoginError(open_id, reason))
            except TransportError as exc:
                raise AuthError(
                    f"user {open_id}: refreshing the token failed after "
                    f"{self._policy.max_attempts} attempts: {exc}",
                    hint="TikTok's token endpoint did not answer; try again later",
                ) from exc
            if grant.open_id != open_id:
                raise AuthError(
                    f"user {open_id}: the token endpoint answered for another user "
                    f"({grant.open_id}); nothing was stored"
                )
            # The new access token and the rotated refresh token land in one transaction.
            _write_grant(connection, store.cipher, grant, display_name=None, now=self._clock.time())
            row = _select(connection, open_id)
            assert row is not None
            refreshed = _credentials_from_row(row, store.cipher)
        log.info(
            "user %s: token refreshed; access valid until %s",
            open_id,
            utc_text(refreshed.user.access_expires_at),
        )
        return _RefreshResult(credentials=refreshed)
