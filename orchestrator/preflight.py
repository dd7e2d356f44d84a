"""What the creator's settings allow, checked before a byte is sent (and by ``validate --online``).

TikTok's integration rules require querying creator_info before posting and honouring it: the
privacy level must be one the creator is offered, an interaction the creator disabled must stay
disabled, and the video must not be longer than the creator may post. :func:`creator_problems`
is that rule as a pure function; the scheduler applies it per entry before uploading, and
:func:`check_online` applies it to a whole manifest for ``validate --online``, together with
each user's token and granted scopes. Nothing here prints or writes the journal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.clock import Clock
from orchestrator.config import Settings
from orchestrator.errors import ApiError, AuthError, OrchestratorError, UnsafeConnectionError
from orchestrator.manifest import Entry, Manifest, Mode
from orchestrator.outcomes import ErrorInfo
from orchestrator.store.tokens import TokenProvider, TokenStore
from orchestrator.tiktok.client import CreatorInfo, TikTokClient
from orchestrator.tiktok.oauth import OAuthClient
from orchestrator.transport import HttpTransport, Transport

SCOPE_FOR_MODE = {Mode.DIRECT: "video.publish", Mode.INBOX: "video.upload"}
"""The scope each posting mode needs (tiktok-api.md §2)."""


def creator_problems(entry: Entry, creator: CreatorInfo) -> ErrorInfo | None:
    """Why ``entry`` breaks the creator's settings, with the fix, or None if it does not."""
    problems: list[str] = []
    fixes: list[str] = []
    if entry.mode is Mode.DIRECT and str(entry.privacy_level) not in creator.privacy_level_options:
        offered = ", ".join(creator.privacy_level_options)
        problems.append(
            f"privacy_level {entry.privacy_level} is not offered to this creator "
            f"(offered: {offered})"
        )
        fixes.append(f"set privacy_level to one of {offered}")
    if creator.comment_disabled and not entry.disable_comment:
        problems.append("the creator has comments disabled")
        fixes.append("set disable_comment: true")
    if not entry.is_photo:
        if creator.duet_disabled and not entry.disable_duet:
            problems.append("the creator has duets disabled")
            fixes.append("set disable_duet: true")
        if creator.stitch_disabled and not entry.disable_stitch:
            problems.append("the creator has stitches disabled")
            fixes.append("set disable_stitch: true")
        duration = entry.duration_s
        limit = creator.max_video_post_duration_sec
        if duration is not None and limit and duration > limit:
            problems.append(
                f"the video lasts {duration:.1f} s; this creator may post at most {limit} s"
            )
            fixes.append(f"cut the video to {limit} s or less")
    if not problems:
        return None
    return ErrorInfo(
        "creator_info_mismatch",
        "; ".join(problems),
        retryable=False,
        hint="; ".join(fixes),
    )


@dataclass(frozen=True)
class OnlineCheck:
    """What ``validate --online`` found: problems (each with its location and fix) and notes."""

    problems: tuple[str, ...]
    notes: tuple[str, ...]
    users_checked: int


def check_online(
    settings: Settings,
    manifest: Manifest,
    *,
    clock: Clock,
    transport_factory: Callable[[], Transport] = HttpTransport,
) -> OnlineCheck:
    """Check each user's token, scopes and creator_info against the manifest's entries.

    A stale token is refreshed, as a run would (that keeps it alive; the rotated refresh token is
    stored). One creator_info query per user. Sends no init and posts nothing. An
    UnsafeConnectionError (plain HTTP off the machine, a certificate that does not verify) is
    raised, as it stops a run, rather than noted for each user.
    """
    problems: list[str] = []
    notes: list[str] = []
    by_user: dict[str, list[Entry]] = {}
    for entry in manifest.entries:
        by_user.setdefault(entry.user_id, []).append(entry)
    with (
        TokenStore.open(settings, clock=clock, create=False) as store,
        contextlib.closing(transport_factory()) as transport,
    ):
        tokens = TokenProvider(
            store, OAuthClient.from_settings(settings, transport, clock), clock=clock
        )
        client = TikTokClient(settings.api_base, transport, tokens, clock=clock)
        for user_id, entries in by_user.items():
            where = ", ".join(entry.location for entry in entries[:3]) + (
                f" and {len(entries) - 3} more" if len(entries) > 3 else ""
            )
            stored = store.get_user(user_id)
            if stored is None:
                problems.append(
                    f"user {user_id} ({where}): not in the token store; "
                    f"fix: run `tiktok-orchestrator auth login` as that user"
                )
                continue
            needed = {SCOPE_FOR_MODE[entry.mode] for entry in entries}
            missing = stored.missing_scopes(needed)
            if missing:
                problems.append(
                    f"user {user_id} ({where}): scopes not granted: {', '.join(sorted(missing))}; "
                    "fix: run `tiktok-orchestrator auth login` and grant them"
                )
            try:
                tokens.access_token(user_id)
                creator = client.creator_info(user_id)
            except AuthError as exc:
                problems.append(
                    f"user {user_id} ({where}): {exc}; fix: {exc.hint or 'sign in again'}"
                )
                continue
            except ApiError as exc:
                if exc.defer:
                    notes.append(
                        f"user {user_id}: TikTok says the creator cannot post now ({exc.code}); "
                        "a run would defer these entries"
                    )
                else:
                    problems.append(
                        f"user {user_id} ({where}): {exc}"
                        + (f"; fix: {exc.hint}" if exc.hint else "")
                    )
                continue
            except UnsafeConnectionError:
                raise
            except OrchestratorError as exc:
                problems.append(f"user {user_id}: could not be checked: {exc}")
                continue
            for entry in entries:
                problem = creator_problems(entry, creator)
                if problem is not None:
                    problems.append(f"{entry.location}: {problem.message}; fix: {problem.hint}")
    return OnlineCheck(tuple(problems), tuple(notes), len(by_user))
