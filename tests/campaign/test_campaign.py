"""The seeded fault campaign: nothing posted twice, nothing lost, nothing leaked, whatever fails.

Each seed is a schedule (:mod:`tests.campaign.schedule`): several users, videos of mixed sizes
(under 5 MB, just over 5 MiB, two chunks, rarely ~64,000,000 bytes; over 128 MB in the full
campaign), URL and photo entries, inbox and direct posts; faults from every sandbox kind on
random calls (5xx, 401, 408, 429, resets before and mid-body, answers lost after acceptance,
answers held past the read timeout, dripped answers, upload URLs expiring, refreshes failing),
tokens expiring or revoked mid-run, FAILED statuses; and SIGKILLs of the real process at random
moments. The real CLI runs it, again and again, until a run has nothing left to do; then
:mod:`tests.campaign.harness` checks every invariant (safety, the report, the journal and token
store, liveness, secrets).

The default run plays seeds 1..25 (about half a minute, two seeds at a time); more seeds make
the full campaign, with files over 128 MB too::

    python -m pytest tests/campaign --campaign-seeds=200
    CAMPAIGN_SEEDS=200 python -m pytest tests/campaign
    python benchmarks/campaign.py --seeds 200

A seed that ever broke an invariant stays in :data:`REGRESSIONS` with what it found.
"""

from __future__ import annotations

import pytest

from tests.campaign.conftest import CampaignPool

REGRESSIONS = {
    3: "a dripped init answer cut by the deadline inside its headers passed for an empty 200 "
    "(the entry failed permanently as http_200): transport",
    5: "re-uploading after TikTok reported FAILED was flagged as a duplicate: sandbox",
    34: "a refresh whose answer was lost, sent again, was flagged as reuse: sandbox",
    41: "an upload TikTok had was reported failed (not processing) on reruns once its user had "
    "to log in again: scheduler",
    76: "a run killed between TikTok's token rotation and its commit: reuse flagged: sandbox",
    78: "a rerun within a minute of a killed run's inits got a 429, flagged on it: sandbox "
    "(played in the full campaign only: honouring TikTok's 429 takes a real minute)",
    148: "a run killed before it read a 416: the next process's resend flagged: sandbox",
    365: "a URL init in flight when the run was killed ends uncertain, legitimately: harness",
}


@pytest.mark.campaign
def test_seeded_fault_schedule_keeps_every_invariant(seed: int, campaign: CampaignPool) -> None:
    """This seed's faults, kills and reruns end with every entry posted at most once,
    byte-exact, settled in one terminal record, nothing lost without a fault to blame, the
    journal and token store readable, no protocol violation and no secret anywhere."""
    result = campaign.result(seed)
    assert not result.violations, result.summary()


SLOW_REGRESSIONS = frozenset({78})
"""Regression seeds that wait out a real one-minute rate window: full campaign only."""


@pytest.mark.campaign
def test_seed_that_once_broke_an_invariant_keeps_them_now(
    regression: int, campaign: CampaignPool
) -> None:
    """A seed that found a bug (see REGRESSIONS) keeps every invariant."""
    result = campaign.result(regression)
    assert not result.violations, f"{REGRESSIONS[regression]}\n{result.summary()}"
