"""Progress events: how the upload engine says how many bytes moved, to whoever listens.

The engine reports byte deltas to a :class:`ProgressSubscriber`; it never prints. A negative
delta is a rewind: bytes reported earlier that the server did not keep (a chunk resent after a
failure, progress resynchronised from the server, an upload started over with a new init). The
sum of all deltas is therefore always the engine's best idea of the bytes TikTok holds plus the
bytes of the chunk in flight.

A run's observers live here too: :class:`LogObserver` (plain log lines, for cron and CI, and
JSON lines with ``--log-format json``) and :class:`BarObserver` (rich bars, only on a terminal).
Nothing here prints directly: the log goes through ``logging``, the bars to the console the CLI
hands in.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Protocol

from orchestrator.outcomes import FAILURE_STATUSES, EntryStatus

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

    from orchestrator.manifest import Entry
    from orchestrator.report import EntryResult


class ProgressSubscriber(Protocol):
    """Receives upload progress; called from the uploading thread, so keep it quick."""

    def on_progress(self, bytes_delta: int) -> None:
        """``bytes_delta`` more bytes were sent (negative: that many were taken back)."""
        ...


class NullProgress:
    """A subscriber that ignores progress."""

    def on_progress(self, bytes_delta: int) -> None:
        return None


# -- what a run shows: bars on a terminal, log lines elsewhere ----------------------------------
#
# The scheduler reports to a RunObserver (entry started, bytes moved, entry finished). These two
# observers are the CLI's choices; both are thread-safe because users upload in parallel.

_log = logging.getLogger("orchestrator.run")

_LOG_EVERY_BYTES = 64 * 1024 * 1024


class LogObserver:
    """Plain log lines for cron and CI: one when an entry starts, every 64 MiB, one at the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[int, int] = {}
        self._logged: dict[int, int] = {}
        self._totals: dict[int, int] = {}

    def run_started(self, total_entries: int) -> None:
        _log.info(
            "%d entr%s to go through",
            total_entries,
            "y" if total_entries == 1 else "ies",
            extra={"fields": {"entries": total_entries, "event": "run_started"}},
        )

    def entry_started(self, entry: Entry, total_bytes: int) -> None:
        with self._lock:
            self._sent[entry.index] = 0
            self._logged[entry.index] = 0
            self._totals[entry.index] = total_bytes
        size = f" ({_mib(total_bytes)})" if total_bytes else ""
        _log.info(
            "%s: %s for %s%s",
            entry.location,
            "uploading" if total_bytes else "posting",
            entry.user_id,
            size,
            extra={"fields": {"entry": entry.index, "user_id": entry.user_id, "event": "started"}},
        )

    def entry_progress(self, entry: Entry, bytes_delta: int) -> None:
        with self._lock:
            sent = max(0, self._sent.get(entry.index, 0) + bytes_delta)
            self._sent[entry.index] = sent
            if sent - self._logged.get(entry.index, 0) < _LOG_EVERY_BYTES:
                return
            self._logged[entry.index] = sent
            total = self._totals.get(entry.index, 0)
        _log.info(
            "%s: %s of %s sent",
            entry.location,
            _mib(sent),
            _mib(total),
            extra={"fields": {"entry": entry.index, "bytes": sent, "event": "progress"}},
        )

    def entry_finished(self, entry: Entry, result: EntryResult) -> None:
        detail = ""
        if result.error is not None and result.status is not EntryStatus.PLANNED:
            detail = f": {result.error.code}: {result.error.message}"
        elif result.error is not None:
            detail = f": {result.error.message}"
        elif result.publish_id:
            detail = f" ({result.publish_id})"
        level = logging.WARNING if result.status in FAILURE_STATUSES else logging.INFO
        _log.log(
            level,
            "%s: %s%s",
            entry.location,
            result.status,
            detail,
            extra={
                "fields": {
                    "entry": entry.index,
                    "user_id": entry.user_id,
                    "status": result.status,
                    "publish_id": result.publish_id,
                    "event": "finished",
                }
            },
        )


class BarObserver(LogObserver):
    """Rich progress bars (one per active upload, one overall) on a terminal, plus the log."""

    def __init__(self, console: Console, total_entries: int | None = None) -> None:
        super().__init__()
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bars = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._overall = self._bars.add_task("entries", total=total_entries)
        self._tasks: dict[int, TaskID] = {}

    def __enter__(self) -> BarObserver:
        self._bars.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bars.stop()

    def run_started(self, total_entries: int) -> None:
        self._bars.update(self._overall, total=total_entries)

    def entry_started(self, entry: Entry, total_bytes: int) -> None:
        with self._lock:
            self._tasks[entry.index] = self._bars.add_task(
                f"{entry.location} {entry.user_id}", total=total_bytes or None
            )

    def entry_progress(self, entry: Entry, bytes_delta: int) -> None:
        with self._lock:
            task = self._tasks.get(entry.index)
        if task is not None:
            self._bars.advance(task, bytes_delta)

    def entry_finished(self, entry: Entry, result: EntryResult) -> None:
        with self._lock:
            task = self._tasks.pop(entry.index, None)
        if task is not None:
            self._bars.remove_task(task)
        self._bars.advance(self._overall, 1)
        super().entry_finished(entry, result)


def _mib(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MiB"
