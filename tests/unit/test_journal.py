"""The journal: the rerun rules of SPEC §5, durability order, caps counting, sealed URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.clock import ManualClock
from orchestrator.rerun import Action, decide
from orchestrator.secret import Secret
from orchestrator.store.db import DB_FILENAME
from orchestrator.store.journal import EntryMeta, EntryState, Journal
from orchestrator.tiktok.chunks import MIN_CHUNK, plan_chunks
from orchestrator.upload import (
    ChunkConfirmed,
    Deferred,
    Failed,
    FileIdentity,
    Initialised,
    Processing,
    Published,
    SourceChanged,
    Uncertain,
    Uploaded,
    UploadState,
)

PLAN = plan_chunks(2 * MIN_CHUNK + 10, MIN_CHUNK)
URL = Secret("http://upload.example/upload/?upload_id=1&upload_token=SEKRIT-UPLOAD-TOKEN")


def meta(
    identity: str = "entry-1",
    *,
    kind: str = "file",
    digest: str = "d1",
    fingerprint: str = "f1",
    user: str = "user-1",
    mode: str = "direct",
) -> EntryMeta:
    return EntryMeta(identity, None, user, mode, kind, "a.mp4", digest, fingerprint)


def action(journal: Journal, identity: str = "entry-1", **kw: object) -> Action:
    """What rerun.decide makes of the journal's row for ``identity``."""
    options = {"request_digest": "d1", "fingerprint": "f1", **kw}
    return decide(journal.get(identity), **options).action  # type: ignore[arg-type]


def started(journal: Journal, m: EntryMeta | None = None) -> EntryMeta:
    m = m or meta()
    journal.begin(m)
    journal.record(m.identity, m.user_id, Initialised("pub-1", URL, 4000.0, PLAN))
    return m


def test_an_unknown_entry_starts(journal: Journal) -> None:
    """No row: a fresh attempt."""
    assert action(journal) is Action.START


def test_published_and_sent_to_inbox_are_already_done(journal: Journal) -> None:
    """Done entries are never touched again, whatever else changed."""
    m = started(journal)
    journal.record(m.identity, m.user_id, Uploaded())
    journal.record(m.identity, m.user_id, Published(("7",)))
    assert action(journal, request_digest="changed", retry_failed=True) is Action.ALREADY_DONE


@pytest.mark.parametrize("kind", ["video_url", "photo"])
def test_a_url_or_photo_init_left_initialising_is_uncertain(journal: Journal, kind: str) -> None:
    """An init may have been accepted with its answer lost: never retried automatically."""
    journal.begin(meta(kind=kind))
    assert action(journal) is Action.UNCERTAIN
    assert action(journal, retry_failed=True) is Action.UNCERTAIN


def test_a_file_init_left_initialising_starts_again(journal: Journal) -> None:
    """A lost file init is an orphan upload URL: nothing publishes without the bytes."""
    journal.begin(meta())
    assert action(journal) is Action.START


def test_the_kind_that_was_initialised_decides_not_the_current_one(journal: Journal) -> None:
    """A URL init lost under an id now pointing at a file is still uncertain."""
    journal.begin(meta(kind="video_url"))
    assert action(journal) is Action.UNCERTAIN


def test_permanent_failure_repeats_unless_retry_failed_or_changed(journal: Journal) -> None:
    """A permanent failure is repeated offline; --retry-failed or a changed entry retries."""
    m = started(journal)
    journal.record(m.identity, m.user_id, Failed("spam_risk_text", "no", retryable=False))
    assert action(journal) is Action.REPEAT_FAILURE
    assert action(journal, retry_failed=True) is Action.START
    assert action(journal, request_digest="fixed caption") is Action.START


def test_retryable_failure_and_deferral_start_again(journal: Journal) -> None:
    """Retryable failures and deferrals are tried again by the next run."""
    m = started(journal)
    journal.record(m.identity, m.user_id, Failed("internal", "try later", retryable=True))
    assert action(journal) is Action.START
    other = meta("entry-2")
    journal.settle(other, Deferred("daily cap", 5000.0))
    assert action(journal, "entry-2") is Action.START
    record = journal.get("entry-2")
    assert record is not None
    assert record.deferred_until == 5000.0


def test_an_unfinished_transfer_resumes_on_its_url_from_the_confirmed_bytes(
    journal: Journal,
) -> None:
    """UPLOADING resumes with the stored URL, expiry, plan and confirmed bytes."""
    m = started(journal)
    journal.record(m.identity, m.user_id, ChunkConfirmed(0, MIN_CHUNK))
    decision = decide(journal.get(m.identity), request_digest="d1", fingerprint="f1")
    assert decision.action is Action.RESUME
    point = decision.resume_point
    assert point is not None
    assert point.state is UploadState.UPLOADING
    assert point.upload_url == URL
    assert point.plan == PLAN
    assert point.bytes_confirmed == MIN_CHUNK
    assert point.url_expires_at == 4000.0


def test_a_resumed_transfer_carries_the_file_identity_and_chunk_digests(
    journal: Journal,
) -> None:
    """The stat identity recorded at init and each confirmed chunk's SHA-256 come back in the
    resume point, so a new process can check the file before sending the rest."""
    m = meta()
    journal.begin(m)
    identity = FileIdentity(1, 2, PLAN.video_size, 3, 4)
    journal.record(m.identity, m.user_id, Initialised("p-1", URL, 4000.0, PLAN, identity))
    journal.record(m.identity, m.user_id, ChunkConfirmed(0, MIN_CHUNK, "a" * 64))
    decision = decide(journal.get(m.identity), request_digest="d1", fingerprint="f1")
    assert decision.resume_point is not None
    assert decision.resume_point.source == identity
    assert decision.resume_point.chunk_digests == ("a" * 64,)


def test_a_source_change_leaves_the_entry_to_start_afresh(journal: Journal) -> None:
    """After SourceChanged the abandoned upload is never resumed: a rerun starts afresh."""
    m = started(journal)
    journal.record(m.identity, m.user_id, ChunkConfirmed(0, MIN_CHUNK, "a" * 64))
    journal.record(m.identity, m.user_id, SourceChanged("edited"))
    assert action(journal) is Action.START
    record = journal.get(m.identity)
    assert record is not None
    assert record.upload_url is None


@pytest.mark.parametrize("state", ["uploaded", "processing"])
def test_uploaded_or_processing_is_only_polled(journal: Journal, state: str) -> None:
    """Once TikTok has the bytes, a rerun polls and never inits."""
    m = started(journal)
    journal.record(m.identity, m.user_id, ChunkConfirmed(0, MIN_CHUNK))
    journal.record(m.identity, m.user_id, ChunkConfirmed(1, PLAN.video_size))
    journal.record(m.identity, m.user_id, Uploaded())
    if state == "processing":
        journal.record(m.identity, m.user_id, Processing("PROCESSING_UPLOAD"))
    decision = decide(journal.get(m.identity), request_digest="other", fingerprint="other")
    assert decision.action is Action.RESUME
    assert decision.resume_point is not None
    assert decision.resume_point.state is UploadState(state)


def test_a_replaced_file_under_an_id_is_not_appended_to_the_old_upload(
    journal: Journal,
) -> None:
    """Same id, other content, mid-upload: before the last chunk it starts over (the old
    upload cannot complete); with only the last chunk left it is settled by status."""
    m = started(journal)
    assert action(journal, fingerprint="new") is Action.START
    journal.record(m.identity, m.user_id, ChunkConfirmed(0, MIN_CHUNK))
    decision = decide(journal.get(m.identity), request_digest="d1", fingerprint="new")
    # Only the last chunk was left: it may have gone out; TikTok's status decides.
    assert decision.action is Action.RESUME
    assert decision.resume_point is not None
    assert decision.resume_point.state is UploadState.UPLOADED


def test_uncertain_stays_uncertain(journal: Journal) -> None:
    """An entry marked uncertain is reported, never retried, even with --retry-failed."""
    m = meta(kind="video_url")
    journal.begin(m)
    journal.record(m.identity, m.user_id, Uncertain("lost"))
    assert action(journal, retry_failed=True, request_digest="x") is Action.UNCERTAIN


def test_settle_never_overwrites_progress_tiktok_has(journal: Journal) -> None:
    """A pre-flight verdict cannot turn an upload TikTok holds into a failure."""
    m = started(journal)
    journal.record(m.identity, m.user_id, ChunkConfirmed(0, MIN_CHUNK))
    journal.settle(m, Failed("needs_login", "dead token", retryable=True))
    record = journal.get(m.identity)
    assert record is not None
    assert record.state is EntryState.UPLOADING


def test_begin_resets_a_failed_row_and_counts_attempts(journal: Journal) -> None:
    """A new attempt clears the old publish and error and counts one more attempt."""
    m = started(journal)
    journal.record(m.identity, m.user_id, Failed("internal", "x", retryable=True))
    journal.begin(m)
    record = journal.get(m.identity)
    assert record is not None
    assert record.state is EntryState.INITIALISING
    assert record.publish_id is None
    assert record.error_code is None
    assert record.attempts == 2


def test_init_times_count_every_accepted_init_per_user_and_mode(
    journal: Journal, clock: ManualClock
) -> None:
    """TikTok counts each accepted init (a restarted upload twice, a URL init too)."""
    file_entry = started(journal)
    clock.advance(10)
    journal.record(
        file_entry.identity, "user-1", Initialised("pub-2", URL, 9000.0, PLAN)
    )  # a new URL after the old one died
    url_entry = meta("entry-url", kind="video_url")
    journal.begin(url_entry)
    journal.record(url_entry.identity, "user-1", Initialised("pub-3", None, None, None))
    inbox = meta("entry-inbox", mode="inbox")
    started(journal, inbox)
    other_user = meta("entry-other", user="user-2")
    started(journal, other_user)
    never_sent = meta("entry-deferred")
    journal.settle(never_sent, Deferred("cap"))
    since = clock.time() - 86_400
    times = journal.init_times("user-1", "direct", since)
    assert len(times) == 3
    assert times == sorted(times)
    assert len(journal.init_times("user-1", "inbox", since)) == 1
    assert journal.init_times("user-1", "direct", clock.time() + 1) == []


def test_upload_url_is_sealed_at_rest(journal: Journal, tmp_path: Path) -> None:
    """The upload URL's token never sits in the database file in plain text."""
    started(journal)
    raw = b"".join(
        path.read_bytes() for path in (tmp_path / "home").iterdir() if DB_FILENAME in path.name
    )
    assert b"SEKRIT-UPLOAD-TOKEN" not in raw
    record = journal.get("entry-1")
    assert record is not None
    assert record.upload_url == URL
    assert "SEKRIT" not in repr(record)


def test_finished_upload_forgets_its_url(journal: Journal) -> None:
    """Once every byte is in, the URL (a credential) is dropped from the row."""
    m = started(journal)
    journal.record(m.identity, m.user_id, ChunkConfirmed(0, MIN_CHUNK))
    journal.record(m.identity, m.user_id, ChunkConfirmed(1, PLAN.video_size))
    journal.record(m.identity, m.user_id, Uploaded())
    record = journal.get(m.identity)
    assert record is not None
    assert record.upload_url is None
    assert record.uploaded_at is not None


def test_history_filters_and_orders_by_last_change(journal: Journal, clock: ManualClock) -> None:
    """Most recently changed first; --user and --since narrow it."""
    started(journal, meta("old"))
    clock.advance(100)
    started(journal, meta("new", user="user-2"))
    assert [r.identity for r in journal.history()] == ["new", "old"]
    assert [r.identity for r in journal.history(user_id="user-1")] == ["old"]
    assert [r.identity for r in journal.history(since=clock.time() - 50)] == ["new"]
    assert journal.by_publish_id("pub-1") is not None
    assert journal.by_publish_id("nope") is None


def test_only_steps_that_forbid_a_new_init_wait_for_the_disk(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Synced: a URL begin, the init, the confirm that lets the last chunk go. Not: the rest."""
    database = journal._database
    real = database.transaction
    synced: list[bool] = []

    def spy(*, durable: bool = True) -> object:
        synced.append(durable)
        return real(durable=durable)

    monkeypatch.setattr(database, "transaction", spy)
    three = plan_chunks(3 * MIN_CHUNK + 10, MIN_CHUNK)
    journal.begin(meta())
    journal.record("entry-1", "user-1", Initialised("pub-1", URL, 4000.0, three))
    first, second, last = three.chunks()
    journal.record("entry-1", "user-1", ChunkConfirmed(first.index, first.end))
    journal.record("entry-1", "user-1", ChunkConfirmed(second.index, second.end))
    journal.record("entry-1", "user-1", Uploaded())
    journal.record("entry-1", "user-1", Processing("PROCESSING_UPLOAD"))
    journal.record("entry-1", "user-1", Published(("7301",)))
    journal.begin(meta("entry-2", kind="video_url"))
    assert last.first == second.end
    assert synced == [False, True, False, True, False, False, False, True]
