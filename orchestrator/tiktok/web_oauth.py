"""TikTok OAuth v2 for a **Web** app (Login Kit for Web, ``tiktok-api.md`` §2.1): the authorize
URL a creator's browser is sent to, with PKCE written the way the setting says.

Only what differs from the desktop flow lives here: the PKCE reading (RFC 7636 base64url by
default, hex by setting, since TikTok's web flow is unclear) and ``disable_auto_auth=1`` (the
creator always sees the consent page, so a shared browser cannot connect the wrong account
silently). The token exchange and user info are the desktop ones
(:class:`~orchestrator.tiktok.oauth.OAuthClient`, called with the web redirect URI).

Must not: store anything, do I/O, or keep a verifier or state anywhere but the returned value.
"""

from __future__ import annotations

import base64
import enum
import hashlib
from collections.abc import Iterable

from orchestrator.errors import ConfigError
from orchestrator.secret import Secret
from orchestrator.tiktok.oauth import (
    AuthorizationRequest,
    build_authorization_request,
    code_challenge,
)

CONNECT_CALLBACK_PATH = "/connect/callback/"
"""Where TikTok sends a creator back, under the public URL; register it for the Web app."""


class WebPkce(enum.StrEnum):
    """How the PKCE challenge is written (``ORCHESTRATOR_WEB_PKCE``)."""

    S256 = "s256"
    """RFC 7636: base64url(SHA-256(verifier)) without padding (the reference's reading)."""
    HEX = "hex"
    """Hex SHA-256 of the verifier, as TikTok's desktop flow wants."""


def web_code_challenge(verifier: Secret, reading: WebPkce) -> str:
    """The challenge for ``verifier`` in the chosen reading."""
    if reading is WebPkce.HEX:
        return code_challenge(verifier)
    digest = hashlib.sha256(verifier.reveal().encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def connect_redirect_uri(public_url: str) -> str:
    """``{public_url}/connect/callback/``: the redirect URI sent and registered."""
    return public_url.rstrip("/") + CONNECT_CALLBACK_PATH


def build_web_authorization_request(
    *,
    auth_url: str,
    client_key: str,
    redirect_uri: str,
    scopes: Iterable[str],
    pkce: WebPkce | str = WebPkce.S256,
) -> AuthorizationRequest:
    """A fresh connect attempt: new verifier and state, the authorize URL carrying them."""
    try:
        reading = WebPkce(pkce)
    except ValueError:
        raise ConfigError(
            f"unknown PKCE reading {pkce!r}",
            hint="set ORCHESTRATOR_WEB_PKCE to s256 (the default) or hex",
        ) from None
    return build_authorization_request(
        auth_url=auth_url,
        client_key=client_key,
        redirect_uri=redirect_uri,
        scopes=scopes,
        challenge=lambda verifier: web_code_challenge(verifier, reading),
        # The consent page even for a creator already signed in to TikTok in that browser.
        extra={"disable_auto_auth": "1"},
        no_scopes_hint="ask for at least user.info.basic",
    )
