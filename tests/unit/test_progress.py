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

from orchestrator.clock import ManualClock
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


def test_log_observer_logs_start_each_quarter_and_the_end(
    records: list[logging.LogRecord], entry: Entry
) -> None:
    """One line at the start, one per quarter of the bytes (not per chunk), one at the end."""
    observer = LogObserver(ManualClock())
    observer.run_started(1)
    observer.entry_started(entry, 200 * MIB)
    for _ in range(20):
        observer.entry_progress(entry, 10 * MIB)
    observer.entry_finished(entry, _result("published"))
    messages = [record.getMessage() for record in records]
    assert messages[0] == "1 entry to go through"
    assert messages[1] == "entries[0]: uploading for user-1 (200.0 MiB)"
    sent = [m for m in messages if " sent " in m]
    assert [m.split(" of ")[0] for m in sent] == [
        "entries[0]: 50.0 MiB",
        "entries[0]: 100.0 MiB",
        "entries[0]: 150.0 MiB",
        "entries[0]: 200.0 MiB",
    ]
    assert messages[-1] == "entries[0]: published (pub-1)"


def test_log_observer_logs_every_10_seconds_with_rate_and_eta(
    records: list[logging.LogRecord], entry: Entry
) -> None:
    """A slow upload is logged every ~10 s (clock injected): bytes sent/total, rate, ETA."""
    clock = ManualClock()
    observer = LogObserver(clock)
    observer.entry_started(entry, 40 * MIB)
    for _ in range(6):  # 1 MiB every 4 s: 0.25 MiB/s
        clock.advance(4)
        observer.entry_progress(entry, MIB)
    sent = [r for r in records if r.getMessage().endswith("left")]
    assert [r.getMessage() for r in sent] == [
        "entries[0]: 3.0 MiB of 40.0 MiB sent (7%), 0.2 MiB/s, 148 s left",
        "entries[0]: 6.0 MiB of 40.0 MiB sent (15%), 0.2 MiB/s, 136 s left",
    ]
    fields = sent[0].__dict__["fields"]
    assert fields["bytes_sent"] == 3 * MIB
    assert fields["total_bytes"] == 40 * MIB
    assert fields["bytes_per_second"] == MIB // 4
    assert fields["eta_seconds"] == 148


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
    assert re.match(r"entries +━* +0/2 entries ", lines[0]), lines[0]  # counted as entries
    assert "bytes" not in lines[0]
    assert "MB" not in lines[0]
    # entries[0]: a bar partly filled (5 of its 10 MiB after the rewind) ...
    assert re.match(r"entries\[0\] user-1 ━+[╸ ]+ +5\.2/10\.5 MB ", lines[1]), lines[1]
    # ... entries[1]: an empty bar and its own size.
    assert re.match(r"entries\[1\] user-2 +0\.0/21\.0 MB ", lines[2]), lines[2]
    # At the end: one frame with the overall bar alone (2/2), then the cursor comes back and the
    # frame's lines are erased (transient bars leave the terminal as they found it).
    end = screen.getvalue()[len(frame) :]
    assert re.search(r"entries +━+ 2/2 entries[^\n]*\n\x1b\[\?25h\r(\x1b\[1A\x1b\[2K)+$", end), (
        repr(end)
    )
    assert "entries[0]" not in end.rsplit("\r\x1b[2K", 1)[1]


def test_bar_observer_rate_never_goes_negative_when_a_chunk_is_resent(entry: Entry) -> None:
    """A resent chunk steps the bar back; the rate column never shows a negative speed."""
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, color_system=None, width=120)
    with BarObserver(console) as bars:
        bars.run_started(1)
        bars.entry_started(entry, 40 * MIB)
        bars.entry_progress(entry, 30 * MIB)
        bars.entry_progress(entry, -20 * MIB)  # the chunk is resent
        bars._bars.refresh()
        frame = screen.getvalue().rsplit("\x1b[2K", 1)[1]
        bars.entry_finished(entry, _result("published"))
    assert "-" not in re.sub(r"entries\[0\]|user-1|-:--:--", "", frame), frame
