"""Instants and durations as the CLI and the web pages write them (orchestrator/humantime.py)."""

from __future__ import annotations

import pytest

from orchestrator.humantime import duration_text, expiry_text, utc_text

MAY_1_18H = 1_777_658_400.0  # 2026-05-01 18:00:00 UTC


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (-45, "45s"),
        (60 * 45, "45m"),
        (3600 * 2 + 60 * 5, "2h 5m"),
        (86400 * 3 + 3600 * 4 + 59, "3d 4h"),
        (86400 * 9 + 3600 * 4, "9d"),
    ],
)
def test_duration_text(seconds: float, text: str) -> None:
    """A duration is its two largest units, whole days only from a week on, sign dropped."""
    assert duration_text(seconds) == text


def test_expiry_text_says_which_side_of_now() -> None:
    """An instant in the future reads "in …", one in the past "… ago", both in UTC."""
    assert utc_text(MAY_1_18H) == "2026-05-01 18:00 UTC"
    assert expiry_text(MAY_1_18H, MAY_1_18H - 7200) == "2026-05-01 18:00 UTC (in 2h 0m)"
    assert expiry_text(MAY_1_18H, MAY_1_18H + 90) == "2026-05-01 18:00 UTC (1m ago)"
