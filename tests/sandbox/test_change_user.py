"""Sandbox.change_user: an account's settings change on TikTok's side while tokens stay valid."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.clock import ManualClock
from orchestrator.sandbox import SandboxConfig, SandboxUser
from tests.support.sandbox_api import running_api


def test_creator_info_answers_from_the_changed_settings(clock: ManualClock) -> None:
    """After the change, creator_info (same token) reports the new limit and disabled
    interactions; the other fields are kept."""
    user = SandboxUser("creator", "Creator")
    with running_api(SandboxConfig(users=(user,)), clock) as api:
        token = api.token("creator")
        assert api.creator_info(token).json()["data"]["max_video_post_duration_sec"] == 600
        api.sandbox.change_user(
            dataclasses.replace(user, max_video_post_duration_sec=3, duet_disabled=True)
        )
        data = api.creator_info(token).json()["data"]
        assert data["max_video_post_duration_sec"] == 3
        assert data["duet_disabled"] is True
        assert data["creator_nickname"] == "Creator"


def test_only_a_configured_user_can_change(clock: ManualClock) -> None:
    """An unknown open_id is refused, naming it."""
    config = SandboxConfig(users=(SandboxUser("creator", "Creator"),))
    with (
        running_api(config, clock) as api,
        pytest.raises(ValueError, match="'stranger' is not a sandbox user"),
    ):
        api.sandbox.change_user(SandboxUser("stranger", "Stranger"))
