"""Scheduled faults: what goes wrong, on which endpoint, on which call.

A :class:`Fault` is a value; a :class:`FaultSchedule` holds them and answers "which fault, if
any, applies to call N of endpoint E" (thread-safe). Executing a fault on a socket is the
server's job; this module does no I/O.

Kinds:

``status``
    Answer ``status`` with ``error_code`` in the endpoint's own envelope (posting envelope, OAuth
    flat JSON, upload). The request is not processed (an upload chunk is read and discarded).
``reset``
    Reset the connection (RST) before reading the body; no answer, no state change.
``reset_mid_body``
    Read ``after_bytes`` of the body, then reset; nothing is processed.
``delay``
    Process the request, then wait ``seconds`` (real time: keep it small) before answering.
``lost``
    Process the request fully, state changes included, then reset the connection unanswered
    (the client cannot know whether it worked).
``drip``
    Process the request, then send the answer one byte every ``seconds`` (deadline tests).
``expire``
    Upload only: the upload URL expires now, then the request is processed (→ 403).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

ENDPOINTS = (
    "authorize",
    "token",
    "revoke",
    "user_info",
    "creator_info",
    "video_init",
    "inbox_init",
    "content_init",
    "upload",
    "status",
)
FAULT_KINDS = ("status", "reset", "reset_mid_body", "delay", "lost", "drip", "expire")

# A sensible TikTok error code for a bare HTTP status when the fault names none.
_DEFAULT_CODES = {
    400: "invalid_params",
    401: "access_token_invalid",
    403: "spam_risk",
    404: "not_found",
    # Not a documented TikTok code: what a gateway that gave up on the request answers.
    408: "request_timeout",
    429: "rate_limit_exceeded",
}


@dataclass(frozen=True)
class Fault:
    """One scheduled fault. ``call`` is the 1-based call number of ``endpoint``; None: every call.

    ``status`` and ``error_code`` (``kind="status"``; the code defaults from the status, e.g.
    ``internal_error`` for 5xx), ``message`` (the error message; a default is made up),
    ``after_bytes`` (``reset_mid_body``), ``seconds`` (``delay``: the wait; ``drip``: the gap
    between two bytes of the answer).
    """

    endpoint: str
    call: int | None = 1
    kind: str = "status"
    status: int = 503
    error_code: str | None = None
    message: str | None = None
    after_bytes: int = 0
    seconds: float = 0.1

    def __post_init__(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.endpoint!r}; one of {', '.join(ENDPOINTS)}")
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(FAULT_KINDS)}")
        if self.call is not None and self.call < 1:
            raise ValueError("call numbers start at 1 (None: every call)")
        if self.kind == "expire" and self.endpoint != "upload":
            raise ValueError("an 'expire' fault applies to the upload endpoint only")
        if not 100 <= self.status <= 599:
            raise ValueError(f"HTTP status {self.status} is not a status")
        if self.after_bytes < 0:
            raise ValueError("after_bytes must not be negative")
        if self.seconds < 0:
            raise ValueError("seconds must not be negative")

    def code(self) -> str:
        """The TikTok error code this fault answers with (``kind="status"``)."""
        if self.error_code is not None:
            return self.error_code
        if self.status >= 500:
            return "internal_error"
        return _DEFAULT_CODES.get(self.status, "invalid_params")

    def text(self) -> str:
        """The error message this fault answers with."""
        if self.message is not None:
            return self.message
        return f"Scheduled fault: {self.code()} (sandbox)"


class FaultSchedule:
    """Faults waiting for their call. A fault for one call fires once; ``call=None`` every time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        """Faults not fired yet (every-call faults stay)."""
        with self._lock:
            return list(self._faults)

    def pick(self, endpoint: str, call: int) -> Fault | None:
        """The first scheduled fault for this call of ``endpoint``, consumed if it was one-shot."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.endpoint != endpoint:
                    continue
                if fault.call is None:
                    return fault
                if fault.call == call:
                    del self._faults[index]
                    return fault
            return None
