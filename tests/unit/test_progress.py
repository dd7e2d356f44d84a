"""Run observers: plain log lines for cron and CI, bars on a terminal."""

from __future__ import annotations

import dataclasses
import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.manifest import Entry, load_manifest
from orchestrator.outcomes import ErrorInfo
from orchestrator.progress import BarObserver, LogObserver
from orchestrator.report import EntryResult
from tests.support.run_support import make_clip, write_manifest

MIB = 1024 * 1024


@pytest.fixture
def entry(tmp_path: Path) -> Entry:
    """A real manifest entry (loaded, so it follows whatever fields an Entry has)."""
    clip, _ = make_clip(tmp_path, "a.mp4")
    manifest = write_manifest(
        tmp_path, [{"id": "launch", "user_id": "user-1", "video_path": clip.name}]
    )
    return load_manifest(manifest).entries[0]


def _result(status: str, error: ErrorInfo | None = None) -> EntryResult:
    return EntryResult(0, "launch", "user-1", "a.mp4", "direct", status, "pub-1", error=error)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """What the run's logger emits (captured on the logger itself: the CLI's logging setup
    stops propagation to the root logger)."""
    logger = logging.getLogger("orchestrator.run")
    handler = _Records()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_log_observer_logs_start_every_64_mib_and_the_end(
    records: list[logging.LogRecord], entry: Entry
) -> None:
    """One line at the start, one per 64 MiB (not per chunk), one with the outcome."""
    observer = LogObserver()
    observer.run_started(1)
    observer.entry_started(entry, 200 * MIB)
    for _ in range(20):
        observer.entry_progress(entry, 10 * MIB)
    observer.entry_finished(entry, _result("published"))
    messages = [record.getMessage() for record in records]
    assert messages[0] == "1 entry to go through"
    assert messages[1] == "entries[0]: uploading for user-1 (200.0 MiB)"
    assert sum("sent" in m for m in messages) == 2  # at 70 and 140 MiB; then the outcome
    assert messages[-1] == "entries[0]: published (pub-1)"


def test_log_observer_warns_with_the_error_of_a_failed_entry(
    records: list[logging.LogRecord], entry: Entry
) -> None:
    """A failed entry is a warning naming its code and message."""
    LogObserver().entry_finished(entry, _result("failed", ErrorInfo("spam_risk_text", "refused")))
    (record,) = records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "entries[0]: failed: spam_risk_text: refused"


def _second_entry(entry: Entry) -> Entry:
    return dataclasses.replace(entry, index=1, location="entries[1]", user_id="user-2")


def test_bar_observer_draws_bars_on_a_terminal_and_clears_them(entry: Entry) -> None:
    """On a terminal: a bar per active upload (its entry, user, bytes sent of its size) under an
    overall bar counting entries; when the run ends the last frame is the overall bar alone,
    and it is erased."""
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, color_system=None, width=100)
    other = _second_entry(entry)
    with BarObserver(console) as bars:
        bars.run_started(2)
        bars.entry_started(entry, 10 * MIB)
        bars.entry_progress(entry, 6 * MIB)
        bars.entry_progress(entry, -1 * MIB)  # a rewind is drawn too: 5 MiB held
        bars.entry_started(other, 20 * MIB)  # adding a bar redraws the frame
        frame = screen.getvalue()
        bars.entry_finished(entry, _result("published"))
        bars.entry_finished(other, _result("published"))
    lines = frame.rsplit("\x1b[2K", 1)[1].splitlines()  # the frame drawn last
    assert len(lines) == 3
    assert re.match(r"entries +0/2 ", lines[0])  # overall: no entry finished yet
    # entries[0]: a bar partly filled (5 of its 10 MiB after the rewind) ...
    assert re.match(r"entries\[0\] user-1 ━+[╸ ]+ +5\.2/10\.5 MB ", lines[1]), lines[1]
    # ... entries[1]: an empty bar and its own size.
    assert re.match(r"entries\[1\] user-2 +0\.0/21\.0 MB ", lines[2]), lines[2]
    # At the end: one frame with the overall bar alone (2/2), then the cursor comes back and the
    # frame's lines are erased (transient bars leave the terminal as they found it).
    end = screen.getvalue()[len(frame) :]
    assert re.search(r"entries +━+ 2/2 [^\n]*\n\x1b\[\?25h\r(\x1b\[1A\x1b\[2K)+$", end), repr(end)
    assert "entries[0]" not in end.rsplit("\r\x1b[2K", 1)[1]
