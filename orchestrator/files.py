"""Writing files atomically: the one place that does it.

A report or a key file is written to a temporary name in the same folder, flushed to disk and
renamed into place, so a reader (cron, CI, a second run) sees the old file or the new one, never
half of one. If the target is a symbolic link, the link itself is replaced by the new file: the
orchestrator never writes through a link to wherever it points.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from orchestrator.errors import FileWriteError


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` via a temp file and a rename, creating parent folders."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise FileWriteError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint="check that the folder exists and is writable",
        ) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise FileWriteError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint="free some disk space or choose another path; nothing else was changed",
        ) from exc
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    # The rename is durable only once the folder entry is on disk; best effort on systems
    # that cannot open a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
