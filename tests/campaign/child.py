"""The campaign's child process: the real ``run`` command with short engine times.

    python -m tests.campaign.child run MANIFEST [run options…]

Everything is the real command line (option parsing, logging, the run, reports, exit codes,
signal handling); only the engine's tunables are shortened, so faults that make it wait (an
answer held past the read timeout, backoffs, polling) cost fractions of a second instead of
minutes. Each run of :func:`orchestrator.runner.run_manifest` gets :data:`CAMPAIGN_TUNABLES`
with the command line's own poll timeout, chunk size and lease (``--lease``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from orchestrator import cli, runner
from orchestrator.report import RunReport
from orchestrator.retry import RetryPolicy
from orchestrator.settings import RunSettings
from orchestrator.transport import Timeouts

READ_TIMEOUT = 1.0
"""Seconds between two reads before a request is given up (the campaign's ``delay`` is longer)."""

CAMPAIGN_TUNABLES = RunSettings(
    retry_policy=RetryPolicy(max_attempts=5, base=0.02, cap=0.25),
    api_timeouts=Timeouts(connect=2.0, read=READ_TIMEOUT, total=3.0),
    chunk_connect_timeout=2.0,
    chunk_read_timeout=READ_TIMEOUT,
    chunk_min_rate=20_000_000.0,
    chunk_min_deadline=3.0,
    poll_first=0.05,
    poll_factor=1.5,
    poll_max=0.3,
)


def _with_campaign_tunables(real: Any) -> Any:
    def run_manifest(
        settings: Any,
        manifest_path: Path,
        options: Any,
        *,
        tunables: RunSettings | None = None,
        **kwargs: Any,
    ) -> RunReport:
        asked = tunables or RunSettings()
        merged = replace(
            CAMPAIGN_TUNABLES,
            poll_timeout=asked.poll_timeout,
            chunk_size=asked.chunk_size,
            lease=asked.lease,
        )
        report: RunReport = real(settings, manifest_path, options, tunables=merged, **kwargs)
        return report

    return run_manifest


UNFENCED = "CAMPAIGN_UNFENCED"
"""Set to 1 in a worker's environment, it runs without its fence (journal writes not checked
against the claim, the heartbeat's takeovers ignored): only to show that the paused-worker
campaign catches what the fence prevents."""


def _without_the_fence() -> None:
    from orchestrator.store.queue import Claim, WorkQueue

    def unchecked(self: Claim, connection: Any) -> None:
        return None

    def never_lost(self: WorkQueue, claim: Claim) -> bool:
        return False

    Claim.check = unchecked  # type: ignore[method-assign]
    WorkQueue.is_lost = never_lost  # type: ignore[method-assign]


def main() -> None:
    # The CLI imports run_manifest from the runner module when a run starts: this is the seam.
    runner.run_manifest = _with_campaign_tunables(runner.run_manifest)
    if os.environ.get(UNFENCED) == "1":
        _without_the_fence()
    cli.main()


if __name__ == "__main__":
    main()
