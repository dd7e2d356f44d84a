"""The init step: ask TikTok for a publish (and, for a file, an upload URL).

An init is the one request that can post: for a URL or photo source TikTok publishes on its
own once the init is accepted, so a lost answer ends the entry UNCERTAIN and is never retried.
For a file, nothing publishes until the last chunk is accepted, so an init may be repeated
while no last chunk was sent (a dead upload URL, a file that changed before its last byte);
the callers in ``upload.transfer`` keep that rule.
"""

from __future__ import annotations

import logging
import os

from orchestrator.errors import ApiError, AuthError, TransportError, UploadError
from orchestrator.tiktok.chunks import ChunkPlan, plan_chunks
from orchestrator.tiktok.client import InitResult, PostMode, TikTokClient
from orchestrator.upload.events import Deferred, FileIdentity, Initialised, Uncertain
from orchestrator.upload.request import FileSource, PhotoSource, Source, UploadRequest, UrlSource
from orchestrator.upload.run import UploadRun, error_info

log = logging.getLogger(__name__)

__all__ = ["initialise"]


def initialise(run: UploadRun) -> None:
    """Init (or init again after a dead URL); records Initialised or a terminal event."""
    machine = run.machine
    request = machine.request
    source = request.source
    config = run.engine.config
    sent_at = run.engine.clock.time()
    identity = None
    if run.file is not None:
        # The version being uploaded: every later check compares the file with this.
        identity = FileIdentity.of(os.fstat(run.file.fileno()))
    try:
        plan = (
            plan_chunks(source.size, config.preferred_chunk_size)
            if isinstance(source, FileSource)
            else None
        )
        result = _call_init(run.engine.client, request, plan)
    except UploadError as error:
        run.fail(error_info(error, "upload_error"))
        return
    except ApiError as error:
        if error.defer:
            # Keep TikTok's own code, log_id and hint: "deferred" alone says nothing.
            run.finish(Deferred(str(error), code=error.code, log_id=error.log_id, hint=error.hint))
        else:
            run.fail(error_info(error))
        return
    except TransportError as error:
        if not isinstance(source, FileSource) and error.maybe_delivered:
            # A URL/photo init may have been accepted: a retry could post twice.
            run.finish(Uncertain(f"the init's answer was lost ({error}); it may have posted"))
        else:
            run.fail(error_info(error, "transport"))
        return
    except AuthError as error:
        if error.transient:
            # The token endpoint had trouble; the init was refused (401), not sent: later.
            run.finish(Deferred(str(error), code="unavailable", hint=error.hint))
        else:
            run.fail(run.auth_error(error))
        return
    expires = sent_at + config.upload_url_ttl if plan is not None else None
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


def _call_init(client: TikTokClient, request: UploadRequest, plan: ChunkPlan | None) -> InitResult:
    source = request.source
    if isinstance(source, PhotoSource):
        return client.init_photo(
            request.open_id, request.mode, source.urls, source.cover_index, request.post_info
        )
    video: ChunkPlan | str = plan if plan is not None else _url_of(source)
    if request.mode is PostMode.DIRECT:
        return client.init_direct_video(request.open_id, video, request.post_info)
    return client.init_inbox_video(request.open_id, video)


def _url_of(source: Source) -> str:
    assert isinstance(source, UrlSource)
    return source.url


def _chunks(count: int) -> str:
    return f"{count} chunk{'' if count == 1 else 's'}"
