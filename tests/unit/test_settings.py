"""RunSettings: every tunable of a run in one object, with units, validated on construction."""

from __future__ import annotations

import pytest

from orchestrator.settings import RunSettings
from orchestrator.tiktok.chunks import DEFAULT_CHUNK, MIN_CHUNK
from orchestrator.transport import Timeouts


def test_run_settings_hold_every_tunable_once_and_validate_them() -> None:
    """One object: the chunk size falls back to TikTok's largest, and bad values are refused
    on construction, the engine's and the run's alike."""
    assert RunSettings().preferred_chunk_size == DEFAULT_CHUNK
    assert RunSettings(chunk_size=MIN_CHUNK).preferred_chunk_size == MIN_CHUNK
    with pytest.raises(ValueError, match="budget"):
        RunSettings(budget_retries=-1)
    with pytest.raises(ValueError, match="back off"):
        RunSettings(poll_factor=0.5)
    with pytest.raises(ValueError, match="poll_timeout"):
        RunSettings(poll_timeout=-1)
    with pytest.raises(ValueError, match="lease"):
        RunSettings(lease=0)


def test_a_chunk_put_gets_a_deadline_that_grows_with_its_length() -> None:
    """A chunk PUT is abandoned after max(chunk_min_deadline, length / chunk_min_rate) s."""
    settings = RunSettings(chunk_min_rate=1_000_000.0, chunk_min_deadline=60.0)
    assert settings.chunk_timeouts(1_000_000) == Timeouts(connect=10.0, read=60.0, total=60.0)
    assert settings.chunk_timeouts(64_000_000).total == 64.0
