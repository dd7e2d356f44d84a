"""The upload engine against an in-memory TikTok: every rule of SPEC §6 and tiktok-api.md §9."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import IllegalTransitionError, UploadError
from orchestrator.retry import Retrier, RetryBudget, SlidingWindowPacer
from orchestrator.secret import Secret
from orchestrator.settings import RunSettings
from orchestrator.tiktok.chunks import MIN_CHUNK, plan_chunks
from orchestrator.tiktok.client import PostInfo, PostMode, TikTokClient
from orchestrator.upload import (
    TRANSITIONS,
    ChunkConfirmed,
    Deferred,
    Failed,
    FileSource,
    FinalChunkSending,
    Initialised,
    MemoryJournal,
    PhotoSource,
    Processing,
    Published,
    ResumePoint,
    Resynced,
    SentToInbox,
    SourceChanged,
    Uncertain,
    Uploaded,
    Uploader,
    UploadEvent,
    UploadMachine,
    UploadRequest,
    UploadState,
    UrlSource,
)
from tests.unit.fake_tiktok import API, FakeTikTok

SIZE = 3 * MIN_CHUNK + 1234  # three chunks, the last absorbing 1234 bytes


class Tokens:
    """Access tokens that name their user (the fake reads the open_id from them)."""

    def __init__(self) -> None:
        self.refreshes = 0

    def access_token(self, open_id: str) -> Secret:
        return Secret(f"{open_id}:tok-{self.refreshes}")

    def refresh_after_rejection(self, open_id: str, rejected: Secret) -> Secret:
        self.refreshes += 1
        return self.access_token(open_id)


class Progress:
    def __init__(self) -> None:
        self.deltas: list[int] = []

    def on_progress(self, bytes_delta: int) -> None:
        self.deltas.append(bytes_delta)

    @property
    def total(self) -> int:
        return sum(self.deltas)


@dataclass
class Rig:
    clock: ManualClock
    fake: FakeTikTok
    tokens: Tokens
    uploader: Uploader
    journal: MemoryJournal
    progress: Progress
    video: Path
    digest: str

    def request(self, mode: PostMode = PostMode.DIRECT, **changes: object) -> UploadRequest:
        source = changes.pop("source", FileSource(self.video, SIZE, "video/mp4"))
        return UploadRequest(
            "alice",
            mode,
            source,  # type: ignore[arg-type]
            PostInfo(privacy_level="SELF_ONLY", title="hello"),
            label="entry-1",
        )

    def upload(self, request: UploadRequest | None = None) -> object:
        return self.uploader.upload(request or self.request(), self.journal, self.progress)

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.journal.events]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("media") / "video.mp4"
    data = random.Random(5).randbytes(SIZE)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def make_rig(video: tuple[Path, str], **config: object) -> Rig:
    clock = ManualClock()
    fake = FakeTikTok(clock)
    tokens = Tokens()
    retry = Retrier(clock=clock, budget=RetryBudget(), draw=lambda: 1.0)
    client = TikTokClient(
        API, fake, tokens, pacer=SlidingWindowPacer(clock=clock), retry=retry, clock=clock
    )
    settings = {"chunk_size": MIN_CHUNK, **config}
    uploader = Uploader(
        client,
        fake,
        retry=retry,
        config=RunSettings(**settings),
        clock=clock,  # type: ignore[arg-type]
    )
    return Rig(clock, fake, tokens, uploader, MemoryJournal(), Progress(), video[0], video[1])


@pytest.fixture
def rig(video: tuple[Path, str]) -> Rig:
    return make_rig(video)


def assert_one_exact_upload(rig: Rig) -> None:
    """What the server got: one completed upload, byte-exact, no protocol violations."""
    completed = rig.fake.completed()
    assert len(completed) == 1
    assert completed[0].sha256 == rig.digest
    assert rig.fake.violations == []


# -- the happy paths ---------------------------------------------------------------------------


def test_direct_post_of_a_file_journals_every_step_in_order(rig: Rig) -> None:
    """Init, three chunks, uploaded, processing, published: each step journalled once."""
    outcome = rig.upload()
    assert outcome.state is UploadState.PUBLISHED
    assert rig.kinds() == [
        "Initialised",
        "ChunkConfirmed",
        "ChunkConfirmed",
        "ChunkConfirmed",
        "Uploaded",
        "Processing",
        "Published",
    ]
    first = rig.journal.events[0]
    assert isinstance(first, Initialised)
    assert first.plan == plan_chunks(SIZE, MIN_CHUNK)
    assert first.url_expires_at == pytest.approx(rig.clock.time() - 2.0 + 3600, abs=60)
    assert [e.bytes_confirmed for e in rig.journal.events if isinstance(e, ChunkConfirmed)] == [
        MIN_CHUNK,
        2 * MIN_CHUNK,
        SIZE,
    ]
    assert outcome.post_ids
    assert outcome.publish_id == first.publish_id
    assert (outcome.chunks, outcome.inits, outcome.chunk_requests) == (3, 1, 3)
    assert rig.progress.total == SIZE
    assert_one_exact_upload(rig)


def test_each_step_is_journalled_before_the_next_request(rig: Rig) -> None:
    """When the journal hears of chunk i, the server has seen exactly i+1 PUTs, no more."""
    seen_at_record: list[tuple[str, int]] = []

    class Watching(MemoryJournal):
        def record(self, event: UploadEvent) -> None:
            seen_at_record.append((type(event).__name__, len(rig.fake.requests)))
            super().record(event)

    rig.journal = Watching()
    rig.upload()
    # requests: init, put, put, put, status, status
    assert seen_at_record[:5] == [
        ("Initialised", 1),
        ("ChunkConfirmed", 2),
        ("ChunkConfirmed", 3),
        ("ChunkConfirmed", 4),
        ("Uploaded", 4),
    ]


def test_a_journal_that_fails_stops_the_upload_at_once(rig: Rig) -> None:
    """If the journal cannot record the init, no chunk is sent."""

    class Broken(MemoryJournal):
        def record(self, event: UploadEvent) -> None:
            raise OSError("disk full")

    rig.journal = Broken()
    with pytest.raises(OSError, match="disk full"):
        rig.upload()
    assert rig.fake.puts == 0


def test_inbox_upload_ends_in_the_inbox(rig: Rig) -> None:
    """An inbox upload ends SENT_TO_INBOX, and its init sent source_info only."""
    outcome = rig.upload(rig.request(PostMode.INBOX))
    assert outcome.state is UploadState.SENT_TO_INBOX
    assert rig.kinds()[-1] == "SentToInbox"
    assert set(rig.fake.publishes[0].body) == {"source_info"}
    assert_one_exact_upload(rig)


def test_pull_from_url_video_is_polled_without_any_put(rig: Rig) -> None:
    """A URL source inits, is treated as handed over, and is polled to publication."""
    outcome = rig.upload(rig.request(source=UrlSource("https://media.example.com/a.mp4")))
    assert outcome.state is UploadState.PUBLISHED
    assert rig.kinds() == ["Initialised", "Processing", "Published"]
    assert rig.fake.puts == 0


def test_photo_post_direct_and_to_the_inbox(video: tuple[Path, str]) -> None:
    """Photo posts: DIRECT_POST publishes, MEDIA_UPLOAD lands in the inbox."""
    photos = PhotoSource(("https://media.example.com/1.jpg", "https://media.example.com/2.jpg"), 1)
    direct = make_rig(video)
    assert direct.upload(direct.request(source=photos)).state is UploadState.PUBLISHED
    assert direct.fake.publishes[0].body["post_mode"] == "DIRECT_POST"
    inbox = make_rig(video)
    assert inbox.upload(inbox.request(PostMode.INBOX, source=photos)).state is (
        UploadState.SENT_TO_INBOX
    )
    assert inbox.fake.publishes[0].body["post_mode"] == "MEDIA_UPLOAD"


# -- chunk faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [500, 503, "reset", "timeout"])
def test_failed_chunk_is_resent_as_the_same_range(rig: Rig, fault: object) -> None:
    """A 5xx, reset or timeout on chunk 2 resends chunk 2 and the upload completes once."""
    rig.fake.put_faults[2] = fault  # type: ignore[assignment]
    outcome = rig.upload()
    assert outcome.state is UploadState.PUBLISHED
    assert outcome.chunk_requests == 4
    assert outcome.inits == 1
    assert rig.progress.total == SIZE
    assert_one_exact_upload(rig)


def test_lost_answer_to_a_kept_chunk_resyncs_from_the_416(rig: Rig) -> None:
    """Chunk 1 kept but its answer lost: the resend gets 416, progress jumps to the server's."""
    rig.fake.put_faults[1] = "lost"
    outcome = rig.upload()
    assert outcome.state is UploadState.PUBLISHED
    assert Resynced(MIN_CHUNK) in rig.journal.events
    assert any(d < 0 for d in rig.progress.deltas), "the lost chunk's bytes were taken back"
    assert rig.progress.total == SIZE
    assert_one_exact_upload(rig)


def test_lost_answer_to_the_last_chunk_is_settled_by_status_never_a_new_init(rig: Rig) -> None:
    """The last chunk is kept but unanswered: a status fetch settles it; one init only."""
    rig.fake.put_faults[3] = "lost"
    outcome = rig.upload()
    assert outcome.state is UploadState.PUBLISHED
    assert outcome.inits == 1
    assert len(rig.fake.publishes) == 1
    assert rig.fake.puts == 3, "the settled chunk was not sent again"
    assert "Uploaded" in rig.kinds()
    assert_one_exact_upload(rig)


def test_lost_last_answer_without_uploaded_bytes_resends_on_the_same_url(rig: Rig) -> None:
    """When the status cannot tell, the last chunk is resent to the same URL: 416 says done."""
    rig.fake.report_uploaded_bytes = False
    rig.fake.processing_polls = 5
    rig.fake.put_faults[3] = "lost"
    outcome = rig.upload()
    assert outcome.state is UploadState.PUBLISHED
    assert len(rig.fake.publishes) == 1
    assert_one_exact_upload(rig)


def test_reset_in_the_middle_of_the_last_chunk_is_simply_resent(rig: Rig) -> None:
    """A reset before the last chunk's body was all sent cannot have completed: resend."""
    rig.fake.put_faults[3] = "reset"
    outcome = rig.upload()
    assert outcome.state is UploadState.PUBLISHED
    assert rig.fake.puts == 4
    assert_one_exact_upload(rig)


def test_url_refused_before_the_last_byte_starts_over_with_a_new_init(rig: Rig) -> None:
    """A 403 on chunk 2 means the URL died: a new init, all chunks again, one completed post."""
    rig.fake.put_faults[2] = 403
    outcome = rig.upload()
    assert outcome.state is UploadState.PUBLISHED
    assert outcome.inits == 2
    assert len(rig.fake.publishes) == 2
    assert not rig.fake.publishes[0].complete
    assert rig.kinds().count("Initialised") == 2
    assert rig.progress.total == SIZE
    assert_one_exact_upload(rig)


def test_url_expiring_by_the_clock_mid_upload_starts_over(rig: Rig) -> None:
    """When the upload URL's hour is up before chunk 3, the engine inits again first."""

    def late(method: str, url: str) -> None:
        if method == "PUT" and rig.fake.puts == 1:
            rig.clock.advance(3600)

    rig.fake.on_request = late
    outcome = rig.upload()
    assert outcome.state is UploadState.PUBLISHED
    assert outcome.inits == 2
    assert_one_exact_upload(rig)


def test_url_dying_after_the_last_chunk_went_out_never_inits_again(rig: Rig) -> None:
    """Last chunk kept, answer lost, URL then refused: settle by status; one init."""
    rig.fake.report_uploaded_bytes = False
    rig.fake.processing_polls = 3

    def kill_url(method: str, url: str) -> None:
        if method == "PUT" and rig.fake.puts == 3:
            rig.fake.publishes[0].url_alive = False

    rig.fake.put_faults[3] = "lost"
    rig.fake.on_request = kill_url
    outcome = rig.upload()
    assert outcome.inits == 1
    assert len(rig.fake.publishes) == 1
    assert outcome.state is UploadState.PUBLISHED
    assert_one_exact_upload(rig)


def test_too_many_dead_urls_fail_retryably(rig: Rig) -> None:
    """An upload whose URLs keep dying gives up after the allowed re-inits, retryable."""
    for put in range(1, 10):
        rig.fake.put_faults[put] = 403
    outcome = rig.upload()
    assert outcome.state is UploadState.FAILED
    assert outcome.inits == 3
    assert outcome.error is not None
    assert outcome.error.code == "upload_url_expired"
    assert outcome.error.retryable
    assert rig.fake.completed() == []


def test_chunk_retries_exhausted_fail_retryably_without_completing(rig: Rig) -> None:
    """Chunk 2 failing five times: the entry fails (retryable), nothing was published."""
    for put in range(2, 7):
        rig.fake.put_faults[put] = 503
    outcome = rig.upload()
    assert outcome.state is UploadState.FAILED
    assert outcome.error is not None
    assert outcome.error.retryable
    assert rig.fake.completed() == []
    assert rig.progress.total == MIN_CHUNK


def test_chunk_refused_with_400_is_permanent(rig: Rig) -> None:
    """A 400 on a chunk is our request's fault: no retry, a permanent failure."""
    rig.fake.put_faults[1] = 400
    outcome = rig.upload()
    assert outcome.state is UploadState.FAILED
    assert outcome.error is not None
    assert not outcome.error.retryable
    assert rig.fake.puts == 1


# -- API faults ----------------------------------------------------------------------------------


def test_401_on_status_mid_upload_refreshes_once(rig: Rig) -> None:
    """A refused access token while polling is refreshed once and polling goes on."""
    rig.fake.fault_api("status", 401)
    assert rig.upload().state is UploadState.PUBLISHED
    assert rig.tokens.refreshes == 1


def test_429_on_init_waits_for_the_window(rig: Rig) -> None:
    """rate_limit_exceeded on init: wait a minute, init again, one publish."""
    rig.fake.fault_api("video_init", 429)
    assert rig.upload().state is UploadState.PUBLISHED
    assert sum(rig.clock.slept) >= 60
    assert len(rig.fake.publishes) == 1


def test_daily_cap_defers_the_entry(rig: Rig) -> None:
    """spam_risk_too_many_posts on init defers the entry; nothing is sent."""
    rig.fake.fault_api(
        "video_init",
        {"data": {}, "error": {"code": "spam_risk_too_many_posts", "message": "", "log_id": "L"}},
    )
    outcome = rig.upload()
    assert outcome.state is UploadState.DEFERRED
    assert isinstance(rig.journal.events[-1], Deferred)
    assert rig.fake.puts == 0
    # The report keeps TikTok's own code, log_id and hint, not a bare "deferred".
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.log_id) == ("spam_risk_too_many_posts", "L")
    assert outcome.error.hint
    assert "daily post limit" in outcome.error.hint
    assert outcome.error.retryable
    event = rig.journal.events[-1]
    assert (event.code, event.log_id) == ("spam_risk_too_many_posts", "L")


def test_permanent_init_error_fails_with_log_id_and_hint(rig: Rig) -> None:
    """privacy_level_option_mismatch fails the entry at once, keeping TikTok's log_id."""
    rig.fake.fault_api(
        "video_init",
        {
            "data": {},
            "error": {"code": "privacy_level_option_mismatch", "message": "m", "log_id": "L9"},
        },
    )
    outcome = rig.upload()
    assert outcome.state is UploadState.FAILED
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.log_id) == ("privacy_level_option_mismatch", "L9")
    assert outcome.error.hint
    assert not outcome.error.retryable


def test_lost_answer_to_a_url_init_is_uncertain(rig: Rig) -> None:
    """A URL init whose answer was lost may have posted: UNCERTAIN, never resent."""
    rig.fake.fault_api("video_init", "lost")
    outcome = rig.upload(rig.request(source=UrlSource("https://media.example.com/a.mp4")))
    assert outcome.state is UploadState.UNCERTAIN
    assert isinstance(rig.journal.events[-1], Uncertain)
    assert len(rig.fake.publishes) == 1


def test_lost_answer_to_a_file_init_is_retried(rig: Rig) -> None:
    """A FILE_UPLOAD init whose answer was lost is retried: the orphan never publishes."""
    rig.fake.fault_api("video_init", "lost")
    outcome = rig.upload()
    assert outcome.state is UploadState.PUBLISHED
    assert len(rig.fake.publishes) == 2
    assert_one_exact_upload(rig)


# -- polling -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "retryable"), [("internal", True), ("file_format_check_failed", False)]
)
def test_failed_status_carries_the_reason_and_retryability(
    rig: Rig, reason: str, retryable: bool
) -> None:
    """FAILED ends the entry with fail_reason, whether a retry may help, and a hint."""
    rig.fake.fail_reason = reason
    outcome = rig.upload()
    assert outcome.state is UploadState.FAILED
    event = rig.journal.events[-1]
    assert isinstance(event, Failed)
    assert (event.code, event.retryable) == (reason, retryable)
    assert event.hint


def test_polling_backs_off_and_stops_at_the_deadline(video: tuple[Path, str]) -> None:
    """A status that never finishes is polled 2 s, 3 s, 4.5 s… ≤ 30 s until the deadline."""
    rig = make_rig(video, poll_timeout=120.0)
    rig.fake.processing_polls = 10_000
    outcome = rig.upload()
    assert outcome.state is UploadState.PROCESSING
    assert outcome.error is None
    polls = [s for s in rig.clock.slept if s >= 2.0]
    assert polls[:4] == [2.0, 3.0, 4.5, 6.75]
    assert max(polls) <= 30.0
    assert sum(polls) <= 120.0
    assert rig.kinds().count("Processing") == 1, "an unchanged status is journalled once"


def test_unknown_status_counts_as_in_progress(rig: Rig) -> None:
    """A status TikTok adds later is not an error: keep polling."""
    rig.fake.fault_api(
        "status",
        {"data": {"status": "SOMETHING_NEW"}, "error": {"code": "ok", "message": "", "log_id": ""}},
    )
    assert rig.upload().state is UploadState.PUBLISHED
    assert Processing("SOMETHING_NEW") in rig.journal.events


# -- resume ---------------------------------------------------------------------------------------


def _first_two_chunks(rig: Rig) -> ResumePoint:
    """Run an upload that stops after two chunks (chunk 3 refused 5 times), as a resume point."""
    for put in range(3, 8):
        rig.fake.put_faults[put] = 503
    rig.upload()
    init = rig.journal.events[0]
    assert isinstance(init, Initialised)
    return ResumePoint(
        UploadState.UPLOADING,
        init.publish_id,
        init.upload_url,
        init.url_expires_at,
        init.plan,
        2 * MIN_CHUNK,
    )


def test_resume_sends_only_what_is_missing_on_the_same_url(rig: Rig) -> None:
    """A later run resumes on the live URL: one more PUT, no init, one completed upload."""
    point = _first_two_chunks(rig)
    puts_before = rig.fake.puts
    journal = MemoryJournal()
    outcome = rig.uploader.resume(rig.request(), point, journal)
    assert outcome.state is UploadState.PUBLISHED
    assert rig.fake.puts == puts_before + 1
    assert [type(e).__name__ for e in journal.events][:2] == ["ChunkConfirmed", "Uploaded"]
    assert len(rig.fake.publishes) == 1
    assert_one_exact_upload(rig)


def test_resume_on_an_expired_url_with_chunks_left_inits_again(rig: Rig) -> None:
    """Resuming after the URL's hour, before the last chunk was ever sent: a new init."""
    point = _first_two_chunks(rig)
    point = ResumePoint(
        UploadState.UPLOADING,
        point.publish_id,
        point.upload_url,
        rig.clock.time() - 1,
        point.plan,
        MIN_CHUNK,
    )
    outcome = rig.uploader.resume(rig.request(), point, MemoryJournal())
    assert outcome.state is UploadState.PUBLISHED
    assert len(rig.fake.publishes) == 2
    assert_one_exact_upload(rig)


def test_resume_with_only_the_last_chunk_left_never_inits_again(rig: Rig) -> None:
    """The earlier run may have sent the last chunk: an expired URL is settled, not re-inited."""
    point = _first_two_chunks(rig)
    expired = ResumePoint(
        UploadState.UPLOADING,
        point.publish_id,
        point.upload_url,
        rig.clock.time() - 1,
        point.plan,
        2 * MIN_CHUNK,
    )
    journal = MemoryJournal()
    outcome = rig.uploader.resume(rig.request(), expired, journal)
    assert len(rig.fake.publishes) == 1
    # TikTok says it holds two chunks of three and the URL is over: nothing will publish.
    assert outcome.state is UploadState.FAILED
    assert outcome.error is not None
    assert outcome.error.retryable


def _resume_point_with_digests(rig: Rig) -> ResumePoint:
    """The first two chunks' resume point, with the identity and digests the run recorded."""
    point = _first_two_chunks(rig)
    init = rig.journal.events[0]
    assert isinstance(init, Initialised)
    assert init.source is not None
    digests = tuple(e.digest for e in rig.journal.events if isinstance(e, ChunkConfirmed))
    assert len(digests) == 2
    assert None not in digests
    return dataclasses.replace(point, source=init.source, chunk_digests=digests)


def test_resume_checks_the_sent_chunks_digests_even_when_stat_says_unchanged(
    rig: Rig, tmp_path: Path
) -> None:
    """A new process re-reads the bytes already sent: a chunk that no longer matches its
    recorded digest abandons the old upload (never completed) and sends the file afresh,
    even though the file's stat identity is the one recorded at init."""
    point = _resume_point_with_digests(rig)
    assert point.source is not None
    # One chunk confirmed (the last one never went), and it no longer matches the file.
    tampered = dataclasses.replace(point, bytes_confirmed=MIN_CHUNK, chunk_digests=("0" * 64,))
    journal = MemoryJournal()
    outcome = rig.uploader.resume(rig.request(), tampered, journal)
    assert outcome.state is UploadState.PUBLISHED
    assert [type(e).__name__ for e in journal.events][:2] == ["SourceChanged", "Initialised"]
    assert len(rig.fake.publishes) == 2
    assert_one_exact_upload(rig)


def test_changed_file_with_only_the_last_chunk_left_sends_nothing_and_never_inits(
    rig: Rig,
) -> None:
    """The last chunk may have gone before the file changed: nothing is sent, no new init;
    TikTok holding fewer bytes means that upload can never complete: file_changed, retryable."""
    point = _resume_point_with_digests(rig)
    tampered = dataclasses.replace(point, chunk_digests=(point.chunk_digests[0], "0" * 64))
    puts, inits = rig.fake.puts, len(rig.fake.publishes)
    outcome = rig.uploader.resume(rig.request(), tampered, MemoryJournal())
    assert outcome.state is UploadState.FAILED
    assert outcome.error is not None
    assert outcome.error.code == "file_changed"
    assert outcome.error.retryable
    assert (rig.fake.puts, len(rig.fake.publishes)) == (puts, inits)
    assert rig.fake.completed() == []


def test_resume_with_matching_digests_goes_on_on_the_same_url(rig: Rig) -> None:
    """Unchanged file, matching digests: one more PUT on the same upload, no init."""
    point = _resume_point_with_digests(rig)
    journal = MemoryJournal()
    outcome = rig.uploader.resume(rig.request(), point, journal)
    assert outcome.state is UploadState.PUBLISHED
    assert [type(e).__name__ for e in journal.events][:2] == ["ChunkConfirmed", "Uploaded"]
    assert len(rig.fake.publishes) == 1


def test_resume_of_a_processing_entry_only_polls(rig: Rig) -> None:
    """An entry a previous run left processing is polled: no init, no PUT."""
    rig.upload()
    publish_id = rig.fake.publishes[0].publish_id
    requests_before = len(rig.fake.requests)
    outcome = rig.uploader.resume(
        rig.request(), ResumePoint(UploadState.PROCESSING, publish_id), MemoryJournal()
    )
    assert outcome.state is UploadState.PUBLISHED
    assert all(path.endswith("/status/fetch/") for _, path in rig.fake.requests[requests_before:])


# -- the machine itself --------------------------------------------------------------------------


def test_file_that_changed_size_fails_before_any_request(rig: Rig, tmp_path: Path) -> None:
    """A file whose size differs from the validated one is refused before the init."""
    other = tmp_path / "v.mp4"
    other.write_bytes(b"x" * 100)
    outcome = rig.upload(rig.request(source=FileSource(other, 99, "video/mp4")))
    assert outcome.state is UploadState.FAILED
    assert rig.fake.requests == []


def test_illegal_transition_names_the_legal_next_steps() -> None:
    """Confirming a chunk before any init is refused, naming what may come next."""
    machine = UploadMachine(
        UploadRequest("u", PostMode.DIRECT, UrlSource("https://x"), PostInfo()), MemoryJournal()
    )
    with pytest.raises(IllegalTransitionError, match="legal next: Deferred, Failed, Initialised"):
        machine.record(ChunkConfirmed(0, 10))


def test_no_new_init_once_the_last_chunk_may_have_gone(tmp_path: Path) -> None:
    """The machine itself refuses a second init after the last chunk was sent."""
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x" * 100)
    machine = UploadMachine(
        UploadRequest("u", PostMode.DIRECT, FileSource(video, 100, "video/mp4"), PostInfo()),
        MemoryJournal(),
    )
    init = Initialised("p1", Secret("https://u"), 0.0, plan_chunks(100))
    machine.record(init)
    machine.record(FinalChunkSending())
    with pytest.raises(IllegalTransitionError, match="settle with a status fetch"):
        machine.record(init)


def test_final_chunk_sending_sets_the_flag_without_journalling(tmp_path: Path) -> None:
    """FinalChunkSending is how the driver tells the machine the last chunk may have gone:
    it sets final_bytes_maybe_sent, and the journal sees nothing new (older journals match)."""
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x" * 100)
    journal = MemoryJournal()
    machine = UploadMachine(
        UploadRequest("u", PostMode.DIRECT, FileSource(video, 100, "video/mp4"), PostInfo()),
        journal,
    )
    with pytest.raises(IllegalTransitionError, match="needs state uploading"):
        machine.record(FinalChunkSending())
    machine.record(Initialised("p1", Secret("https://u"), 0.0, plan_chunks(100)))
    assert machine.final_bytes_maybe_sent is False
    machine.record(FinalChunkSending())
    assert machine.final_bytes_maybe_sent is True
    assert machine.state is UploadState.UPLOADING
    assert [type(event).__name__ for event in journal.events] == ["Initialised"]
    with pytest.raises(IllegalTransitionError, match="last chunk was sent"):
        machine.record(SourceChanged("the file grew"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("state", UploadState.PUBLISHED),
        ("final_bytes_maybe_sent", True),
        ("bytes_confirmed", 100),
        ("publish_id", "p2"),
        ("upload_url", None),
        ("plan", None),
        ("inits", 0),
    ],
)
def test_machine_state_is_read_only_from_outside(tmp_path: Path, field: str, value: object) -> None:
    """Assigning to the machine's state raises: it changes only through record(event)."""
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x" * 100)
    machine = UploadMachine(
        UploadRequest("u", PostMode.DIRECT, FileSource(video, 100, "video/mp4"), PostInfo()),
        MemoryJournal(),
    )
    with pytest.raises(AttributeError):
        setattr(machine, field, value)


def test_terminal_states_allow_nothing_more() -> None:
    """Published, sent to inbox, failed, deferred and uncertain are final."""
    for state in (
        UploadState.PUBLISHED,
        UploadState.SENT_TO_INBOX,
        UploadState.FAILED,
        UploadState.DEFERRED,
        UploadState.UNCERTAIN,
    ):
        assert state.is_terminal
        assert TRANSITIONS[state] == {}
    machine = UploadMachine(
        UploadRequest("u", PostMode.DIRECT, UrlSource("https://x"), PostInfo()), MemoryJournal()
    )
    machine.record(Deferred("cap"))
    with pytest.raises(IllegalTransitionError, match="finished"):
        machine.record(Published(()))


def test_events_never_show_the_upload_url() -> None:
    """An Initialised event's repr hides the upload URL's token."""
    event = Initialised("p", Secret("https://u/?upload_token=abc"), 1.0, plan_chunks(100))
    assert "abc" not in repr(event)
    assert "abc" not in repr(SentToInbox()) + repr(Uploaded())


# -- odd answers from the upload server -------------------------------------------------------


def test_server_calling_the_upload_complete_early_is_believed_and_polled(rig: Rig) -> None:
    """A 201 on chunk 1 of 3: the server's word wins; no more PUTs, the entry is polled."""
    rig.fake.put_faults[1] = 201
    outcome = rig.upload()
    assert rig.fake.puts == 1
    assert Resynced(SIZE) in rig.journal.events
    assert rig.kinds()[:3] == ["Initialised", "Resynced", "Uploaded"]
    assert rig.progress.total == SIZE
    assert outcome.inits == 1


def test_206_for_the_last_chunk_is_incoherent(rig: Rig) -> None:
    """A server that wants more after the last byte fails the entry (retryable), no re-init."""
    rig.fake.put_faults[3] = 206
    outcome = rig.upload()
    assert outcome.state is UploadState.FAILED
    assert outcome.error is not None
    assert outcome.error.code == "upload_incoherent"
    assert len(rig.fake.publishes) == 1


def test_416_without_content_range_restarts_from_zero(rig: Rig) -> None:
    """A 416 with no Content-Range means the server holds nothing: start from byte 0."""
    rig.fake.put_faults[2] = 416
    outcome = rig.upload()
    assert Resynced(0) in rig.journal.events
    # The fake still holds chunk 0, so the resend of chunk 0 gets a 416 with its real progress.
    assert Resynced(MIN_CHUNK) in rig.journal.events
    assert outcome.state is UploadState.PUBLISHED
    assert rig.progress.total == SIZE
    assert_one_exact_upload(rig)


def test_progress_rewinds_exactly_what_was_not_kept(rig: Rig) -> None:
    """After a reset mid-chunk and a lost answer, progress still sums to the file size."""
    rig.fake.put_faults[1] = "reset"
    rig.fake.put_faults[3] = "lost"
    rig.upload()
    negatives = [d for d in rig.progress.deltas if d < 0]
    assert negatives, "rewinds were reported"
    assert rig.progress.total == SIZE
    assert_one_exact_upload(rig)


def test_unreadable_content_range_fails_the_upload(rig: Rig) -> None:
    """A 416 whose Content-Range is for another size is incoherent: the entry fails."""
    machine = UploadMachine(rig.request(), MemoryJournal())
    machine.record(Initialised("p", Secret("https://u"), 0.0, plan_chunks(SIZE, MIN_CHUNK)))
    with pytest.raises(UploadError, match="does not match"):
        machine.server_progress("bytes 0-99/100")
    with pytest.raises(UploadError, match="unreadable"):
        machine.server_progress("items 1-2")
    with pytest.raises(UploadError, match="not a chunk boundary"):
        machine.server_progress(f"bytes 0-99/{SIZE}")
    assert machine.server_progress(f"bytes 0-{MIN_CHUNK - 1}/{SIZE}") == MIN_CHUNK
    assert machine.server_progress(None) == 0
