"""``/accounts``: the connected creators, their token health, and TikTok's creator_info.

Must not: answer a token value (only its state and expiries).
"""

from __future__ import annotations

import contextlib
from typing import Any

from flask import Response, jsonify

from orchestrator import auth
from orchestrator.errors import ApiError, AuthError, OrchestratorError, TransportError
from orchestrator.store.tokens import DEFAULT_REFRESH_MARGIN, StoredUser
from orchestrator.web.api.base import ApiProblem, app_services, blueprint, require_api_key


def _user_json(user: StoredUser, now: float) -> dict[str, Any]:
    return {
        "open_id": user.open_id,
        "display_name": user.display_name,
        "scopes": sorted(user.scopes),
        "token_state": str(user.state(now, DEFAULT_REFRESH_MARGIN)),
        "access_expires_at": user.access_expires_at,
        "refresh_expires_at": user.refresh_expires_at,
        "login_reason": user.login_reason(now),
    }


@blueprint.get("/accounts")
@require_api_key
def accounts() -> Response:
    """Every connected account with its token health (no token values)."""
    found = app_services()
    rows = auth.list_users(found.tokens, clock=found.clock, margin=DEFAULT_REFRESH_MARGIN)
    now = found.clock.time()
    return jsonify({"accounts": [_user_json(row.user, now) for row in rows]})


def _stored_user(open_id: str) -> StoredUser:
    user: StoredUser | None = app_services().tokens.get_user(open_id)
    if user is None:
        raise ApiProblem(
            404,
            "unknown_account",
            f"no connected account has open_id {open_id!r}",
            "GET /api/v1/accounts lists them; a creator connects through an invite",
        )
    return user


@blueprint.get("/accounts/<open_id>")
@require_api_key
def account(open_id: str) -> Response:
    """One account as the store knows it."""
    return jsonify(_user_json(_stored_user(open_id), app_services().clock.time()))


@blueprint.get("/accounts/<open_id>/creator-info")
@require_api_key
def creator_info(open_id: str) -> Response:
    """TikTok's creator_info for the account, asked now with its stored token (refreshed
    when stale, as a run does)."""
    from orchestrator.store.tokens import TokenProvider
    from orchestrator.tiktok.client import TikTokClient
    from orchestrator.tiktok.oauth import OAuthClient
    from orchestrator.transport import HttpTransport

    _stored_user(open_id)
    found = app_services()
    try:
        found.settings.require_client()
        with contextlib.closing(HttpTransport()) as transport:
            oauth = OAuthClient.from_settings(found.settings, transport, found.clock)
            tokens = TokenProvider(found.tokens, oauth, clock=found.clock)
            client = TikTokClient(found.settings.api_base, transport, tokens, clock=found.clock)
            info = client.creator_info(open_id)
    except AuthError as exc:
        raise ApiProblem(409, "needs_login", str(exc), exc.hint) from None
    except ApiError as exc:
        raise ApiProblem(502, exc.code, str(exc), exc.hint) from None
    except TransportError as exc:
        raise ApiProblem(502, "tiktok_unreachable", str(exc), exc.hint) from None
    except OrchestratorError as exc:
        raise ApiProblem(503, "not_configured", str(exc), exc.hint) from None
    return jsonify(
        {
            "open_id": open_id,
            "username": info.username,
            "nickname": info.nickname,
            "avatar_url": info.avatar_url,
            "privacy_level_options": list(info.privacy_level_options),
            "comment_disabled": info.comment_disabled,
            "duet_disabled": info.duet_disabled,
            "stitch_disabled": info.stitch_disabled,
            "max_video_post_duration_sec": info.max_video_post_duration_sec,
        }
    )
