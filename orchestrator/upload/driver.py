"""The upload driver: runs one entry's upload over the network, step by step.

:class:`Uploader` does the I/O the sans-I/O :class:`~orchestrator.upload.machine.UploadMachine`
describes. Every step it takes is first recorded on the machine (which journals it); it never
changes the machine's state any other way. The steps live by job:

- ``upload.initialise`` — the init through the API client (the one request that can post);
- ``upload.transfer`` — chunk PUTs through the transport (retried by the run's
  :class:`Retrier`), resyncs, dead URLs, and the checks that the file being sent is still the
  file that was initialised;
- ``upload.settle`` — settling a maybe-finished upload by its status, and polling on the
  injected clock;
- ``upload.run`` — the per-call state they share and the :class:`UploadOutcome`.

Progress goes to a :class:`ProgressSubscriber`; nothing here prints.
"""

from __future__ import annotations

from orchestrator.clock import Clock, SystemClock
from orchestrator.errors import UploadError
from orchestrator.progress import NullProgress, ProgressSubscriber
from orchestrator.retry import Retrier
from orchestrator.settings import RunSettings
from orchestrator.tiktok.client import TikTokClient
from orchestrator.transport import Transport
from orchestrator.upload.events import JournalSink, ResumePoint, Uploaded, UploadState
from orchestrator.upload.initialise import initialise
from orchestrator.upload.machine import UploadMachine
from orchestrator.upload.request import FileSource, UploadRequest
from orchestrator.upload.run import Engine, Progress, UploadOutcome, UploadRun, error_info
from orchestrator.upload.settle import poll
from orchestrator.upload.transfer import check_resumed_file, open_source, transfer

__all__ = ["UploadOutcome", "Uploader"]


class Uploader:
    """Runs uploads: one entry at a time per call, any number of calls in parallel threads
    (each call has its own machine, file and journal; client, transport and retrier are
    shared and thread-safe)."""

    def __init__(
        self,
        client: TikTokClient,
        transport: Transport,
        *,
        retry: Retrier,
        config: RunSettings | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._engine = Engine(
            client=client,
            transport=transport,
            retry=retry,
            config=config or RunSettings(),
            clock=clock or SystemClock(),
        )

    def upload(
        self,
        request: UploadRequest,
        journal: JournalSink,
        progress: ProgressSubscriber | None = None,
    ) -> UploadOutcome:
        """Post ``request`` from the start: init, send the chunks, poll until done or the poll
        deadline. Every transition goes to ``journal`` before the next request."""
        machine = UploadMachine(request, journal)
        run = UploadRun(self._engine, machine, Progress(progress or NullProgress()))
        return _drive(run)

    def resume(
        self,
        request: UploadRequest,
        point: ResumePoint,
        journal: JournalSink,
        progress: ProgressSubscriber | None = None,
    ) -> UploadOutcome:
        """Go on from where an earlier run stopped: send the remaining chunks on the same
        upload URL while it lives (a new init only when it died before the last chunk was
        sent), or poll an upload TikTok already has. Never inits again for UPLOADED or
        PROCESSING."""
        machine = UploadMachine.resumed(request, point, journal)
        source = request.source
        # With a recorded stat identity a changed file is caught (and started over) when the
        # transfer goes on; without one, a different size is all there is to see.
        if machine.plan is not None and (
            not isinstance(source, FileSource)
            or (machine.source_identity is None and source.size != machine.plan.video_size)
        ):
            raise UploadError(
                "the entry's file is not the one the earlier upload was sending",
                hint="a changed file is a new entry; give it a new id",
            )
        run = UploadRun(self._engine, machine, Progress(progress or NullProgress()))
        run.progress.settle_at(machine.bytes_confirmed)
        return _drive(run)


def _drive(run: UploadRun) -> UploadOutcome:
    machine = run.machine
    source = machine.request.source
    try:
        if isinstance(source, FileSource) and machine.state in (
            UploadState.PLANNED,
            UploadState.UPLOADING,
        ):
            try:
                run.file = open_source(source)
            except UploadError as error:
                _cannot_read(run, error)
            else:
                if machine.state is UploadState.UPLOADING:
                    check_resumed_file(run)
                if machine.state is UploadState.PLANNED:
                    initialise(run)
                if machine.state is UploadState.UPLOADING:
                    transfer(run)
        elif machine.state is UploadState.PLANNED:
            initialise(run)
        if machine.state in (UploadState.UPLOADED, UploadState.PROCESSING):
            poll(run)
    finally:
        if run.file is not None:
            run.file.close()
        run.file = None
    return run.outcome()


def _cannot_read(run: UploadRun, error: UploadError) -> None:
    machine = run.machine
    if machine.state is UploadState.UPLOADING and machine.final_bytes_maybe_sent:
        # An earlier run may have sent the last chunk: TikTok's status decides, not a retry.
        machine.record(Uploaded())
        return
    run.fail(error_info(error, "file_unreadable"))
