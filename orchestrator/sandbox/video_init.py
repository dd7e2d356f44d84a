"""The video inits: a direct post (``video_init``) and an inbox draft (``inbox_init``).

Both take a FILE_UPLOAD chunk plan or a verified PULL_FROM_URL (tiktok-api.md §4, §5); a
direct post also checks the title, switches, privacy level and the creator_info rule.

Must not: do I/O, or take the chunks (``upload.py`` does).
"""

from __future__ import annotations

from orchestrator.sandbox.config import SCOPE_VIDEO_PUBLISH, SCOPE_VIDEO_UPLOAD
from orchestrator.sandbox.init_checks import InitChecks
from orchestrator.sandbox.messages import Reply, Request
from orchestrator.sandbox.rules import MAX_CAPTION_UNITS

_VIDEO_BOOLS = (
    "disable_comment",
    "disable_duet",
    "disable_stitch",
    "brand_content_toggle",
    "brand_organic_toggle",
    "is_aigc",
)


class VideoInits(InitChecks):
    """video_init (direct) and inbox_init."""

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
