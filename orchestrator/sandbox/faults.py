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
``hold``
    Process the request, then hold the answer until the test opens the fault's ``gate``
    (:meth:`FaultSchedule.open`), so a test can order events instead of timing them: e.g. stop
    the client while its init is held, then let the answer go. A gate opened before the request
    arrives holds nothing. ``seconds`` bounds the hold: a gate never opened is a test's bug, so
    the answer then goes out and the server records a sandbox error saying so.
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
FAULT_KINDS = ("status", "reset", "reset_mid_body", "delay", "lost", "drip", "expire", "hold")

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
    between two bytes of the answer; ``hold``: the longest the answer waits for its gate),
    ``gate`` (``hold`` only: the name :meth:`FaultSchedule.open` opens).
    """

    endpoint: str
    call: int | None = 1
    kind: str = "status"
    status: int = 503
    error_code: str | None = None
    message: str | None = None
    after_bytes: int = 0
    seconds: float = 0.1
    gate: str | None = None

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
        if (self.kind == "hold") != bool(self.gate):
            raise ValueError("a 'hold' fault needs a gate, and only a 'hold' fault has one")

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


@dataclass(frozen=True)
class _Gate:
    """A ``hold`` fault's gate: set once a request is held at it, and once it is opened."""

    reached: threading.Event
    opened: threading.Event


class FaultSchedule:
    """Faults waiting for their call. A fault for one call fires once; ``call=None`` every time.
    Also the gates of ``hold`` faults, by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._gates: dict[str, _Gate] = {}

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

    # -- gates of ``hold`` faults ---------------------------------------------------------------

    def _gate(self, name: str) -> _Gate:
        with self._lock:
            return self._gates.setdefault(name, _Gate(threading.Event(), threading.Event()))

    def hold(self, name: str, seconds: float) -> bool:
        """Called by the server with a held answer: mark ``name`` reached, then wait up to
        ``seconds`` for it to open (False: it never did)."""
        gate = self._gate(name)
        gate.reached.set()
        return gate.opened.wait(seconds)

    def wait_reached(self, name: str, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a request to be held at ``name`` (False: none was)."""
        return self._gate(name).reached.wait(timeout)

    def open(self, name: str) -> None:
        """Let every answer held at ``name`` go, and every later one pass."""
        self._gate(name).opened.set()

    def open_all(self) -> None:
        """Open every gate (the server is stopping: no thread may stay held)."""
        with self._lock:
            gates = list(self._gates.values())
        for gate in gates:
            gate.opened.set()
