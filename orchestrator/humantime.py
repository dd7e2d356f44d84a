"""Instants and durations as people read them, the same on the command line and the web pages.

A leaf: pure formatting of POSIX timestamps and second counts, in UTC so that a cron log, a CI
log and a browser anywhere agree. It must not read the clock: callers pass ``now``.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["duration_text", "expiry_text", "utc_text"]


def utc_text(timestamp: float) -> str:
    """``2026-05-01 18:00 UTC``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration_text(seconds: float) -> str:
    """A short duration, its sign dropped: 3d 4h, 2h 5m, 45m, 30s (whole days from a week)."""
    seconds = abs(int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days >= 7:
        return f"{days}d"
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def expiry_text(timestamp: float, now: float) -> str:
    """An instant and how far it is from ``now``: ``… (in 3d 4h)`` or ``… (2h 5m ago)``."""
    when = utc_text(timestamp)
    if timestamp > now:
        return f"{when} (in {duration_text(timestamp - now)})"
    return f"{when} ({duration_text(now - timestamp)} ago)"
