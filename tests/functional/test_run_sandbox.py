"""`run` end to end against the sandbox over loopback: what TikTok received, and the report.

Every test checks the server's side: exactly one completed upload per entry, byte-exact
(SHA-256 of the file), and no protocol violation.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import StoreError
from orchestrator.manifest import Entry
from orchestrator.report import render_json, report_schema
from orchestrator.runner import run_manifest
from orchestrator.sandbox import Fault, Sandbox, SandboxConfig, SandboxUser
from orchestrator.scheduler import RunOptions
from orchestrator.settings import RunSettings
from orchestrator.store.journal import Journal
from orchestrator.store.tokens import TokenStore
from orchestrator.tiktok.chunks import MIN_CHUNK
from orchestrator.tiktok.codes import ORCHESTRATOR_CODES
from orchestrator.transport import Timeouts
from orchestrator.upload import ChunkConfirmed, Uploader, UploadEvent, UploadRequest
from tests.support.run_support import (
    TWO_CHUNKS,
    Hooks,
    RunRig,
    assert_published_once,
    completed_by_digest,
    journal_rows,
    open_rig,
    sandbox_settings,
    sign_in,
    token_grant,
    write_manifest,
)


def test_multi_user_manifest_publishes_everything_once_byte_exact(rig: RunRig) -> None:
    """Three users, multi-chunk and single-chunk files: each published once, exactly its bytes."""
    a, digest_a = rig.clip("a.mp4", TWO_CHUNKS)
    b, digest_b = rig.clip("b.mp4")
    c, digest_c = rig.clip("c.mp4", TWO_CHUNKS)
    d, digest_d = rig.clip("d.mp4")
    manifest = rig.manifest(
        [
            {"user_id": "sandbox-user-1", "video_path": a.name, "description": "one"},
            {"user_id": "sandbox-user-2", "video_path": b.name, "description": "two"},
            {"user_id": "sandbox-user-3", "video_path": c.name, "description": "three"},
            {"user_id": "sandbox-user-1", "video_path": d.name, "description": "four"},
        ]
    )
    report = rig.run(manifest)
    assert rig.statuses(report) == ["published"] * 4
    assert not report.interrupted
    assert not report.has_failures
    assert_published_once(rig.sandbox, [digest_a, digest_b, digest_c, digest_d])
    assert [e.chunks for e in report.entries] == [2, 1, 2, 1]
    assert report.entries[0].bytes == TWO_CHUNKS
    assert all(e.publish_id for e in report.entries)
    assert {row["state"] for row in journal_rows(rig.home)} == {"published"}
    jsonschema.validate(json.loads(render_json(report)), report_schema())


def test_second_run_sends_no_init_and_no_chunk_and_reports_already_done(rig: RunRig) -> None:
    """A rerun of a finished manifest only reads the journal: no init, no chunk PUT."""
    a, digest_a = rig.clip("a.mp4", TWO_CHUNKS)
    b, digest_b = rig.clip("b.mp4")
    manifest = rig.manifest(
        [
            {"user_id": "sandbox-user-1", "video_path": a.name},
            {"user_id": "sandbox-user-2", "video_path": b.name},
        ]
    )
    first = rig.run(manifest)
    assert rig.statuses(first) == ["published", "published"]
    before = rig.sandbox.call_counts()
    second = rig.run(manifest)
    assert rig.statuses(second) == ["already_done", "already_done"]
    assert [e.publish_id for e in second.entries] == [e.publish_id for e in first.entries]
    assert rig.sandbox.call_counts() == before
    assert second.summary()["already_done"] == 2
    assert_published_once(rig.sandbox, [digest_a, digest_b])


def test_access_token_expiring_mid_run_is_refreshed_once_and_the_run_goes_on(
    rig: RunRig,
) -> None:
    """Two hours pass after the first post: the token is refreshed once; both entries post."""
    a, digest_a = rig.clip("a.mp4")
    b, digest_b = rig.clip("b.mp4", TWO_CHUNKS)
    manifest = rig.manifest(
        [
            {"user_id": "sandbox-user-1", "video_path": a.name},
            {"user_id": "sandbox-user-1", "video_path": b.name},
        ]
    )
    hooks = Hooks()
    hooks.on_finished = lambda entry, result: rig.clock.advance(7300)
    report = rig.run(manifest, RunOptions(jobs=1), observer=hooks)
    assert rig.statuses(report) == ["published", "published"]
    assert rig.sandbox.calls("token") == 1
    assert_published_once(rig.sandbox, [digest_a, digest_b])


def test_token_rejected_mid_run_is_refreshed_once_and_the_entry_posts(rig: RunRig) -> None:
    """TikTok refuses the access token after the first post (401): one refresh, then on."""
    a, digest_a = rig.clip("a.mp4")
    b, digest_b = rig.clip("b.mp4")
    manifest = rig.manifest(
        [
            {"user_id": "sandbox-user-2", "video_path": a.name},
            {"user_id": "sandbox-user-2", "video_path": b.name},
        ]
    )
    hooks = Hooks()
    hooks.on_finished = lambda entry, result: rig.sandbox.expire_access_tokens("sandbox-user-2")
    report = rig.run(manifest, observer=hooks)
    assert rig.statuses(report) == ["published", "published"]
    assert rig.sandbox.calls("token") == 1
    assert_published_once(rig.sandbox, [digest_a, digest_b])


def test_user_with_a_dead_refresh_token_fails_alone_with_the_login_hint(rig: RunRig) -> None:
    """A revoked user's entries fail with `auth login`; the other users' entries post."""
    clips = [rig.clip(f"{n}.mp4") for n in "abcd"]
    users = ["sandbox-user-1", "sandbox-user-2", "sandbox-user-2", "sandbox-user-3"]
    manifest = rig.manifest(
        [{"user_id": u, "video_path": p.name} for u, (p, _) in zip(users, clips, strict=True)]
    )
    rig.sandbox.revoke_user_tokens("sandbox-user-2")
    report = rig.run(manifest)
    assert rig.statuses(report) == ["published", "failed", "failed", "published"]
    for failed in report.entries[1:3]:
        assert failed.error is not None
        assert failed.error.code == "needs_login"
        assert "auth login" in (failed.error.hint or "")
    assert report.has_failures
    # One refresh attempt for the whole user, and no init for either of its entries.
    assert rig.sandbox.calls("token") == 1
    assert rig.sandbox.calls("video_init") == 2
    assert_published_once(rig.sandbox, [clips[0][1], clips[3][1]])


def test_upload_tiktok_has_is_processing_not_failed_when_its_user_must_log_in_again(
    rig: RunRig,
) -> None:
    """A user revoked once TikTok has all of a video's bytes: that entry is reported
    `processing` (it may be posted; it cannot be polled without a login) in this run and every
    rerun, never `failed` (which invites posting it again); the journal keeps its upload."""
    a, digest_a = rig.clip("a.mp4")
    b, _ = rig.clip("b.mp4")
    manifest = rig.manifest(
        [
            {"user_id": "sandbox-user-2", "video_path": a.name},
            {"user_id": "sandbox-user-2", "video_path": b.name},
        ]
    )
    size = a.stat().st_size
    hooks = Hooks()
    hooks.on_progress = lambda entry, sent: (
        rig.sandbox.revoke_user_tokens("sandbox-user-2") if sent == size else None
    )
    first = rig.run(manifest, RunOptions(jobs=1), observer=hooks)
    hooks.on_progress = lambda entry, sent: None
    second = rig.run(manifest, RunOptions(jobs=1), observer=hooks)
    for report in (first, second):
        assert rig.statuses(report) == ["processing", "failed"]
        error = report.entries[0].error
        assert error is not None
        assert error.code == "needs_login"
        assert report.entries[0].publish_id == rig.sandbox.publishes()[0].publish_id
    assert [row["state"] for row in journal_rows(rig.home)] == ["uploaded", "failed"]
    assert completed_by_digest(rig.sandbox) == Counter([digest_a])


def test_caption_fixed_between_runs_is_not_posted_again(rig: RunRig) -> None:
    """Fixing a typo in the description changes nothing for the journal: already_done."""
    a, digest_a = rig.clip("a.mp4")
    entry = {"user_id": "sandbox-user-1", "video_path": a.name, "description": "Lanuch day"}
    rig.run(rig.manifest([entry]))
    inits = rig.sandbox.calls("video_init")
    report = rig.run(rig.manifest([{**entry, "description": "Launch day", "tags": ["fixed"]}]))
    assert rig.statuses(report) == ["already_done"]
    assert rig.sandbox.calls("video_init") == inits
    assert_published_once(rig.sandbox, [digest_a])


def test_file_replaced_by_other_content_is_a_new_post(rig: RunRig) -> None:
    """Same path, new bytes: a new identity, posted once; the old video is not posted again."""
    a, digest_a = rig.clip("a.mp4")
    manifest = rig.manifest([{"user_id": "sandbox-user-1", "video_path": a.name}])
    first = rig.run(manifest)
    _, digest_new = rig.clip("a.mp4", TWO_CHUNKS)  # overwrite the file
    second = rig.run(manifest)
    assert rig.statuses(second) == ["published"]
    assert second.entries[0].publish_id != first.entries[0].publish_id
    assert_published_once(rig.sandbox, [digest_a, digest_new])


def test_daily_cap_reached_mid_run_defers_the_rest_until_the_window_has_room(
    rig: RunRig,
) -> None:
    """With --daily-cap 2, the third post waits; 24 h after the first init it goes."""
    clips = [rig.clip(f"{n}.mp4") for n in "abc"]
    manifest = rig.manifest([{"user_id": "sandbox-user-1", "video_path": p.name} for p, _ in clips])
    options = RunOptions(daily_direct_cap=2)
    first_init_at = rig.clock.time()
    report = rig.run(manifest, options)
    assert rig.statuses(report) == ["published", "published", "deferred"]
    deferred = report.entries[2]
    assert deferred.error is not None
    assert deferred.error.code == "daily_cap"
    assert deferred.deferred_until is not None
    assert abs(deferred.deferred_until.timestamp() - (first_init_at + 86_400)) < 60
    assert not report.has_failures
    assert rig.sandbox.calls("video_init") == 2
    again = rig.run(manifest, options)
    assert rig.statuses(again) == ["already_done", "already_done", "deferred"]
    assert rig.sandbox.calls("video_init") == 2
    rig.clock.advance(86_400)
    later = rig.run(manifest, options)
    assert rig.statuses(later) == ["already_done", "already_done", "published"]
    assert_published_once(rig.sandbox, [digest for _, digest in clips])


def test_tiktok_daily_cap_defers_that_user_only_and_sends_no_more_inits(
    tmp_path: Path,
) -> None:
    """TikTok's spam_risk_too_many_posts defers the user's rest; the other user goes on."""
    with open_rig(tmp_path, SandboxConfig(daily_post_cap=2)) as custom:
        clips = [custom.clip(f"{n}.mp4") for n in "abcde"]
        users = ["sandbox-user-1"] * 4 + ["sandbox-user-2"]
        manifest = custom.manifest(
            [{"user_id": u, "video_path": p.name} for u, (p, _) in zip(users, clips, strict=True)]
        )
        report = custom.run(manifest)
        assert custom.statuses(report) == [
            "published",
            "published",
            "deferred",
            "deferred",
            "published",
        ]
        refused = report.entries[2].error
        assert refused is not None
        # TikTok's code, log_id and hint reach the report (not a bare "deferred").
        assert refused.code == "spam_risk_too_many_posts"
        assert refused.log_id
        assert refused.hint
        assert "daily post limit" in refused.hint
        assert report.entries[3].error is not None
        assert report.entries[3].error.code == "spam_risk_too_many_posts"
        deferred = [row for row in journal_rows(custom.home) if row["state"] == "deferred"]
        assert [row["error_code"] for row in deferred] == ["spam_risk_too_many_posts"] * 2
        assert deferred[0]["error_log_id"] == refused.log_id
        assert deferred[0]["error_hint"] == refused.hint
        assert not report.has_failures
        # The refused init was the last one sent for user 1.
        assert [p.open_id for p in custom.sandbox.publishes()].count("sandbox-user-1") == 2
        assert custom.sandbox.calls("video_init") == 4
        completed = [clips[0][1], clips[1][1], clips[4][1]]
        assert completed_by_digest(custom.sandbox) == Counter(completed)
        # TikTok's cap counts every app's posts: one refused init cannot be foreseen and is no
        # violation; the orchestrator sent no init after it.
        assert custom.sandbox.violations() == []


def test_api_answering_503_to_everything_ends_the_run_within_its_budget(tmp_path: Path) -> None:
    """A dead API: retries stop at the run's budget and every entry is deferred, not failed."""
    users = [SandboxUser(f"user-{n:02d}", f"User {n}") for n in range(40)]
    with open_rig(tmp_path, SandboxConfig(users=tuple(users))) as custom:
        clips = [custom.clip(f"{n}.mp4") for n in range(len(users))]
        manifest = custom.manifest(
            [
                {"user_id": u.open_id, "video_path": p.name}
                for u, (p, _) in zip(users, clips, strict=True)
            ]
        )
        for endpoint in ("creator_info", "video_init", "upload", "status", "token"):
            custom.sandbox.schedule(Fault(endpoint=endpoint, call=None, status=503))
        started = custom.clock.monotonic()
        tunables = RunSettings(chunk_size=MIN_CHUNK)  # the default budget
        report = custom.run(manifest, tunables=tunables)
        elapsed = custom.clock.monotonic() - started
        assert set(custom.statuses(report)) == {"deferred"}
        assert not report.has_failures
        assert not report.interrupted
        codes = Counter(e.error.code for e in report.entries if e.error)
        assert codes["retry_budget_spent"] > 0
        # Each request gets at most 5 attempts; retries stop at the budget (100).
        requests = custom.sandbox.calls("creator_info")
        assert requests <= tunables.budget_retries + len(users)
        assert custom.sandbox.calls("video_init") == 0
        assert elapsed <= tunables.budget_wait + 64
        print(f"503 everywhere: {requests} requests, {elapsed:.0f} s of backoff (virtual)")


def test_dry_run_sends_no_init_writes_nothing_and_shows_the_plan(rig: RunRig) -> None:
    """--dry-run: creator_info only; no init, chunk, refresh or journal row; the plan per entry."""
    done, _ = rig.clip("done.mp4")
    rig.run(rig.manifest([{"user_id": "sandbox-user-3", "video_path": done.name}]))
    # user-1's token is stale (a real run would refresh it first), user-2's has expired.
    now = rig.clock.time()
    with TokenStore.open(rig.settings, clock=rig.clock) as store:
        store.save_grants(
            [
                (token_grant(rig.sandbox, "sandbox-user-1", now - 7000), None),
                (token_grant(rig.sandbox, "sandbox-user-2", now - 7300), None),
            ]
        )
        generations = {u.open_id: u.generation for u in store.list_users()}
    big, _ = rig.clip("big.mp4", TWO_CHUNKS)
    small, _ = rig.clip("small.mp4")
    manifest = rig.manifest(
        [
            {"user_id": "sandbox-user-3", "video_path": done.name},
            {"user_id": "sandbox-user-1", "video_path": big.name},
            {"user_id": "sandbox-user-2", "video_path": small.name},
        ]
    )
    rows_before = journal_rows(rig.home)
    calls_before = rig.sandbox.call_counts()
    report = rig.run(manifest, RunOptions(dry_run=True))
    assert report.dry_run
    assert rig.statuses(report) == ["already_done", "planned", "planned"]
    assert not report.has_failures
    plan = report.entries[1]
    assert plan.chunks == 2
    assert plan.error is not None
    assert "2 chunks of 5,242,880" in plan.error.message
    expired = report.entries[2].error
    assert expired is not None
    assert "expired" in expired.message
    calls = rig.sandbox.call_counts()
    sent = {k: calls.get(k, 0) - calls_before.get(k, 0) for k in calls}
    assert {k: v for k, v in sent.items() if v} == {"creator_info": 1}  # user-1 only
    assert journal_rows(rig.home) == rows_before
    with TokenStore.open(rig.settings, clock=rig.clock) as store:
        assert {u.open_id: u.generation for u in store.list_users()} == generations


def test_publish_at_in_the_future_is_deferred_until_then(rig: RunRig) -> None:
    """An entry scheduled for tomorrow is deferred (no request); a run after that posts it."""
    a, digest_a = rig.clip("a.mp4")
    when = datetime.fromtimestamp(rig.clock.time() + 86_400, UTC).replace(microsecond=0)
    manifest = rig.manifest(
        [
            {
                "user_id": "sandbox-user-1",
                "video_path": a.name,
                "publish_at": when.isoformat().replace("+00:00", "Z"),
            }
        ]
    )
    report = rig.run(manifest)
    assert rig.statuses(report) == ["deferred"]
    assert report.entries[0].deferred_until == when
    assert rig.sandbox.calls() == 0
    rig.clock.advance(86_401)
    assert rig.statuses(rig.run(manifest)) == ["published"]
    assert_published_once(rig.sandbox, [digest_a])


def test_creator_info_mismatch_fails_before_any_byte_and_is_repeated_without_calling_tiktok(
    tmp_path: Path,
) -> None:
    """Comments on for a creator who disabled them: failed, no init; the next run repeats the
    failure offline; fixing the entry (or --retry-failed) lets it post."""
    users = (SandboxUser("creator", "Creator", comment_disabled=True),)
    with open_rig(tmp_path, SandboxConfig(users=users)) as custom:
        a, digest_a = custom.clip("a.mp4")
        entry = {"user_id": "creator", "video_path": a.name}
        manifest = custom.manifest([entry])
        report = custom.run(manifest)
        assert custom.statuses(report) == ["failed"]
        error = report.entries[0].error
        assert error is not None
        assert error.code == "creator_info_mismatch"
        assert error.hint == "set disable_comment: true"
        assert custom.sandbox.calls("video_init") == 0
        calls = custom.sandbox.calls()
        again = custom.run(manifest)
        assert custom.statuses(again) == ["failed"]
        assert custom.sandbox.calls() == calls
        retried = custom.run(manifest, RunOptions(retry_failed=True))
        assert custom.statuses(retried) == ["failed"]  # asked TikTok again: still refused
        assert custom.sandbox.calls("creator_info") == 2
        fixed = custom.run(custom.manifest([{**entry, "disable_comment": True}]))
        assert custom.statuses(fixed) == ["published"]
        assert_published_once(custom.sandbox, [digest_a])


def test_inbox_url_and_photo_entries_each_post_once(rig: RunRig) -> None:
    """An inbox upload, a PULL_FROM_URL video and a photo post: one publish each, then
    already_done."""
    a, digest_a = rig.clip("a.mp4")
    manifest = rig.manifest(
        [
            {"user_id": "sandbox-user-1", "video_path": a.name, "mode": "inbox"},
            {"user_id": "sandbox-user-2", "video_url": "https://media.example.com/v.mp4"},
            {
                "user_id": "sandbox-user-3",
                "photo_urls": [
                    "https://media.example.com/1.jpg",
                    "https://media.example.com/2.jpg",
                ],
                "title": "Two photos",
            },
        ]
    )
    report = rig.run(manifest)
    assert rig.statuses(report) == ["sent_to_inbox", "published", "published"]
    publishes = rig.sandbox.publishes()
    assert sorted(p.mode for p in publishes) == ["direct", "inbox", "photo"]
    assert all(p.completed for p in publishes)
    assert_published_once(rig.sandbox, [digest_a])
    again = rig.run(manifest)
    assert rig.statuses(again) == ["already_done"] * 3
    assert len(rig.sandbox.publishes()) == 3


def test_interrupted_mid_chunk_reports_it_and_the_rerun_finishes_exactly_once(
    rig: RunRig,
) -> None:
    """Stop during the second chunk: the report says interrupted, the journal keeps chunk 0,
    and the rerun sends only what is missing."""
    a, digest_a = rig.clip("a.mp4", TWO_CHUNKS)
    b, digest_b = rig.clip("b.mp4")
    manifest = rig.manifest(
        [
            {"user_id": "sandbox-user-1", "video_path": a.name},
            {"user_id": "sandbox-user-1", "video_path": b.name},
        ]
    )
    stop = threading.Event()
    hooks = Hooks()

    def stop_in_chunk_one(entry: Entry, sent: int) -> None:
        if sent > MIN_CHUNK + 100_000:
            stop.set()

    hooks.on_progress = stop_in_chunk_one
    report = rig.run(manifest, observer=hooks, stop=stop)
    assert report.interrupted
    assert rig.statuses(report) == ["deferred", "deferred"]
    assert all(e.error is not None and e.error.code == "interrupted" for e in report.entries)
    (row,) = journal_rows(rig.home)
    assert row["state"] == "uploading"
    assert row["bytes_confirmed"] == MIN_CHUNK
    uploads = rig.sandbox.calls("upload")
    rerun = rig.run(manifest)
    assert rig.statuses(rerun) == ["published", "published"]
    assert rig.sandbox.calls("video_init") == 2  # one per entry: the first was resumed
    assert rig.sandbox.calls("upload") == uploads + 2  # the last chunk of a, then b
    assert_published_once(rig.sandbox, [digest_a, digest_b])


class _InterruptOnLongSleep(ManualClock):
    """A manual clock on which a long wait (a pacing window) is where Ctrl-C arrives."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self._stop = stop

    def sleep(self, seconds: float) -> None:
        if seconds >= 10:
            self._stop.set()
        super().sleep(seconds)


def test_url_entry_interrupted_while_waiting_for_its_init_is_deferred_not_uncertain(
    tmp_path: Path,
) -> None:
    """Ctrl-C while the 7th URL init waits for the rate window: nothing was sent, so the entry
    is deferred, and the next run posts it (no uncertain entry, no second post)."""
    stop = threading.Event()
    clock = _InterruptOnLongSleep(stop)
    with Sandbox(SandboxConfig(), clock=clock) as sandbox:
        settings = sandbox_settings(sandbox, tmp_path / "home")
        sign_in(settings, sandbox, clock, ["sandbox-user-1"])
        urls = [f"https://media.example.com/{n}.mp4" for n in range(7)]
        manifest = write_manifest(
            tmp_path, [{"user_id": "sandbox-user-1", "video_url": url} for url in urls]
        )

        def run(stop_event: threading.Event | None) -> list[str]:
            report = run_manifest(settings, manifest, RunOptions(), clock=clock, stop=stop_event)
            return [entry.status for entry in report.entries]

        assert run(stop) == ["published"] * 6 + ["deferred"]
        assert sandbox.calls("video_init") == 6
        (last,) = [row for row in journal_rows(settings.home) if row["state"] != "published"]
        assert last["state"] == "deferred"
        clock.advance(120)
        assert run(None) == ["already_done"] * 6 + ["published"]
        assert sorted(p.source_info["video_url"] for p in sandbox.publishes()) == sorted(urls)
        assert sandbox.violations() == []


def test_resume_with_an_expired_url_and_only_the_last_chunk_left_never_inits_again(
    rig: RunRig,
) -> None:
    """The URL died while only the last chunk was left (it may have gone out): the rerun asks
    TikTok's status instead of a new init; TikTok says FAILED, so a later run starts over."""
    a, digest_a = rig.clip("a.mp4", TWO_CHUNKS)
    manifest = rig.manifest([{"user_id": "sandbox-user-1", "video_path": a.name}])
    stop = threading.Event()
    hooks = Hooks()
    hooks.on_progress = lambda entry, sent: stop.set() if sent > MIN_CHUNK + 100_000 else None
    assert rig.run(manifest, observer=hooks, stop=stop).interrupted
    rig.clock.advance(3700)  # the upload URL's hour is up
    inits, statuses = rig.sandbox.calls("video_init"), rig.sandbox.calls("status")
    settled = rig.run(manifest)
    assert rig.statuses(settled) == ["failed"]
    error = settled.entries[0].error
    assert error is not None
    assert error.retryable
    assert error.code == "internal"
    assert rig.sandbox.calls("video_init") == inits
    assert rig.sandbox.calls("status") > statuses
    assert completed_by_digest(rig.sandbox) == Counter()
    later = rig.run(manifest)
    assert rig.statuses(later) == ["published"]
    assert_published_once(rig.sandbox, [digest_a])


def test_a_journal_that_cannot_be_written_stops_the_run_before_more_requests(
    rig: RunRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state database refuses a write (disk full): the entry fails, every later entry is
    deferred without a request, and nothing is posted that the journal does not know of."""
    clips = [rig.clip(f"{n}.mp4") for n in "abc"]
    manifest = rig.manifest([{"user_id": "sandbox-user-1", "video_path": p.name} for p, _ in clips])
    real_record = Journal.record

    def full_disk(
        self: Journal, identity: str, user_id: str, event: UploadEvent, **fence: Any
    ) -> None:
        if isinstance(event, ChunkConfirmed):
            raise StoreError("database or disk is full")
        real_record(self, identity, user_id, event, **fence)

    monkeypatch.setattr(Journal, "record", full_disk)
    report = rig.run(manifest, RunOptions(jobs=1))
    assert rig.statuses(report) == ["failed", "deferred", "deferred"]
    assert all(e.error is not None and e.error.code == "store_error" for e in report.entries)
    assert rig.sandbox.calls("video_init") == 1
    monkeypatch.setattr(Journal, "record", real_record)
    rerun = rig.run(manifest)
    assert rig.statuses(rerun) == ["published"] * 3
    assert_published_once(rig.sandbox, [digest for _, digest in clips])


def test_pending_inbox_cap_defers_further_inbox_shares(rig: RunRig) -> None:
    """With --inbox-cap 1 the second draft for the same creator waits for a later run."""
    clips = [rig.clip(f"{n}.mp4") for n in "ab"]
    manifest = rig.manifest(
        [{"user_id": "sandbox-user-2", "video_path": p.name, "mode": "inbox"} for p, _ in clips]
    )
    report = rig.run(manifest, RunOptions(pending_inbox_cap=1))
    assert rig.statuses(report) == ["sent_to_inbox", "deferred"]
    error = report.entries[1].error
    assert error is not None
    assert error.code == "pending_inbox_cap"
    assert rig.sandbox.calls("inbox_init") == 1


def test_only_user_and_limit_select_entries_and_leave_the_rest_untouched(rig: RunRig) -> None:
    """--only-user and --limit narrow the run; unselected entries get no row and no request."""
    clips = [rig.clip(f"{n}.mp4") for n in "abc"]
    users = ["sandbox-user-1", "sandbox-user-2", "sandbox-user-2"]
    manifest = rig.manifest(
        [{"user_id": u, "video_path": p.name} for u, (p, _) in zip(users, clips, strict=True)]
    )
    report = rig.run(manifest, RunOptions(only_users=frozenset({"sandbox-user-2"}), limit=1))
    assert [(e.index, e.status) for e in report.entries] == [(1, "published")]
    assert [r["user_id"] for r in journal_rows(rig.home)] == ["sandbox-user-2"]
    assert_published_once(rig.sandbox, [clips[1][1]])


def test_one_video_for_several_users_is_fingerprinted_once_and_posted_to_each(
    rig: RunRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clip shared by three accounts: hashed once for the plan, published once per account."""
    import orchestrator.scheduler.plan as scheduler

    calls: list[object] = []
    real = scheduler.media_fingerprint

    def counting(media: object) -> str:
        calls.append(media)
        return real(media)  # type: ignore[arg-type]

    monkeypatch.setattr(scheduler, "media_fingerprint", counting)
    clip, digest = rig.clip("shared.mp4")
    manifest = rig.manifest(
        [
            {"user_id": user, "video_path": clip.name}
            for user in ("sandbox-user-1", "sandbox-user-2", "sandbox-user-3")
        ]
    )
    report = rig.run(manifest)
    assert rig.statuses(report) == ["published"] * 3
    assert len(calls) == 1
    completed = [p for p in rig.sandbox.publishes() if p.completed]
    assert sorted(p.open_id for p in completed) == [
        "sandbox-user-1",
        "sandbox-user-2",
        "sandbox-user-3",
    ]
    assert {p.sha256 for p in completed} == {digest}


def test_an_unexpected_error_in_one_entry_is_reported_as_unexpected_error_and_the_rest_posts(
    rig: RunRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug hit by one entry fails that entry alone with code unexpected_error (not TikTok's
    internal_error), retryable, with the bug-report hint; the other entries post."""
    a, _ = rig.clip("a.mp4")
    b, digest_b = rig.clip("b.mp4")
    manifest = rig.manifest(
        [
            {"user_id": "sandbox-user-1", "video_path": a.name},
            {"user_id": "sandbox-user-2", "video_path": b.name},
        ]
    )
    real_upload = Uploader.upload

    def broken_for_a(self: Uploader, request: UploadRequest, *args: Any, **kwargs: Any) -> Any:
        if request.open_id == "sandbox-user-1":
            raise RuntimeError("a bug")
        return real_upload(self, request, *args, **kwargs)

    monkeypatch.setattr(Uploader, "upload", broken_for_a)
    report = rig.run(manifest)
    assert rig.statuses(report) == ["failed", "published"]
    error = report.entries[0].error
    assert error is not None
    assert error.code == "unexpected_error"
    assert error.code in ORCHESTRATOR_CODES
    assert error.message == "RuntimeError: a bug"
    assert error.retryable
    assert error.hint
    assert "bug" in error.hint
    assert_published_once(rig.sandbox, [digest_b])


def test_api_timeouts_from_tunables_bound_api_requests(rig: RunRig) -> None:
    """With short api_timeouts, an API answer held past the read timeout is given up on and
    the request retried: the entry posts once (the held creator_info answered too late)."""
    a, digest_a = rig.clip("a.mp4")
    manifest = rig.manifest([{"user_id": "sandbox-user-1", "video_path": a.name}])
    rig.sandbox.schedule(Fault("creator_info", call=1, kind="delay", seconds=1.0))
    tunables = replace(rig.tunables, api_timeouts=Timeouts(connect=1.0, read=0.2, total=0.5))
    report = rig.run(manifest, tunables=tunables)
    assert rig.statuses(report) == ["published"]
    assert rig.sandbox.calls("creator_info") == 2
    assert_published_once(rig.sandbox, [digest_a])


def test_408_from_the_api_is_retried_and_the_entry_posts(rig: RunRig) -> None:
    """HTTP 408 (a gateway that gave up, no TikTok code it knows) on creator_info and on the
    init is retried like a 5xx: the entry posts once, it does not fail permanently."""
    a, digest_a = rig.clip("a.mp4")
    manifest = rig.manifest([{"user_id": "sandbox-user-1", "video_path": a.name}])
    rig.sandbox.schedule(Fault("creator_info", call=1, kind="status", status=408))
    rig.sandbox.schedule(Fault("video_init", call=1, kind="status", status=408))
    report = rig.run(manifest)
    assert rig.statuses(report) == ["published"]
    assert rig.sandbox.calls("creator_info") == 2
    assert rig.sandbox.calls("video_init") == 2
    assert_published_once(rig.sandbox, [digest_a])
