"""Progress events: how the upload engine says how many bytes moved, to whoever listens.

The engine reports byte deltas to a :class:`ProgressSubscriber`; it never prints. A negative
delta is a rewind: bytes reported earlier that the server did not keep (a chunk resent after a
failure, progress resynchronised from the server, an upload started over with a new init). The
sum of all deltas is therefore always the engine's best idea of the bytes TikTok holds plus the
bytes of the chunk in flight.

Terminal bars and plain log lines (SPEC §7) are built on this protocol elsewhere.
"""

from __future__ import annotations

from typing import Protocol


class ProgressSubscriber(Protocol):
    """Receives upload progress; called from the uploading thread, so keep it quick."""

    def on_progress(self, bytes_delta: int) -> None:
        """``bytes_delta`` more bytes were sent (negative: that many were taken back)."""
        ...


class NullProgress:
    """A subscriber that ignores progress."""

    def on_progress(self, bytes_delta: int) -> None:
        return None
