"""Settling an upload whose last chunk may have reached TikTok, and polling to the end.

Once the last chunk has been *sent* — even if its answer was lost — a second init could be a
second post, so from then on only TikTok's status decides (``uploaded_bytes`` / ``status``):

- FAILED: TikTok's own verdict ends the entry (an upload left incomplete fails ``internal``,
  retryable, so a later run inits again);
- every byte held, or already past the upload: Uploaded, then polled;
- fewer bytes held, at a chunk boundary: the server's progress wins and the transfer resends
  from there while the upload URL lives; when it is dead, Failed (nothing will publish);
- no answer, or out of settle attempts: Uploaded — the bytes were all sent, so the entry is
  polled (now and by later runs) and never initialised again.

Polling fetches the status with backoff on the injected clock until a terminal status or the
poll deadline; a deadline leaves the entry UPLOADED/PROCESSING for a later run to poll.
"""

from __future__ import annotations

import logging

from orchestrator.errors import ApiError, AuthError, TransportError
from orchestrator.outcomes import ErrorInfo
from orchestrator.tiktok.client import PublishState, PublishStatus
from orchestrator.tiktok.codes import classify_fail_reason
from orchestrator.upload.events import (
    Failed,
    Processing,
    Published,
    SentToInbox,
    Uploaded,
    UploadState,
)
from orchestrator.upload.run import UploadRun, error_info

log = logging.getLogger(__name__)

__all__ = ["changed_after_last_chunk", "poll", "settle"]


def settle(run: UploadRun, why: str, settles: int, *, url_dead: bool = False) -> None:
    """The last chunk may have reached TikTok: ask the status, never init again.

    TikTok reports FAILED → Failed with its reason (an upload left incomplete fails
    ``internal``, retryable). TikTok has everything → Uploaded. TikTok reports fewer bytes
    → resync and resend while the URL lives; when it is dead, Failed (retryable: by
    TikTok's own word nothing will publish). No answer, or out of settle attempts →
    Uploaded: the bytes were all sent, so the entry is polled (now and by later runs) and
    never initialised again.
    """
    machine = run.machine
    config = run.engine.config
    assert machine.plan is not None
    label = machine.request.name
    # Said once per upload: a resent last chunk that meets the same fault is the same event.
    log.log(
        logging.INFO if settles <= 1 else logging.DEBUG,
        "%s: %s; asking TikTok for the status%s",
        label,
        why,
        f" (attempt {settles})" if settles > 1 else "",
    )
    status = _fetch_status(run, "%s: the status fetch failed too (%s)")
    size = machine.plan.video_size
    url_alive = not url_dead and machine.url_usable(
        run.engine.clock.time(), config.upload_url_margin
    )
    if status is not None and status.status == PublishState.FAILED:
        # TikTok gave up on this publish (an upload left incomplete fails "internal"):
        # its own verdict ends the entry; a retryable reason lets a later run init again.
        _failed_by_tiktok(run, status, f"{why}; ")
        return
    if status is not None and _holds_everything(status, size):
        if machine.bytes_confirmed != size:
            run.resync(size)
        machine.record(Uploaded())
        return
    held = status.uploaded_bytes if status is not None else None
    if held is not None and held < size and machine.plan.is_boundary(held):
        if not url_alive:
            run.fail(
                ErrorInfo(
                    "upload_url_expired",
                    f"{why}; TikTok holds {held} of {size} bytes and the upload URL is over",
                    retryable=True,
                    hint="nothing was published; a later run starts the upload over",
                )
            )
            return
        if held != machine.bytes_confirmed:
            run.resync(held)
        if settles < config.max_settles:
            return  # the transfer loop resends from where TikTok is
    elif url_alive and settles < config.max_settles:
        return  # resend the last chunk: the same URL cannot post twice
    log.warning(
        "%s: could not confirm the last chunk; treating the upload as sent and polling "
        "(it is never initialised again)",
        label,
    )
    machine.record(Uploaded())


def changed_after_last_chunk(run: UploadRun, change: str) -> None:
    """The file changed, and the earlier process may have sent the last chunk: sending
    anything now could complete the upload with bytes of another version, and a new init
    could be a second post. TikTok's status decides: it has every byte (poll it), it gave
    up (Failed), or it lacks bytes nobody will send any more (the upload can never
    complete: fail ``file_changed``, retryable, so a later run posts the file afresh)."""
    machine = run.machine
    assert machine.plan is not None
    label = machine.request.name
    log.warning("%s: %s after its last chunk may have been sent; asking TikTok", label, change)
    status = _fetch_status(run, "%s: the status fetch failed (%s)")
    size = machine.plan.video_size
    if status is not None and status.status == PublishState.FAILED:
        _failed_by_tiktok(run, status, f"{change}; ")
        return
    held = status.uploaded_bytes if status is not None else None
    if (
        status is not None
        and not _holds_everything(status, size)
        and held is not None
        and held < size
    ):
        run.fail(
            ErrorInfo(
                "file_changed",
                f"{change} while it was uploading; TikTok holds {held} of {size} bytes, so "
                "that upload can never complete and nothing was published",
                retryable=True,
                hint="the file was modified while uploading — finish writing it, then rerun",
            )
        )
        return
    # TikTok has every byte (one version's: the earlier process sent them), or cannot
    # say: poll it, never init again.
    machine.record(Uploaded())


def poll(run: UploadRun) -> None:
    """Fetch the status with backoff until terminal or the poll deadline."""
    machine = run.machine
    assert machine.publish_id is not None
    config = run.engine.config
    clock = run.engine.clock
    deadline = clock.monotonic() + config.poll_timeout
    interval = config.poll_first
    label = machine.request.name
    while True:
        try:
            status = run.engine.client.fetch_status(machine.request.open_id, machine.publish_id)
        except (ApiError, TransportError) as error:
            run.error = error_info(error)
            log.info("%s: polling stopped (%s); a later run polls again", label, error)
            return
        except AuthError as error:
            run.error = (
                error_info(error, "unavailable") if error.transient else run.auth_error(error)
            )
            return
        if status.status == PublishState.PUBLISH_COMPLETE:
            machine.record(Published(status.post_ids))
            return
        if status.status == PublishState.SEND_TO_USER_INBOX:
            machine.record(SentToInbox())
            return
        if status.status == PublishState.FAILED:
            _failed_by_tiktok(run, status, "")
            return
        # Unknown statuses count as still in progress, bounded by the deadline.
        if machine.state is not UploadState.PROCESSING or machine.last_status != status.status:
            machine.record(Processing(status.status))
        if clock.monotonic() + interval > deadline:
            log.info(
                "%s: still %s after %.0f s; a later run polls again",
                label,
                status.status,
                config.poll_timeout,
            )
            return
        clock.sleep(interval)
        interval = min(interval * config.poll_factor, config.poll_max)


def _fetch_status(run: UploadRun, failed_message: str) -> PublishStatus | None:
    """The publish's status, or None when asking failed (logged with ``failed_message``)."""
    machine = run.machine
    assert machine.publish_id is not None
    try:
        return run.engine.client.fetch_status(machine.request.open_id, machine.publish_id)
    except (ApiError, TransportError, AuthError) as error:
        log.info(failed_message, machine.request.name, error)
        return None


def _failed_by_tiktok(run: UploadRun, status: PublishStatus, prefix: str) -> None:
    """TikTok reports FAILED: end the entry with its reason; a retryable one allows a rerun."""
    meaning = classify_fail_reason(status.fail_reason)
    run.finish(
        Failed(
            status.fail_reason or "failed",
            f"{prefix}TikTok reports FAILED ({status.fail_reason or 'no reason given'})",
            meaning.retryable,
            meaning.hint,
        )
    )


def _holds_everything(status: PublishStatus, size: int) -> bool:
    """Whether a (non-FAILED) status says TikTok has every byte or is already past the upload."""
    if status.status in ("", PublishState.PROCESSING_UPLOAD):
        return status.uploaded_bytes is not None and status.uploaded_bytes >= size
    return True
