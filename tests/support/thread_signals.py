"""A signal aimed at one thread of a child process: where the kernel may put a Ctrl-C.

A process-directed SIGINT goes to whichever thread the kernel picks; Python then runs its handler
in the main thread only, between bytecodes. Sending it to another thread on purpose (Linux's
``tgkill``) shows whether a command's wait notices a Ctrl-C it did not receive itself.
"""

from __future__ import annotations

import ctypes
import os
import sys

_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None

CAN_SIGNAL_THREADS = _LIBC is not None and hasattr(_LIBC, "tgkill")
"""Linux with a C library that has ``tgkill`` (glibc 2.30+, musl)."""


def other_threads(pid: int) -> list[int]:
    """The thread ids of process ``pid`` other than its main thread."""
    return sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task") if int(tid) != pid)


def signal_thread(pid: int, tid: int, signum: int) -> None:
    """Send ``signum`` to thread ``tid`` of process ``pid``, and to no other thread."""
    assert _LIBC is not None
    if _LIBC.tgkill(pid, tid, signum) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"tgkill({pid}, {tid}, {signum}): {os.strerror(errno)}")
