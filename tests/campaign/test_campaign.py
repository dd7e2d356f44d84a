"""The seeded fault campaign: nothing posted twice, nothing lost, nothing leaked, whatever fails.

Each seed is a schedule (:mod:`tests.campaign.schedule`): several users, videos of mixed sizes
(under 5 MB, just over 5 MiB, two chunks, rarely ~64,000,000 bytes; over 128 MB in the full
campaign), URL and photo entries, inbox and direct posts; faults from every sandbox kind on
random calls (5xx, 401, 408, 429, resets before and mid-body, answers lost after acceptance,
answers held past the read timeout, dripped answers, upload URLs expiring, refreshes failing),
tokens expiring or revoked mid-run, FAILED statuses; SIGKILLs of the real process at random
moments; files edited in place between a kill and the rerun and while they upload (every
completed upload must be a whole version of its file, never a splice); ids added to the
entries before a later run (they adopt their journal records: nothing posted again); a damaged
or emptied ``state.db`` before a run (refused, nothing sent); and the process paused (SIGSTOP
inside an init, mid-chunk or while polling, TikTok's clock perhaps moving past the upload URL's
hour or the access token's lifetime meanwhile; then SIGCONT, or SIGKILL while stopped). The
paused-worker schedules on a shared PostgreSQL store are in test_paused_workers.py. The real
CLI runs it, again and again, until a run has nothing left to do; then
:mod:`tests.campaign.harness` checks every invariant (safety, the report, the journal and token
store, liveness, secrets).

The default run plays seeds 1..25 (about a minute and a half, two seeds at a time); more seeds make
the full campaign, with files over 128 MB too::

    python -m pytest tests/campaign --campaign-seeds=200
    CAMPAIGN_SEEDS=200 python -m pytest tests/campaign
    python benchmarks/campaign.py --seeds 200

A seed that ever broke an invariant stays in :data:`REGRESSIONS` with what it found and the
generator version it was found with (so it replays the very same schedule). Those that wait out
a real one-minute rate window (a 429 honoured) play in the full campaign only.
"""

from __future__ import annotations

import pytest

from tests.campaign.conftest import CampaignPool, Regression

REGRESSIONS = {
    # seed: (generator version, full campaign?, what it found)
    3: Regression(
        1,
        False,
        "a dripped init answer cut by the deadline inside its headers "
        "passed for an empty 200 (the entry failed permanently as http_200): transport",
    ),
    5: Regression(
        1, False, "re-uploading after TikTok reported FAILED was flagged as a duplicate: sandbox"
    ),
    34: Regression(
        1, False, "a refresh whose answer was lost, sent again, was flagged as reuse: sandbox"
    ),
    41: Regression(
        1,
        False,
        "an upload TikTok had was reported failed (not processing) on "
        "reruns once its user had to log in again: scheduler",
    ),
    76: Regression(
        1,
        False,
        "a run killed between TikTok's token rotation and its commit: "
        "the next run's reuse was flagged: sandbox",
    ),
    43: Regression(
        4,
        False,
        "a file edited in place while it uploaded completed as a splice of two versions: upload",
    ),
    78: Regression(
        2,
        True,
        "a rerun within a minute of the last run's inits got a 429, flagged on it: sandbox",
        slow=True,
    ),
    143: Regression(
        6,
        False,
        "a resumed one-chunk upload edited in place while its PUT was reset: the resend's "
        "guard abandoned an upload whose last chunk may have gone out "
        "(IllegalTransitionError, entry failed): upload",
    ),
    148: Regression(
        1,
        False,
        "a run killed before it read a 416: the next process's resend was flagged: sandbox",
    ),
    150: Regression(
        2,
        True,
        "a 429 across a SIGKILL (flagged: sandbox); then the rerun's "
        "pacing learnt the killed run's inits from the journal: runner",
    ),
    365: Regression(
        2,
        True,
        "a URL init in flight when the run was killed ends uncertain, "
        "legitimately: the campaign's liveness rule",
    ),
}


@pytest.mark.campaign
def test_seeded_fault_schedule_keeps_every_invariant(seed: int, campaign: CampaignPool) -> None:
    """This seed's faults, kills and reruns end with every entry posted at most once,
    byte-exact, settled in one terminal record, nothing lost without a fault to blame, the
    journal and token store readable, no protocol violation and no secret anywhere."""
    result = campaign.result(seed)
    assert not result.violations, result.summary()


@pytest.mark.campaign
def test_seed_that_once_broke_an_invariant_keeps_them_now(
    regression: int, campaign: CampaignPool
) -> None:
    """A seed that found a bug (see REGRESSIONS) replays the schedule it was found with and
    keeps every invariant."""
    found = REGRESSIONS[regression]
    result = campaign.result(regression, version=found.version, full=found.full)
    assert not result.violations, f"{found.found}\n{result.summary()}"
