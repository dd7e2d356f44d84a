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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from orchestrator.clock import Clock, SystemClock
from orchestrator.outcomes import FAILURE_STATUSES, EntryStatus

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import ProgressColumn, Task, TaskID

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

LOG_EVERY_SECONDS = 10.0
"""Off a terminal, an upload in progress is logged at least this often (seconds)..."""
LOG_EVERY_FRACTION = 0.25
"""...and each time it passes another quarter of its bytes."""


@dataclass
class _Upload:
    """One upload as the log follows it."""

    total: int
    started_at: float
    sent: int = 0
    logged_at: float = 0.0
    logged_step: int = 0


class LogObserver:
    """Plain log lines for cron and CI: one when an entry starts, one every
    :data:`LOG_EVERY_SECONDS` or each quarter of its bytes (sent/total, rate, ETA), one at
    the end. Time comes from ``clock`` (tests pass a ManualClock)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._lock = threading.Lock()
        self._clock: Clock = clock or SystemClock()
        self._uploads: dict[int, _Upload] = {}

    def run_started(self, total_entries: int) -> None:
        _log.info(
            "%s to go through",
            plural(total_entries, "entry", "entries"),
            extra={"fields": {"entries": total_entries, "event": "run_started"}},
        )

    def entry_started(self, entry: Entry, total_bytes: int, *, polling: bool = False) -> None:
        now = self._clock.monotonic()
        with self._lock:
            self._uploads[entry.index] = _Upload(total_bytes, now, logged_at=now)
        size = f" ({_mib(total_bytes)})" if total_bytes else ""
        doing = "polling" if polling else "uploading" if total_bytes else "posting"
        _log.info(
            "%s: %s for %s%s",
            entry.location,
            doing,
            entry.user_id,
            size,
            extra={
                "fields": {
                    "entry": entry.index,
                    "id": entry.id,
                    "user_id": entry.user_id,
                    "total_bytes": total_bytes,
                    "polling": polling,
                    "event": "started",
                }
            },
        )

    def entry_progress(self, entry: Entry, bytes_delta: int) -> None:
        now = self._clock.monotonic()
        with self._lock:
            upload = self._uploads.get(entry.index)
            if upload is None or upload.total <= 0:
                return
            upload.sent = min(upload.total, max(0, upload.sent + bytes_delta))
            step = int(upload.sent / upload.total / LOG_EVERY_FRACTION)
            if step <= upload.logged_step and now - upload.logged_at < LOG_EVERY_SECONDS:
                return
            upload.logged_step = max(step, upload.logged_step)
            upload.logged_at = now
            sent, total, elapsed = upload.sent, upload.total, now - upload.started_at
        rate = sent / elapsed if elapsed > 0 else 0.0
        eta = (total - sent) / rate if rate > 0 else None
        _log.info(
            "%s: %s of %s sent (%d%%), %s/s, %s left",
            entry.location,
            _mib(sent),
            _mib(total),
            100 * sent // total,
            _mib(int(rate)),
            "?" if eta is None else f"{eta:.0f} s",
            extra={
                "fields": {
                    "entry": entry.index,
                    "id": entry.id,
                    "user_id": entry.user_id,
                    "bytes_sent": sent,
                    "total_bytes": total,
                    "bytes_per_second": round(rate),
                    "eta_seconds": None if eta is None else round(eta),
                    "event": "progress",
                }
            },
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
                    "id": entry.id,
                    "user_id": entry.user_id,
                    "status": result.status,
                    "publish_id": result.publish_id,
                    "code": None if result.error is None else result.error.code,
                    "log_id": None if result.error is None else result.error.log_id,
                    "event": "finished",
                }
            },
        )


class BarObserver(LogObserver):
    """Rich progress bars (one per active upload, one overall) on a terminal, plus the log.

    The overall bar counts entries (``2/3 entries``); each upload's bar counts bytes, with a
    rate that never goes below zero when a chunk is resent (the bar steps back, the rate
    does not count the step)."""

    def __init__(self, console: Console, total_entries: int | None = None) -> None:
        super().__init__()
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._bars = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            _amount_column(),
            _speed_column(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._overall = self._bars.add_task("entries", total=total_entries, unit="entries")
        self._tasks: dict[int, TaskID] = {}
        self._positions: dict[int, int] = {}

    def __enter__(self) -> BarObserver:
        self._bars.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bars.stop()

    def run_started(self, total_entries: int) -> None:
        self._bars.update(self._overall, total=total_entries)

    def entry_started(self, entry: Entry, total_bytes: int, *, polling: bool = False) -> None:
        with self._lock:
            self._positions[entry.index] = 0
            self._tasks[entry.index] = self._bars.add_task(
                f"{entry.location} {entry.user_id}", total=total_bytes or None, unit="bytes"
            )

    def entry_progress(self, entry: Entry, bytes_delta: int) -> None:
        with self._lock:
            task = self._tasks.get(entry.index)
            position = max(0, self._positions.get(entry.index, 0) + bytes_delta)
            self._positions[entry.index] = position
        if task is None:
            return
        if bytes_delta >= 0:
            self._bars.advance(task, bytes_delta)
        else:
            # update() records no speed sample for a step back: the rate stays >= 0.
            self._bars.update(task, completed=position)

    def entry_finished(self, entry: Entry, result: EntryResult) -> None:
        with self._lock:
            task = self._tasks.pop(entry.index, None)
            self._positions.pop(entry.index, None)
        if task is not None:
            self._bars.remove_task(task)
        self._bars.advance(self._overall, 1)
        super().entry_finished(entry, result)


def _amount_column() -> ProgressColumn:
    """``2/3 entries`` for the overall bar, ``1.0/5.0 MB`` for an upload's."""
    from rich.progress import DownloadColumn, ProgressColumn
    from rich.text import Text

    class AmountColumn(ProgressColumn):
        def __init__(self) -> None:
            super().__init__()
            self._bytes = DownloadColumn()

        def render(self, task: Task) -> Text:
            if task.fields.get("unit") == "entries":
                total = "?" if task.total is None else str(int(task.total))
                return Text(f"{int(task.completed)}/{total} entries", style="progress.download")
            return self._bytes.render(task)

    return AmountColumn()


def _speed_column() -> ProgressColumn:
    """An upload's rate (never negative); nothing for the overall bar."""
    from rich.progress import ProgressColumn, TransferSpeedColumn
    from rich.text import Text

    class SpeedColumn(ProgressColumn):
        def __init__(self) -> None:
            super().__init__()
            self._speed = TransferSpeedColumn()

        def render(self, task: Task) -> Text:
            if task.fields.get("unit") == "entries":
                return Text("")
            speed = task.finished_speed or task.speed
            if speed is None or speed <= 0:
                return Text("?", style="progress.data.speed")
            return self._speed.render(task)

    return SpeedColumn()


def plural(count: int, one: str, many: str) -> str:
    """``1 entry``, ``2 entries``, ``0 chunks``."""
    return f"{count} {one if count == 1 else many}"


def _mib(count: int) -> str:
    return f"{count / (1024 * 1024):.1f} MiB"
