"""The web application's records: invites, API keys, OAuth connect states, the session key.

Small classes over :class:`~orchestrator.store.db.StoreDatabase`, so ``serve`` and the command
line (``auth invite``, ``api-key``) share one implementation. They work on SQLite and PostgreSQL
alike (``?`` placeholders, ``ON CONFLICT``). Posts made over HTTP are ``web_posts.py``'s, how a
secret is made and kept ``web_secrets.py``'s; both are named here too, so importers need one
module.

This module must not print, log a secret, or read the environment.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.clock import Clock
from orchestrator.errors import UsageError
from orchestrator.secret import Secret
from orchestrator.store.crypto import TokenCipher
from orchestrator.store.db import StoreDatabase
from orchestrator.store.web_posts import IdempotencyConflict, PostState, WebPost, WebPostStore
from orchestrator.store.web_secrets import SECRET_BYTES, digests_match, new_secret, secret_digest

__all__ = [
    "API_KEY_PREFIX",
    "SECRET_BYTES",
    "SESSION_KEY_NAME",
    "ApiKey",
    "ApiKeyStore",
    "AttemptFor",
    "ConnectState",
    "ConnectStateStore",
    "IdempotencyConflict",
    "Invite",
    "InviteState",
    "InviteStore",
    "NewApiKey",
    "NewInvite",
    "PostState",
    "WebPost",
    "WebPostStore",
    "digests_match",
    "new_secret",
    "rotate_session_key",
    "secret_digest",
    "session_signing_key",
]

API_KEY_PREFIX = "tko_"
"""API keys start with this, so a leaked one is recognisable (secret scanners, logs)."""
DEFAULT_INVITE_LIFETIME = 7 * 86400.0


def _scopes_text(scopes: Iterable[str]) -> str:
    return ",".join(sorted(set(scopes)))


def _scopes_of(text: str) -> frozenset[str]:
    return frozenset(s for s in text.split(",") if s)


# -- invites -------------------------------------------------------------------------------------


class InviteState(enum.StrEnum):
    """Where an invite stands."""

    OPEN = "open"
    USED = "used"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class Invite:
    """An invitation for one creator to connect their TikTok account (without its token)."""

    id: str
    label: str
    scopes: frozenset[str]
    created_at: float
    expires_at: float
    used_at: float | None
    revoked_at: float | None
    open_id: str | None

    def state(self, now: float) -> InviteState:
        if self.revoked_at is not None:
            return InviteState.REVOKED
        if self.used_at is not None:
            return InviteState.USED
        if now >= self.expires_at:
            return InviteState.EXPIRED
        return InviteState.OPEN


@dataclass(frozen=True)
class NewInvite:
    """An invite just made, with its one-time token (shown once, never stored)."""

    invite: Invite
    token: str


_SELECT_INVITES = (
    "SELECT id, token_hash, label, scopes, created_at, expires_at, used_at, revoked_at, open_id "
    "FROM invites"
)


def _invite_from_row(row: Any) -> Invite:
    return Invite(
        id=row["id"],
        label=row["label"],
        scopes=_scopes_of(str(row["scopes"])),
        created_at=float(row["created_at"]),
        expires_at=float(row["expires_at"]),
        used_at=None if row["used_at"] is None else float(row["used_at"]),
        revoked_at=None if row["revoked_at"] is None else float(row["revoked_at"]),
        open_id=row["open_id"],
    )


class InviteStore:
    """Invites: made by the operator, used once by a creator's browser."""

    def __init__(self, database: StoreDatabase, *, clock: Clock) -> None:
        self.database = database
        self._clock = clock

    def create(
        self, label: str, scopes: Iterable[str], *, lifetime: float = DEFAULT_INVITE_LIFETIME
    ) -> NewInvite:
        """Make an invite valid for ``lifetime`` seconds; the token is in the result only."""
        label = label.strip()
        if not label:
            raise UsageError("an invite needs a label", hint="e.g. --label 'Client X'")
        if lifetime <= 0:
            raise UsageError("an invite's lifetime must be positive", hint="e.g. --expires 7d")
        token = new_secret()
        now = self._clock.time()
        invite = Invite(
            id=secrets.token_hex(6),
            label=label,
            scopes=frozenset(scopes),
            created_at=now,
            expires_at=now + lifetime,
            used_at=None,
            revoked_at=None,
            open_id=None,
        )
        with self.database.transaction() as connection:
            connection.execute(
                "INSERT INTO invites (id, token_hash, label, scopes, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    invite.id,
                    secret_digest(token),
                    invite.label,
                    _scopes_text(invite.scopes),
                    invite.created_at,
                    invite.expires_at,
                ),
            )
        return NewInvite(invite=invite, token=token)

    def list(self) -> list[Invite]:
        """Every invite, newest first."""
        rows = self.database.fetch_all(_SELECT_INVITES + " ORDER BY created_at DESC, id")
        return [_invite_from_row(row) for row in rows]

    def get(self, invite_id: str) -> Invite | None:
        row = self.database.fetch_one(_SELECT_INVITES + " WHERE id = ?", (invite_id,))
        return None if row is None else _invite_from_row(row)

    def find_by_token(self, token: str) -> Invite | None:
        """The invite a presented token opens (whatever its state), or ``None``."""
        digest = secret_digest(token)
        row = self.database.fetch_one(_SELECT_INVITES + " WHERE token_hash = ?", (digest,))
        if row is None or not digests_match(str(row["token_hash"]), digest):
            return None
        return _invite_from_row(row)

    def revoke(self, invite_id: str) -> bool:
        """Revoke an invite that is not used yet; whether one was revoked."""
        with self.database.transaction() as connection:
            cursor = connection.execute(
                "UPDATE invites SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL "
                "AND used_at IS NULL",
                (self._clock.time(), invite_id),
            )
            return bool(cursor.rowcount)

    def mark_used(self, invite_id: str, open_id: str) -> bool:
        """Use an open invite for ``open_id``, once: False if it was used, revoked or expired
        meanwhile (two callbacks racing: one wins)."""
        now = self._clock.time()
        with self.database.transaction() as connection:
            cursor = connection.execute(
                "UPDATE invites SET used_at = ?, open_id = ? WHERE id = ? AND used_at IS NULL "
                "AND revoked_at IS NULL AND expires_at > ?",
                (now, open_id, invite_id, now),
            )
            return bool(cursor.rowcount)


# -- API keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    """An API key's record (never its value)."""

    id: str
    label: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class NewApiKey:
    """A key just made, with its value (shown once, never stored)."""

    key: ApiKey
    value: str


_SELECT_KEYS = "SELECT id, key_hash, label, created_at, last_used_at, revoked_at FROM api_keys"


def _key_from_row(row: Any) -> ApiKey:
    return ApiKey(
        id=row["id"],
        label=row["label"],
        created_at=float(row["created_at"]),
        last_used_at=None if row["last_used_at"] is None else float(row["last_used_at"]),
        revoked_at=None if row["revoked_at"] is None else float(row["revoked_at"]),
    )


class ApiKeyStore:
    """Bearer keys for ``/api/v1``."""

    def __init__(self, database: StoreDatabase, *, clock: Clock) -> None:
        self.database = database
        self._clock = clock

    def create(self, label: str) -> NewApiKey:
        label = label.strip()
        if not label:
            raise UsageError("an API key needs a label", hint="e.g. --label n8n")
        value = API_KEY_PREFIX + new_secret()
        key = ApiKey(
            id=secrets.token_hex(6),
            label=label,
            created_at=self._clock.time(),
            last_used_at=None,
            revoked_at=None,
        )
        with self.database.transaction() as connection:
            connection.execute(
                "INSERT INTO api_keys (id, key_hash, label, created_at) VALUES (?, ?, ?, ?)",
                (key.id, secret_digest(value), key.label, key.created_at),
            )
        return NewApiKey(key=key, value=value)

    def list(self) -> list[ApiKey]:
        rows = self.database.fetch_all(_SELECT_KEYS + " ORDER BY created_at DESC, id")
        return [_key_from_row(row) for row in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; whether an active one was revoked."""
        with self.database.transaction() as connection:
            cursor = connection.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (self._clock.time(), key_id),
            )
            return bool(cursor.rowcount)

    def authenticate(self, value: str) -> ApiKey | None:
        """The active key ``value`` is, or ``None`` (unknown, revoked, or not a key at all)."""
        if not value.startswith(API_KEY_PREFIX):
            return None
        digest = secret_digest(value)
        row = self.database.fetch_one(_SELECT_KEYS + " WHERE key_hash = ?", (digest,))
        if row is None or not digests_match(str(row["key_hash"]), digest):
            return None
        key = _key_from_row(row)
        if not key.active:
            return None
        # Losing this stamp to a power cut costs nothing: no wait for the disk.
        with self.database.transaction(durable=False) as connection:
            connection.execute(
                "UPDATE api_keys SET last_used_at = ? WHERE id = ?", (self._clock.time(), key.id)
            )
        return key


# -- OAuth connect states ------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptFor:
    """What an authorize request is for: connecting an account through an invite, or a creator
    signing in to review (from a review link, when known: never taken from the browser)."""

    invite_id: str | None = None
    review_link_id: str | None = None
    review: bool = False

    @classmethod
    def invite(cls, invite_id: str) -> AttemptFor:
        return cls(invite_id=invite_id)

    @classmethod
    def review_sign_in(cls, link_id: str | None) -> AttemptFor:
        return cls(review_link_id=link_id, review=True)


@dataclass(frozen=True)
class ConnectState:
    """One authorize request in flight: what it is for, the sealed PKCE verifier, and the hash
    of the browser cookie it is bound to."""

    purpose: AttemptFor
    sealed_verifier: bytes
    browser_hash: str
    created_at: float


class ConnectStateStore:
    """OAuth ``state`` values, each usable by one callback from the browser that asked."""

    def __init__(self, database: StoreDatabase, *, clock: Clock) -> None:
        self.database = database
        self._clock = clock

    def add(self, state: str, *, purpose: AttemptFor, sealed_verifier: bytes, browser: str) -> None:
        with self.database.transaction() as connection:
            connection.execute(
                "INSERT INTO connect_states (state_hash, invite_id, purpose, review_link_id, "
                "sealed_verifier, browser_hash, created_at, used_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    secret_digest(state),
                    purpose.invite_id or "",
                    "review" if purpose.review else "connect",
                    purpose.review_link_id,
                    sealed_verifier,
                    secret_digest(browser),
                    self._clock.time(),
                ),
            )

    def consume(self, state: str, *, browser: str, max_age: float) -> ConnectState | None:
        """The state's record if it is unused, younger than ``max_age`` seconds and bound to
        ``browser``; it is marked used either way, so a replayed callback finds nothing."""
        now = self._clock.time()
        digest = secret_digest(state)
        with self.database.transaction() as connection:
            row = connection.execute(
                "SELECT state_hash, invite_id, purpose, review_link_id, sealed_verifier, "
                "browser_hash, created_at, used_at FROM connect_states WHERE state_hash = ?",
                (digest,),
            ).fetchone()
            if row is None or row["used_at"] is not None:
                return None
            connection.execute(
                "UPDATE connect_states SET used_at = ? WHERE state_hash = ?", (now, digest)
            )
        if not digests_match(str(row["browser_hash"]), secret_digest(browser)):
            return None
        if now - float(row["created_at"]) > max_age:
            return None
        purpose = (
            AttemptFor.review_sign_in(row["review_link_id"])
            if row["purpose"] == "review"
            else AttemptFor.invite(row["invite_id"])
        )
        return ConnectState(
            purpose=purpose,
            sealed_verifier=bytes(row["sealed_verifier"]),
            browser_hash=row["browser_hash"],
            created_at=float(row["created_at"]),
        )


# -- the session signing key ---------------------------------------------------------------------

SESSION_KEY_NAME = "web_session_key"
"""The ``store_meta`` row holding the key that signs ``serve``'s session cookies (sealed with
the token cipher, so a copy of the database alone cannot forge a session). Rotated by
``tiktok-orchestrator store rotate-session-key`` (:func:`rotate_session_key`); instances read
it when they start."""


def session_signing_key(database: StoreDatabase, cipher: TokenCipher) -> Secret:
    """The key every ``serve`` instance on this store signs session cookies with: made once, at
    random, by the first instance (two starting at once agree on the one written first)."""
    row = database.fetch_one("SELECT value FROM store_meta WHERE name = ?", (SESSION_KEY_NAME,))
    if row is None:
        with database.transaction() as connection:
            connection.execute(
                "INSERT INTO store_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (SESSION_KEY_NAME, _sealed_session_key(cipher)),
            )
            row = connection.execute(
                "SELECT value FROM store_meta WHERE name = ?", (SESSION_KEY_NAME,)
            ).fetchone()
    return cipher.open(bytes(row[0]), open_id="", purpose="web_session_key")


def rotate_session_key(database: StoreDatabase, cipher: TokenCipher) -> None:
    """Replace the session key with a new random one: every session signed with the old key
    ends once the instances restart (each reads the key when it starts)."""
    with database.transaction() as connection:
        connection.execute(
            "INSERT INTO store_meta (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (SESSION_KEY_NAME, _sealed_session_key(cipher)),
        )


def _sealed_session_key(cipher: TokenCipher) -> bytes:
    key = Secret(secrets.token_urlsafe(SECRET_BYTES))
    return cipher.seal(key, open_id="", purpose="web_session_key")
