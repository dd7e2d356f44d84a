"""One run over a manifest: plan it, then fan out over users (or drain a shared run's queue),
and gather every selected entry's result into the run report.

The theory of operation is in the package docstring (``orchestrator/scheduler/__init__.py``).
What happens to one entry is :class:`~orchestrator.scheduler.posting.EntryPoster`'s job; this
module owns the threads, Ctrl-C, and the shared run's claims. It must not print or parse
options: progress goes to a :class:`RunObserver`, and the result is a
:class:`~orchestrator.report.RunReport`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from orchestrator.clock import Clock, RunInterrupted
from orchestrator.errors import ClaimLostError, StoreConnectionLost, StoreError
from orchestrator.manifest import Entry, Manifest
from orchestrator.outcomes import EntryStatus
from orchestrator.report import EntryResult, RunReport
from orchestrator.rerun import decide
from orchestrator.retry import RetryBudget
from orchestrator.scheduler.gates import TokenStates, UserState
from orchestrator.scheduler.observer import NullObserver, RunObserver
from orchestrator.scheduler.plan import (
    PlannedEntry,
    RunOptions,
    first_due,
    plan_entries,
    select_entries,
    settled_without_network,
)
from orchestrator.scheduler.posting import EntryPoster, Halt
from orchestrator.scheduler.requests import report_source
from orchestrator.scheduler.results import (
    INTERRUPTED,
    claim_lost_result,
    entry_result,
    others_results,
    unstarted_result,
)
from orchestrator.store.journal import Journal
from orchestrator.tiktok.chunks import DEFAULT_CHUNK
from orchestrator.tiktok.client import TikTokClient
from orchestrator.upload import Uploader

if TYPE_CHECKING:
    from orchestrator.store.queue import WorkQueue

log = logging.getLogger(__name__)

_WAIT_SLICE = 0.2
"""Seconds the main thread waits on a worker at a time, so Ctrl-C reaches it promptly."""
QUEUE_POLL = 0.5
"""Seconds a worker of a shared run waits before looking for claimable work again."""
MAX_CONNECTION_CUTS = 3
"""Connection cuts under journal writes a worker of a shared run recovers from per user before
it treats the store as unusable."""
QUEUE_IDLE_LIMIT = 600.0
"""Seconds a worker of a shared run waits with nothing to claim (other workers hold the rest)
before it leaves; a dead worker's claims become claimable within one lease, long before."""


@dataclass
class Run:
    """One run's collaborators; :meth:`execute` does the work.

    ``clock`` should be the :class:`~orchestrator.clock.InterruptibleClock` the client and
    uploader sleep on (the runner wires them); ``chunk_size`` is the uploader's preferred chunk
    size, for the plan a dry run shows.
    """

    manifest: Manifest
    journal: Journal
    tokens: TokenStates
    client: TikTokClient
    uploader: Uploader
    budget: RetryBudget
    clock: Clock
    options: RunOptions = field(default_factory=RunOptions)
    observer: RunObserver = field(default_factory=NullObserver)
    stop: threading.Event = field(default_factory=threading.Event)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    chunk_size: int = DEFAULT_CHUNK
    queue: WorkQueue | None = None
    """A shared store's work queue: entries are claimed from it, so workers on several machines
    drain one run exactly once (see :meth:`_drain`). None: this run posts every due entry."""
    _halt: Halt = field(init=False, repr=False)
    _poster: EntryPoster = field(init=False, repr=False)
    _lost: dict[int, EntryResult] = field(default_factory=dict, init=False, repr=False)
    """Shared run: entries another worker took over from this one, by manifest index."""

    def __post_init__(self) -> None:
        self._halt = Halt(self.stop, self.budget)
        self._poster = EntryPoster(
            journal=self.journal,
            tokens=self.tokens,
            client=self.client,
            uploader=self.uploader,
            clock=self.clock,
            options=self.options,
            observer=self.observer,
            halt=self._halt,
            queue=self.queue,
            chunk_size=self.chunk_size,
        )

    def execute(self) -> RunReport:
        """Post what is due; the report of every selected entry, in manifest order.

        Ctrl-C (KeyboardInterrupt in the calling thread) at any point ends the run with a
        report marked ``interrupted``; it is never raised from here. An
        UnsafeConnectionError (plain HTTP off the machine, a certificate that does not verify)
        stops the run like a broken store, then is raised once every worker has stopped,
        carrying the run's report (its ``report``).
        """
        started = datetime.fromtimestamp(self.clock.time(), UTC)
        selected = select_entries(self.manifest, self.options)
        results: dict[int, EntryResult] = {}
        interrupted = False
        try:
            planned = first_due(self.plan(selected), self.options.limit, now=self.clock.time())
            if self.options.limit is not None:
                selected = [item.entry for item in planned]
            self.observer.run_started(len(planned))
            if self.queue is not None:
                interrupted = self._drain(self.queue, planned, results)
                planned = []  # each one claimed and done here, or reported from the journal
            due: dict[str, list[PlannedEntry]] = {}
            for item in planned:
                settled = self._settled(item)
                if settled is not None:
                    results[item.entry.index] = settled
                    self.observer.entry_finished(item.entry, settled)
                else:
                    due.setdefault(item.entry.user_id, []).append(item)
            if due:
                interrupted = self._post_all(due, results)
        except KeyboardInterrupt:
            # Interrupted while planning (fingerprints, journal reads): nothing was sent.
            interrupted = True
            self.stop.set()
        unsafe = self._halt.unsafe
        not_reached = INTERRUPTED if unsafe is None else self._halt.refuse(unsafe)
        for entry in selected:
            if entry.index not in results:
                results[entry.index] = unstarted_result(entry, not_reached)
        finished = datetime.fromtimestamp(self.clock.time(), UTC)
        report = RunReport(
            run_id=self.run_id,
            started_at=started,
            finished_at=finished,
            manifest=str(self.manifest.path),
            dry_run=self.options.dry_run,
            interrupted=interrupted or self.stop.is_set(),
            entries=tuple(
                report_source(results[entry.index], entry, self.manifest.path) for entry in selected
            ),
        )
        if unsafe is not None:
            unsafe.report = report  # written by the CLI as for any run, then exit 2
            raise unsafe
        return report

    def plan(self, entries: Sequence[Entry] | None = None) -> list[PlannedEntry]:
        """Identity and journal decision for each selected entry (no network, no writes)."""
        chosen = select_entries(self.manifest, self.options) if entries is None else entries
        return plan_entries(chosen, self.journal, retry_failed=self.options.retry_failed)

    def _settled(self, item: PlannedEntry) -> EntryResult | None:
        return settled_without_network(
            item, self.journal, now=self.clock.time(), dry_run=self.options.dry_run
        )

    # -- one machine: a worker per user ---------------------------------------------------------

    def _post_all(
        self, due: dict[str, list[PlannedEntry]], results: dict[int, EntryResult]
    ) -> bool:
        """Post each user's entries in a worker thread; True if interrupted."""
        lock = threading.Lock()

        def work(user_id: str) -> None:
            user = UserState()
            for item in due[user_id]:
                result = self._poster.post(item, user)
                with lock:
                    results[item.entry.index] = result
                self.observer.entry_finished(item.entry, result)

        pool = ThreadPoolExecutor(
            max_workers=min(self.options.jobs, len(due)), thread_name_prefix="user"
        )
        futures = [pool.submit(work, user_id) for user_id in due]
        try:
            return self._wait_for_workers(futures)
        finally:
            pool.shutdown(wait=True)

    def _wait_for_workers(self, futures: list[Future[None]]) -> bool:
        """Wait for every worker; on Ctrl-C, set ``stop`` and still wait. True if interrupted."""
        try:
            _wait_all(futures)
            return False
        except KeyboardInterrupt:
            self.stop.set()
            log.warning("interrupted: finishing the current step of each upload, then stopping")
        while True:
            try:
                _wait_all(futures)
                return True
            except KeyboardInterrupt:
                # Workers stop at their next sleep or chunk block; a second Ctrl-C cannot make
                # them stop sooner, and leaving now would lose the report.
                log.warning("still finishing the current steps (the journal is safe)")

    # -- a shared run: claim entries from the queue -----------------------------------------

    def _drain(
        self, queue: WorkQueue, planned: Sequence[PlannedEntry], results: dict[int, EntryResult]
    ) -> bool:
        """Enqueue the run's entries (once, whichever worker comes first) and work on what this
        worker can claim, user by user, until none is left; True if interrupted.

        A claimed entry is decided again from the journal (another worker may have taken it
        further before it died), then settled or posted exactly as in a run of one machine.
        Entries other workers finished are reported from the journal.
        """
        by_identity = {item.meta.identity: item for item in planned}
        queue.enqueue([(item.meta.identity, item.entry.user_id) for item in planned])
        lock = threading.Lock()
        idle_since = [self.clock.monotonic()]

        def work() -> None:
            try:
                claim_until_drained()
            except RunInterrupted:
                return
            except StoreError as exc:
                self._halt.store_failed(exc)

        def claim_until_drained() -> None:
            while self._halt.reason() is None and queue.remaining() > 0:
                took = False
                for user_id in queue.waiting_users():
                    if queue.try_hold_user(user_id):
                        took = True
                        try:
                            self._drain_user(queue, user_id, by_identity, results, lock)
                        finally:
                            queue.release_user(user_id)
                        with lock:
                            idle_since[0] = self.clock.monotonic()
                        break
                if not took:
                    with lock:
                        idle = self.clock.monotonic() - idle_since[0]
                    if idle > QUEUE_IDLE_LIMIT:
                        log.warning(
                            "nothing to claim for %.0f s: leaving the rest of run %s to the "
                            "workers holding it",
                            idle,
                            queue.run_id,
                        )
                        return
                    self.clock.sleep(QUEUE_POLL)

        threads = max(1, min(self.options.jobs, len({i.entry.user_id for i in planned})))
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="claim")
        futures = [pool.submit(work) for _ in range(threads)]
        try:
            interrupted = self._wait_for_workers(futures)
        finally:
            pool.shutdown(wait=True)
        others_results(queue, self.journal, by_identity, results)
        for index, lost in self._lost.items():
            results.setdefault(index, lost)  # not finished by the other worker yet
        return interrupted

    def _drain_user(
        self,
        queue: WorkQueue,
        user_id: str,
        by_identity: dict[str, PlannedEntry],
        results: dict[int, EntryResult],
        lock: threading.Lock,
    ) -> None:
        """Claim and do the user's entries one by one while this worker holds the user."""
        user = UserState()
        cuts = 0
        while self._halt.reason() is None:
            try:
                claim = queue.claim(user_id)
            except ClaimLostError as exc:
                log.warning("%s", exc)
                return
            if claim is None:
                return
            planned = by_identity[claim.identity]
            try:
                decision = decide(
                    self.journal.get(claim.identity),
                    request_digest=planned.meta.request_digest,
                    fingerprint=planned.meta.fingerprint,
                    retry_failed=self.options.retry_failed,
                )
                item = PlannedEntry(planned.entry, planned.meta, decision, fence=claim)
                result = self._settled(item) or self._poster.post(item, user)
            except ClaimLostError as exc:
                # Another worker has the entry now (this one was paused or cut off past its
                # lease): it finishes it, and the user's next entries with it.
                log.warning("%s: %s", planned.entry.location, exc)
                # Only if the entry's own claim is still this worker's (the user's hold was
                # lost): free it at once for the worker that holds the user now.
                queue.release(claim)
                with lock:
                    self._lost[planned.entry.index] = claim_lost_result(
                        planned.entry, planned.meta, claim
                    )
                return
            except StoreError as exc:
                if isinstance(exc, StoreConnectionLost) and cuts < MAX_CONNECTION_CUTS:
                    cuts += 1
                    # The write may not have been committed: give the entry back and decide
                    # it again from the journal, as a worker taking it over would.
                    log.warning(
                        "%s: the connection to the store was cut during a journal write (%s); "
                        "deciding the entry again from the journal",
                        planned.entry.location,
                        exc,
                    )
                    queue.release(claim)
                    continue
                result = entry_result(
                    planned.entry,
                    planned.meta,
                    EntryStatus.FAILED,
                    error=self._halt.store_failed(exc),
                )
            if self._halt.reason() is not None:
                # Stopping: whatever this entry reached, the journal has it; the worker that
                # claims it next decides from there.
                queue.release(claim)
            elif not queue.complete(claim, result.status):
                log.warning("%s: the claim ran out before it was done", planned.entry.location)
            with lock:
                results[planned.entry.index] = result
            self.observer.entry_finished(planned.entry, result)


def _wait_all(futures: Sequence[Future[None]]) -> None:
    """Wait for every worker, in slices so that KeyboardInterrupt reaches this thread."""
    for future in futures:
        while True:
            try:
                future.result(timeout=_WAIT_SLICE)
                break
            except TimeoutError:
                continue
