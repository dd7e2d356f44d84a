"""The OAuth values: a login attempt, the code it brought back, a token grant, who signed in.

Frozen, with every secret wrapped in :class:`~orchestrator.secret.Secret` and left out of the
repr. A leaf: the token store keeps :class:`TokenGrant` without loading the HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.secret import Secret


@dataclass(frozen=True)
class AuthorizationRequest:
    """One login attempt: the URL to open, and what must be kept to finish it."""

    url: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: Secret = field(repr=False)
    code_verifier: Secret = field(repr=False)


@dataclass(frozen=True)
class AuthorizationCode:
    """What the redirect brought back: the one-time code and the scopes the user granted."""

    code: Secret = field(repr=False)
    granted_scopes: frozenset[str] = frozenset()


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


@dataclass(frozen=True)
class UserInfo:
    """Who a token belongs to (``/v2/user/info/``)."""

    open_id: str
    union_id: str | None = None
    display_name: str | None = None
    avatar_url: str | None = None
