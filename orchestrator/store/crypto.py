"""Encryption of the values the store keeps secret: tokens and upload URLs.

AES-256-GCM (``cryptography``'s AESGCM) with a fresh random 12-byte nonce per value. The
associated data binds each value to its user and its column (``purpose``), so a value copied to
another user's row or from the refresh column to the access column fails to open instead of
being used. A stored value is ``version byte · nonce · ciphertext+tag``.

The key comes from ``ORCHESTRATOR_TOKEN_KEY`` or from ``token.key`` in the home, made on first
use. A *key check* (a known value sealed with the key) is kept in the database, so a wrong key is
reported when the store is opened, naming where the key came from, and never leads to a re-init
that would lose the tokens. This module must not log or return key material or plaintext in any
message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator.config import ENV_TOKEN_KEY
from orchestrator.errors import StoreCorruptError, StoreError, StoreKeyError
from orchestrator.secret import Secret
from orchestrator.store.db import Database, StoreDatabase, require_private

KEY_FILENAME = "token.key"
KEY_BYTES = 32
NONCE_BYTES = 12
_FORMAT_V1 = b"\x01"
_KEY_CHECK_NAME = "key_check"
_KEY_CHECK_PLAINTEXT = "tiktok-orchestrator token key check v1"

Purpose = Literal[
    "access", "refresh", "upload_url", "key_check", "connect_verifier", "web_session_key"
]
"""Which column a sealed value belongs to; part of the associated data."""


@dataclass(frozen=True)
class KeySource:
    """Where the token key came from, in words fit for a message (never the key itself)."""

    description: str
    from_environment: bool
    created: bool = False


class TokenCipher:
    """Seals and opens secret values with one AES-256-GCM key."""

    __slots__ = ("_aead", "source")

    def __init__(self, key: bytes, source: KeySource) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the token key must be {KEY_BYTES} bytes")
        self._aead = AESGCM(key)
        self.source = source

    def __repr__(self) -> str:
        return f"TokenCipher(<key hidden>, from {self.source.description})"

    def seal(self, value: Secret, *, open_id: str, purpose: Purpose) -> bytes:
        """Encrypt ``value`` for ``open_id``'s ``purpose`` column."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(
            nonce, value.reveal().encode("utf-8"), _associated_data(open_id, purpose)
        )
        return _FORMAT_V1 + nonce + sealed

    def open(self, blob: bytes, *, open_id: str, purpose: Purpose) -> Secret:
        """Decrypt a value sealed by :meth:`seal` for the same ``open_id`` and ``purpose``.

        Raises ``StoreCorruptError`` when the value was altered, belongs to another user or
        column, or was sealed with another key.
        """
        blob = bytes(blob)
        if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != _FORMAT_V1:
            raise _damaged_value(open_id, purpose)
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            plain = self._aead.decrypt(nonce, sealed, _associated_data(open_id, purpose))
        except InvalidTag:
            raise _damaged_value(open_id, purpose) from None
        return Secret(plain.decode("utf-8"))

    def key_check(self) -> bytes:
        """A value that only this key opens, kept in the database to recognise the key."""
        return self.seal(Secret(_KEY_CHECK_PLAINTEXT), open_id="", purpose="key_check")

    def opens_key_check(self, blob: bytes) -> bool:
        """Whether ``blob`` was made by :meth:`key_check` with this key."""
        try:
            return self.open(blob, open_id="", purpose="key_check").reveal() == (
                _KEY_CHECK_PLAINTEXT
            )
        except StoreCorruptError:
            return False


def _associated_data(open_id: str, purpose: Purpose) -> bytes:
    # The purpose never contains NUL, so "purpose NUL open_id" is unambiguous.
    return f"tiktok-orchestrator/v1\x00{purpose}\x00{open_id}".encode()


def _damaged_value(open_id: str, purpose: Purpose) -> StoreCorruptError:
    who = f"user {open_id}" if open_id else "the store"
    return StoreCorruptError(
        f"the stored {purpose.replace('_', ' ')} value of {who} fails its integrity check "
        "(altered, or copied from another user or column)",
        hint=(
            f"run `auth remove {open_id}` and sign the user in again with `auth login`"
            if open_id
            else "restore the state database from a backup"
        ),
    )


def open_cipher(
    database: StoreDatabase,
    *,
    env_key: bytes | None,
    home: Path | None = None,
    shared: bool = False,
) -> TokenCipher:
    """The cipher for ``database``: the key from the environment or ``token.key``, verified.

    On a store without a key check (a new one), the key is taken from ``env_key`` or the key
    file (created if missing) and its check is written. On an existing store, a key that does
    not open the check raises ``StoreKeyError`` saying where the key came from; a missing key
    file is never replaced by a new one, since that would strand the stored tokens.

    A ``shared`` store (PostgreSQL, used by workers on several machines) takes its key from the
    environment only: a key file made on one machine would differ from another machine's, and
    the second worker would be refused by the key check anyway, so it is refused up front.
    """
    if home is None:
        if not isinstance(database, Database):
            raise TypeError("open_cipher needs the home of a database that is not a file")
        home = database.path.parent
    key_path = home / KEY_FILENAME
    if shared and env_key is None:
        raise StoreKeyError(
            f"the shared store {database.location} needs {ENV_TOKEN_KEY}: every worker must "
            "seal and open the tokens with the same key",
            hint=f"set {ENV_TOKEN_KEY} to the same base64 32-byte key on every worker "
            "(e.g. from `openssl rand -base64 32`, kept in your secret manager)",
        )
    check = _read_key_check(database)
    if check is not None:
        cipher = _existing_key(key_path, env_key, database)
        if not cipher.opens_key_check(check):
            raise _wrong_key(cipher.source, database, key_path)
        return cipher
    with database.transaction() as connection:
        # Under the write lock: two processes opening a new store agree on one key.
        row = connection.execute(
            "SELECT value FROM store_meta WHERE name = ?", (_KEY_CHECK_NAME,)
        ).fetchone()
        if env_key is not None:
            cipher = TokenCipher(env_key, KeySource(ENV_TOKEN_KEY, from_environment=True))
        elif key_path.exists():
            cipher = TokenCipher(_read_key_file(key_path), _file_source(key_path))
        else:
            cipher = TokenCipher(_create_key_file(key_path), _file_source(key_path, created=True))
        if row is None:
            # ON CONFLICT: a PostgreSQL worker starting at the same moment may have written
            # its check first (a missing row is not locked by a read); then that one decides.
            connection.execute(
                "INSERT INTO store_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                (_KEY_CHECK_NAME, cipher.key_check()),
            )
            row = connection.execute(
                "SELECT value FROM store_meta WHERE name = ?", (_KEY_CHECK_NAME,)
            ).fetchone()
        if not cipher.opens_key_check(bytes(row[0])):
            raise _wrong_key(cipher.source, database, key_path)
    return cipher


def _read_key_check(database: StoreDatabase) -> bytes | None:
    row = database.fetch_one("SELECT value FROM store_meta WHERE name = ?", (_KEY_CHECK_NAME,))
    return None if row is None else bytes(row[0])


def _existing_key(key_path: Path, env_key: bytes | None, database: StoreDatabase) -> TokenCipher:
    if env_key is not None:
        return TokenCipher(env_key, KeySource(ENV_TOKEN_KEY, from_environment=True))
    if key_path.exists():
        return TokenCipher(_read_key_file(key_path), _file_source(key_path))
    raise StoreKeyError(
        f"the tokens in {database.location} are encrypted, but no key is available: "
        f"{ENV_TOKEN_KEY} is not set and {key_path} is missing",
        hint=(
            f"set {ENV_TOKEN_KEY} to the key the tokens were stored with, or restore "
            f"{key_path}; a new key cannot open the stored tokens"
        ),
    )


def _file_source(key_path: Path, *, created: bool = False) -> KeySource:
    return KeySource(f"key file {key_path}", from_environment=False, created=created)


def _wrong_key(source: KeySource, database: StoreDatabase, key_path: Path) -> StoreKeyError:
    if source.from_environment:
        question = f"was {ENV_TOKEN_KEY} changed?"
        hint = f"set {ENV_TOKEN_KEY} to the key the tokens were stored with" + (
            f", or unset it to use {key_path}" if key_path.exists() else ""
        )
    else:
        question = f"was {KEY_FILENAME} replaced, or were the tokens stored with {ENV_TOKEN_KEY}?"
        hint = f"restore the original {key_path}, or set {ENV_TOKEN_KEY} to the original key"
    return StoreKeyError(
        f"the token key from {source.description} does not open the tokens in "
        f"{database.location}; {question}",
        hint=hint + " (nothing was changed)",
    )


def _read_key_file(key_path: Path) -> bytes:
    require_private(key_path)
    try:
        text = key_path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreKeyError(f"cannot read the key file {key_path}: {exc}") from None
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise StoreKeyError(
            f"the key file {key_path} is malformed (expected the base64 of {KEY_BYTES} bytes)",
            hint=f"restore the original {key_path}",
        )
    return key


def _create_key_file(key_path: Path) -> bytes:
    """Make ``token.key`` with a new random key, atomically, readable by the owner only.

    The key is written to a private temporary file (``O_EXCL``, 0600) and then hard-linked to
    its name: the link either appears complete or fails because the file exists, so a process
    never reads a half-written key. When another process won the race, its key is used.
    """
    key = secrets.token_bytes(KEY_BYTES)
    temporary = key_path.with_name(f".{KEY_FILENAME}.{os.getpid()}.{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(temporary, flags, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(base64.b64encode(key) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        try:
            os.link(temporary, key_path)
        except FileExistsError:
            return _read_key_file(key_path)
        finally:
            os.unlink(temporary)
    except OSError as exc:
        raise StoreError(f"cannot create the key file {key_path}: {exc.strerror}") from exc
    return key
