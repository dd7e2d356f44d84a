"""The run lock: one run per home at a time.

An OS lock (``fcntl.flock``) on ``run.lock`` in the home, not a marker file: the kernel drops it
when the holder exits however it exits (SIGKILL included), so a killed run never blocks the
next one. The holder writes its pid and start time into the file so that a second run can name
it in its message; the file's content is informative only, the lock is what counts.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from orchestrator.errors import RunLockedError, StoreError

LOCK_NAME = "run.lock"


@dataclass(frozen=True)
class LockHolder:
    """Who holds the lock, as the holder wrote it."""

    pid: int | None
    started_at: str | None
    command: str | None

    def describe(self) -> str:
        parts = []
        if self.pid is not None:
            parts.append(f"pid {self.pid}")
        if self.started_at:
            parts.append(f"started {self.started_at}")
        if self.command:
            parts.append(self.command)
        return ", ".join(parts) if parts else "unknown holder"


class RunLock:
    """Exclusive, non-blocking lock on a home folder; use as a context manager."""

    def __init__(self, home: Path, *, command: str = "run") -> None:
        self.path = home / LOCK_NAME
        self._command = command
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise RunLockedError naming the holder, at once."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open the run lock {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(
                f"another run holds the lock on {self.path.parent} ({holder.describe()}); "
                "nothing was sent",
                hint="wait for it to finish; a killed run releases the lock by itself",
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot lock {self.path}: {exc.strerror}") from exc
        info = {
            "pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": self._command,
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError as exc:
            # Closing the descriptor releases the lock: this run does not go on.
            os.close(fd)
            raise StoreError(
                f"cannot write the run lock {self.path}: {exc.strerror or exc}; nothing was sent",
                hint=f"free some disk space on the file system of {self.path.parent}",
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> LockHolder:
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw) if raw else {}
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict):
        info = {}
    pid = info.get("pid")
    started = info.get("started_at")
    command = info.get("command")
    return LockHolder(
        pid=pid if isinstance(pid, int) else None,
        started_at=started if isinstance(started, str) else None,
        command=command if isinstance(command, str) else None,
    )
