"""Sending a file's chunks, and keeping the file being sent the file that was initialised.

Resending a chunk to the *same* upload URL is always safe: a chunk that failed with 5xx, a
reset or a timeout is resent as the same range (through the run's retrier); a 416 answer
carries the server's progress, and the server's progress wins over ours. An upload URL that
dies before the last chunk was sent is replaced with a new init (an incomplete upload never
publishes); once the last chunk may have been sent, ``upload.settle`` decides by status.

The file must stay the file: its stat identity is recorded at init and compared before each
chunk and right before the last block of the last chunk leaves; each confirmed chunk's
SHA-256 is journalled, so a resumed upload can check the bytes already sent are still the
file's. A file that changed before its last byte abandons the upload (it never publishes) and
starts over with a new init (SourceChanged), a bounded number of times.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable
from typing import BinaryIO

from orchestrator.errors import TransportError, UploadError
from orchestrator.outcomes import ErrorInfo
from orchestrator.tiktok.chunks import Chunk
from orchestrator.transport import FileWindow
from orchestrator.upload.events import (
    ChunkConfirmed,
    FileIdentity,
    FinalChunkSending,
    SourceChanged,
    Uploaded,
    UploadState,
)
from orchestrator.upload.initialise import initialise
from orchestrator.upload.machine import ChunkAnswer, ChunkReply
from orchestrator.upload.request import FileSource
from orchestrator.upload.run import UploadRun, error_info
from orchestrator.upload.settle import changed_after_last_chunk, settle

log = logging.getLogger(__name__)

__all__ = ["check_resumed_file", "open_source", "transfer"]


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


# -- the chunks --------------------------------------------------------------------------------


def transfer(run: UploadRun) -> None:
    """Send chunks until the server holds them all (then Uploaded) or a terminal event."""
    machine = run.machine
    config = run.engine.config
    resyncs = 0
    settles = 0
    while machine.state is UploadState.UPLOADING:
        chunk = machine.next_chunk()
        if chunk is None:
            machine.record(Uploaded())
            return
        change = None if machine.final_bytes_maybe_sent else _file_change(run)
        if change is not None:
            _source_changed(run, change)
            continue
        if not machine.url_usable(run.engine.clock.time(), config.upload_url_margin):
            _url_dead(run, "the upload URL's hour is up")
            continue
        try:
            answer = run.engine.retry.call(
                functools.partial(_put_chunk, run, chunk), retryable=_chunk_retryable
            )
        except _SourceChangedMidChunk as changed:
            if machine.final_bytes_maybe_sent:
                # An earlier attempt (or process) may have sent the whole last chunk: the
                # upload cannot be abandoned for a fresh init, TikTok's status decides.
                changed_after_last_chunk(run, str(changed))
                continue
            _source_changed(run, str(changed))
            continue
        except _FinalAckLost as lost:
            settles += 1
            settle(run, f"the last chunk's answer was lost ({lost})", settles)
            continue
        except (TransportError, _ServerBusy) as error:
            if machine.final_bytes_maybe_sent:
                settles += 1
                settle(run, f"the last chunk could not be confirmed ({error})", settles)
                continue
            code = "transport" if isinstance(error, TransportError) else "upload_server_error"
            run.fail(ErrorInfo(code, f"chunk {chunk.index}: {error}", retryable=True))
            return
        except UploadError as error:
            if machine.final_bytes_maybe_sent:
                settles += 1
                settle(run, str(error), settles)
                continue
            run.fail(error_info(error, "upload_error"))
            return
        reply = answer.reply
        if reply is not ChunkReply.RESYNC:
            resyncs = 0
        if reply is ChunkReply.ACCEPTED:
            if chunk.end == machine.plan_size:
                run.fail(
                    ErrorInfo(
                        "upload_incoherent",
                        "the upload server accepted the last chunk but expects more bytes",
                        retryable=True,
                    )
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
                run.resync(machine.plan_size)
                continue
            machine.record(ChunkConfirmed(chunk.index, chunk.end, run.sent_digest))
        elif reply is ChunkReply.RESYNC:
            assert answer.received is not None
            resyncs += 1
            if resyncs > config.max_resyncs:
                run.fail(
                    ErrorInfo(
                        "upload_incoherent",
                        f"the upload server refused the range it asked for {resyncs} times",
                        retryable=True,
                    )
                )
                return
            run.resync(answer.received)
        elif reply is ChunkReply.URL_DEAD:
            _url_dead(run, f"the upload server answered {answer.status}")
        else:
            run.fail(
                ErrorInfo(
                    "upload_rejected",
                    f"the upload server refused chunk {chunk.index} with HTTP {answer.status}",
                    retryable=False,
                    hint="TikTok refused the chunk's headers or length; report it with the log",
                )
            )
            return


def _put_chunk(run: UploadRun, chunk: Chunk) -> ChunkAnswer:
    """One PUT of ``chunk``; raises what the retrier should retry (5xx, transport)."""
    machine = run.machine
    assert run.file is not None
    assert machine.upload_url is not None
    is_last = chunk.end == machine.plan_size
    window = _HashedWindow(
        run.file,
        chunk,
        on_read=run.progress.on_progress,
        guard=functools.partial(_file_change, run) if is_last else None,
    )
    run.sent_digest = None
    run.chunk_requests += 1
    try:
        response = run.engine.transport.request(
            "PUT",
            machine.upload_url.reveal(),
            headers=machine.chunk_headers(chunk),
            body=window,
            timeouts=run.engine.config.chunk_timeouts(chunk.length),
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


def _url_dead(run: UploadRun, why: str) -> None:
    """The upload URL cannot be used any more (its hour is up, or the server refused it)."""
    machine = run.machine
    config = run.engine.config
    if machine.final_bytes_maybe_sent:
        settle(run, why, config.max_settles, url_dead=True)
        return
    if machine.inits > config.max_reinits:
        run.fail(
            ErrorInfo(
                "upload_url_expired",
                f"{why}; {machine.inits} upload URLs died before the upload finished",
                retryable=True,
                hint="the upload is too slow for TikTok's one-hour upload URL; a later run "
                "starts over",
            )
        )
        return
    log.info(
        "%s: %s before the last chunk; starting over with a new init (nothing was published)",
        machine.request.name,
        why,
    )
    run.progress.settle_at(0)
    initialise(run)


# -- the file must stay the file ---------------------------------------------------------------


def open_source(source: FileSource) -> BinaryIO:
    """Open the entry's file, refusing one whose size is not the size validated."""
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


def _file_change(run: UploadRun) -> str | None:
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


def check_resumed_file(run: UploadRun) -> None:
    """Before going on with an earlier process's upload: the file's stat identity must be
    the one recorded at init, and the bytes already sent must still be the file's (each
    confirmed chunk is read again and compared with its recorded digest)."""
    machine = run.machine
    if machine.source_identity is None:
        return  # journalled before identities were kept: nothing to compare
    change = _file_change(run) or _sent_bytes_change(run)
    if change is None:
        return
    if machine.final_bytes_maybe_sent:
        changed_after_last_chunk(run, change)
        return
    _source_changed(run, change)


def _sent_bytes_change(run: UploadRun) -> str | None:
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


def _source_changed(run: UploadRun, change: str) -> None:
    """Abandon the upload under way (its last byte is never sent, so it never publishes)
    and start a fresh one of the file as it is now, or fail ``file_changed``."""
    machine = run.machine
    source = machine.request.source
    assert isinstance(source, FileSource)
    if machine.source_changes >= run.engine.config.max_source_changes:
        run.fail(
            ErrorInfo(
                "file_changed",
                f"{change} while it was uploading, {machine.source_changes + 1} times; "
                "nothing was published",
                retryable=True,
                hint="the file was modified while uploading — finish writing it, then rerun",
            )
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
        run.file = open_source(source)
    except UploadError as error:
        run.fail(
            ErrorInfo(
                "file_changed",
                f"{change}, and then: {error}",
                retryable=True,
                hint="the file was modified while uploading — finish writing it, then rerun",
            )
        )
        return
    initialise(run)


def _digest_of(file: BinaryIO, chunk: Chunk) -> str:
    """The SHA-256 (hex) of ``chunk``'s bytes in ``file``, read a block at a time."""
    digest = hashlib.sha256()
    window = FileWindow(file, chunk.first, chunk.length)
    while block := window.read(1 << 20):
        digest.update(block)
    return digest.hexdigest()
