"""The upload driver: runs one entry's upload over the network, step by step.

:class:`Uploader` does the I/O the sans-I/O :class:`~orchestrator.upload.machine.UploadMachine`
describes: inits through the API client, chunk PUTs through the transport (retried by the
run's :class:`Retrier`), status polls on the injected clock, and the checks that the file being
sent is still the file that was initialised. Every step it takes is first recorded on the
machine (which journals it); it never changes the machine's state any other way.

Progress goes to a :class:`ProgressSubscriber`; nothing here prints.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from orchestrator.clock import Clock, SystemClock
from orchestrator.errors import (
    ApiError,
    AuthError,
    NeedsLoginError,
    OrchestratorError,
    TransportError,
    UploadError,
)
from orchestrator.outcomes import ErrorInfo
from orchestrator.progress import NullProgress, ProgressSubscriber
from orchestrator.retry import Retrier
from orchestrator.settings import RunSettings
from orchestrator.tiktok.chunks import Chunk, ChunkPlan, plan_chunks
from orchestrator.tiktok.client import (
    InitResult,
    PostMode,
    PublishState,
    PublishStatus,
    TikTokClient,
)
from orchestrator.tiktok.codes import classify_fail_reason
from orchestrator.transport import FileWindow, Transport
from orchestrator.upload.events import (
    ChunkConfirmed,
    Deferred,
    Failed,
    FileIdentity,
    FinalChunkSending,
    Initialised,
    JournalSink,
    Processing,
    Published,
    ResumePoint,
    Resynced,
    SentToInbox,
    SourceChanged,
    Uncertain,
    Uploaded,
    UploadState,
)
from orchestrator.upload.machine import ChunkAnswer, ChunkReply, UploadMachine
from orchestrator.upload.request import FileSource, PhotoSource, Source, UploadRequest, UrlSource

log = logging.getLogger(__name__)

__all__ = ["UploadOutcome", "Uploader"]


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


def _error_info(error: OrchestratorError, code: str | None = None) -> ErrorInfo:
    if isinstance(error, ApiError):
        return ErrorInfo(
            error.code, str(error), retryable=error.retryable, hint=error.hint, log_id=error.log_id
        )
    retryable = isinstance(error, TransportError | AuthError)
    return ErrorInfo(code or type(error).__name__, str(error), retryable=retryable, hint=error.hint)


def _auth_error_info(run: _Run, error: AuthError) -> ErrorInfo:
    """Only a refused refresh token (NeedsLoginError) stops the user's other entries."""
    if isinstance(error, NeedsLoginError):
        run.needs_login = True
        return _error_info(error, "needs_login")
    return _error_info(error, "auth_error")


# -- the driver ------------------------------------------------------------------------------------


# -- the driver ------------------------------------------------------------------------------------


class _ServerBusy(Exception):
    """A chunk PUT answered 5xx/408/429: send the same range again."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the upload server answered {status}")
        self.status = status


class _SourceChangedMidChunk(Exception):
    """The file changed while the last chunk was being read: its last bytes were held back."""


class _HashedWindow(FileWindow):
    """A chunk's bytes as sent, hashed as they stream (nothing is read twice or held whole).

    For the last chunk, ``guard`` is asked right before the final block is handed to the
    connection; when it says the file changed, that block is never sent (the read raises
    :class:`_SourceChangedMidChunk`), so the upload cannot complete with mixed bytes.
    """

    def __init__(
        self,
        file: BinaryIO,
        chunk: Chunk,
        *,
        on_read: Callable[[int], None],
        guard: Callable[[], str | None] | None = None,
    ) -> None:
        super().__init__(file, chunk.first, chunk.length, on_read=on_read)
        self._hash = hashlib.sha256()
        self._guard = guard

    def read(self, size: int = -1) -> bytes:
        block = super().read(size)
        if self._guard is not None and block and self.exhausted:
            # The whole chunk has been read from the file and only this block is unsent.
            changed = self._guard()
            if changed is not None:
                raise _SourceChangedMidChunk(changed)
        self._hash.update(block)
        return block

    @property
    def digest(self) -> str | None:
        """The SHA-256 (hex) of the chunk, once every byte was handed to the connection."""
        return self._hash.hexdigest() if self.exhausted else None


class _FinalAckLost(Exception):
    """The last chunk went out whole but no answer came back: settle by status fetch."""

    def __init__(self, cause: TransportError) -> None:
        super().__init__(str(cause))
        self.cause = cause


_MAYBE_KEPT = frozenset({ChunkReply.ACCEPTED, ChunkReply.COMPLETE, ChunkReply.RETRY})


def _chunk_retryable(error: BaseException) -> bool:
    return isinstance(error, TransportError | _ServerBusy)


class _Progress:
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
class _Run:
    """Per-run scratch the driver keeps next to the machine (not journalled)."""

    machine: UploadMachine
    progress: _Progress
    file: BinaryIO | None = None
    sent_digest: str | None = None
    chunk_requests: int = 0
    error: ErrorInfo | None = None
    needs_login: bool = False


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
        self._client = client
        self._transport = transport
        self._retry = retry
        self._config = config or RunSettings()
        self._clock = clock or SystemClock()

    def upload(
        self,
        request: UploadRequest,
        journal: JournalSink,
        progress: ProgressSubscriber | None = None,
    ) -> UploadOutcome:
        """Post ``request`` from the start: init, send the chunks, poll until done or the poll
        deadline. Every transition goes to ``journal`` before the next request."""
        run = _Run(UploadMachine(request, journal), _Progress(progress or NullProgress()))
        return self._drive(run)

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
        run = _Run(machine, _Progress(progress or NullProgress()))
        run.progress.settle_at(machine.bytes_confirmed)
        return self._drive(run)

    # -- steps --

    def _drive(self, run: _Run) -> UploadOutcome:
        machine = run.machine
        source = machine.request.source
        try:
            if isinstance(source, FileSource) and machine.state in (
                UploadState.PLANNED,
                UploadState.UPLOADING,
            ):
                try:
                    run.file = self._open(source)
                except UploadError as error:
                    self._cannot_read(run, error)
                else:
                    if machine.state is UploadState.UPLOADING:
                        self._check_resumed_file(run)
                    if machine.state is UploadState.PLANNED:
                        self._initialise(run)
                    if machine.state is UploadState.UPLOADING:
                        self._transfer(run)
            elif machine.state is UploadState.PLANNED:
                self._initialise(run)
            if machine.state in (UploadState.UPLOADED, UploadState.PROCESSING):
                self._poll(run)
        finally:
            if run.file is not None:
                run.file.close()
            run.file = None
        return self._outcome(run)

    def _open(self, source: FileSource) -> BinaryIO:
        try:
            file = source.path.open("rb")
        except OSError as exc:
            raise UploadError(f"cannot open {source.path}: {exc.strerror}") from None
        size = os.fstat(file.fileno()).st_size
        if size != source.size:
            file.close()
            raise UploadError(
                f"{source.path} is {size} bytes, not the {source.size} it had when validated",
                hint="the file changed after the manifest was checked; run again",
            )
        return file

    def _cannot_read(self, run: _Run, error: UploadError) -> None:
        machine = run.machine
        if machine.state is UploadState.UPLOADING and machine.final_bytes_maybe_sent:
            # An earlier run may have sent the last chunk: TikTok's status decides, not a retry.
            machine.record(Uploaded())
            return
        self._fail(run, _error_info(error, "file_unreadable"))

    # -- the file must stay the file --

    def _file_change(self, run: _Run) -> str | None:
        """How the file differs from the version being uploaded (None: it does not)."""
        machine = run.machine
        source = machine.request.source
        assert isinstance(source, FileSource)
        if machine.source_identity is None:
            return None
        now = FileIdentity.of_path(source.path)
        if now is None:
            return f"{source.path} cannot be read any more"
        if now != machine.source_identity:
            return f"{source.path} was modified, replaced or resized"
        return None

    def _check_resumed_file(self, run: _Run) -> None:
        """Before going on with an earlier process's upload: the file's stat identity must be
        the one recorded at init, and the bytes already sent must still be the file's (each
        confirmed chunk is read again and compared with its recorded digest)."""
        machine = run.machine
        if machine.source_identity is None:
            return  # journalled before identities were kept: nothing to compare
        change = self._file_change(run) or self._sent_bytes_change(run)
        if change is None:
            return
        if machine.final_bytes_maybe_sent:
            self._changed_after_last_chunk(run, change)
            return
        self._source_changed(run, change)

    def _changed_after_last_chunk(self, run: _Run, change: str) -> None:
        """The file changed, and the earlier process may have sent the last chunk: sending
        anything now could complete the upload with bytes of another version, and a new init
        could be a second post. TikTok's status decides: it has every byte (poll it), it gave
        up (Failed), or it lacks bytes nobody will send any more (the upload can never
        complete: fail ``file_changed``, retryable, so a later run posts the file afresh)."""
        machine = run.machine
        assert machine.plan is not None
        assert machine.publish_id is not None
        label = machine.request.name
        log.warning("%s: %s after its last chunk may have been sent; asking TikTok", label, change)
        status: PublishStatus | None = None
        try:
            status = self._client.fetch_status(machine.request.open_id, machine.publish_id)
        except (ApiError, TransportError, AuthError) as error:
            log.info("%s: the status fetch failed (%s)", label, error)
        size = machine.plan.video_size
        if status is not None and status.status == PublishState.FAILED:
            meaning = classify_fail_reason(status.fail_reason)
            self._finish(
                run,
                Failed(
                    status.fail_reason or "failed",
                    f"{change}; TikTok reports FAILED ({status.fail_reason or 'no reason given'})",
                    meaning.retryable,
                    meaning.hint,
                ),
            )
            return
        held = status.uploaded_bytes if status is not None else None
        if (
            status is not None
            and not _holds_everything(status, size)
            and held is not None
            and held < size
        ):
            self._fail(
                run,
                ErrorInfo(
                    "file_changed",
                    f"{change} while it was uploading; TikTok holds {held} of {size} bytes, so "
                    "that upload can never complete and nothing was published",
                    retryable=True,
                    hint="the file was modified while uploading — finish writing it, then rerun",
                ),
            )
            return
        # TikTok has every byte (one version's: the earlier process sent them), or cannot
        # say: poll it, never init again.
        machine.record(Uploaded())

    def _sent_bytes_change(self, run: _Run) -> str | None:
        machine = run.machine
        assert machine.plan is not None
        assert run.file is not None
        done = machine.plan.next_chunk(machine.bytes_confirmed)
        count = done.index if done is not None else machine.plan.total_chunk_count
        for index in range(count):
            recorded = machine.chunk_digests[index] if index < len(machine.chunk_digests) else None
            chunk = machine.plan.chunk(index)
            if recorded is None or _digest_of(run.file, chunk) != recorded:
                return f"chunk {index} no longer holds the bytes already sent"
        return None

    def _source_changed(self, run: _Run, change: str) -> None:
        """Abandon the upload under way (its last byte is never sent, so it never publishes)
        and start a fresh one of the file as it is now, or fail ``file_changed``."""
        machine = run.machine
        source = machine.request.source
        assert isinstance(source, FileSource)
        if machine.source_changes >= self._config.max_source_changes:
            self._fail(
                run,
                ErrorInfo(
                    "file_changed",
                    f"{change} while it was uploading, {machine.source_changes + 1} times; "
                    "nothing was published",
                    retryable=True,
                    hint="the file was modified while uploading — finish writing it, then rerun",
                ),
            )
            return
        log.warning(
            "%s: %s during the upload; abandoning it before its last byte (nothing is "
            "published) and starting over",
            machine.request.name,
            change,
        )
        machine.record(SourceChanged(change))
        run.progress.settle_at(0)
        if run.file is not None:
            run.file.close()
            run.file = None
        try:
            run.file = self._open(source)
        except UploadError as error:
            self._fail(
                run,
                ErrorInfo(
                    "file_changed",
                    f"{change}, and then: {error}",
                    retryable=True,
                    hint="the file was modified while uploading — finish writing it, then rerun",
                ),
            )
            return
        self._initialise(run)

    def _initialise(self, run: _Run) -> None:
        """Init (or init again after a dead URL); records Initialised or a terminal event."""
        machine = run.machine
        request = machine.request
        source = request.source
        sent_at = self._clock.time()
        identity = None
        if run.file is not None:
            # The version being uploaded: every later check compares the file with this.
            identity = FileIdentity.of(os.fstat(run.file.fileno()))
        try:
            plan = (
                plan_chunks(source.size, self._config.preferred_chunk_size)
                if isinstance(source, FileSource)
                else None
            )
            result = self._call_init(request, plan)
        except UploadError as error:
            self._fail(run, _error_info(error, "upload_error"))
            return
        except ApiError as error:
            if error.defer:
                # Keep TikTok's own code, log_id and hint: "deferred" alone says nothing.
                self._finish(
                    run,
                    Deferred(str(error), code=error.code, log_id=error.log_id, hint=error.hint),
                )
            else:
                self._fail(run, _error_info(error))
            return
        except TransportError as error:
            if not isinstance(source, FileSource) and error.maybe_delivered:
                # A URL/photo init may have been accepted: a retry could post twice.
                self._finish(
                    run,
                    Uncertain(f"the init's answer was lost ({error}); it may have posted"),
                )
            else:
                self._fail(run, _error_info(error, "transport"))
            return
        except AuthError as error:
            if error.transient:
                # The token endpoint had trouble; the init was refused (401), not sent: later.
                self._finish(run, Deferred(str(error), code="unavailable", hint=error.hint))
            else:
                self._fail(run, _auth_error_info(run, error))
            return
        expires = sent_at + self._config.upload_url_ttl if plan is not None else None
        machine.record(Initialised(result.publish_id, result.upload_url, expires, plan, identity))
        log.info(
            "%s: initialised %s%s",
            request.name,
            result.publish_id,
            f" ({_chunks(plan.total_chunk_count)} of {plan.chunk_size} bytes)" if plan else "",
            extra={
                "fields": {
                    "event": "initialised",
                    "publish_id": result.publish_id,
                    "chunks": plan.total_chunk_count if plan else None,
                    "chunk_size": plan.chunk_size if plan else None,
                    "total_bytes": plan.video_size if plan else None,
                }
            },
        )

    def _call_init(self, request: UploadRequest, plan: ChunkPlan | None) -> InitResult:
        source = request.source
        if isinstance(source, PhotoSource):
            return self._client.init_photo(
                request.open_id, request.mode, source.urls, source.cover_index, request.post_info
            )
        video: ChunkPlan | str = plan if plan is not None else _url_of(source)
        if request.mode is PostMode.DIRECT:
            return self._client.init_direct_video(request.open_id, video, request.post_info)
        return self._client.init_inbox_video(request.open_id, video)

    def _transfer(self, run: _Run) -> None:
        """Send chunks until the server holds them all (then Uploaded) or a terminal event."""
        machine = run.machine
        resyncs = 0
        settles = 0
        while machine.state is UploadState.UPLOADING:
            chunk = machine.next_chunk()
            if chunk is None:
                machine.record(Uploaded())
                return
            change = None if machine.final_bytes_maybe_sent else self._file_change(run)
            if change is not None:
                self._source_changed(run, change)
                continue
            if not machine.url_usable(self._clock.time(), self._config.upload_url_margin):
                self._url_dead(run, "the upload URL's hour is up")
                continue
            try:
                answer = self._retry.call(
                    functools.partial(self._put_chunk, run, chunk), retryable=_chunk_retryable
                )
            except _SourceChangedMidChunk as changed:
                self._source_changed(run, str(changed))
                continue
            except _FinalAckLost as lost:
                settles += 1
                self._settle(run, f"the last chunk's answer was lost ({lost})", settles)
                continue
            except (TransportError, _ServerBusy) as error:
                if machine.final_bytes_maybe_sent:
                    settles += 1
                    self._settle(run, f"the last chunk could not be confirmed ({error})", settles)
                    continue
                code = "transport" if isinstance(error, TransportError) else "upload_server_error"
                self._fail(run, ErrorInfo(code, f"chunk {chunk.index}: {error}", retryable=True))
                return
            except UploadError as error:
                if machine.final_bytes_maybe_sent:
                    settles += 1
                    self._settle(run, str(error), settles)
                    continue
                self._fail(run, _error_info(error, "upload_error"))
                return
            reply = answer.reply
            if reply is not ChunkReply.RESYNC:
                resyncs = 0
            if reply is ChunkReply.ACCEPTED:
                if chunk.end == machine.plan_size:
                    self._fail(
                        run,
                        ErrorInfo(
                            "upload_incoherent",
                            "the upload server accepted the last chunk but expects more bytes",
                            retryable=True,
                        ),
                    )
                    return
                machine.record(ChunkConfirmed(chunk.index, chunk.end, run.sent_digest))
            elif reply is ChunkReply.COMPLETE:
                if chunk.end != machine.plan_size:
                    log.warning(
                        "%s: the upload server called chunk %d the end of the upload",
                        machine.request.name,
                        chunk.index,
                    )
                    self._resync(run, machine.plan_size)
                    continue
                machine.record(ChunkConfirmed(chunk.index, chunk.end, run.sent_digest))
            elif reply is ChunkReply.RESYNC:
                assert answer.received is not None
                resyncs += 1
                if resyncs > self._config.max_resyncs:
                    self._fail(
                        run,
                        ErrorInfo(
                            "upload_incoherent",
                            f"the upload server refused the range it asked for {resyncs} times",
                            retryable=True,
                        ),
                    )
                    return
                self._resync(run, answer.received)
            elif reply is ChunkReply.URL_DEAD:
                self._url_dead(run, f"the upload server answered {answer.status}")
            else:
                self._fail(
                    run,
                    ErrorInfo(
                        "upload_rejected",
                        f"the upload server refused chunk {chunk.index} with HTTP {answer.status}",
                        retryable=False,
                        hint="TikTok refused the chunk's headers or length; report it with the log",
                    ),
                )
                return

    def _put_chunk(self, run: _Run, chunk: Chunk) -> ChunkAnswer:
        """One PUT of ``chunk``; raises what the retrier should retry (5xx, transport)."""
        machine = run.machine
        assert run.file is not None
        assert machine.upload_url is not None
        is_last = chunk.end == machine.plan_size
        window = _HashedWindow(
            run.file,
            chunk,
            on_read=run.progress.on_progress,
            guard=functools.partial(self._file_change, run) if is_last else None,
        )
        run.sent_digest = None
        run.chunk_requests += 1
        try:
            response = self._transport.request(
                "PUT",
                machine.upload_url.reveal(),
                headers=machine.chunk_headers(chunk),
                body=window,
                timeouts=self._config.chunk_timeouts(chunk.length),
            )
        except TransportError as error:
            run.progress.on_progress(-window.sent)
            if is_last and window.exhausted:
                machine.record(FinalChunkSending())
                raise _FinalAckLost(error) from None
            raise
        except BaseException:
            run.progress.on_progress(-window.sent)
            raise
        run.sent_digest = window.digest
        try:
            answer = machine.read_chunk_reply(chunk, response)
        finally:
            # Only an accepted chunk keeps its bytes; anything else takes them back.
            kept = response.status in (200, 201, 204, 206)
            if not kept:
                run.progress.on_progress(-window.sent)
        if is_last and window.exhausted and answer.reply in _MAYBE_KEPT:
            # A refusal (403, 416, 400…) says this attempt was not kept; a 5xx after the whole
            # body does not (a gateway may have lost the upstream's acceptance).
            machine.record(FinalChunkSending())
        if answer.reply is ChunkReply.RETRY:
            raise _ServerBusy(answer.status)
        return answer

    def _resync(self, run: _Run, received: int) -> None:
        machine = run.machine
        log.info(
            "%s: the upload server holds %d bytes (we had %d); its progress wins",
            machine.request.name,
            received,
            machine.bytes_confirmed,
        )
        machine.record(Resynced(received))
        run.progress.settle_at(received)

    def _url_dead(self, run: _Run, why: str) -> None:
        """The upload URL cannot be used any more (its hour is up, or the server refused it)."""
        machine = run.machine
        if machine.final_bytes_maybe_sent:
            self._settle(run, why, self._config.max_settles, url_dead=True)
            return
        if machine.inits > self._config.max_reinits:
            self._fail(
                run,
                ErrorInfo(
                    "upload_url_expired",
                    f"{why}; {machine.inits} upload URLs died before the upload finished",
                    retryable=True,
                    hint="the upload is too slow for TikTok's one-hour upload URL; a later run "
                    "starts over",
                ),
            )
            return
        log.info(
            "%s: %s before the last chunk; starting over with a new init (nothing was published)",
            machine.request.name,
            why,
        )
        run.progress.settle_at(0)
        self._initialise(run)

    def _settle(self, run: _Run, why: str, settles: int, *, url_dead: bool = False) -> None:
        """The last chunk may have reached TikTok: ask the status, never init again.

        TikTok reports FAILED → Failed with its reason (an upload left incomplete fails
        ``internal``, retryable). TikTok has everything → Uploaded. TikTok reports fewer bytes
        → resync and resend while the URL lives; when it is dead, Failed (retryable: by
        TikTok's own word nothing will publish). No answer, or out of settle attempts →
        Uploaded: the bytes were all sent, so the entry is polled (now and by later runs) and
        never initialised again.
        """
        machine = run.machine
        assert machine.plan is not None
        assert machine.publish_id is not None
        label = machine.request.name
        # Said once per upload: a resent last chunk that meets the same fault is the same event.
        log.log(
            logging.INFO if settles <= 1 else logging.DEBUG,
            "%s: %s; asking TikTok for the status%s",
            label,
            why,
            f" (attempt {settles})" if settles > 1 else "",
        )
        status: PublishStatus | None = None
        try:
            status = self._client.fetch_status(machine.request.open_id, machine.publish_id)
        except (ApiError, TransportError, AuthError) as error:
            log.info("%s: the status fetch failed too (%s)", label, error)
        size = machine.plan.video_size
        url_alive = not url_dead and machine.url_usable(
            self._clock.time(), self._config.upload_url_margin
        )
        if status is not None and status.status == PublishState.FAILED:
            # TikTok gave up on this publish (an upload left incomplete fails "internal"):
            # its own verdict ends the entry; a retryable reason lets a later run init again.
            meaning = classify_fail_reason(status.fail_reason)
            self._finish(
                run,
                Failed(
                    status.fail_reason or "failed",
                    f"{why}; TikTok reports FAILED ({status.fail_reason or 'no reason given'})",
                    meaning.retryable,
                    meaning.hint,
                ),
            )
            return
        if status is not None and _holds_everything(status, size):
            if machine.bytes_confirmed != size:
                self._resync(run, size)
            machine.record(Uploaded())
            return
        held = status.uploaded_bytes if status is not None else None
        if held is not None and held < size and machine.plan.is_boundary(held):
            if not url_alive:
                self._fail(
                    run,
                    ErrorInfo(
                        "upload_url_expired",
                        f"{why}; TikTok holds {held} of {size} bytes and the upload URL is over",
                        retryable=True,
                        hint="nothing was published; a later run starts the upload over",
                    ),
                )
                return
            if held != machine.bytes_confirmed:
                self._resync(run, held)
            if settles < self._config.max_settles:
                return  # the transfer loop resends from where TikTok is
        elif url_alive and settles < self._config.max_settles:
            return  # resend the last chunk: the same URL cannot post twice
        log.warning(
            "%s: could not confirm the last chunk; treating the upload as sent and polling "
            "(it is never initialised again)",
            label,
        )
        machine.record(Uploaded())

    def _poll(self, run: _Run) -> None:
        """Fetch the status with backoff until terminal or the poll deadline."""
        machine = run.machine
        assert machine.publish_id is not None
        config = self._config
        deadline = self._clock.monotonic() + config.poll_timeout
        interval = config.poll_first
        label = machine.request.name
        while True:
            try:
                status = self._client.fetch_status(machine.request.open_id, machine.publish_id)
            except (ApiError, TransportError) as error:
                run.error = _error_info(error)
                log.info("%s: polling stopped (%s); a later run polls again", label, error)
                return
            except AuthError as error:
                run.error = (
                    _error_info(error, "unavailable")
                    if error.transient
                    else _auth_error_info(run, error)
                )
                return
            if status.status == PublishState.PUBLISH_COMPLETE:
                machine.record(Published(status.post_ids))
                return
            if status.status == PublishState.SEND_TO_USER_INBOX:
                machine.record(SentToInbox())
                return
            if status.status == PublishState.FAILED:
                meaning = classify_fail_reason(status.fail_reason)
                self._finish(
                    run,
                    Failed(
                        status.fail_reason or "failed",
                        f"TikTok reports FAILED ({status.fail_reason or 'no reason given'})",
                        meaning.retryable,
                        meaning.hint,
                    ),
                )
                return
            # Unknown statuses count as still in progress, bounded by the deadline.
            if machine.state is not UploadState.PROCESSING or machine.last_status != status.status:
                machine.record(Processing(status.status))
            if self._clock.monotonic() + interval > deadline:
                log.info(
                    "%s: still %s after %.0f s; a later run polls again",
                    label,
                    status.status,
                    config.poll_timeout,
                )
                return
            self._clock.sleep(interval)
            interval = min(interval * config.poll_factor, config.poll_max)

    # -- endings --

    def _finish(self, run: _Run, event: Failed | Deferred | Uncertain) -> None:
        run.machine.record(event)
        if isinstance(event, Failed):
            run.error = ErrorInfo(
                event.code,
                event.reason,
                retryable=event.retryable,
                hint=event.hint,
                log_id=event.log_id,
            )
        elif isinstance(event, Deferred):
            run.error = ErrorInfo(
                event.code or "deferred",
                event.why,
                retryable=True,
                hint=event.hint,
                log_id=event.log_id,
            )
        else:
            run.error = ErrorInfo("uncertain", event.reason, retryable=False)

    def _fail(self, run: _Run, info: ErrorInfo) -> None:
        self._finish(run, Failed(info.code, info.message, info.retryable, info.hint, info.log_id))

    def _outcome(self, run: _Run) -> UploadOutcome:
        machine = run.machine
        return UploadOutcome(
            state=machine.state,
            publish_id=machine.publish_id,
            post_ids=machine.post_ids,
            bytes_confirmed=machine.bytes_confirmed,
            chunks=machine.plan.total_chunk_count if machine.plan else 0,
            inits=machine.inits,
            chunk_requests=run.chunk_requests,
            error=run.error,
            needs_login=run.needs_login,
        )


def _digest_of(file: BinaryIO, chunk: Chunk) -> str:
    """The SHA-256 (hex) of ``chunk``'s bytes in ``file``, read a block at a time."""
    digest = hashlib.sha256()
    window = FileWindow(file, chunk.first, chunk.length)
    while block := window.read(1 << 20):
        digest.update(block)
    return digest.hexdigest()


def _url_of(source: Source) -> str:
    assert isinstance(source, UrlSource)
    return source.url


def _holds_everything(status: PublishStatus, size: int) -> bool:
    """Whether a (non-FAILED) status says TikTok has every byte or is already past the upload."""
    if status.status in ("", PublishState.PROCESSING_UPLOAD):
        return status.uploaded_bytes is not None and status.uploaded_bytes >= size
    return True


def _chunks(count: int) -> str:
    return f"{count} chunk{'' if count == 1 else 's'}"
