"""What TikTok's token endpoint grants, as a value: the leaf the OAuth client fills and the token
store keeps.

A leaf (it imports only :class:`~orchestrator.secret.Secret`), so the store can name the grant
without importing the OAuth client, its transport or ``requests``. It must not do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.secret import Secret

__all__ = ["TokenGrant"]


@dataclass(frozen=True)
class TokenGrant:
    """A token response, with expiries made absolute at the moment it arrived."""

    open_id: str
    access_token: Secret = field(repr=False)
    access_expires_at: float
    refresh_token: Secret = field(repr=False)
    refresh_expires_at: float
    scopes: frozenset[str]
    token_type: str = "Bearer"  # noqa: S105 - a scheme name, not a secret
