"""The checks the init endpoints share: who posts, post_info fields, sources, caps; and the
publish an accepted init creates.

Each check raises :class:`~orchestrator.sandbox.endpoint.Refusal` with TikTok's answer
(tiktok-api.md §4 to §6), and records as a violation what TikTok's integration rules forbid
although TikTok accepts it (no creator_info before a direct post, a disabled interaction
switched on, a cap refusal the client had been told of).

Caps count every init accepted in the last 24 hours (direct posts; inbox shares not yet
posted and not FAILED). An unaudited app's limits apply to direct posts (video and photo).

Must not: do I/O.
"""

from __future__ import annotations

from typing import Any

from orchestrator.sandbox.config import SELF_ONLY, SandboxUser
from orchestrator.sandbox.endpoint import PostingEndpoint
from orchestrator.sandbox.messages import Reply, posting_ok
from orchestrator.sandbox.rules import (
    STRICT_MAX_VIDEO_SIZE,
    ChunkPlan,
    check_chunk_plan,
    is_https_url,
    utf16_units,
)
from orchestrator.sandbox.state import PROCESSING_DOWNLOAD, Publish


class InitChecks(PostingEndpoint):
    """Validation and publish creation shared by the video, inbox and photo inits."""

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
