"""Planning a run, and what needs no network: which entries are selected, which journal record
each one is, the journal's decision for it, and the entries settled by that decision alone
(already done, a failure to repeat, uncertain, scheduled for later).

Reads the journal; the one write is marking an entry whose init answer was lost ``uncertain``.
Sends nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import MediaError
from orchestrator.manifest import Entry, Manifest, Mode, content_identity, entry_identity
from orchestrator.media import FileMedia, media_fingerprint
from orchestrator.outcomes import EntryStatus, ErrorInfo
from orchestrator.report import EntryResult
from orchestrator.rerun import Action, Decision, decide
from orchestrator.scheduler.requests import display_path, entry_kind, request_digest, source_text
from orchestrator.scheduler.results import LOST_INIT, entry_result, stored_error
from orchestrator.store.journal import (
    DONE_STATES,
    EntryMeta,
    EntryState,
    Journal,
    JournalRecord,
)
from orchestrator.upload import Uncertain, UploadState

if TYPE_CHECKING:
    from orchestrator.store.queue import Claim

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """What the user asked of this run (SPEC §1 ``run`` options)."""

    jobs: int = 4
    dry_run: bool = False
    only_users: frozenset[str] = frozenset()
    limit: int | None = None
    retry_failed: bool = False
    daily_direct_cap: int = 15
    pending_inbox_cap: int = 5
    review_all: bool = False
    """``--review creator``: every direct post waits for its creator's review (review.py)."""

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ValueError("jobs must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")
        if self.daily_direct_cap < 0 or self.pending_inbox_cap < 0:
            raise ValueError("caps cannot be negative")


@dataclass(frozen=True)
class PlannedEntry:
    """An entry with its identity, what would be sent, and the journal's decision."""

    entry: Entry
    meta: EntryMeta
    decision: Decision
    fence: Claim | None = None
    """A shared run's claim on the entry: every journal write for it is checked against it."""

    @property
    def may_init(self) -> bool:
        """Whether posting it may send an init: a fresh attempt, or a transfer to resume
        (whose upload URL may have died before its last chunk, which means a new init)."""
        point = self.decision.resume_point
        if self.decision.action is Action.START:
            return True
        return (
            self.decision.action is Action.RESUME
            and point is not None
            and point.state is UploadState.UPLOADING
        )


def select_entries(manifest: Manifest, options: RunOptions) -> list[Entry]:
    """The manifest's entries this run is about (``--user``); ``--limit`` is applied to the
    plan by :func:`first_due`, since only the journal knows which entries are due."""
    entries: Sequence[Entry] = manifest.entries
    if options.only_users:
        entries = [e for e in entries if e.user_id in options.only_users]
    return list(entries)


def is_due(item: PlannedEntry, *, now: float) -> bool:
    """Whether the entry has work to do now: not done, not a failure to repeat, not
    uncertain, not declined by its creator, and not scheduled for later."""
    action = item.decision.action
    if action in (Action.ALREADY_DONE, Action.REPEAT_FAILURE, Action.UNCERTAIN, Action.DECLINED):
        return False
    publish_at = item.entry.publish_at
    return not (action is Action.START and publish_at is not None and publish_at.timestamp() > now)


def first_due(
    planned: Sequence[PlannedEntry], limit: int | None, *, now: float
) -> list[PlannedEntry]:
    """``--limit N``: the first N entries that are due, so that each run moves on to the next
    ones (entries done or deferred are not counted and not reported). No limit: all."""
    if limit is None:
        return list(planned)
    return [item for item in planned if is_due(item, now=now)][:limit]


def plan_entries(
    entries: Sequence[Entry], journal: Journal, *, retry_failed: bool
) -> list[PlannedEntry]:
    """Identity and journal decision for each entry (no network, no writes)."""
    planned = []
    for entry, key in zip(entries, journal_keys(entries, journal), strict=True):
        fingerprint = key.fingerprint
        if key.note is not None:
            log.info("%s: %s", entry.location, key.note)
        meta = EntryMeta(
            identity=key.identity,
            entry_id=entry.id,
            user_id=entry.user_id,
            mode=str(entry.mode),
            kind=entry_kind(entry),
            source=source_text(entry),
            request_digest=request_digest(entry, fingerprint),
            fingerprint=fingerprint,
        )
        decision = decide(
            journal.get(meta.identity),
            request_digest=meta.request_digest,
            fingerprint=fingerprint,
            retry_failed=retry_failed,
        )
        planned.append(PlannedEntry(entry, meta, decision))
    return planned


def settled_without_network(
    item: PlannedEntry, journal: Journal, *, now: float, dry_run: bool
) -> EntryResult | None:
    """The entry's result if its decision settles it without a request, else None.

    An entry whose init answer was lost is journalled ``uncertain`` (unless this is a dry run);
    a new entry whose ``publish_at`` is after ``now`` is deferred until then.
    """
    entry, decision = item.entry, item.decision
    record = decision.record
    if decision.action is Action.ALREADY_DONE:
        assert record is not None
        return entry_result(entry, item.meta, EntryStatus.ALREADY_DONE, record=record)
    if decision.action is Action.REPEAT_FAILURE:
        assert record is not None
        return entry_result(
            entry, item.meta, EntryStatus.FAILED, record=record, error=stored_error(record)
        )
    if decision.action is Action.UNCERTAIN:
        assert record is not None
        if record.state is not EntryState.UNCERTAIN and not dry_run:
            journal.record(
                item.meta.identity, entry.user_id, Uncertain(LOST_INIT), fence=item.fence
            )
            record = journal.get(item.meta.identity) or record
        return entry_result(
            entry,
            item.meta,
            EntryStatus.UNCERTAIN,
            record=record,
            error=ErrorInfo(
                "uncertain",
                record.error_message or LOST_INIT,
                record.error_log_id,
                retryable=False,
                hint="check the creator's profile; if it did not post, give the entry a new "
                "`id` in the manifest and run again",
            ),
        )
    if decision.action is Action.DECLINED:
        assert record is not None
        return entry_result(entry, item.meta, EntryStatus.DECLINED, record=record)
    if (
        decision.action is Action.START
        and entry.publish_at is not None
        and entry.publish_at.timestamp() > now
    ):
        return entry_result(
            entry,
            item.meta,
            EntryStatus.DEFERRED,
            record=record,
            deferred_until=entry.publish_at,
            error=ErrorInfo(
                "scheduled",
                f"publish_at is {entry.publish_at.isoformat()}",
                retryable=True,
                hint="a run after that time posts it",
            ),
        )
    return None


@dataclass(frozen=True)
class JournalKey:
    """Which journal record an entry is: its ``identity`` and media ``fingerprint``, and a
    ``note`` when that is not its own key (it adopted an earlier form's record, or its file is
    gone and the record says it was posted)."""

    identity: str
    fingerprint: str
    note: str | None = None


def journal_keys(entries: Sequence[Entry], journal: Journal) -> list[JournalKey]:
    """The journal identity of each entry (reads only).

    An entry is its ``id`` (or, without one, its content identity: user, mode, media
    fingerprint). An ``id`` new to the journal whose content identity holds a record adopts
    that record — the same post given an id later is not posted again — unless another entry
    of the manifest is that record already (an entry without an id, or an earlier id). A file
    that is gone is matched to its published record by id, or by user, mode and path.
    """
    # Many entries may share one video (one clip to several accounts): hash each file once.
    fingerprints: dict[object, str] = {}
    for entry in entries:
        if entry.media not in fingerprints:
            try:
                fingerprints[entry.media] = media_fingerprint(entry.media)
            except MediaError as exc:
                # The upload reports the file's problem; the identity must still be stable.
                fingerprints[entry.media] = f"unreadable:{exc}"
    # Records that entries without an id are, by their own key: never adopted by an id.
    taken = {
        entry_identity(entry, fingerprints[entry.media]) for entry in entries if entry.id is None
    }
    keys = []
    for entry in entries:
        fingerprint = fingerprints[entry.media]
        own = entry_identity(entry, fingerprint)
        record: JournalRecord | None = None
        note = None
        if fingerprint.startswith("unreadable:") and isinstance(entry.media, FileMedia):
            record = journal.done_without_file(
                entry_id=entry.id,
                user_id=entry.user_id,
                mode=str(entry.mode),
                source=source_text(entry),
            )
            if record is not None:
                note = f"the video file is gone; already done ({record.state.value} earlier)"
        elif entry.id is not None and journal.get(entry.id) is None:
            record = journal.by_entry_id(entry.id)
            if record is None:
                content = content_identity(entry.user_id, entry.mode, fingerprint)
                if content not in taken:
                    record = journal.adoptable(content, entry.id)
            if record is not None and record.identity in taken:
                record = None
            if record is not None:
                done = "already done" if record.state in DONE_STATES else record.state.value
                note = f"{done} (adopted the journal record of {record.identity})"
        if record is None:
            keys.append(JournalKey(own, fingerprint))
            continue
        taken.add(record.identity)
        keys.append(JournalKey(record.identity, fingerprint, note))
    return keys


def posted_check(journal: Journal) -> Callable[[str | None, str, Mode, Path], bool]:
    """Manifest validation's question to the journal about a video file that is gone: is
    that entry posted already (then the file is not needed)?"""

    def posted(entry_id: str | None, user_id: str, mode: Mode, path: Path) -> bool:
        record = journal.done_without_file(
            entry_id=entry_id, user_id=user_id, mode=str(mode), source=display_path(path)
        )
        return record is not None

    return posted
