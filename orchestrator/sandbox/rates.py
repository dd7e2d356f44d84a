"""The per-user sliding rate windows of the Bearer-token endpoints (tiktok-api.md §8).

tiktok-api.md §8 counts "per user token". The windows here are keyed by the user (open_id),
not by the access-token string: a refresh issues a new string, and resetting the window then
would make the sandbox laxer than a TikTok that counts the user's grant across refreshes. Per
user is at least as strict under either reading.

TikTok counts every client using the token. Blame is narrower: a 429 is a violation when this
client's own requests fill the window, or when it sends again within a window of being
answered 429; a window filled by another client's requests is not its fault.

Must not: lock (the caller holds :attr:`SandboxState.lock`), read a clock (the caller passes
``clock.monotonic()``), or build replies.
"""

from __future__ import annotations

from collections import deque

from orchestrator.sandbox.config import (
    CREATOR_INFO_PER_MINUTE,
    INIT_PER_MINUTE,
    STATUS_PER_MINUTE,
    USER_INFO_PER_MINUTE,
)

RATE_WINDOW_SECONDS = 60.0

RATE_LIMITS = {
    "video_init": INIT_PER_MINUTE,
    "inbox_init": INIT_PER_MINUTE,
    "content_init": INIT_PER_MINUTE,
    "creator_info": CREATOR_INFO_PER_MINUTE,
    "status": STATUS_PER_MINUTE,
    "user_info": USER_INFO_PER_MINUTE,
}


class RateWindows:
    """Each (user, endpoint)'s requests of the last minute, and each client's last 429."""

    def __init__(self) -> None:
        # (open_id, endpoint) -> (monotonic time, client generation) of each request in it
        self._windows: dict[tuple[str, str], deque[tuple[float, int]]] = {}
        self._limited: dict[tuple[str, str, int], float] = {}  # last 429 per client generation

    def take(self, endpoint: str, open_id: str, client: int, now: float) -> tuple[bool, list[str]]:
        """Count one request at ``now``: whether the window was full (answer 429; the request
        is not counted), and the violations it shows (see the module docstring)."""
        limit = RATE_LIMITS.get(endpoint)
        if limit is None:
            return False, []
        violations = []
        window = self._windows.setdefault((open_id, endpoint), deque())
        while window and window[0][0] <= now - RATE_WINDOW_SECONDS:
            window.popleft()
        last_429 = self._limited.get((open_id, endpoint, client))
        if last_429 is not None and now < last_429 + RATE_WINDOW_SECONDS:
            violations.append(
                f"request for {open_id} within a minute of a 429 (the window was full)"
            )
        if len(window) >= limit:
            own = sum(1 for _, generation in window if generation == client)
            if own >= limit:
                violations.append(
                    f"rate limit exceeded for {open_id} ({limit} per minute per user)"
                )
            self._limited[(open_id, endpoint, client)] = now
            return True, violations
        window.append((now, client))
        return False, violations
