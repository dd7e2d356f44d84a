"""Reading TikTok's OAuth answers: the error a response or redirect carries, whatever its
HTTP status, and the token grant a token-endpoint answer holds.

OAuth endpoints answer flat JSON and often report failure with HTTP 200, so a response is an
error when it has an ``error`` key, whatever its status. Must not: send requests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.errors import OAuthError
from orchestrator.secret import Secret
from orchestrator.tiktok.oauth_values import TokenGrant
from orchestrator.transport import HttpResponse

_MAX_DESCRIPTION = 300
_MAX_LIFETIME = 20 * 365 * 86400.0
"""Longest token lifetime believed (seconds): TikTok's are 2 hours and 180 days."""


def parse_scopes(value: object) -> frozenset[str]:
    """Scopes from a comma (or space) separated string, or a list."""
    if isinstance(value, str):
        parts: Iterable[object] = value.replace(" ", ",").split(",")
    elif isinstance(value, list | tuple):
        parts = value
    else:
        return frozenset()
    return frozenset(str(part).strip() for part in parts if str(part).strip())


def short_description(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DESCRIPTION else text[: _MAX_DESCRIPTION - 1] + "…"


def oauth_hint(error: str) -> str | None:
    return {
        "invalid_grant": "the user must sign in again: run `tiktok-orchestrator auth login`",
        "invalid_client": "check TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET",
        "unauthorized_client": "check the app's products and scopes on developers.tiktok.com",
        "invalid_scope": "request only scopes the app has been granted on developers.tiktok.com",
        "access_denied": "the user declined; run `auth login` again to retry",
        "invalid_request": "check TIKTOK_REDIRECT_URI matches the app's registered redirect URI",
    }.get(error)


def oauth_error_from(body: object, status: int) -> OAuthError | None:
    """The OAuth error a response carries, whatever its HTTP status; None on success."""
    if isinstance(body, dict) and "error" in body:
        error = body["error"]
        if isinstance(error, dict):  # the posting-API envelope, in case a proxy answers with it
            code = str(error.get("code") or "")
            if code in ("", "ok"):
                return None
            message, log_id = error.get("message"), error.get("log_id")
        else:
            code = str(error or "unknown_error")
            message, log_id = body.get("error_description"), body.get("log_id")
        return OAuthError(
            code,
            short_description(str(message or "no description")),
            log_id=str(log_id) if log_id else None,
            hint=oauth_hint(code),
            http_status=status,
        )
    if status >= 400:
        return OAuthError(
            "server_error" if status >= 500 else "http_error",
            f"HTTP {status} without an OAuth error body",
            http_status=status,
        )
    if not isinstance(body, dict):
        return OAuthError(
            "invalid_response",
            f"HTTP {status} with a body that is not a JSON object",
            http_status=status,
        )
    return None


def _seconds(body: Mapping[str, Any], name: str) -> float:
    value = body.get(name)
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise OAuthError(
            "invalid_response", f"the token response's {name!r} is not a number of seconds"
        ) from None
    # NaN or infinity would make a token fresh forever (every comparison with it is false, or
    # it never comes); an absurd lifetime cannot even be shown as a date.
    if not math.isfinite(seconds) or not 0 <= seconds <= _MAX_LIFETIME:
        raise OAuthError(
            "invalid_response",
            f"the token response's {name!r} is not a lifetime in seconds ({value!r})",
        )
    return seconds


def parse_token_response(response: HttpResponse, *, received_at: float) -> TokenGrant:
    """A :class:`TokenGrant` from a token-endpoint answer; ``OAuthError`` for any error."""
    body = response.json()
    error = oauth_error_from(body, response.status)
    if error is not None:
        raise error
    assert isinstance(body, dict)
    missing = [
        name
        for name in ("access_token", "refresh_token", "open_id")
        if not isinstance(body.get(name), str) or not body[name]
    ]
    missing += [name for name in ("expires_in", "refresh_expires_in") if name not in body]
    if missing:
        raise OAuthError(
            "invalid_response",
            f"the token response lacks {', '.join(missing)}",
            http_status=response.status,
        )
    return TokenGrant(
        open_id=body["open_id"],
        access_token=Secret(body["access_token"]),
        access_expires_at=received_at + _seconds(body, "expires_in"),
        refresh_token=Secret(body["refresh_token"]),
        refresh_expires_at=received_at + _seconds(body, "refresh_expires_in"),
        scopes=parse_scopes(body.get("scope", body.get("scopes", ""))),
        token_type=str(body.get("token_type") or "Bearer"),
    )
