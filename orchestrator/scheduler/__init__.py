"""One run over a manifest: decide, per entry, what is due; then post user by user.

Theory of operation:

1. **Plan** (main thread, no network; ``plan.py``): every selected entry gets its identity and a
   decision from the journal (``rerun.decide``): already done, a permanent failure to repeat,
   uncertain, resume, or start. Entries whose ``publish_at`` is in the future are deferred.
2. **Users in parallel** (``jobs`` threads; ``run.py``), each user's entries in manifest order.
   Per user (``gates.py``): a usable token first (a user whose tokens are dead fails alone, with
   the ``auth login`` hint); creator_info once, before the first entry that may send an init;
   then per new entry the creator_info checks and the caps (daily direct posts and pending
   inbox shares, counted from the inits the journal recorded over 24 h), then the upload engine
   with the entry's journal as its sink (``posting.py``, with the request ``requests.py``
   builds). An entry TikTok already has (uploaded, processing) is only polled.
3. **Stopping early.** TikTok deferring a user (caps, active-user cap) defers that user's
   remaining new posts. The run stops starting work, deferring what is left, when its retry
   budget is spent (a dead API), when the state database cannot be written (sending a request
   whose answer cannot be journalled is how posts get doubled), or when it is interrupted.
4. **Interruption** (``stop`` set, e.g. by Ctrl-C): every sleep of the run (pacing, backoff,
   polling) goes through :class:`~orchestrator.clock.InterruptibleClock` and every block of a
   chunk through the progress subscriber; both raise :class:`~orchestrator.clock.RunInterrupted`,
   which unwinds the upload with the journal where its last step left it. An entry interrupted
   before its init was sent is journalled ``deferred``, so a URL entry is not mistaken for a
   lost init on the next run.
5. **A shared run** (a PostgreSQL store): workers on several machines claim entries from one
   work queue and drain it exactly once (``Run._drain``).

Every entry ends as an :class:`~orchestrator.report.EntryResult` (``results.py``). Imports go
one way: ``run`` → ``posting`` → ``gates``, ``plan`` → ``results`` → ``requests`` (the entry as
TikTok sees it). Nothing here prints or parses options: progress goes to a :class:`RunObserver`
(``observer.py``).
"""

from orchestrator.clock import InterruptibleClock, RunInterrupted
from orchestrator.scheduler.gates import TokenStates
from orchestrator.scheduler.observer import NullObserver, RunObserver
from orchestrator.scheduler.plan import (
    JournalKey,
    PlannedEntry,
    RunOptions,
    journal_keys,
    posted_check,
)
from orchestrator.scheduler.run import Run

__all__ = [
    "InterruptibleClock",
    "JournalKey",
    "NullObserver",
    "PlannedEntry",
    "Run",
    "RunInterrupted",
    "RunObserver",
    "RunOptions",
    "TokenStates",
    "journal_keys",
    "posted_check",
]
