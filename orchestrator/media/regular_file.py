"""The file itself: insist on a non-empty regular file of at most 4 GB, and open it for reading
without ever blocking.

What this module must not do: open anything that is not a regular file (a FIFO would block the
run, a device could be endless); it decides by ``stat``, never by opening.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from orchestrator.errors import MediaError
from orchestrator.media.model import MAX_VIDEO_BYTES


def check_regular_file(path: Path) -> os.stat_result:
    """``os.stat`` the path and insist on a non-empty regular file of at most 4 GB.

    Uses stat, never open, to decide: opening a FIFO for reading blocks until a writer appears.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise MediaError(
            "file not found",
            hint="check the path; a relative path is resolved against the manifest's folder",
        ) from None
    except NotADirectoryError:
        raise MediaError(
            "file not found (a part of the path is a file, not a folder)",
            hint="check the path; a relative path is resolved against the manifest's folder",
        ) from None
    except PermissionError:
        raise MediaError(
            "cannot be reached (permission denied on a folder in the path)",
            hint="give the user running the orchestrator access to the folder",
        ) from None
    except OSError as exc:
        raise MediaError(f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise MediaError(
            "is a folder, not a video file", hint="point it at the video file inside the folder"
        )
    if stat.S_ISFIFO(mode):
        raise MediaError(
            "is a named pipe (FIFO), not a regular file",
            hint="write the video to a regular file first: uploads need its size up front",
        )
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise MediaError("is a device, not a regular file", hint="point it at a video file")
    if stat.S_ISSOCK(mode):
        raise MediaError("is a socket, not a regular file", hint="point it at a video file")
    if not stat.S_ISREG(mode):
        raise MediaError("is not a regular file", hint="point it at a video file")
    if info.st_size == 0:
        raise MediaError("is empty (0 bytes)", hint="export or copy the video again")
    if info.st_size > MAX_VIDEO_BYTES:
        raise MediaError(
            f"is {info.st_size:,} bytes; TikTok accepts at most {MAX_VIDEO_BYTES:,} (4 GB)",
            hint="shorten it or encode it at a lower bitrate",
        )
    return info


def open_regular(path: Path) -> BinaryIO:
    """Open for reading without ever blocking on a FIFO, and re-check the type on the open file
    (the path could have been swapped between stat and open)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    except PermissionError:
        raise MediaError(
            "cannot be read (permission denied)",
            hint="make it readable by the user running the orchestrator",
        ) from None
    except FileNotFoundError:
        raise MediaError("file not found") from None
    except OSError as exc:
        raise MediaError(f"cannot be opened ({exc.strerror or type(exc).__name__})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise MediaError("is not a regular file", hint="point it at a video file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
