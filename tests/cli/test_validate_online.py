"""`validate --online`: each user's token, scopes and creator_info checked against the manifest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.sandbox import SandboxConfig, SandboxUser
from tests.support.run_support import Served, serve

USERS = (
    SandboxUser("open-public", "Public"),
    SandboxUser("open-private", "Private", private=True),
    SandboxUser(
        "open-strict",
        "Strict",
        comment_disabled=True,
        duet_disabled=True,
        max_video_post_duration_sec=1,
    ),
)


@pytest.fixture
def online(tmp_path: Path) -> Iterator[Served]:
    config = SandboxConfig(users=USERS, processing_polls=0)
    with serve(tmp_path, config, users=[user.open_id for user in USERS]) as opened:
        yield opened


def test_online_check_passes_a_manifest_the_creators_allow(online: Served) -> None:
    """Entries within every creator's settings: exit 0, one creator_info per user, no init."""
    clip, _ = online.clip("a.mp4")
    manifest = online.manifest(
        [
            {
                "user_id": "open-public",
                "video_path": clip.name,
                "privacy_level": "PUBLIC_TO_EVERYONE",
            },
            {"user_id": "open-public", "video_path": clip.name, "mode": "inbox"},
            {"user_id": "open-private", "video_path": clip.name, "privacy_level": "SELF_ONLY"},
        ]
    )
    result = online.invoke("validate", "--online", str(manifest))
    assert result.exit_code == 0, result.output
    assert "online: 2 users checked" in result.stdout
    assert online.sandbox.calls("creator_info") == 2
    assert online.sandbox.calls("video_init") + online.sandbox.calls("inbox_init") == 0
    assert online.sandbox.publishes() == []


def test_online_check_lists_every_creator_conflict_with_its_fix(online: Served) -> None:
    """A privacy level not offered, disabled interactions, a too-long video: all listed, exit 2."""
    clip, _ = online.clip("a.mp4")
    manifest = online.manifest(
        [
            {
                "user_id": "open-private",
                "video_path": clip.name,
                "privacy_level": "PUBLIC_TO_EVERYONE",
            },
            {"user_id": "open-strict", "video_path": clip.name},
        ]
    )
    result = online.invoke("validate", "--online", str(manifest))
    assert result.exit_code == 2, result.output
    assert "entries[0]: privacy_level PUBLIC_TO_EVERYONE is not offered" in result.output
    assert "FOLLOWER_OF_CREATOR" in result.output
    assert "the creator has comments disabled" in result.output
    assert "set disable_comment: true" in result.output
    assert "the creator has duets disabled" in result.output
    assert "this creator may post at most 1 s" in result.output
    assert online.sandbox.publishes() == []


def test_online_check_reports_users_without_tokens(online: Served) -> None:
    """A user the store does not know is a problem naming `auth login`, not a crash."""
    clip, _ = online.clip("a.mp4")
    manifest = online.manifest([{"user_id": "someone-else", "video_path": clip.name}])
    result = online.invoke("validate", "--online", str(manifest))
    assert result.exit_code == 2
    assert "user someone-else" in result.output
    assert "auth login" in result.output
    assert online.sandbox.calls("creator_info") == 0


def test_online_check_reports_a_revoked_user_and_checks_the_others(online: Served) -> None:
    """A user whose tokens TikTok revoked fails the check; the other user is still checked."""
    clip, _ = online.clip("a.mp4")
    online.sandbox.revoke_user_tokens("open-public")
    online.sandbox.expire_access_tokens("open-public")
    manifest = online.manifest(
        [
            {"user_id": "open-public", "video_path": clip.name},
            {"user_id": "open-private", "video_path": clip.name},
        ]
    )
    result = online.invoke("validate", "--online", str(manifest))
    assert result.exit_code == 2, result.output
    assert "user open-public" in result.output
    assert "open-private" not in result.output.split("error:", 1)[1]
    assert online.sandbox.calls("creator_info") >= 1


def test_offline_validate_sends_nothing_even_with_credentials(online: Served) -> None:
    """Without --online, validate makes no request even when the app is configured."""
    clip, _ = online.clip("a.mp4")
    manifest = online.manifest([{"user_id": "open-public", "video_path": clip.name}])
    result = online.invoke("validate", str(manifest))
    assert result.exit_code == 0, result.output
    assert online.sandbox.calls(None) == 0
