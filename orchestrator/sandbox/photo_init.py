"""The photo init (``content_init``): a direct post or an inbox draft of 1 to 35 images.

Photos are always PULL_FROM_URL from a verified prefix, with a required cover index
(tiktok-api.md §6); the scope depends on the post mode.

Must not: do I/O.
"""

from __future__ import annotations

from typing import Any

from orchestrator.sandbox.config import SCOPE_VIDEO_PUBLISH, SCOPE_VIDEO_UPLOAD
from orchestrator.sandbox.init_checks import InitChecks
from orchestrator.sandbox.messages import Reply, Request
from orchestrator.sandbox.rules import (
    MAX_PHOTO_DESCRIPTION_UNITS,
    MAX_PHOTO_IMAGES,
    MAX_PHOTO_TITLE_UNITS,
)

_PHOTO_BOOLS = ("disable_comment", "auto_add_music", "brand_content_toggle", "brand_organic_toggle")


class PhotoInit(InitChecks):
    """content_init with media_type PHOTO."""

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
