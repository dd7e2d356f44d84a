"""The secrets ``serve`` hands out: made at random, kept only as their SHA-256.

Every secret handed out — an invite token, an API key, an OAuth ``state``, a review link — is
:data:`SECRET_BYTES` random bytes (``secrets.token_urlsafe``), shown once and kept only as its
SHA-256 hex digest. A fast hash is right for random secrets (nothing to guess), and a copy of
the database hands out nothing usable. A presented secret is hashed and looked up by its
digest, and the digest read back is compared with :func:`hmac.compare_digest`.

This module must not print, log a secret, or read the environment.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SECRET_BYTES = 32
"""Random bytes in each invite token, API key and OAuth state (256 bits; the issue asks for
at least 128)."""


def new_secret() -> str:
    """A fresh URL-safe secret of :data:`SECRET_BYTES` random bytes."""
    return secrets.token_urlsafe(SECRET_BYTES)


def secret_digest(secret: str) -> str:
    """What the store keeps of a secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def digests_match(stored: str, presented: str) -> bool:
    """Whether two digests are equal, in time independent of where they differ."""
    return hmac.compare_digest(stored.encode("ascii"), presented.encode("ascii"))
