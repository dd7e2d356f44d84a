"""Faults made of time, on the sandbox's controllable clock (in-process runs, no waiting).

The sandbox and the run share one :class:`~orchestrator.clock.ManualClock`: a hook on the
run's progress moves it forward mid-upload, so an access token or an upload URL expires between
two chunks exactly when the test says, and rate windows and 24-hour caps are crossed without a
second of real time. Every test checks the sandbox's side too: each file completed once,
byte-exact, and no protocol violation.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.clock import ManualClock
from orchestrator.sandbox import Fault, SandboxConfig
from orchestrator.scheduler import RunOptions
from orchestrator.store.journal import Journal
from orchestrator.tiktok.chunks import MIN_CHUNK
from orchestrator.upload import ChunkConfirmed, UploadEvent
from tests.support.run_support import (
    Hooks,
    RunRig,
    assert_published_once,
    completed_by_digest,
    journal_rows,
    open_rig,
)

USER = "sandbox-user-1"
THREE_CHUNKS = 3 * MIN_CHUNK + 777


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@contextlib.contextmanager
def _advance_after_first_chunk(rig: RunRig, seconds: float) -> Iterator[None]:
    """Move the shared clock ``seconds`` on once, right after the journal records that TikTok
    accepted chunk 0 (so the time passes between two chunks, not inside one)."""
    real_record = Journal.record
    moved: list[bool] = []

    def record(
        self: Journal, identity: str, user_id: str, event: UploadEvent, **fence: Any
    ) -> None:
        real_record(self, identity, user_id, event, **fence)
        if isinstance(event, ChunkConfirmed) and event.index == 0 and not moved:
            moved.append(True)
            rig.clock.advance(seconds)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Journal, "record", record)
        yield
    assert moved, "the upload never got past chunk 0"


def test_access_token_expiring_mid_upload_is_refreshed_before_polling(tmp_path: Path) -> None:
    """The access token expires between two chunks (chunks need no token): the rest of the
    upload goes on, the token is refreshed once before the status fetch, and the video posts
    once with no second init."""
    with open_rig(tmp_path, SandboxConfig(access_token_ttl=600)) as rig:
        clip, digest = rig.clip("a.mp4", THREE_CHUNKS)
        manifest = rig.manifest([{"user_id": USER, "video_path": clip.name}])
        with _advance_after_first_chunk(rig, 900):
            report = rig.run(manifest)
        assert rig.statuses(report) == ["published"]
        assert rig.sandbox.calls("token") == 1
        assert rig.sandbox.calls("video_init") == 1
        assert_published_once(rig.sandbox, [digest])


def test_access_token_revoked_by_tiktok_mid_upload_is_refreshed_on_its_401(tmp_path: Path) -> None:
    """TikTok stops honouring the token between two chunks while the store still thinks it
    fresh: the status fetch's 401 refreshes it once, and the video posts once."""
    with open_rig(tmp_path) as rig:
        clip, digest = rig.clip("a.mp4", THREE_CHUNKS)
        manifest = rig.manifest([{"user_id": USER, "video_path": clip.name}])
        hooks = Hooks()
        hooks.on_progress = lambda entry, sent: (
            rig.sandbox.expire_access_tokens(USER) if sent == MIN_CHUNK else None
        )
        report = rig.run(manifest, observer=hooks)
        assert rig.statuses(report) == ["published"]
        assert rig.sandbox.calls("token") == 1
        assert_published_once(rig.sandbox, [digest])


def test_upload_url_whose_hour_is_up_between_chunks_starts_over_with_a_new_init(
    tmp_path: Path,
) -> None:
    """The upload URL's hour runs out between chunk 0 and chunk 1 (the client knows it from
    its clock): a new init, the upload from byte 0, one completed upload; the abandoned one
    never completes, so nothing posts twice."""
    with open_rig(tmp_path) as rig:
        clip, digest = rig.clip("a.mp4", THREE_CHUNKS)
        manifest = rig.manifest([{"user_id": USER, "video_path": clip.name}])
        with _advance_after_first_chunk(rig, 3600):
            report = rig.run(manifest)
        assert rig.statuses(report) == ["published"]
        assert report.entries[0].attempts == 2
        assert rig.sandbox.calls("video_init") == 2
        first, second = rig.sandbox.publishes()
        assert (first.completed, first.bytes_received) == (False, MIN_CHUNK)
        assert second.completed
        assert_published_once(rig.sandbox, [digest])


def test_upload_url_tiktok_expires_early_between_chunks_is_replaced_on_its_403(
    tmp_path: Path,
) -> None:
    """TikTok's URL dies sooner than the client's hour (here after 20 minutes): the next
    chunk's 403 leads to a new init and a whole new upload, posted once."""
    with open_rig(tmp_path, SandboxConfig(upload_url_ttl=1200)) as rig:
        clip, digest = rig.clip("a.mp4", THREE_CHUNKS)
        manifest = rig.manifest([{"user_id": USER, "video_path": clip.name}])
        with _advance_after_first_chunk(rig, 1500):
            report = rig.run(manifest)
        assert rig.statuses(report) == ["published"]
        assert rig.sandbox.calls("video_init") == 2
        assert_published_once(rig.sandbox, [digest])


def test_token_and_upload_url_expiring_together_mid_upload(tmp_path: Path) -> None:
    """Two hours pass between two chunks: the URL and the access token are both dead. A token
    refresh, a new init, the whole upload again: one post."""
    with open_rig(tmp_path) as rig:
        clip, digest = rig.clip("a.mp4", THREE_CHUNKS)
        manifest = rig.manifest([{"user_id": USER, "video_path": clip.name}])
        with _advance_after_first_chunk(rig, 7300):
            report = rig.run(manifest)
        assert rig.statuses(report) == ["published"]
        assert rig.sandbox.calls("token") == 1
        assert rig.sandbox.calls("video_init") == 2
        assert_published_once(rig.sandbox, [digest])


def test_init_rate_window_is_kept_across_midnight(tmp_path: Path) -> None:
    """Seven inits for one user starting at 23:59:30: the seventh waits until a minute after
    the first, at 00:00:30 (the window slides; a new day does not empty it); TikTok never
    answers 429."""
    clock = ManualClock(start=_at("2026-11-22T23:59:30"))
    config = SandboxConfig(daily_post_cap=50)
    with open_rig(tmp_path, config, clock=clock) as rig:
        clips = [rig.clip(f"{n}.mp4") for n in range(7)]
        manifest = rig.manifest([{"user_id": USER, "video_path": p.name} for p, _ in clips])
        report = rig.run(manifest, RunOptions(daily_direct_cap=50))
        assert rig.statuses(report) == ["published"] * 7
        created = [p.created_at for p in rig.sandbox.publishes()]
        assert created[5] < _at("2026-11-23T00:00:00")
        assert created[6] >= created[0] + 60
        assert_published_once(rig.sandbox, [digest for _, digest in clips])


def test_rerun_right_after_six_inits_waits_for_the_window_instead_of_a_429(
    tmp_path: Path,
) -> None:
    """A run sends six inits for a user; a rerun a few seconds later (a crash, a cron retry)
    with a seventh entry waits for the minute to pass, from the journal's inits, instead of
    sending into a full window: TikTok never answers 429."""
    config = SandboxConfig(daily_post_cap=50)
    with open_rig(tmp_path, config) as rig:
        clips = [rig.clip(f"{n}.mp4") for n in range(7)]
        entries = [{"user_id": USER, "video_path": p.name} for p, _ in clips]
        options = RunOptions(daily_direct_cap=50)
        first = rig.run(rig.manifest(entries[:6]), options)
        assert rig.statuses(first) == ["published"] * 6
        rig.clock.advance(5)
        second = rig.run(rig.manifest(entries), options)
        assert rig.statuses(second) == ["already_done"] * 6 + ["published"]
        assert rig.sandbox.calls("video_init") == 7  # no init answered 429 and sent again
        created = [p.created_at for p in rig.sandbox.publishes()]
        assert created[6] >= created[0] + 60
        assert_published_once(rig.sandbox, [digest for _, digest in clips])


def test_tiktok_429_holds_the_window_for_a_minute_then_the_init_goes_through(
    tmp_path: Path,
) -> None:
    """TikTok answers 429 to an init although our count had room (another app shares the
    token): the client waits a whole window before the next init; one post."""
    with open_rig(tmp_path) as rig:
        clip, digest = rig.clip("a.mp4")
        manifest = rig.manifest([{"user_id": USER, "video_path": clip.name}])
        rig.sandbox.schedule(Fault("video_init", call=1, kind="status", status=429))
        before = rig.clock.monotonic()
        report = rig.run(manifest)
        assert rig.statuses(report) == ["published"]
        assert rig.clock.monotonic() - before >= 60
        assert rig.sandbox.calls("video_init") == 2
        assert_published_once(rig.sandbox, [digest])


def test_daily_cap_is_a_sliding_24_hours_not_a_calendar_day(tmp_path: Path) -> None:
    """Two direct posts at 23:00 fill a cap of two: a run at 00:30 (a new calendar day) still
    defers the third without an init, until 23:00 the next day; then it posts. TikTok's own
    cap agrees: no init is refused and no violation recorded."""
    clock = ManualClock(start=_at("2026-11-22T23:00:00"))
    with open_rig(tmp_path, SandboxConfig(daily_post_cap=2), clock=clock) as rig:
        clips = [rig.clip(f"{n}.mp4") for n in "abc"]
        manifest = rig.manifest([{"user_id": USER, "video_path": p.name} for p, _ in clips])
        options = RunOptions(daily_direct_cap=2)
        first = rig.run(manifest, options)
        assert rig.statuses(first) == ["published", "published", "deferred"]
        deferred = first.entries[2]
        assert deferred.error is not None
        assert deferred.error.code == "daily_cap"
        assert deferred.deferred_until is not None
        assert deferred.deferred_until.date().isoformat() == "2026-11-23"

        clock.advance(90 * 60)  # 00:30, the next calendar day
        inits = rig.sandbox.calls("video_init")
        after_midnight = rig.run(manifest, options)
        assert rig.statuses(after_midnight) == ["already_done", "already_done", "deferred"]
        assert rig.sandbox.calls("video_init") == inits

        clock.advance(deferred.deferred_until.timestamp() - clock.time() + 1)
        later = rig.run(manifest, options)
        assert rig.statuses(later) == ["already_done", "already_done", "published"]
        assert_published_once(rig.sandbox, [digest for _, digest in clips])


def test_pending_inbox_cap_counts_the_last_24_hours_across_midnight(tmp_path: Path) -> None:
    """The inbox cap (here one share) counts the shares of the last 24 hours: one sent at
    23:50 still counts at 00:10; 24 hours later the second share goes."""
    clock = ManualClock(start=_at("2026-11-22T23:50:00"))
    with open_rig(tmp_path, clock=clock) as rig:
        clips = [rig.clip(f"{n}.mp4") for n in "ab"]
        manifest = rig.manifest(
            [{"user_id": USER, "video_path": p.name, "mode": "inbox"} for p, _ in clips]
        )
        options = RunOptions(pending_inbox_cap=1)
        assert rig.statuses(rig.run(manifest, options)) == ["sent_to_inbox", "deferred"]
        clock.advance(20 * 60)
        assert rig.statuses(rig.run(manifest, options)) == ["already_done", "deferred"]
        clock.advance(24 * 3600)
        assert rig.statuses(rig.run(manifest, options)) == ["already_done", "sent_to_inbox"]
        assert completed_by_digest(rig.sandbox) == Counter(digest for _, digest in clips)
        assert rig.sandbox.violations() == []
        assert {row["state"] for row in journal_rows(rig.home)} == {"sent_to_inbox"}
