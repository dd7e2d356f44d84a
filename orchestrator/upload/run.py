"""One upload call's working state: the machine, its open file, the collaborators, the ending.

:class:`UploadRun` is what the driver's steps (``upload.initialise``, ``upload.transfer``,
``upload.settle``) pass each other: the :class:`~orchestrator.upload.machine.UploadMachine`
(which journals every event), the per-call scratch that is not journalled, and the shared
:class:`Engine`. It records endings on the machine and turns them into the
:class:`UploadOutcome` the scheduler reads. It does no I/O itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import BinaryIO

from orchestrator.clock import Clock
from orchestrator.errors import (
    ApiError,
    AuthError,
    NeedsLoginError,
    OrchestratorError,
    TransportError,
)
from orchestrator.outcomes import ErrorInfo
from orchestrator.progress import ProgressSubscriber
from orchestrator.retry import Retrier
from orchestrator.settings import RunSettings
from orchestrator.tiktok.client import TikTokClient
from orchestrator.transport import Transport
from orchestrator.upload.events import Deferred, Failed, Resynced, Uncertain, UploadState
from orchestrator.upload.machine import UploadMachine

log = logging.getLogger(__name__)

__all__ = ["Engine", "Progress", "UploadOutcome", "UploadRun", "error_info"]


@dataclass(frozen=True)
class UploadOutcome:
    """Where one entry ended in this run.

    ``state`` UPLOADED or PROCESSING means TikTok has the media and a later run polls it;
    ``error`` explains any state but PUBLISHED / SENT_TO_INBOX (for UPLOADED / PROCESSING: why
    polling stopped, if not the poll deadline). ``needs_login`` tells the scheduler to stop
    this user's other entries.
    """

    state: UploadState
    publish_id: str | None
    post_ids: tuple[str, ...] = ()
    bytes_confirmed: int = 0
    chunks: int = 0
    inits: int = 0
    chunk_requests: int = 0
    error: ErrorInfo | None = None
    needs_login: bool = False


@dataclass(frozen=True)
class Engine:
    """The collaborators every upload shares (each thread-safe): the API client, the
    transport for chunk PUTs, the run's retrier, its settings and its clock."""

    client: TikTokClient
    transport: Transport
    retry: Retrier
    config: RunSettings
    clock: Clock


def error_info(error: OrchestratorError, code: str | None = None) -> ErrorInfo:
    """The report's view of ``error``; ``code`` names it when it has no code of its own."""
    if isinstance(error, ApiError):
        return ErrorInfo(
            error.code, str(error), retryable=error.retryable, hint=error.hint, log_id=error.log_id
        )
    retryable = isinstance(error, TransportError | AuthError)
    return ErrorInfo(code or type(error).__name__, str(error), retryable=retryable, hint=error.hint)


class Progress:
    """Forwards progress to a subscriber and keeps the running total, so the engine can say
    "TikTok holds N bytes" and let the subscriber hear the exact correction."""

    def __init__(self, subscriber: ProgressSubscriber) -> None:
        self._subscriber = subscriber
        self.total = 0

    def on_progress(self, bytes_delta: int) -> None:
        if bytes_delta:
            self.total += bytes_delta
            self._subscriber.on_progress(bytes_delta)

    def settle_at(self, held: int) -> None:
        """The bytes the server holds are ``held``: report whatever difference that makes."""
        self.on_progress(held - self.total)


@dataclass
class UploadRun:
    """One call's machine and the scratch the driver keeps next to it (not journalled)."""

    engine: Engine
    machine: UploadMachine
    progress: Progress
    file: BinaryIO | None = None
    sent_digest: str | None = None
    chunk_requests: int = 0
    error: ErrorInfo | None = None
    needs_login: bool = False

    def auth_error(self, error: AuthError) -> ErrorInfo:
        """Only a refused refresh token (NeedsLoginError) stops the user's other entries."""
        if isinstance(error, NeedsLoginError):
            self.needs_login = True
            return error_info(error, "needs_login")
        return error_info(error, "auth_error")

    def resync(self, received: int) -> None:
        """The upload server holds ``received`` bytes: its progress wins over ours."""
        machine = self.machine
        log.info(
            "%s: the upload server holds %d bytes (we had %d); its progress wins",
            machine.request.name,
            received,
            machine.bytes_confirmed,
        )
        machine.record(Resynced(received))
        self.progress.settle_at(received)

    def finish(self, event: Failed | Deferred | Uncertain) -> None:
        """Record a terminal event and keep what the report says about it."""
        self.machine.record(event)
        if isinstance(event, Failed):
            self.error = ErrorInfo(
                event.code,
                event.reason,
                retryable=event.retryable,
                hint=event.hint,
                log_id=event.log_id,
            )
        elif isinstance(event, Deferred):
            self.error = ErrorInfo(
                event.code or "deferred",
                event.why,
                retryable=True,
                hint=event.hint,
                log_id=event.log_id,
            )
        else:
            self.error = ErrorInfo("uncertain", event.reason, retryable=False)

    def fail(self, info: ErrorInfo) -> None:
        self.finish(Failed(info.code, info.message, info.retryable, info.hint, info.log_id))

    def outcome(self) -> UploadOutcome:
        machine = self.machine
        return UploadOutcome(
            state=machine.state,
            publish_id=machine.publish_id,
            post_ids=machine.post_ids,
            bytes_confirmed=machine.bytes_confirmed,
            chunks=machine.plan.total_chunk_count if machine.plan else 0,
            inits=machine.inits,
            chunk_requests=self.chunk_requests,
            error=self.error,
            needs_login=self.needs_login,
        )
