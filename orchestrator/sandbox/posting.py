"""The Bearer-token endpoints: user_info, creator_info, the three inits, status fetch.

Each handler runs the same prologue (authenticate → scope → rate window), then validates the
body the way ``tiktok-api.md`` §3 to §8 describes, answering TikTok's error code in the posting
envelope. Beyond what TikTok refuses, it records what its integration rules forbid (no
creator_info before a direct post, a disabled interaction switched on) as violations.

Status progresses on status fetches: while bytes arrive, PROCESSING_UPLOAD; once complete,
``processing_polls`` fetches answer PROCESSING_UPLOAD / PROCESSING_DOWNLOAD, then the terminal
status (PUBLISH_COMPLETE with post ids for public direct posts, SEND_TO_USER_INBOX, or FAILED
with a scheduled ``fail_reason``). An upload whose URL expired before its last byte answers
FAILED with ``internal``: nothing was published, a new init may start over.

Caps count every init accepted in the last 24 hours (direct posts; inbox shares not yet
posted and not FAILED). An unaudited app's limits apply to direct posts (video and photo).

Must not: do I/O, or stream bodies (``upload.py`` takes the chunk PUTs).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from orchestrator.sandbox.config import (
    PUBLIC_TO_EVERYONE,
    SCOPE_USER_INFO_BASIC,
    SCOPE_USER_INFO_PROFILE,
    SCOPE_USER_INFO_STATS,
    SCOPE_VIDEO_PUBLISH,
    SCOPE_VIDEO_UPLOAD,
    SELF_ONLY,
    SandboxUser,
)
from orchestrator.sandbox.messages import Reply, Request, posting_error, posting_ok
from orchestrator.sandbox.rules import (
    MAX_CAPTION_UNITS,
    MAX_PHOTO_DESCRIPTION_UNITS,
    MAX_PHOTO_IMAGES,
    MAX_PHOTO_TITLE_UNITS,
    STRICT_MAX_VIDEO_SIZE,
    ChunkPlan,
    check_chunk_plan,
    is_https_url,
    media_type,
    utf16_units,
)
from orchestrator.sandbox.state import (
    FAILED,
    PROCESSING_DOWNLOAD,
    PROCESSING_UPLOAD,
    PUBLISH_COMPLETE,
    SEND_TO_USER_INBOX,
    AccessToken,
    Publish,
    SandboxState,
)

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

_VIDEO_BOOLS = (
    "disable_comment",
    "disable_duet",
    "disable_stitch",
    "brand_content_toggle",
    "brand_organic_toggle",
    "is_aigc",
)
_PHOTO_BOOLS = ("disable_comment", "auto_add_music", "brand_content_toggle", "brand_organic_toggle")
_AVATAR_BASE = "https://media.example.com/avatars/"


class Refusal(Exception):
    """A request refused: carries the answer (control flow inside this module only)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


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


class PostingEndpoints:
    """user_info, creator_info, video/inbox/content init, status fetch."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state
        self._config = state.config

    # -- shared ---------------------------------------------------------------------------

    def _error(self, status: int, code: str, message: str) -> Refusal:
        return Refusal(posting_error(status, code, message, self._state.log_id()))

    def _refuse(self, endpoint: str, status: int, code: str, message: str, why: str) -> Refusal:
        """A refusal that a careful client would never provoke: also a violation."""
        self._state.violation(endpoint, why)
        return self._error(status, code, message)

    def _token(self, endpoint: str, request: Request, *scopes: str) -> AccessToken:
        """Authenticate, check one of ``scopes`` (if any), count the rate window."""
        token = self._state.authenticate(endpoint, request.header("authorization"))
        if isinstance(token, Reply):
            raise Refusal(token)
        if scopes:
            refused = self._state.require_scope(endpoint, token, *scopes)
            if refused is not None:
                raise Refusal(refused)
        limited = self._state.take_rate(endpoint, token)
        if limited is not None:
            raise Refusal(limited)
        return token

    def _user(self, token: AccessToken) -> SandboxUser:
        user = self._state.user(token.open_id)
        if user is None:  # tokens are only issued to configured users
            raise self._error(500, "internal_error", "Unknown user.")
        return user

    def _json_body(
        self, endpoint: str, request: Request, *, empty_ok: bool = False
    ) -> dict[str, Any]:
        if request.body and media_type(request.header("content-type")) != "application/json":
            self._state.violation(endpoint, "JSON body sent without Content-Type: application/json")
        if not request.body.strip():
            if empty_ok:
                return {}
            raise self._refuse(
                endpoint, 400, "invalid_params", "Request body is empty.", "empty body"
            )
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise self._refuse(
                endpoint,
                400,
                "invalid_params",
                "Request body is not valid JSON.",
                "body is not JSON",
            ) from None
        if not isinstance(body, dict):
            raise self._refuse(
                endpoint,
                400,
                "invalid_params",
                "Request body must be a JSON object.",
                "body not an object",
            )
        return body

    @staticmethod
    def _run(handler: Callable[[Request], Reply], request: Request) -> Reply:
        try:
            reply: Reply = handler(request)
        except Refusal as refused:
            return refused.reply
        return reply

    # -- user_info ------------------------------------------------------------------------

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

    # -- creator_info ---------------------------------------------------------------------

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

    # -- init checks ----------------------------------------------------------------------

    def _over_active_user_cap(self, user: SandboxUser) -> bool:
        if not self._config.unaudited:
            return False
        active = self._state.active_posting_users()
        return user.open_id not in active and len(active) >= self._config.unaudited_user_cap

    def _check_poster(self, endpoint: str, user: SandboxUser, *, direct: bool) -> None:
        """Refusals about who posts: banned users; for direct posts, an unaudited app's limits.

        The unaudited restrictions belong to the Direct Post API: an inbox draft carries no
        privacy level and the creator finishes it in the app.
        """
        if user.banned:
            raise self._error(
                403, "spam_risk_user_banned_from_posting", "The user is banned from posting."
            )
        if not direct:
            return
        if self._config.unaudited and not user.private:
            raise self._refuse(
                endpoint,
                403,
                "unaudited_client_can_only_post_to_private_accounts",
                "Unaudited clients can only post to private accounts.",
                f"unaudited app posting to public account {user.open_id}",
            )
        if self._over_active_user_cap(user):
            raise self._error(
                403, "reached_active_user_cap", "The app reached its cap of active posting users."
            )

    def _dict_field(self, endpoint: str, body: dict[str, Any], name: str) -> dict[str, Any]:
        value = body.get(name)
        if not isinstance(value, dict):
            raise self._refuse(
                endpoint,
                400,
                "invalid_params",
                f"{name} is required.",
                f"{name} missing or not an object",
            )
        return value

    def _check_text(self, endpoint: str, info: dict[str, Any], name: str, limit: int) -> None:
        value = info.get(name)
        if value is None:
            return
        if not isinstance(value, str):
            raise self._refuse(
                endpoint, 400, "invalid_params", f"{name} must be a string.", f"{name} not a string"
            )
        units = utf16_units(value)
        if units > limit:
            raise self._refuse(
                endpoint,
                400,
                "invalid_params",
                f"The {name} is too long.",
                f"{name} is {units} UTF-16 units, over {limit}",
            )

    def _check_bools(self, endpoint: str, info: dict[str, Any], names: tuple[str, ...]) -> None:
        for name in names:
            if name in info and not isinstance(info[name], bool):
                raise self._refuse(
                    endpoint,
                    400,
                    "invalid_params",
                    f"{name} must be a boolean.",
                    f"{name} not a bool",
                )

    def _check_privacy(self, endpoint: str, user: SandboxUser, info: dict[str, Any]) -> str:
        # tiktok-api.md §4/§6: required and one of the creator's options; TikTok answers a
        # missing or unknown level with the same mismatch as one the creator does not offer.
        level = info.get("privacy_level")
        if not isinstance(level, str) or level not in user.privacy_level_options:
            raise self._refuse(
                endpoint,
                403,
                "privacy_level_option_mismatch",
                "privacy_level is not one of the creator's privacy_level_options.",
                f"privacy_level {level!r} missing or not in {user.open_id}'s options "
                f"{list(user.privacy_level_options)}",
            )
        if self._config.unaudited and level != SELF_ONLY:
            raise self._refuse(
                endpoint,
                403,
                "unaudited_client_can_only_post_to_private_accounts",
                "Unaudited clients can only post with SELF_ONLY privacy.",
                f"unaudited app posting with privacy {level}",
            )
        return level

    def _check_interactions(
        self, endpoint: str, user: SandboxUser, info: dict[str, Any], *, video: bool
    ) -> None:
        """Integration rule: an interaction the creator disabled must stay disabled."""
        flags = [("disable_comment", user.comment_disabled)]
        if video:  # photos have no duet or stitch
            flags += [
                ("disable_duet", user.duet_disabled),
                ("disable_stitch", user.stitch_disabled),
            ]
        for flag, disabled in flags:
            if disabled and info.get(flag) is not True:
                self._state.violation(
                    endpoint, f"{flag} not set although {user.open_id} has it disabled"
                )

    def _check_creator_info_seen(self, endpoint: str, user: SandboxUser) -> None:
        with self._state.lock:
            seen = user.open_id in self._state.creator_info_seen
        if not seen:
            self._state.violation(
                endpoint, f"direct post for {user.open_id} without a prior creator_info query"
            )

    def _check_url(self, endpoint: str, url: object, name: str) -> str:
        if not is_https_url(url):
            raise self._refuse(
                endpoint,
                400,
                "invalid_params",
                f"{name} must be an https URL.",
                f"{name} not https",
            )
        assert isinstance(url, str)
        if not any(url.startswith(prefix) for prefix in self._config.verified_url_prefixes):
            raise self._refuse(
                endpoint,
                403,
                "url_ownership_unverified",
                "The URL's domain or prefix is not verified for this app.",
                f"{name} prefix not verified",
            )
        return url

    def _check_video_source(self, endpoint: str, source_info: dict[str, Any]) -> ChunkPlan | None:
        """The chunk plan of a FILE_UPLOAD, or None for a verified PULL_FROM_URL."""
        source = source_info.get("source")
        if source == "FILE_UPLOAD":
            video_size = source_info.get("video_size")
            chunk_size = source_info.get("chunk_size")
            count = source_info.get("total_chunk_count")
            problem = check_chunk_plan(video_size, chunk_size, count)
            if problem is not None:
                raise self._refuse(endpoint, 400, "invalid_params", problem.message, problem.detail)
            assert isinstance(video_size, int)
            assert isinstance(chunk_size, int)
            assert isinstance(count, int)
            if video_size > STRICT_MAX_VIDEO_SIZE:
                self._state.violation(
                    endpoint, f"video_size {video_size:,} is over 4 GB read as 4,000,000,000"
                )
            return ChunkPlan(video_size, chunk_size, count)
        if source == "PULL_FROM_URL":
            self._check_url(endpoint, source_info.get("video_url"), "video_url")
            return None
        raise self._refuse(
            endpoint, 400, "invalid_params", "source is invalid.", f"unknown source {source!r}"
        )

    def _check_caps(self, endpoint: str, user: SandboxUser, direct: bool) -> None:
        """Refuse an init over the creator's caps. The refusal is a violation only when the
        client had been told already (see :meth:`SandboxState.tell_cap`): TikTok counts posts
        from every app and every init it accepted, so a client cannot always see it coming."""
        state = self._state
        if direct and state.direct_posts_today(user.open_id) >= self._config.daily_post_cap:
            why = f"daily post cap ({self._config.daily_post_cap}) reached for {user.open_id}"
            if state.tell_cap(user.open_id, "direct"):
                state.violation(endpoint, f"{why}, and the client had been told")
            raise self._error(
                403, "spam_risk_too_many_posts", "The user reached the daily post cap."
            )
        if (
            not direct
            and state.pending_inbox_shares(user.open_id) >= self._config.pending_inbox_cap
        ):
            why = f"pending inbox cap ({self._config.pending_inbox_cap}) reached for {user.open_id}"
            if state.tell_cap(user.open_id, "inbox"):
                state.violation(endpoint, f"{why}, and the client had been told")
            raise self._error(
                403, "spam_risk_too_many_pending_share", "The user has too many pending shares."
            )

    def _create(
        self,
        *,
        user: SandboxUser,
        prefix: str,
        mode: str,
        post_mode: str,
        post_info: dict[str, Any],
        source_info: dict[str, Any],
        plan: ChunkPlan | None,
    ) -> Publish:
        state = self._state
        now = state.now()
        serial = 7_400_000_000_000_000_000 + state.next_serial()
        publish = Publish(
            publish_id=f"{prefix}.{serial}",
            open_id=user.open_id,
            mode=mode,
            post_mode=post_mode,
            source=str(source_info.get("source")),
            post_info=post_info,
            source_info=source_info,
            created_at=now,
            plan=plan,
        )
        if plan is None:
            # A URL init is complete on acceptance: TikTok fetches and publishes on its own.
            publish.completed = True
            publish.status = PROCESSING_DOWNLOAD
        else:
            publish.upload_id = f"{serial:x}{state.random_token('')[:12]}"
            publish.upload_token = state.random_token("")
            publish.url_expires_at = now + self._config.upload_url_ttl
        state.add_publish(publish)
        return publish

    def _init_reply(self, publish: Publish) -> Reply:
        data: dict[str, Any] = {"publish_id": publish.publish_id}
        if publish.upload_id is not None:
            data["upload_url"] = (
                f"{self._state.base_url}/upload/?upload_id={publish.upload_id}"
                f"&upload_token={publish.upload_token}"
            )
        return posting_ok(data, self._state.log_id())

    # -- video init (direct) --------------------------------------------------------------

    def video_init(self, request: Request) -> Reply:
        return self._run(self._video_init, request)

    def _video_init(self, request: Request) -> Reply:
        endpoint = "video_init"
        token = self._token(endpoint, request, SCOPE_VIDEO_PUBLISH)
        body = self._json_body(endpoint, request)
        user = self._user(token)
        self._check_poster(endpoint, user, direct=True)
        post_info = self._dict_field(endpoint, body, "post_info")
        source_info = self._dict_field(endpoint, body, "source_info")
        self._check_text(endpoint, post_info, "title", MAX_CAPTION_UNITS)
        self._check_bools(endpoint, post_info, _VIDEO_BOOLS)
        cover = post_info.get("video_cover_timestamp_ms")
        if cover is not None and (
            not isinstance(cover, int) or isinstance(cover, bool) or cover < 0
        ):
            raise self._refuse(
                endpoint,
                400,
                "invalid_params",
                "video_cover_timestamp_ms is invalid.",
                "video_cover_timestamp_ms not a non-negative int",
            )
        plan = self._check_video_source(endpoint, source_info)
        self._check_privacy(endpoint, user, post_info)
        with self._state.lock:
            self._check_caps(endpoint, user, direct=True)
            self._check_creator_info_seen(endpoint, user)
            self._check_interactions(endpoint, user, post_info, video=True)
            kind = "file" if plan is not None else "url"
            publish = self._create(
                user=user,
                prefix=f"v_pub_{kind}~v2-1",
                mode="direct",
                post_mode="DIRECT_POST",
                post_info=post_info,
                source_info=source_info,
                plan=plan,
            )
        return self._init_reply(publish)

    # -- inbox init -----------------------------------------------------------------------

    def inbox_init(self, request: Request) -> Reply:
        return self._run(self._inbox_init, request)

    def _inbox_init(self, request: Request) -> Reply:
        endpoint = "inbox_init"
        token = self._token(endpoint, request, SCOPE_VIDEO_UPLOAD)
        body = self._json_body(endpoint, request)
        user = self._user(token)
        self._check_poster(endpoint, user, direct=False)
        source_info = self._dict_field(endpoint, body, "source_info")
        plan = self._check_video_source(endpoint, source_info)
        with self._state.lock:
            self._check_caps(endpoint, user, direct=False)
            kind = "file" if plan is not None else "url"
            publish = self._create(
                user=user,
                prefix=f"v_inbox_{kind}~v2",
                mode="inbox",
                post_mode="MEDIA_UPLOAD",
                post_info={},
                source_info=source_info,
                plan=plan,
            )
        return self._init_reply(publish)

    # -- content init (photo) -------------------------------------------------------------

    def content_init(self, request: Request) -> Reply:
        return self._run(self._content_init, request)

    def _content_init(self, request: Request) -> Reply:
        endpoint = "content_init"
        token = self._token(endpoint, request)
        body = self._json_body(endpoint, request)
        if body.get("media_type") != "PHOTO":
            raise self._refuse(
                endpoint, 400, "invalid_params", "media_type must be PHOTO.", "media_type not PHOTO"
            )
        post_mode = body.get("post_mode")
        if post_mode not in ("DIRECT_POST", "MEDIA_UPLOAD"):
            raise self._refuse(
                endpoint,
                400,
                "invalid_params",
                "post_mode must be DIRECT_POST or MEDIA_UPLOAD.",
                f"post_mode {post_mode!r}",
            )
        direct = post_mode == "DIRECT_POST"
        refused = self._state.require_scope(
            endpoint, token, SCOPE_VIDEO_PUBLISH if direct else SCOPE_VIDEO_UPLOAD
        )
        if refused is not None:
            return refused
        user = self._user(token)
        self._check_poster(endpoint, user, direct=direct)
        post_info = body.get("post_info", {})
        if not isinstance(post_info, dict):
            raise self._refuse(
                endpoint, 400, "invalid_params", "post_info is invalid.", "post_info not an object"
            )
        source_info = self._dict_field(endpoint, body, "source_info")
        self._check_text(endpoint, post_info, "title", MAX_PHOTO_TITLE_UNITS)
        self._check_text(endpoint, post_info, "description", MAX_PHOTO_DESCRIPTION_UNITS)
        self._check_bools(endpoint, post_info, _PHOTO_BOOLS)
        self._check_photo_source(endpoint, source_info)
        if direct:
            self._check_privacy(endpoint, user, post_info)
        with self._state.lock:
            self._check_caps(endpoint, user, direct=direct)
            if direct:
                self._check_creator_info_seen(endpoint, user)
                self._check_interactions(endpoint, user, post_info, video=False)
            publish = self._create(
                user=user,
                prefix="p_pub_url~v2" if direct else "p_inbox_url~v2",
                mode="photo",
                post_mode=str(post_mode),
                post_info=post_info,
                source_info=source_info,
                plan=None,
            )
        return self._init_reply(publish)

    def _check_photo_source(self, endpoint: str, source_info: dict[str, Any]) -> None:
        if source_info.get("source") != "PULL_FROM_URL":
            raise self._refuse(
                endpoint,
                400,
                "invalid_params",
                "Photo posts take source PULL_FROM_URL.",
                f"photo source {source_info.get('source')!r}",
            )
        images = source_info.get("photo_images")
        if not isinstance(images, list) or not 1 <= len(images) <= MAX_PHOTO_IMAGES:
            raise self._refuse(
                endpoint,
                400,
                "invalid_params",
                f"photo_images must hold 1 to {MAX_PHOTO_IMAGES} URLs.",
                "photo_images missing, empty or too many",
            )
        for url in images:
            self._check_url(endpoint, url, "photo_images")
        # tiktok-api.md §6: required (no default), a 0-based index into photo_images.
        index = source_info.get("photo_cover_index")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(images):
            raise self._refuse(
                endpoint,
                400,
                "invalid_params",
                "photo_cover_index is invalid.",
                f"photo_cover_index {index!r} missing or outside 0..{len(images) - 1}",
            )

    # -- status ---------------------------------------------------------------------------

    def status(self, request: Request) -> Reply:
        return self._run(self._status, request)

    def _status(self, request: Request) -> Reply:
        endpoint = "status"
        token = self._token(endpoint, request, SCOPE_VIDEO_PUBLISH, SCOPE_VIDEO_UPLOAD)
        body = self._json_body(endpoint, request)
        publish_id = body.get("publish_id")
        state = self._state
        with state.lock:
            publish = state.publishes.get(publish_id) if isinstance(publish_id, str) else None
            if publish is None:
                raise self._refuse(
                    endpoint,
                    400,
                    "invalid_publish_id",
                    "The publish_id does not exist.",
                    f"unknown publish_id {publish_id!r}",
                )
            if publish.open_id != token.open_id:
                raise self._refuse(
                    endpoint,
                    400,
                    "token_not_authorized_for_specified_publish_id",
                    "The token is not authorized for this publish_id.",
                    f"{token.open_id}'s token asked about {publish.open_id}'s publish",
                )
            self._advance(publish)
            data: dict[str, Any] = {
                "status": publish.status,
                "publicaly_available_post_id": list(publish.post_ids),
            }
            if publish.source == "FILE_UPLOAD":
                data["uploaded_bytes"] = publish.bytes_received
            else:
                data["downloaded_bytes"] = 0
            if publish.status == FAILED:
                data["fail_reason"] = publish.fail_reason
        return posting_ok(data, state.log_id())

    def _advance(self, publish: Publish) -> None:
        """One status fetch's worth of progress (called under the state lock)."""
        if publish.terminal:
            return
        if not publish.completed:
            expires = publish.url_expires_at
            if expires is not None and self._state.now() >= expires:
                publish.status, publish.fail_reason = FAILED, "internal"
            else:
                publish.status = PROCESSING_UPLOAD
            return
        if publish.polls_after_complete < self._config.processing_polls:
            publish.polls_after_complete += 1
            publish.status = (
                PROCESSING_UPLOAD if publish.source == "FILE_UPLOAD" else PROCESSING_DOWNLOAD
            )
            return
        if publish.planned_failure is not None:
            publish.status, publish.fail_reason = FAILED, publish.planned_failure
        elif publish.post_mode == "DIRECT_POST":
            publish.status = PUBLISH_COMPLETE
            if publish.post_info.get("privacy_level") == PUBLIC_TO_EVERYONE:
                publish.post_ids = [self._state.next_post_id()]
        else:
            publish.status = SEND_TO_USER_INBOX
