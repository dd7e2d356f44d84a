"""TikTok's posting endpoints: creator_info, the three inits, status fetch.

Built sans-I/O in the manner of google-resumable-media: each endpoint is a *prepare* function
that describes the request as data (:class:`ApiCall`) and a *parse* function that turns the
answer's ``data`` into a frozen value; :func:`read_envelope` checks the envelope of every answer
(``tiktok-api.md`` §1: ``error.code != "ok"`` is a failure whatever the HTTP status) and raises
:class:`ApiError` classified by :mod:`orchestrator.tiktok.codes`. :class:`TikTokClient` is the thin
driver that adds the token, the pacing window, the retry policy and the one refresh after a 401.

Not here: the chunk PUTs (``orchestrator.upload``, which talks to the upload URL directly), token
storage (an :class:`AccessTokenSource` is passed in) and deciding what a failure means for an
entry. Tokens and upload URLs travel as :class:`Secret` and never reach a message.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.clock import Clock, SystemClock
from orchestrator.errors import ApiError, TransportError, UploadError
from orchestrator.retry import Retrier, SlidingWindowPacer
from orchestrator.secret import Secret
from orchestrator.tiktok.chunks import ChunkPlan
from orchestrator.tiktok.codes import Disposition, classify_code
from orchestrator.tiktok.credentials import AccessTokenSource
from orchestrator.transport import HttpResponse, Timeouts, Transport

log = logging.getLogger(__name__)


CREATOR_INFO_PATH = "/v2/post/publish/creator_info/query/"
VIDEO_INIT_PATH = "/v2/post/publish/video/init/"
INBOX_INIT_PATH = "/v2/post/publish/inbox/video/init/"
CONTENT_INIT_PATH = "/v2/post/publish/content/init/"
STATUS_PATH = "/v2/post/publish/status/fetch/"

API_TIMEOUTS = Timeouts(connect=10.0, read=30.0, total=60.0)
"""Every API call: 10 s to connect, 30 s between reads, 60 s for the whole exchange."""


class PostMode(enum.Enum):
    """Where a post goes: published now, or to the creator's inbox as a draft."""

    DIRECT = "direct"
    INBOX = "inbox"


class PublishState:
    """The ``status`` values of a status fetch (``tiktok-api.md`` §7)."""

    PROCESSING_UPLOAD = "PROCESSING_UPLOAD"
    PROCESSING_DOWNLOAD = "PROCESSING_DOWNLOAD"
    SEND_TO_USER_INBOX = "SEND_TO_USER_INBOX"
    PUBLISH_COMPLETE = "PUBLISH_COMPLETE"
    FAILED = "FAILED"


@dataclass(frozen=True)
class PostInfo:
    """The ``post_info`` of an init: caption and interaction settings.

    ``title`` is the caption of a video (≤ 2200 UTF-16 units) or the title of a photo post
    (≤ 90); ``description`` and ``auto_add_music`` apply to photo posts only,
    ``disable_duet``, ``disable_stitch``, ``video_cover_timestamp_ms`` and ``is_aigc`` to videos
    only. ``privacy_level`` is required for a direct post. Lengths are checked by the manifest.
    """

    privacy_level: str | None = None
    title: str = ""
    description: str = ""
    disable_comment: bool = False
    disable_duet: bool = False
    disable_stitch: bool = False
    video_cover_timestamp_ms: int | None = None
    brand_content_toggle: bool = False
    brand_organic_toggle: bool = False
    is_aigc: bool = False
    auto_add_music: bool = False

    def video_json(self) -> dict[str, Any]:
        """``post_info`` of a direct video init."""
        body: dict[str, Any] = {
            "title": self.title,
            "privacy_level": self._required_privacy_level(),
            "disable_comment": self.disable_comment,
            "disable_duet": self.disable_duet,
            "disable_stitch": self.disable_stitch,
            # §4: send both brand toggles, false by default.
            "brand_content_toggle": self.brand_content_toggle,
            "brand_organic_toggle": self.brand_organic_toggle,
            "is_aigc": self.is_aigc,
        }
        if self.video_cover_timestamp_ms is not None:
            body["video_cover_timestamp_ms"] = self.video_cover_timestamp_ms
        return body

    def photo_json(self, mode: PostMode) -> dict[str, Any]:
        """``post_info`` of a photo init (privacy only for a direct post)."""
        body: dict[str, Any] = {
            "title": self.title,
            "description": self.description,
            "disable_comment": self.disable_comment,
            "auto_add_music": self.auto_add_music,
            "brand_content_toggle": self.brand_content_toggle,
            "brand_organic_toggle": self.brand_organic_toggle,
        }
        if mode is PostMode.DIRECT:
            body["privacy_level"] = self._required_privacy_level()
        return body

    def _required_privacy_level(self) -> str:
        if not self.privacy_level:
            raise UploadError(
                "a direct post needs a privacy_level",
                hint="set privacy_level on the entry or in the manifest's defaults",
            )
        return self.privacy_level


@dataclass(frozen=True)
class CreatorInfo:
    """What creator_info says a creator may post now."""

    username: str
    nickname: str
    avatar_url: str
    privacy_level_options: tuple[str, ...]
    comment_disabled: bool
    duet_disabled: bool
    stitch_disabled: bool
    max_video_post_duration_sec: int


@dataclass(frozen=True)
class InitResult:
    """An accepted init: the ``publish_id`` and, for FILE_UPLOAD, the one-hour upload URL."""

    publish_id: str
    upload_url: Secret | None = None


@dataclass(frozen=True)
class PublishStatus:
    """A status fetch's answer. ``post_ids`` are strings: int64 ids survive any JSON reader."""

    status: str
    fail_reason: str | None = None
    post_ids: tuple[str, ...] = ()
    uploaded_bytes: int | None = None
    downloaded_bytes: int | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether TikTok is done with the post (an unknown status is still in progress)."""
        return self.status in (
            PublishState.PUBLISH_COMPLETE,
            PublishState.SEND_TO_USER_INBOX,
            PublishState.FAILED,
        )


@dataclass(frozen=True)
class ApiCall:
    """One API request as data.

    ``endpoint`` names its rate window (and the sandbox's fault endpoint); ``idempotent`` says
    whether it is safe to send again when an earlier attempt may have reached TikTok unanswered
    (false for a PULL_FROM_URL init: TikTok publishes on accepting it).
    """

    endpoint: str
    path: str
    body: Mapping[str, Any] | None = None
    idempotent: bool = True


# -- prepare: requests as data ---------------------------------------------------------------


def creator_info_call() -> ApiCall:
    """The creator_info query (empty body)."""
    return ApiCall("creator_info", CREATOR_INFO_PATH)


def _video_source_info(source: ChunkPlan | str) -> dict[str, Any]:
    if isinstance(source, ChunkPlan):
        return source.as_source_info()
    return {"source": "PULL_FROM_URL", "video_url": source}


def video_init_call(mode: PostMode, source: ChunkPlan | str, post_info: PostInfo) -> ApiCall:
    """A video init: direct post or inbox, from a chunk plan (FILE_UPLOAD) or a URL."""
    source_info = _video_source_info(source)
    is_file = isinstance(source, ChunkPlan)
    if mode is PostMode.DIRECT:
        body = {"post_info": post_info.video_json(), "source_info": source_info}
        return ApiCall("video_init", VIDEO_INIT_PATH, body, idempotent=is_file)
    # The inbox endpoint documents source_info only: the creator writes the caption in the app.
    return ApiCall("inbox_init", INBOX_INIT_PATH, {"source_info": source_info}, idempotent=is_file)


def photo_init_call(
    mode: PostMode, photo_urls: Sequence[str], cover_index: int, post_info: PostInfo
) -> ApiCall:
    """A photo post init (PULL_FROM_URL only); never idempotent."""
    if not 1 <= len(photo_urls) <= 35:
        raise UploadError(f"a photo post has 1 to 35 images, not {len(photo_urls)}")
    if not 0 <= cover_index < len(photo_urls):
        raise UploadError(f"photo_cover_index {cover_index} is not one of the images")
    body = {
        "media_type": "PHOTO",
        "post_mode": "DIRECT_POST" if mode is PostMode.DIRECT else "MEDIA_UPLOAD",
        "post_info": post_info.photo_json(mode),
        "source_info": {
            "source": "PULL_FROM_URL",
            "photo_images": list(photo_urls),
            "photo_cover_index": cover_index,
        },
    }
    return ApiCall("content_init", CONTENT_INIT_PATH, body, idempotent=False)


def status_call(publish_id: str) -> ApiCall:
    """A status fetch for ``publish_id``."""
    return ApiCall("status", STATUS_PATH, {"publish_id": publish_id})


def request_parts(api_base: str, call: ApiCall, token: Secret) -> tuple[str, dict[str, str], bytes]:
    """The URL, headers and body bytes of ``call`` (always a POST)."""
    body = b"" if call.body is None else json.dumps(call.body).encode("utf-8")
    headers = {
        "Authorization": f"Bearer {token.reveal()}",
        "Content-Type": "application/json; charset=UTF-8",
    }
    return api_base.rstrip("/") + call.path, headers, body


# -- process: answers to values ----------------------------------------------------------------


def read_envelope(call: ApiCall, response: HttpResponse) -> Mapping[str, Any]:
    """The ``data`` object of a successful answer; :class:`ApiError` for any failure.

    Success is a 2xx answer whose ``error.code`` is ``"ok"``; anything else fails, including an
    HTTP 200 carrying another code (§1) and an answer with no envelope at all.
    """
    payload = response.json()
    if not isinstance(payload, dict):
        payload = {}
    error = payload.get("error")
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or "")
    message = str(error.get("message") or "")
    log_id = str(error["log_id"]) if error.get("log_id") else None
    if code == "ok" and 200 <= response.status < 300:
        data = payload.get("data")
        return data if isinstance(data, dict) else {}
    if code in ("", "ok"):
        code = f"http_{response.status}"
        message = message or "an answer without a TikTok error code"
    info = classify_code(code, response.status)
    log.debug("%s answered %s %s (log_id %s)", call.path, response.status, code, log_id)
    raise ApiError(
        code,
        message,
        http_status=response.status,
        log_id=log_id,
        retryable=info.disposition is Disposition.RETRYABLE,
        reauth=info.disposition is Disposition.REAUTH,
        defer=info.disposition is Disposition.DEFER,
        hint=info.hint,
    )


def _malformed(call: ApiCall, what: str) -> ApiError:
    return ApiError(
        "invalid_response",
        f"{call.path} answered ok without {what}",
        http_status=200,
        hint="TikTok's answer was not understood; report it with the log",
    )


def _bool(value: object) -> bool:
    return bool(value) if isinstance(value, bool | int) else False


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    # isdigit() alone also accepts "²" or "٣", which int() refuses.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def parse_creator_info(data: Mapping[str, Any]) -> CreatorInfo:
    """creator_info's ``data``."""
    options = data.get("privacy_level_options")
    max_duration = _int_or_none(data.get("max_video_post_duration_sec"))
    return CreatorInfo(
        username=str(data.get("creator_username") or ""),
        nickname=str(data.get("creator_nickname") or ""),
        avatar_url=str(data.get("creator_avatar_url") or ""),
        privacy_level_options=tuple(str(o) for o in options) if isinstance(options, list) else (),
        comment_disabled=_bool(data.get("comment_disabled")),
        duet_disabled=_bool(data.get("duet_disabled")),
        stitch_disabled=_bool(data.get("stitch_disabled")),
        # 600 s is the API's own maximum (§5) when the answer leaves it out.
        max_video_post_duration_sec=600 if max_duration is None else max_duration,
    )


def parse_init(call: ApiCall, data: Mapping[str, Any], *, expects_upload_url: bool) -> InitResult:
    """An init's ``data``: a publish_id, and an upload URL for FILE_UPLOAD."""
    publish_id = data.get("publish_id")
    if not isinstance(publish_id, str) or not publish_id:
        raise _malformed(call, "a publish_id")
    upload_url = data.get("upload_url")
    if not expects_upload_url:
        return InitResult(publish_id)
    if not isinstance(upload_url, str) or not upload_url:
        raise _malformed(call, "an upload_url")
    return InitResult(publish_id, Secret(upload_url))


def parse_status(data: Mapping[str, Any]) -> PublishStatus:
    """A status fetch's ``data`` (the post id field is spelled ``publicaly`` by TikTok)."""
    ids = data.get("publicaly_available_post_id", data.get("publicly_available_post_id"))
    fail_reason = data.get("fail_reason")
    return PublishStatus(
        status=str(data.get("status") or ""),
        fail_reason=str(fail_reason) if fail_reason else None,
        post_ids=tuple(str(i) for i in ids) if isinstance(ids, list) else (),
        uploaded_bytes=_int_or_none(data.get("uploaded_bytes")),
        downloaded_bytes=_int_or_none(data.get("downloaded_bytes")),
    )


# -- the driver ----------------------------------------------------------------------------------


class TikTokClient:
    """The posting endpoints for any number of users, safe to share between threads.

    Each call takes the user's current access token from ``tokens``, waits for room in the
    user's rate window (``pacer``), and retries per ``retry``. A 401 ``access_token_invalid``
    refreshes the token once and retries once; a 429 holds the window before the retry.
    """

    def __init__(
        self,
        api_base: str,
        transport: Transport,
        tokens: AccessTokenSource,
        *,
        pacer: SlidingWindowPacer | None = None,
        retry: Retrier | None = None,
        clock: Clock | None = None,
        timeouts: Timeouts = API_TIMEOUTS,
    ) -> None:
        clock = clock or SystemClock()
        self._api_base = api_base.rstrip("/")
        self._transport = transport
        self._tokens = tokens
        self._pacer = pacer or SlidingWindowPacer(clock=clock)
        self._retry = retry or Retrier(clock=clock)
        self._timeouts = timeouts

    def creator_info(self, open_id: str) -> CreatorInfo:
        """What ``open_id`` may post now (privacy options, interactions, max duration)."""
        return parse_creator_info(self.execute(open_id, creator_info_call()))

    def init_direct_video(
        self, open_id: str, source: ChunkPlan | str, post_info: PostInfo
    ) -> InitResult:
        """Start a direct post of a video: from a chunk plan (FILE_UPLOAD) or a URL."""
        return self._init(open_id, video_init_call(PostMode.DIRECT, source, post_info), source)

    def init_inbox_video(self, open_id: str, source: ChunkPlan | str) -> InitResult:
        """Start an inbox upload (a draft the creator finishes in the app)."""
        call = video_init_call(PostMode.INBOX, source, PostInfo())
        return self._init(open_id, call, source)

    def init_photo(
        self,
        open_id: str,
        mode: PostMode,
        photo_urls: Sequence[str],
        cover_index: int,
        post_info: PostInfo,
    ) -> InitResult:
        """Start a photo post (direct) or photo upload to the inbox, from verified URLs."""
        call = photo_init_call(mode, photo_urls, cover_index, post_info)
        return parse_init(call, self.execute(open_id, call), expects_upload_url=False)

    def fetch_status(self, open_id: str, publish_id: str) -> PublishStatus:
        """Where TikTok is with ``publish_id``."""
        return parse_status(self.execute(open_id, status_call(publish_id)))

    def _init(self, open_id: str, call: ApiCall, source: ChunkPlan | str) -> InitResult:
        data = self.execute(open_id, call)
        return parse_init(call, data, expects_upload_url=isinstance(source, ChunkPlan))

    def execute(self, open_id: str, call: ApiCall) -> Mapping[str, Any]:
        """Send ``call`` for ``open_id`` with pacing, retries and the one refresh; the answer's
        ``data``. Raises :class:`ApiError`, :class:`TransportError` or an ``AuthError``."""
        refreshed = False

        def attempt() -> Mapping[str, Any]:
            nonlocal refreshed
            token = self._tokens.access_token(open_id)
            try:
                return self._send_once(open_id, call, token)
            except ApiError as error:
                if not error.reauth or refreshed:
                    raise
                refreshed = True
                # Said after the refresh: a dry run's tokens refuse to refresh (AuthError).
                fresh = self._tokens.refresh_after_rejection(open_id, token)
                log.info("%s: access token refused for %s; refreshed it once", call.path, open_id)
                return self._send_once(open_id, call, fresh)

        def retryable(error: BaseException) -> bool:
            if isinstance(error, TransportError):
                # A request that may have reached TikTok is sent again only when that is safe.
                return call.idempotent or not error.maybe_delivered
            return isinstance(error, ApiError) and error.retryable

        return self._retry.call(attempt, retryable=retryable)

    def _send_once(self, open_id: str, call: ApiCall, token: Secret) -> Mapping[str, Any]:
        url, headers, body = request_parts(self._api_base, call, token)
        # Paced per open_id, counted from when the answer came (see SlidingWindowPacer).
        with self._pacer.pacing(open_id, call.endpoint):
            response = self._transport.request(
                "POST", url, headers=headers, body=body, timeouts=self._timeouts
            )
        try:
            return read_envelope(call, response)
        except ApiError as error:
            if error.http_status == 429 or error.code == "rate_limit_exceeded":
                self._pacer.rejected(open_id, call.endpoint)
            raise
