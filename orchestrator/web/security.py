"""The web application's defences: the operator's password, CSRF tokens, login throttling,
safe redirects and the security headers every response carries.

Plain functions and small classes with no Flask globals beyond the request being answered, so
each can be tested alone. This module must not log a password, a token or a session value.

- The admin password is checked with scrypt (memory-hard, so a stolen hash is slow to guess):
  against ``ORCHESTRATOR_ADMIN_PASSWORD_HASH`` (``$scrypt$n=..,r=..,p=..$salt$hash``, made by
  ``python -m orchestrator.web.security hash-password``), or against
  ``ORCHESTRATOR_ADMIN_PASSWORD`` hashed once at start with a random salt, so both forms cost
  the same per attempt and end in one constant-time comparison.
- CSRF: a random token per session, in a hidden field of every form, compared in constant time
  (the session cookie is also ``SameSite=Lax``; the token is the defence that does not depend on
  the browser).
- Throttling: after :data:`LOGIN_FAILURES_ALLOWED` failures from one client address within
  :data:`LOGIN_WINDOW` seconds, that address is refused until the window has passed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import sys
import threading
from collections import OrderedDict
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from orchestrator.clock import Clock
from orchestrator.config import WebConfig
from orchestrator.errors import ConfigError

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_LENGTH = 32
_SCRYPT_MAXMEM = 64 * 1024 * 1024
"""OpenSSL refuses scrypt above its default 32 MB; n=2**14, r=8 needs 16 MB, and a configured
hash may ask for more (up to this)."""

LOGIN_FAILURES_ALLOWED = 5
LOGIN_WINDOW = 15 * 60.0
"""Seconds over which failed logins from one address are counted, and how long it waits."""
THROTTLE_ADDRESSES = 10_000
"""Addresses remembered at most (oldest forgotten first), so a flood cannot fill memory."""

CSRF_FIELD = "csrf_token"
_CSRF_SESSION_KEY = "csrf"

SECURITY_HEADERS = {
    # Styles and everything else from this app only: no inline script can run, no CDN.
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
"""Sent with every response. ``no-referrer`` keeps invite tokens and OAuth codes in this app's
URLs from leaking to TikTok's pages; ``no-store`` keeps pages that show a new key out of
caches."""


# -- the operator's password ---------------------------------------------------------------------


def _scrypt(password: str, salt: bytes, *, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=_SCRYPT_MAXMEM
    )


def hash_password(password: str) -> str:
    """The ``$scrypt$`` form of ``password`` for ``ORCHESTRATOR_ADMIN_PASSWORD_HASH``."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, length=SCRYPT_LENGTH)
    encode = base64.urlsafe_b64encode
    return (
        f"$scrypt$n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}$"
        f"{encode(salt).decode()}${encode(digest).decode()}"
    )


@dataclass(frozen=True)
class _ScryptHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _parse_hash(text: str) -> _ScryptHash:
    problem = ConfigError(
        "ORCHESTRATOR_ADMIN_PASSWORD_HASH is not a valid $scrypt$ hash",
        hint="make one with: python -m orchestrator.web.security hash-password",
    )
    parts = text.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != "scrypt":
        raise problem
    try:
        params = dict(item.split("=", 1) for item in parts[2].split(","))
        n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
        salt = base64.urlsafe_b64decode(parts[3])
        digest = base64.urlsafe_b64decode(parts[4])
    except (KeyError, ValueError, binascii.Error):
        raise problem from None
    if n < 2**10 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16 or len(digest) < 16:
        raise problem
    return _ScryptHash(n=n, r=r, p=p, salt=salt, digest=digest)


class PasswordCheck:
    """Checks a candidate against the configured admin password, in constant time."""

    def __init__(self, expected: _ScryptHash) -> None:
        self._expected = expected

    @classmethod
    def from_config(cls, config: WebConfig) -> PasswordCheck:
        if config.admin_password_hash is not None:
            return cls(_parse_hash(config.admin_password_hash.reveal()))
        if config.admin_password is None:
            raise ConfigError(
                "no admin password is configured",
                hint="export ORCHESTRATOR_ADMIN_PASSWORD_HASH or ORCHESTRATOR_ADMIN_PASSWORD",
            )
        return cls(_parse_hash(hash_password(config.admin_password.reveal())))

    def verify(self, candidate: str) -> bool:
        e = self._expected
        digest = _scrypt(candidate, e.salt, n=e.n, r=e.r, p=e.p, length=len(e.digest))
        return hmac.compare_digest(digest, e.digest)


# -- CSRF ----------------------------------------------------------------------------------------


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """This session's CSRF token (made on first use)."""
    token = session.get(_CSRF_SESSION_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[_CSRF_SESSION_KEY] = token
    return token


def csrf_valid(session: MutableMapping[str, Any], presented: str | None) -> bool:
    """Whether a form's token is this session's, compared in constant time."""
    expected = session.get(_CSRF_SESSION_KEY)
    if not isinstance(expected, str) or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


# -- login throttling ----------------------------------------------------------------------------


class LoginThrottle:
    """Failed logins per client address, over a sliding window on the injected clock."""

    def __init__(
        self,
        clock: Clock,
        *,
        allowed: int = LOGIN_FAILURES_ALLOWED,
        window: float = LOGIN_WINDOW,
        capacity: int = THROTTLE_ADDRESSES,
    ) -> None:
        self._clock = clock
        self._allowed = allowed
        self._window = window
        self._capacity = capacity
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(address, []) if now - t < self._window]
        if times:
            self._failures[address] = times
        else:
            self._failures.pop(address, None)
        return times

    def retry_after(self, address: str) -> float:
        """Seconds until ``address`` may try again (0: it may now)."""
        now = self._clock.time()
        with self._lock:
            times = self._recent(address, now)
            if len(times) < self._allowed:
                return 0.0
            return max(0.0, times[-self._allowed] + self._window - now)

    def failed(self, address: str) -> None:
        now = self._clock.time()
        with self._lock:
            times = self._recent(address, now)
            times.append(now)
            self._failures[address] = times
            self._failures.move_to_end(address)
            while len(self._failures) > self._capacity:
                self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


# -- redirects -----------------------------------------------------------------------------------


def safe_next(target: str | None, default: str) -> str:
    """``target`` if it is a path on this site, else ``default``: never an open redirect
    (``//evil.example``, ``/\\evil.example``, ``https://...`` and control characters are
    refused)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ord(c) < 0x20 or c == "\\" for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def main(argv: list[str]) -> int:
    """``python -m orchestrator.web.security hash-password``: print a hash for the admin
    password typed (twice) at the prompt."""
    import getpass

    if argv != ["hash-password"]:
        print("usage: python -m orchestrator.web.security hash-password", file=sys.stderr)
        return 2
    first = getpass.getpass("admin password: ")
    if len(first) < 12:
        print("error: use at least 12 characters", file=sys.stderr)
        return 2
    if getpass.getpass("again: ") != first:
        print("error: the two passwords differ", file=sys.stderr)
        return 2
    print(hash_password(first))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
