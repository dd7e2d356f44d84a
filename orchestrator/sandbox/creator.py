"""The account endpoints: user_info (the fields a token's scopes allow) and creator_info.

creator_info answers the creator's posting options, or — at HTTP 200, as TikTok does — that
the creator cannot post now (banned, the app's active-user cap, the daily post cap). A query
is remembered: a direct post without one is a violation (see ``init_checks``).

Must not: do I/O.
"""

from __future__ import annotations

from orchestrator.sandbox.config import (
    SCOPE_USER_INFO_BASIC,
    SCOPE_USER_INFO_PROFILE,
    SCOPE_USER_INFO_STATS,
    SCOPE_VIDEO_PUBLISH,
    SandboxUser,
)
from orchestrator.sandbox.endpoint import PostingEndpoint
from orchestrator.sandbox.messages import Reply, Request, posting_ok

# user_info fields and the scope each needs (tiktok-api.md §3a).
USER_FIELDS = {
    "open_id": SCOPE_USER_INFO_BASIC,
    "union_id": SCOPE_USER_INFO_BASIC,
    "avatar_url": SCOPE_USER_INFO_BASIC,
    "avatar_url_100": SCOPE_USER_INFO_BASIC,
    "avatar_large_url": SCOPE_USER_INFO_BASIC,
    "display_name": SCOPE_USER_INFO_BASIC,
    "bio_description": SCOPE_USER_INFO_PROFILE,
    "profile_deep_link": SCOPE_USER_INFO_PROFILE,
    "is_verified": SCOPE_USER_INFO_PROFILE,
    "username": SCOPE_USER_INFO_PROFILE,
    "follower_count": SCOPE_USER_INFO_STATS,
    "following_count": SCOPE_USER_INFO_STATS,
    "likes_count": SCOPE_USER_INFO_STATS,
    "video_count": SCOPE_USER_INFO_STATS,
}

_AVATAR_BASE = "https://media.example.com/avatars/"


def _user_payload(user: SandboxUser, field: str) -> object:
    values: dict[str, object] = {
        "open_id": user.open_id,
        "union_id": f"union-{user.open_id}",
        "avatar_url": f"{_AVATAR_BASE}{user.open_id}.jpg",
        "avatar_url_100": f"{_AVATAR_BASE}{user.open_id}-100.jpg",
        "avatar_large_url": f"{_AVATAR_BASE}{user.open_id}-large.jpg",
        "display_name": user.display_name,
        "bio_description": f"{user.display_name} lives in the sandbox.",
        "profile_deep_link": f"https://www.tiktok.com/@{user.username}",
        "is_verified": False,
        "username": user.username,
        "follower_count": 0,
        "following_count": 0,
        "likes_count": 0,
        "video_count": 0,
    }
    return values[field]


class CreatorEndpoints(PostingEndpoint):
    """user_info and creator_info."""

    def user_info(self, request: Request) -> Reply:
        return self._run(self._user_info, request)

    def _user_info(self, request: Request) -> Reply:
        token = self._token("user_info", request)
        fields = [f.strip() for f in (request.arg("fields") or "").split(",") if f.strip()]
        if not fields:
            raise self._refuse(
                "user_info", 400, "invalid_params", "fields is required.", "no fields parameter"
            )
        unknown = [f for f in fields if f not in USER_FIELDS]
        if unknown:
            raise self._refuse(
                "user_info",
                400,
                "invalid_params",
                f"Invalid fields: {','.join(unknown)}.",
                f"unknown user_info fields {unknown}",
            )
        for name in fields:
            refused = self._state.require_scope("user_info", token, USER_FIELDS[name])
            if refused is not None:
                return refused
        user = self._user(token)
        return posting_ok(
            {"user": {name: _user_payload(user, name) for name in dict.fromkeys(fields)}},
            self._state.log_id(),
        )

    def creator_info(self, request: Request) -> Reply:
        return self._run(self._creator_info, request)

    def _creator_info(self, request: Request) -> Reply:
        token = self._token("creator_info", request, SCOPE_VIDEO_PUBLISH)
        self._json_body("creator_info", request, empty_ok=True)
        user = self._user(token)
        state = self._state
        with state.lock:
            state.creator_info_seen.add(user.open_id)
        # TikTok answers these at HTTP 200: the creator cannot post now (tiktok-api.md §3).
        if user.banned:
            raise self._error(
                200, "spam_risk_user_banned_from_posting", "The user is banned from posting."
            )
        if self._over_active_user_cap(user):
            raise self._error(
                200, "reached_active_user_cap", "The app reached its cap of active posting users."
            )
        if state.direct_posts_today(user.open_id) >= self._config.daily_post_cap:
            state.tell_cap(user.open_id, "direct")
            raise self._error(
                200, "spam_risk_too_many_posts", "The user reached the daily post cap."
            )
        state.forget_cap(user.open_id, "direct")
        return posting_ok(
            {
                "creator_avatar_url": f"{_AVATAR_BASE}{user.open_id}.jpg",
                "creator_username": user.username,
                "creator_nickname": user.display_name,
                "privacy_level_options": list(user.privacy_level_options),
                "comment_disabled": user.comment_disabled,
                "duet_disabled": user.duet_disabled,
                "stitch_disabled": user.stitch_disabled,
                "max_video_post_duration_sec": user.max_video_post_duration_sec,
            },
            state.log_id(),
        )
