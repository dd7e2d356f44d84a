"""TikTok OAuth v2 for a desktop app: the token endpoint (code exchange, refresh, revoke) and
user info to name who signed in; this module also names everything the OAuth side offers.

This module speaks the wire protocol (``tiktok-api.md`` §2, §3a) and returns frozen values with
tokens wrapped in :class:`Secret`. It does not store tokens (``store/tokens.py`` does), print
(``cli.py`` does), or retry (callers decide). Every request goes through a
:class:`~orchestrator.transport.Transport` with bounded timeouts.

The OAuth side, by job: ``oauth_values`` (the frozen values, a leaf), ``authorize`` (PKCE, the
authorize URL, the redirect back), ``callback`` (the loopback server), ``oauth_answers``
(reading responses and errors), and this module (the client).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from orchestrator.clock import Clock
from orchestrator.config import DEFAULT_CALLBACK_TIMEOUT, DEFAULT_SCOPES, Settings
from orchestrator.errors import ApiError, OAuthError
from orchestrator.secret import Secret
from orchestrator.tiktok.authorize import (
    VERIFIER_ALPHABET,
    VERIFIER_LENGTH,
    authorization_from_params,
    build_authorization_request,
    code_challenge,
    new_code_verifier,
    parse_pasted_redirect,
)
from orchestrator.tiktok.callback import CallbackServer
from orchestrator.tiktok.oauth_answers import (
    oauth_error_from,
    parse_scopes,
    parse_token_response,
    short_description,
)
from orchestrator.tiktok.oauth_values import (
    AuthorizationCode,
    AuthorizationRequest,
    TokenGrant,
    UserInfo,
)
from orchestrator.transport import HttpResponse, Timeouts, Transport

__all__ = [
    "DEFAULT_CALLBACK_TIMEOUT",
    "DEFAULT_SCOPES",
    "OAUTH_TIMEOUTS",
    "REVOKE_PATH",
    "TOKEN_PATH",
    "USER_INFO_FIELDS",
    "USER_INFO_PATH",
    "VERIFIER_ALPHABET",
    "VERIFIER_LENGTH",
    "AuthorizationCode",
    "AuthorizationRequest",
    "CallbackServer",
    "ClientCheck",
    "OAuthClient",
    "TokenGrant",
    "UserInfo",
    "authorization_from_params",
    "build_authorization_request",
    "code_challenge",
    "new_code_verifier",
    "parse_pasted_redirect",
    "parse_scopes",
    "parse_token_response",
]

TOKEN_PATH = "/v2/oauth/token/"  # noqa: S105 - a URL path, not a secret
REVOKE_PATH = "/v2/oauth/revoke/"
USER_INFO_PATH = "/v2/user/info/"
USER_INFO_FIELDS = "open_id,union_id,avatar_url,display_name"

OAUTH_TIMEOUTS = Timeouts(connect=5.0, read=15.0, total=20.0)
"""Token-endpoint limits: a refresh holds the store's write lock, so it must end quickly."""
_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class ClientCheck:
    """What the token endpoint said to a ``client_credentials`` request (no token value)."""

    error: str | None
    """The OAuth error, or None when TikTok issued a client token."""
    message: str | None
    log_id: str | None
    http_status: int
    server_date: str | None
    """The answer's ``Date`` header (TikTok's clock), for the clock check."""

    @property
    def recognised(self) -> bool:
        """TikTok knows the key and secret: a token, or an OAuth error other than
        ``invalid_client`` from TikTok itself (not a gateway's 5xx or a garbled answer)."""
        if self.error is None:
            return True
        return self.error not in _NOT_AN_ANSWER and self.http_status < 500


_NOT_AN_ANSWER: Final = frozenset(
    {"invalid_client", "server_error", "temporarily_unavailable", "http_error", "invalid_response"}
)


class OAuthClient:
    """TikTok's token endpoint and user info, for one app (client key and secret)."""

    def __init__(
        self,
        transport: Transport,
        *,
        api_base: str,
        client_key: str,
        client_secret: Secret,
        clock: Clock,
        timeouts: Timeouts = OAUTH_TIMEOUTS,
    ) -> None:
        self._transport = transport
        self._api_base = api_base.rstrip("/")
        self._client_key = client_key
        self._client_secret = client_secret
        self._clock = clock
        self._timeouts = timeouts

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        transport: Transport,
        clock: Clock,
        *,
        timeouts: Timeouts = OAUTH_TIMEOUTS,
    ) -> OAuthClient:
        """The client for the app configured in ``settings`` (ConfigError if it is not)."""
        client_key, client_secret = settings.require_client()
        return cls(
            transport,
            api_base=settings.api_base,
            client_key=client_key,
            client_secret=client_secret,
            clock=clock,
            timeouts=timeouts,
        )

    def _post_form(self, path: str, fields: Mapping[str, str]) -> HttpResponse:
        # TikTok refuses JSON bodies on the OAuth endpoints.
        return self._transport.request(
            "POST",
            self._api_base + path,
            headers={"Content-Type": _FORM, "Cache-Control": "no-cache"},
            body=urlencode(fields).encode("ascii"),
            timeouts=self._timeouts,
        )

    def _token_request(self, fields: Mapping[str, str]) -> TokenGrant:
        response = self._post_form(TOKEN_PATH, fields)
        # Expiries count from the arrival of the answer, never from hard-coded lifetimes.
        return parse_token_response(response, received_at=self._clock.time())

    def exchange_code(
        self, code: Secret, *, code_verifier: Secret, redirect_uri: str
    ) -> TokenGrant:
        """Trade an authorization code for tokens (the redirect URI must equal the authorize
        one)."""
        return self._token_request(
            {
                "client_key": self._client_key,
                "client_secret": self._client_secret.reveal(),
                "code": code.reveal(),
                "grant_type": "authorization_code",
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier.reveal(),
            }
        )

    def refresh(self, refresh_token: Secret) -> TokenGrant:
        """New tokens for a refresh token. The old refresh token stops working: store the new
        pair before anything else uses it."""
        return self._token_request(
            {
                "client_key": self._client_key,
                "client_secret": self._client_secret.reveal(),
                "grant_type": "refresh_token",
                "refresh_token": refresh_token.reveal(),
            }
        )

    def check_client(self) -> ClientCheck:
        """Ask TikTok for a client access token (``grant_type=client_credentials``,
        tiktok-api.md §2.2) to learn whether it recognises the app's key and secret. The token
        itself is dropped unused. Raises ``TransportError`` when TikTok cannot be reached."""
        response = self._post_form(
            TOKEN_PATH,
            {
                "client_key": self._client_key,
                "client_secret": self._client_secret.reveal(),
                "grant_type": "client_credentials",
            },
        )
        body = response.json()
        error = oauth_error_from(body, response.status)
        if error is None and not (isinstance(body, dict) and body.get("access_token")):
            error = OAuthError("invalid_response", "the answer holds no access token")
        return ClientCheck(
            error=error.error if error is not None else None,
            message=error.description if error is not None else None,
            log_id=error.log_id if error is not None else None,
            http_status=response.status,
            server_date=response.header("date"),
        )

    def revoke(self, access_token: Secret) -> None:
        """Revoke the user's authorisation of the app (TikTok answers ``{}``)."""
        response = self._post_form(
            REVOKE_PATH,
            {
                "client_key": self._client_key,
                "client_secret": self._client_secret.reveal(),
                "token": access_token.reveal(),
            },
        )
        error = oauth_error_from(response.json() if response.body else {}, response.status)
        if error is not None:
            raise error

    def fetch_user_info(self, access_token: Secret) -> UserInfo:
        """Who the token belongs to (needs the ``user.info.basic`` scope)."""
        response = self._transport.request(
            "GET",
            f"{self._api_base}{USER_INFO_PATH}?{urlencode({'fields': USER_INFO_FIELDS})}",
            headers={"Authorization": f"Bearer {access_token.reveal()}"},
            timeouts=self._timeouts,
        )
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        code = str(error.get("code") or "") if isinstance(error, dict) else ""
        if not isinstance(body, dict) or code != "ok" or response.status >= 400:
            detail = error if isinstance(error, dict) else {}
            raise ApiError(
                code or f"http_{response.status}",
                short_description(str(detail.get("message") or "user info request failed")),
                http_status=response.status,
                log_id=str(detail["log_id"]) if detail.get("log_id") else None,
                retryable=response.status >= 500 or response.status == 429,
                reauth=code == "access_token_invalid",
            )
        data = body.get("data")
        user = data.get("user") if isinstance(data, dict) else None
        if not isinstance(user, dict) or not user.get("open_id"):
            raise ApiError(
                "invalid_response", "user info without a user", http_status=response.status
            )

        def text(name: str) -> str | None:
            value = user.get(name)
            return str(value) if value else None

        return UserInfo(
            open_id=str(user["open_id"]),
            union_id=text("union_id"),
            display_name=text("display_name"),
            avatar_url=text("avatar_url"),
        )
