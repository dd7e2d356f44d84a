"""The run lock: one run per home, released by the OS when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.errors import RunLockedError
from orchestrator.store.lock import RunLock

_HOLDER = """
import sys, time
from pathlib import Path
from orchestrator.store.lock import RunLock
lock = RunLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def _start_holder(home: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_lock_in_another_process_is_refused_naming_the_holder(tmp_path: Path) -> None:
    """While one process holds the lock, another gets RunLockedError with the holder's pid."""
    proc = _start_holder(tmp_path)
    try:
        with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.stdout is not None
        proc.stdout.close()


def test_sigkilled_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    """After the holder is SIGKILLed, the next run takes the lock at once."""
    proc = _start_holder(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.stdout is not None
    proc.stdout.close()
    started = time.monotonic()
    with RunLock(tmp_path):
        pass
    assert time.monotonic() - started < 1.0


def test_lock_is_reusable_after_release(tmp_path: Path) -> None:
    """A released lock can be taken again by the same process."""
    with RunLock(tmp_path):
        pass
    with RunLock(tmp_path) as lock:
        assert lock.path.exists()
