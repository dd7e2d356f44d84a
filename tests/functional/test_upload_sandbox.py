"""The upload engine against the sandbox over loopback, under every fault of issue 5.

Each test checks what the *server* received: exactly one completed upload, byte-exact
(SHA-256 of the file), and no protocol violation — or, where the entry must not post, none.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import ApiError
from orchestrator.retry import Retrier, RetryBudget, SlidingWindowPacer
from orchestrator.sandbox import Fault, Sandbox, SandboxConfig
from orchestrator.sandbox.config import FAIL_REASONS
from orchestrator.secret import Secret
from orchestrator.settings import RunSettings
from orchestrator.tiktok.chunks import DEFAULT_CHUNK, MIN_CHUNK
from orchestrator.tiktok.client import PostInfo, PostMode, TikTokClient
from orchestrator.tiktok.codes import classify_fail_reason
from orchestrator.transport import Body, HttpResponse, HttpTransport, Timeouts
from orchestrator.upload import (
    Deferred,
    Failed,
    FileSource,
    MemoryJournal,
    PhotoSource,
    Resynced,
    Uploader,
    UploadOutcome,
    UploadRequest,
    UploadState,
    UrlSource,
)
from tests.support.run_support import unique_bytes

USER = "sandbox-user-1"
TWO_CHUNKS = 2 * MIN_CHUNK + 12_345  # just over two minimum chunks: chunk 0 + a longer last one
MEDIA_URL = "https://media.example.com/clip.mp4"


class SandboxTokens:
    """An AccessTokenSource over the sandbox's login shortcut (the real provider is elsewhere)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._lock = threading.Lock()
        self._tokens: dict[str, Secret] = {}
        self.refreshes = 0

    def access_token(self, open_id: str) -> Secret:
        with self._lock:
            if open_id not in self._tokens:
                self._tokens[open_id] = Secret(self._sandbox.grant_tokens(open_id)["access_token"])
            return self._tokens[open_id]

    def refresh_after_rejection(self, open_id: str, rejected: Secret) -> Secret:
        with self._lock:
            if self._tokens.get(open_id) != rejected:
                return self._tokens[open_id]
            self.refreshes += 1
            self._tokens[open_id] = Secret(self._sandbox.grant_tokens(open_id)["access_token"])
            return self._tokens[open_id]


class HookedTransport(HttpTransport):
    """The real transport, with a hook called before each request (to act mid-upload)."""

    def __init__(self) -> None:
        super().__init__(timeouts=Timeouts(connect=5, read=10, total=30))
        self.before: list[tuple[str, str]] = []
        self.hook = lambda method, url: None

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        timeouts: Timeouts | None = None,
    ) -> HttpResponse:
        self.before.append((method, url))
        self.hook(method, url)
        return super().request(method, url, headers=headers, body=body, timeouts=timeouts)


@dataclass
class Rig:
    sandbox: Sandbox
    clock: ManualClock
    tokens: SandboxTokens
    transport: HookedTransport
    client: TikTokClient
    uploader: Uploader
    journal: MemoryJournal

    def upload(self, request: UploadRequest) -> UploadOutcome:
        # What the scheduler does first for each user (and a strict TikTok requires).
        self.client.creator_info(request.open_id)
        return self.uploader.upload(request, self.journal)


@pytest.fixture
def rig() -> Iterator[Rig]:
    yield from _rig(SandboxConfig())


def _rig(config: SandboxConfig, **upload_config: float) -> Iterator[Rig]:
    clock = ManualClock()
    with Sandbox(config, clock=clock) as sandbox:
        tokens = SandboxTokens(sandbox)
        transport = HookedTransport()
        retry = Retrier(clock=clock, budget=RetryBudget(), draw=lambda: 0.5)
        client = TikTokClient(
            sandbox.base_url,
            transport,
            tokens,
            pacer=SlidingWindowPacer(clock=clock),
            retry=retry,
            clock=clock,
        )
        settings: dict[str, float] = {"chunk_size": MIN_CHUNK, **upload_config}
        uploader = Uploader(
            client,
            transport,
            retry=retry,
            config=RunSettings(**settings),  # type: ignore[arg-type]
            clock=clock,
        )
        try:
            yield Rig(sandbox, clock, tokens, transport, client, uploader, MemoryJournal())
        finally:
            transport.close()
        assert sandbox.server_errors() == []


_SEEDS = iter(range(1_000_000))


def make_video(folder: Path, size: int = TWO_CHUNKS) -> tuple[Path, str]:
    """A file of random bytes (unique per call) and its SHA-256."""
    data = unique_bytes(next(_SEEDS), size)
    path = folder / f"video-{size}-{hashlib.sha256(data).hexdigest()[:8]}.mp4"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def file_request(
    path: Path, mode: PostMode = PostMode.DIRECT, content_type: str = "video/mp4"
) -> UploadRequest:
    return UploadRequest(
        USER,
        mode,
        FileSource(path, path.stat().st_size, content_type),
        PostInfo(privacy_level="SELF_ONLY", title="Launch day #launch"),
        label="entry",
    )


def url_request(source: UrlSource | PhotoSource, mode: PostMode = PostMode.DIRECT) -> UploadRequest:
    return UploadRequest(
        USER, mode, source, PostInfo(privacy_level="SELF_ONLY", title="t"), label="entry"
    )


def assert_one_exact_upload(sandbox: Sandbox, digest: str) -> None:
    """The server holds exactly one completed upload, byte-exact, with no violation."""
    completed = [p for p in sandbox.publishes() if p.completed]
    assert len(completed) == 1, [p.publish_id for p in completed]
    assert completed[0].sha256 == digest
    assert sandbox.violations() == []


def assert_nothing_posted(sandbox: Sandbox) -> None:
    assert [p for p in sandbox.publishes() if p.completed] == []
    assert sandbox.violations() == []


# -- the four kinds of post ------------------------------------------------------------------


def test_direct_post_in_two_chunks(rig: Rig, tmp_path: Path) -> None:
    """A two-chunk direct post is published, its bytes exactly the file's."""
    path, digest = make_video(tmp_path)
    outcome = rig.upload(file_request(path))
    assert outcome.state is UploadState.PUBLISHED
    assert outcome.chunks == 2
    assert rig.sandbox.calls("upload") == 2
    assert_one_exact_upload(rig.sandbox, digest)


def test_small_video_goes_whole(rig: Rig, tmp_path: Path) -> None:
    """A 1 MB video is one PUT of the whole file."""
    path, digest = make_video(tmp_path, 1_000_000)
    outcome = rig.upload(file_request(path, content_type="video/quicktime"))
    assert outcome.state is UploadState.PUBLISHED
    assert rig.sandbox.calls("upload") == 1
    assert_one_exact_upload(rig.sandbox, digest)


def test_inbox_upload(rig: Rig, tmp_path: Path) -> None:
    """An inbox upload lands in the creator's inbox."""
    path, digest = make_video(tmp_path)
    outcome = rig.upload(file_request(path, PostMode.INBOX, "video/webm"))
    assert outcome.state is UploadState.SENT_TO_INBOX
    assert_one_exact_upload(rig.sandbox, digest)


def test_pull_from_url_video(rig: Rig) -> None:
    """A verified URL is handed to TikTok and polled to publication; no PUT."""
    outcome = rig.upload(url_request(UrlSource(MEDIA_URL)))
    assert outcome.state is UploadState.PUBLISHED
    assert rig.sandbox.calls("upload") == 0
    assert [p.source for p in rig.sandbox.publishes()] == ["PULL_FROM_URL"]
    assert rig.sandbox.violations() == []


@pytest.mark.parametrize(
    ("mode", "state"),
    [(PostMode.DIRECT, UploadState.PUBLISHED), (PostMode.INBOX, UploadState.SENT_TO_INBOX)],
)
def test_photo_post(rig: Rig, mode: PostMode, state: UploadState) -> None:
    """Photo posts from verified URLs publish directly or reach the inbox."""
    photos = PhotoSource(
        ("https://media.example.com/1.jpg", "https://media.example.com/2.jpg"), cover_index=1
    )
    assert rig.upload(url_request(photos, mode)).state is state
    assert len(rig.sandbox.publishes()) == 1
    assert rig.sandbox.violations() == []


# -- 5xx and reset on every endpoint -----------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["creator_info", "video_init", "upload", "status"])
@pytest.mark.parametrize("kind", ["status", "reset"])
def test_5xx_and_reset_on_each_file_upload_endpoint_are_retried(
    rig: Rig, tmp_path: Path, endpoint: str, kind: str
) -> None:
    """A 503 or a reset on any endpoint a file post uses is retried; one exact upload results."""
    path, digest = make_video(tmp_path)
    rig.sandbox.schedule(Fault(endpoint=endpoint, call=1, kind=kind, status=503))
    outcome = rig.upload(file_request(path))
    assert outcome.state is UploadState.PUBLISHED
    assert outcome.inits == 1
    assert_one_exact_upload(rig.sandbox, digest)


@pytest.mark.parametrize("kind", ["status", "reset"])
def test_5xx_and_reset_on_the_inbox_init_are_retried(rig: Rig, tmp_path: Path, kind: str) -> None:
    """The inbox init is retried after a 503 or a reset (a FILE_UPLOAD init cannot post)."""
    path, digest = make_video(tmp_path)
    rig.sandbox.schedule(Fault(endpoint="inbox_init", call=1, kind=kind, status=503))
    assert rig.upload(file_request(path, PostMode.INBOX)).state is UploadState.SENT_TO_INBOX
    assert_one_exact_upload(rig.sandbox, digest)


@pytest.mark.parametrize("endpoint", ["video_init", "content_init"])
def test_5xx_on_a_url_init_is_retried(rig: Rig, endpoint: str) -> None:
    """A URL or photo init answered 503 was refused, so it is safe to send again."""
    rig.sandbox.schedule(Fault(endpoint=endpoint, call=1, kind="status", status=503))
    source = (
        UrlSource(MEDIA_URL)
        if endpoint == "video_init"
        else PhotoSource(("https://media.example.com/1.jpg",))
    )
    assert rig.upload(url_request(source)).state is UploadState.PUBLISHED
    assert len(rig.sandbox.publishes()) == 1
    assert rig.sandbox.violations() == []


@pytest.mark.parametrize("endpoint", ["video_init", "content_init"])
@pytest.mark.parametrize("kind", ["reset", "lost"])
def test_unanswered_url_init_is_uncertain_and_never_resent(
    rig: Rig, endpoint: str, kind: str
) -> None:
    """A URL/photo init with no answer may have posted: UNCERTAIN, one request, no retry."""
    rig.sandbox.schedule(Fault(endpoint=endpoint, call=1, kind=kind))
    source = (
        UrlSource(MEDIA_URL)
        if endpoint == "video_init"
        else PhotoSource(("https://media.example.com/1.jpg",))
    )
    outcome = rig.upload(url_request(source))
    assert outcome.state is UploadState.UNCERTAIN
    assert rig.sandbox.calls(endpoint) == 1
    assert len(rig.sandbox.publishes()) == (1 if kind == "lost" else 0)
    assert rig.sandbox.violations() == []


# -- chunk faults ------------------------------------------------------------------------------


def test_reset_in_the_middle_of_a_chunk_body(rig: Rig, tmp_path: Path) -> None:
    """A reset 1 MB into chunk 0's body: the same range is resent."""
    path, digest = make_video(tmp_path)
    rig.sandbox.schedule(
        Fault(endpoint="upload", call=1, kind="reset_mid_body", after_bytes=1 << 20)
    )
    outcome = rig.upload(file_request(path))
    assert outcome.state is UploadState.PUBLISHED
    assert rig.sandbox.calls("upload") == 3
    assert_one_exact_upload(rig.sandbox, digest)


def test_reset_in_the_middle_of_the_last_chunk(rig: Rig, tmp_path: Path) -> None:
    """A reset inside the last chunk cannot have completed it: resent, never re-inited."""
    path, digest = make_video(tmp_path)
    rig.sandbox.schedule(Fault(endpoint="upload", call=2, kind="reset_mid_body", after_bytes=4096))
    outcome = rig.upload(file_request(path))
    assert outcome.state is UploadState.PUBLISHED
    assert outcome.inits == 1
    assert_one_exact_upload(rig.sandbox, digest)


def test_lost_answer_after_a_kept_chunk_resyncs_from_the_416(rig: Rig, tmp_path: Path) -> None:
    """Chunk 0 kept, answer lost: the resend gets 416 and the server's progress wins."""
    path, digest = make_video(tmp_path)
    rig.sandbox.schedule(Fault(endpoint="upload", call=1, kind="lost"))
    outcome = rig.upload(file_request(path))
    assert outcome.state is UploadState.PUBLISHED
    assert Resynced(MIN_CHUNK) in rig.journal.events
    assert rig.sandbox.calls("upload") == 3  # chunk 0, its resend (416), chunk 1
    assert_one_exact_upload(rig.sandbox, digest)


def test_lost_answer_to_the_last_chunk_is_settled_by_status(rig: Rig, tmp_path: Path) -> None:
    """The final chunk kept but unanswered: a status fetch settles it; no second init."""
    path, digest = make_video(tmp_path)
    rig.sandbox.schedule(Fault(endpoint="upload", call=2, kind="lost"))
    outcome = rig.upload(file_request(path))
    assert outcome.state is UploadState.PUBLISHED
    assert rig.sandbox.calls("video_init") == 1
    assert rig.sandbox.calls("upload") == 2
    assert_one_exact_upload(rig.sandbox, digest)


def test_upload_url_expiring_mid_upload_starts_over(rig: Rig, tmp_path: Path) -> None:
    """The URL expires at chunk 1 (403): a new init and a full upload; the first never posts."""
    path, digest = make_video(tmp_path)
    rig.sandbox.schedule(Fault(endpoint="upload", call=2, kind="expire"))
    outcome = rig.upload(file_request(path))
    assert outcome.state is UploadState.PUBLISHED
    assert outcome.inits == 2
    assert rig.sandbox.calls("video_init") == 2
    assert_one_exact_upload(rig.sandbox, digest)


def test_upload_url_hour_passing_mid_upload_starts_over(rig: Rig, tmp_path: Path) -> None:
    """An hour passes between chunks: the engine notices itself and inits again."""
    path, digest = make_video(tmp_path)

    def slow(method: str, url: str) -> None:
        if method == "PUT" and rig.sandbox.calls("upload") == 1:
            rig.clock.advance(3600)

    rig.transport.hook = slow
    outcome = rig.upload(file_request(path))
    assert outcome.state is UploadState.PUBLISHED
    assert outcome.inits == 2
    assert_one_exact_upload(rig.sandbox, digest)


def test_401_mid_upload_refreshes_once(rig: Rig, tmp_path: Path) -> None:
    """The access token dies after chunk 0 and the URL expires: the re-init refreshes once."""
    path, digest = make_video(tmp_path)

    def revoke_token(method: str, url: str) -> None:
        if method == "PUT" and rig.sandbox.calls("upload") == 1:
            rig.sandbox.expire_access_tokens(USER)

    rig.transport.hook = revoke_token
    rig.sandbox.schedule(Fault(endpoint="upload", call=2, kind="expire"))
    outcome = rig.upload(file_request(path))
    assert outcome.state is UploadState.PUBLISHED
    assert rig.tokens.refreshes == 1
    assert_one_exact_upload(rig.sandbox, digest)


def test_401_on_status_after_upload_refreshes_once(rig: Rig, tmp_path: Path) -> None:
    """The access token dies during the upload; the first status fetch refreshes once."""
    path, digest = make_video(tmp_path)

    def revoke_token(method: str, url: str) -> None:
        if method == "PUT" and rig.sandbox.calls("upload") == 1:
            rig.sandbox.expire_access_tokens(USER)

    rig.transport.hook = revoke_token
    assert rig.upload(file_request(path)).state is UploadState.PUBLISHED
    assert rig.tokens.refreshes == 1
    assert_one_exact_upload(rig.sandbox, digest)


# -- rate limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["video_init", "status"])
def test_429_waits_for_the_window_then_goes_on(rig: Rig, tmp_path: Path, endpoint: str) -> None:
    """429 on init or status: wait a minute (on the test clock), then carry on, one upload."""
    path, digest = make_video(tmp_path)
    rig.sandbox.schedule(Fault(endpoint=endpoint, call=1, kind="status", status=429))
    outcome = rig.upload(file_request(path))
    assert outcome.state is UploadState.PUBLISHED
    assert sum(rig.clock.slept) >= 60
    assert_one_exact_upload(rig.sandbox, digest)


def test_eight_posts_in_a_row_stay_inside_the_init_rate_limit(rig: Rig, tmp_path: Path) -> None:
    """Eight direct posts for one user: the 7th init waits for the window; TikTok never says 429."""
    digests = set()
    for _ in range(8):
        path, digest = make_video(tmp_path, 300_000)
        digests.add(digest)
        assert rig.upload(file_request(path)).state is UploadState.PUBLISHED
    assert {p.sha256 for p in rig.sandbox.publishes()} == digests
    assert rig.sandbox.calls("video_init") == 8
    assert max(rig.clock.slept) > 30, "an init waited for the one-minute window"
    assert rig.sandbox.violations() == []


# -- TikTok's verdicts --------------------------------------------------------------------------


@pytest.mark.parametrize("reason", FAIL_REASONS)
def test_failed_with_each_fail_reason(rig: Rig, tmp_path: Path, reason: str) -> None:
    """FAILED ends the entry with TikTok's fail_reason and the table's retryability."""
    path, _digest = make_video(tmp_path, 300_000)
    rig.sandbox.fail_next_publish(USER, reason)
    outcome = rig.upload(file_request(path))
    assert outcome.state is UploadState.FAILED
    event = rig.journal.events[-1]
    assert isinstance(event, Failed)
    assert event.code == reason
    assert event.retryable is classify_fail_reason(reason).retryable
    assert rig.sandbox.calls("video_init") == 1
    assert rig.sandbox.violations() == []


def test_status_that_never_finishes_stops_at_the_poll_deadline(tmp_path: Path) -> None:
    """A post still processing at the deadline is left PROCESSING for a later run."""
    for rig in _rig(SandboxConfig(processing_polls=10_000), poll_timeout=300.0):
        path, digest = make_video(tmp_path, 1_000_000)
        outcome = rig.upload(file_request(path))
        assert outcome.state is UploadState.PROCESSING
        assert outcome.error is None
        assert 10 <= rig.sandbox.calls("status") <= 30
        assert_one_exact_upload(rig.sandbox, digest)


def test_daily_cap_defers_without_sending(tmp_path: Path) -> None:
    """Over the creator's daily cap, the entry is deferred and no byte is sent."""
    for rig in _rig(SandboxConfig(daily_post_cap=0)):
        path, _digest = make_video(tmp_path)
        # creator_info already says the creator cannot post; the init says it again.
        with pytest.raises(ApiError) as caught:
            rig.client.creator_info(USER)
        assert caught.value.defer
        outcome = rig.uploader.upload(file_request(path), rig.journal)
        assert outcome.state is UploadState.DEFERRED
        assert isinstance(rig.journal.events[-1], Deferred)
        assert rig.sandbox.calls("upload") == 0


@pytest.mark.slow
def test_large_upload_with_default_chunks_survives_resets_and_a_lost_final_answer(
    tmp_path: Path,
) -> None:
    """150 MB in the default 64,000,000-byte chunks, a reset mid-chunk and a lost final answer:
    one exact upload, one init."""
    for rig in _rig(SandboxConfig(), chunk_size=DEFAULT_CHUNK):
        path, digest = make_video(tmp_path, 150_000_000)
        rig.sandbox.schedule(
            Fault(endpoint="upload", call=1, kind="reset_mid_body", after_bytes=30_000_000)
        )
        rig.sandbox.schedule(Fault(endpoint="upload", call=3, kind="lost"))
        outcome = rig.upload(file_request(path))
        assert outcome.state is UploadState.PUBLISHED
        assert (outcome.chunks, outcome.inits) == (2, 1)
        assert_one_exact_upload(rig.sandbox, digest)
