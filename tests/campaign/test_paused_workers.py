"""The campaign's paused-worker schedules: two workers on one PostgreSQL store, one stopped past
its lease, nothing posted twice.

Each seed (:func:`tests.campaign.schedule.generate_workers`) runs two real workers with a 2 s
``--lease`` on the same manifest against a fresh database; worker A is stopped (SIGSTOP) inside
an init, mid-chunk or while polling for longer than its lease — sometimes with every session on
the database terminated meanwhile, sometimes killed while stopped — while worker B takes its
creators and entries over. The fencing (the claim counter checked in every journal write) must
keep one post per entry and each worker's report right (see :mod:`tests.campaign.workers`).

Beside the seeds, a control: :data:`CONTROL`, the issue's schedule written by hand and ordered
rather than timed (A's init answer held by the sandbox until A is stopped, A resumed only once
B polls its post), must post once with the fence and twice without it — so a campaign that
stops catching a missing fence fails, and the fence is shown to be what prevents the double
post.

A handful of seeds by default (:data:`~tests.campaign.schedule.REDUCED_WORKER_SEEDS`); a tenth
of ``--campaign-seeds`` in the full campaign. Without PostgreSQL (or the psycopg driver) they
skip saying so, and fail under ``CI=true``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.tiktok.chunks import MIN_CHUNK
from tests.campaign.schedule import (
    EntrySpec,
    Trigger,
    WorkerPause,
    WorkersSchedule,
    generate_workers,
)
from tests.campaign.workers import WorkersResult, play_workers
from tests.postgres.conftest import PgServer, pg_server  # noqa: F401  (the session's server)


@pytest.mark.campaign
def test_paused_worker_schedule_posts_each_entry_once(
    worker_seed: int,
    pg_server: PgServer,  # noqa: F811
    tmp_path: Path,
    worker_results: list[WorkersResult],
) -> None:
    """Worker A paused past its lease (its sessions perhaps terminated, perhaps never resumed)
    while B takes over: every entry ends done with one byte-exact post, every worker's report
    names that post, the shared run's queue is done, no protocol violation, no secret shown."""
    result = play_workers(generate_workers(worker_seed), tmp_path, pg_server.create_database())
    worker_results.append(result)
    assert not result.violations, result.summary()


CONTROL = WorkersSchedule(
    seed=0,
    entries=(EntrySpec(0, "sandbox-user-1", "direct", "file", 4 * MIN_CHUNK + 4321, "clip"),),
    faults=(),
    chunk_size=MIN_CHUNK,
    # The order, enforced by the sandbox rather than hoped for: A's init answer held
    # until A is stopped inside it, B started then, A resumed only once B polls its finished
    # upload (B has taken over and posted).
    pause=WorkerPause(
        Trigger("video_init", 1),
        seconds=3.0,
        terminate=False,
        kill=False,
        staggered=True,
        held=True,
        resume_after=Trigger("status", 1),
    ),
)
"""The paused-worker schedule of the issue's double post (played fenced and unfenced)."""


@pytest.mark.campaign
def test_the_control_schedule_posts_once_with_the_fence(
    pg_server: PgServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The control's schedule with the fence on: A, stopped inside its init while B takes
    over and posts, finds itself taken over when it resumes and sends nothing more: one post."""
    result = play_workers(CONTROL, tmp_path, pg_server.create_database())
    assert result.stopped, result.summary()
    assert not result.violations, result.summary()
    assert result.fenced > 0, result.summary()


@pytest.mark.campaign
def test_the_campaign_catches_a_paused_worker_without_its_fence(
    pg_server: PgServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The same schedule with the workers' fence switched off (journal writes unchecked,
    takeovers ignored) is the issue's double post — A stopped inside its init past the lease,
    B takes over and posts, A resumes and posts again — and the campaign reports it."""
    result = play_workers(CONTROL, tmp_path, pg_server.create_database(), unfenced=True)
    assert result.stopped, result.summary()
    assert any("entry 0 was posted 2 times" in v for v in result.violations), result.summary()
    ordering = ("never sent", "never reached", "inside a database transaction")
    assert not [v for v in result.violations if any(o in v for o in ordering)], result.summary()
