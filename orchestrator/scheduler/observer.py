"""Where a run reports what it does as it goes: the :class:`RunObserver` interface the CLI
implements (bars or log lines), and :class:`NullObserver`, which shows nothing."""

from __future__ import annotations

from typing import Protocol

from orchestrator.manifest import Entry
from orchestrator.report import EntryResult


class RunObserver(Protocol):
    """Where a run reports what it does (the CLI shows it as bars or log lines).

    Called from the worker threads: implementations must be thread-safe and quick.
    """

    def run_started(self, total_entries: int) -> None: ...

    def entry_started(self, entry: Entry, total_bytes: int, *, polling: bool = False) -> None:
        """``entry`` begins: ``total_bytes`` to upload, or ``polling`` (all sent before)."""
        ...

    def entry_progress(self, entry: Entry, bytes_delta: int) -> None: ...

    def entry_finished(self, entry: Entry, result: EntryResult) -> None: ...


class NullObserver:
    """An observer that shows nothing (library use, benchmarks)."""

    def run_started(self, total_entries: int) -> None:
        return None

    def entry_started(self, entry: Entry, total_bytes: int, *, polling: bool = False) -> None:
        return None

    def entry_progress(self, entry: Entry, bytes_delta: int) -> None:
        return None

    def entry_finished(self, entry: Entry, result: EntryResult) -> None:
        return None
