"""SIGKILL in the middle of group-committed journal writes: every write whose call returned is
in the database after reopening it, and the file is intact.

A child process runs many threads, each writing journal rows (``Journal.begin``, then a
``Failed`` for every other entry; URL entries are synced, file entries not) and printing an
entry's identity only once its calls have returned. The test kills the child with SIGKILL
after a random number of printed lines — no handler runs — then opens the store again.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.clock import ManualClock
from orchestrator.config import Settings
from orchestrator.store.journal import EntryState
from orchestrator.store.tokens import TokenStore

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")

THREADS = 16
BOUND = 60.0  # seconds a child may take to print its lines before the test fails

CHILD = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from orchestrator.clock import ManualClock
    from orchestrator.config import Settings
    from orchestrator.store.journal import EntryMeta, Journal
    from orchestrator.store.tokens import TokenStore
    from orchestrator.upload.events import Failed

    home, tag, threads = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    clock = ManualClock()
    store = TokenStore.open(Settings(home=home), clock=clock)
    journal = Journal(store.database, store.cipher, clock=clock, run_id=tag)
    printing = threading.Lock()

    def write(thread):
        for n in range(100_000):
            identity = f"{tag}-{thread}-{n}"
            kind = "video_url" if n % 3 else "file"
            meta = EntryMeta(identity, None, "u1", "direct", kind, "src", "digest", identity)
            journal.begin(meta)
            if n % 2:
                journal.record(identity, "u1", Failed("boom", "it failed", retryable=True))
            with printing:
                sys.stdout.write(f"{identity} {'failed' if n % 2 else 'initialising'}\\n")
                sys.stdout.flush()

    for thread in range(threads):
        threading.Thread(target=write, args=(thread,), daemon=True).start()
    threading.Event().wait()
    """
)


def note(reported: dict[str, str], line: str) -> None:
    """Keep a reported write; a line the kill cut short reports nothing."""
    if line.endswith("\n"):
        identity, state = line.split()
        reported[identity] = state


def kill_after(home: Path, tag: str, lines: int) -> dict[str, str]:
    """Run the child until it has printed ``lines`` returned writes, SIGKILL it; every write
    it reported (those printed after the count too), identity → state."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), tag, str(THREADS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    reported: dict[str, str] = {}
    try:
        assert child.stdout is not None
        for line in child.stdout:
            note(reported, line)
            if len(reported) >= lines:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=BOUND)
    for line in rest.splitlines(keepends=True):
        note(reported, line)
    assert child.returncode == -signal.SIGKILL
    assert len(reported) >= lines, "the child stopped writing before it was killed"
    return reported


def test_sigkill_during_group_commits_loses_no_returned_write(tmp_path: Path) -> None:
    """Killed at random points of concurrent writes, three times over the same home: every
    write whose call had returned is there, with its state, and integrity_check is ok."""
    home = tmp_path / "home"
    chooser = random.Random(14)
    reported: dict[str, str] = {}
    for round_ in range(3):
        reported.update(kill_after(home, f"r{round_}", chooser.randint(20, 400)))
        clock = ManualClock()
        with TokenStore.open(Settings(home=home), clock=clock) as store:
            (row,) = store.database.fetch_all("PRAGMA integrity_check")
            assert row[0] == "ok"
            states = {
                row["identity"]: row["state"]
                for row in store.database.fetch_all("SELECT identity, state FROM journal")
            }
        missing = sorted(set(reported) - set(states))
        assert missing == [], f"returned but not in the journal: {missing[:5]}"
        for identity, state in reported.items():
            assert states[identity] == EntryState(state).value, identity
