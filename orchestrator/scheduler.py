"""One run over a manifest: decide, per entry, what is due; then post user by user.

Theory of operation:

1. **Plan** (main thread, no network): every entry gets its identity and a decision from the
   journal (``Journal.decide``): already done, a permanent failure to repeat, uncertain, resume,
   or start. Entries whose ``publish_at`` is in the future are deferred until then.
2. **Users in parallel** (``jobs`` threads), each user's entries in manifest order. Per user:
   a usable token (a user whose tokens are dead fails alone, with the ``auth login`` hint);
   creator_info once, before the first new post; then per entry the creator_info checks and
   the caps (daily direct posts, pending inbox shares, counted from the journal), then the
   upload engine with the entry's journal as its sink.
3. A deferral from TikTok (caps, active-user cap) defers the rest of that user's entries; an
   exhausted retry budget (a dead API) defers everything not yet started; an interruption
   (``stop`` set, e.g. by Ctrl-C) stops starting new work and cancels uploads at the next
   progress report, leaving the journal where the last step left it.

It must not print or parse options: progress goes to a :class:`RunObserver`, and the result is
a :class:`~orchestrator.report.RunReport`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from orchestrator.clock import Clock
from orchestrator.errors import (
    ApiError,
    AuthError,
    MediaError,
    NeedsLoginError,
    OrchestratorError,
    StoreError,
)
from orchestrator.manifest import Entry, Manifest, Mode, entry_identity
from orchestrator.media import FileMedia, PhotoMedia, VideoUrlMedia, media_fingerprint
from orchestrator.report import EntryResult, ErrorInfo, RunReport
from orchestrator.retry import RetryBudget
from orchestrator.secret import Secret
from orchestrator.store.journal import Action, Decision, EntryMeta, Journal, JournalRecord
from orchestrator.tiktok.chunks import plan_chunks
from orchestrator.tiktok.client import CreatorInfo, PostInfo, PostMode, TikTokClient
from orchestrator.upload import (
    Deferred,
    Failed,
    FileSource,
    PhotoSource,
    Uncertain,
    Uploader,
    UploadRequest,
    UploadState,
    UrlSource,
)

log = logging.getLogger(__name__)

DAY = 86_400.0


class RunInterrupted(Exception):
    """Raised from a progress report to unwind an upload when the run is asked to stop.

    Deliberately not an ``OrchestratorError``: the upload engine must not treat it as a failure
    of the entry. The journal keeps the last confirmed step; the next run resumes from there.
    """


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

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise ValueError("jobs must be at least 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")


class TokenStates(Protocol):
    """What the scheduler asks of the token provider (``store.tokens.TokenProvider``)."""

    def access_token(self, open_id: str) -> Secret: ...

    def state(self, open_id: str) -> str:
        """``fresh`` / ``stale`` / ``expired`` / ``needs_login`` (a ``TokenState``)."""
        ...


class RunObserver(Protocol):
    """Where a run reports what it does (the CLI shows it as bars or log lines)."""

    def entry_started(self, entry: Entry, total_bytes: int) -> None: ...

    def entry_progress(self, entry: Entry, bytes_delta: int) -> None: ...

    def entry_finished(self, entry: Entry, result: EntryResult) -> None: ...


class NullObserver:
    def entry_started(self, entry: Entry, total_bytes: int) -> None:
        return None

    def entry_progress(self, entry: Entry, bytes_delta: int) -> None:
        return None

    def entry_finished(self, entry: Entry, result: EntryResult) -> None:
        return None


@dataclass(frozen=True)
class PlannedEntry:
    """An entry with its identity, what would be sent, and the journal's decision."""

    entry: Entry
    meta: EntryMeta
    decision: Decision


@dataclass
class _UserState:
    """What one user's worker learns as it goes (one thread per user: no locking needed)."""

    token_checked: bool = False
    creator: CreatorInfo | None = None
    creator_skipped: bool = False
    note: str | None = None
    stop_reason: ErrorInfo | None = None  # set: the rest of this user's entries get it
    stop_status: str = "deferred"


@dataclass
class Run:
    """One run's collaborators; :meth:`execute` does the work."""

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

    def execute(self) -> RunReport:
        started = datetime.fromtimestamp(self.clock.time(), UTC)
        planned = self.plan()
        results: dict[int, EntryResult] = {}
        due: dict[str, list[PlannedEntry]] = {}
        for item in planned:
            settled = self._settled_without_network(item)
            if settled is not None:
                results[item.entry.index] = settled
                self.observer.entry_finished(item.entry, settled)
            else:
                due.setdefault(item.entry.user_id, []).append(item)
        interrupted = False
        if due:
            interrupted = self._post_all(due, results)
        finished = datetime.fromtimestamp(self.clock.time(), UTC)
        return RunReport(
            run_id=self.run_id,
            started_at=started,
            finished_at=finished,
            manifest=str(self.manifest.path),
            dry_run=self.options.dry_run,
            interrupted=interrupted or self.stop.is_set(),
            entries=tuple(results[index] for index in sorted(results)),
        )

    # -- planning ------------------------------------------------------------------------------

    def plan(self) -> list[PlannedEntry]:
        """Identity and journal decision for each selected entry (no network)."""
        entries: Sequence[Entry] = self.manifest.entries
        if self.options.only_users:
            entries = [e for e in entries if e.user_id in self.options.only_users]
        if self.options.limit is not None:
            entries = entries[: self.options.limit]
        planned = []
        for entry in entries:
            try:
                fingerprint = media_fingerprint(entry.media)
            except MediaError as exc:
                fingerprint = f"unreadable:{exc}"
            identity = entry_identity(entry, fingerprint)
            meta = EntryMeta(
                identity=identity,
                entry_id=entry.id,
                user_id=entry.user_id,
                mode=str(entry.mode),
                kind=_kind(entry),
                source=_source_text(entry),
                request_digest=_request_digest(entry, fingerprint),
            )
            decision = self.journal.decide(
                identity,
                request_digest=meta.request_digest,
                kind=meta.kind,
                retry_failed=self.options.retry_failed,
            )
            planned.append(PlannedEntry(entry, meta, decision))
        return planned

    def _settled_without_network(self, item: PlannedEntry) -> EntryResult | None:
        entry, decision = item.entry, item.decision
        record = decision.record
        if decision.action is Action.ALREADY_DONE:
            assert record is not None
            return self._result(entry, item.meta, "already_done", record=record)
        if decision.action is Action.REPEAT_FAILURE:
            assert record is not None
            return self._result(
                entry, item.meta, "failed", record=record, error=_stored_error(record)
            )
        if decision.action is Action.UNCERTAIN:
            assert record is not None
            if record.state != "uncertain" and not self.options.dry_run:
                self.journal.record(
                    item.meta.identity,
                    entry.user_id,
                    Uncertain("an init was sent before an earlier run stopped; it may have posted"),
                )
                record = self.journal.get(item.meta.identity) or record
            return self._result(
                entry,
                item.meta,
                "uncertain",
                record=record,
                error=ErrorInfo(
                    "uncertain",
                    record.error_message
                    or "an init was sent before an earlier run stopped; it may have posted",
                    retryable=False,
                    hint="check the creator's profile; if it did not post, give the entry a new id",
                ),
            )
        if (
            decision.action is Action.START
            and entry.publish_at is not None
            and entry.publish_at.timestamp() > self.clock.time()
        ):
            return self._result(
                entry,
                item.meta,
                "deferred",
                deferred_until=entry.publish_at,
                error=ErrorInfo(
                    "scheduled",
                    f"publish_at is {entry.publish_at.isoformat()}",
                    retryable=True,
                    hint="a run after that time posts it",
                ),
            )
        return None

    # -- posting -------------------------------------------------------------------------------

    def _post_all(
        self, due: dict[str, list[PlannedEntry]], results: dict[int, EntryResult]
    ) -> bool:
        lock = threading.Lock()

        def work(user_id: str) -> None:
            for item, result in self._post_user(user_id, due[user_id]):
                with lock:
                    results[item.entry.index] = result
                self.observer.entry_finished(item.entry, result)

        interrupted = False
        pool = ThreadPoolExecutor(
            max_workers=min(self.options.jobs, len(due)), thread_name_prefix="user"
        )
        try:
            futures = [pool.submit(work, user_id) for user_id in due]
            for future in futures:
                while True:
                    try:
                        future.result(timeout=0.2)
                        break
                    except TimeoutError:
                        continue
        except KeyboardInterrupt:
            interrupted = True
            self.stop.set()
            log.warning("interrupted: finishing the current step of each upload, then stopping")
            pool.shutdown(wait=True, cancel_futures=False)
        finally:
            pool.shutdown(wait=True)
        for user_items in due.values():
            for item in user_items:
                if item.entry.index not in results:
                    results[item.entry.index] = self._result(
                        item.entry,
                        item.meta,
                        "deferred",
                        error=ErrorInfo(
                            "interrupted",
                            "the run was interrupted",
                            retryable=True,
                            hint="run again to go on",
                        ),
                    )
        return interrupted

    def _post_user(
        self, user_id: str, items: list[PlannedEntry]
    ) -> list[tuple[PlannedEntry, EntryResult]]:
        state = _UserState()
        out: list[tuple[PlannedEntry, EntryResult]] = []
        for item in items:
            out.append((item, self._post_one(item, state)))
        return out

    def _post_one(self, item: PlannedEntry, user: _UserState) -> EntryResult:
        entry, meta = item.entry, item.meta
        if self.stop.is_set():
            return self._result(entry, meta, "deferred", error=_INTERRUPTED)
        if self.budget.exhausted:
            return self._result(entry, meta, "deferred", error=_BUDGET_SPENT)
        if not user.token_checked:
            user.token_checked = True
            self._guard(user, lambda: self._check_token(entry.user_id, user))
        if item.decision.action is Action.START and user.stop_reason is None:
            if user.creator is None and not user.creator_skipped:
                self._guard(user, lambda: self._query_creator(entry.user_id, user))
            if user.stop_reason is None:
                problem = self._check_against_creator(entry, user.creator)
                if problem is not None:
                    return self._pre_verdict(item, "failed", problem)
                cap = self._check_caps(entry, user)
                if cap is not None:
                    return self._pre_verdict(item, "deferred", cap)
        if user.stop_reason is not None:
            return self._pre_verdict(item, user.stop_status, user.stop_reason)
        if self.options.dry_run:
            return self._dry_run_result(item, user)
        return self._upload(item, user)

    def _check_token(self, user_id: str, user: _UserState) -> None:
        if not self.options.dry_run:
            self.tokens.access_token(user_id)
            return
        # A dry run writes nothing: a token that needs a refresh (which rotates the refresh
        # token, a write) is only reported, and creator_info is not queried with it.
        state = self.tokens.state(user_id)
        if state == "needs_login":
            self.tokens.access_token(user_id)  # raises NeedsLoginError with the reason
        if state != "fresh":
            user.creator_skipped = True
            user.note = f"the token is {state}: a real run refreshes it first"

    def _query_creator(self, user_id: str, user: _UserState) -> None:
        user.creator = self.client.creator_info(user_id)

    def _guard(self, user: _UserState, step: Callable[[], None]) -> None:
        """Run a per-user step; a failure stops that user's entries, not the run."""
        try:
            step()
        except NeedsLoginError as exc:
            user.stop_reason = ErrorInfo("needs_login", str(exc), retryable=True, hint=exc.hint)
            user.stop_status = "failed"
        except AuthError as exc:
            user.stop_reason = ErrorInfo("auth_error", str(exc), retryable=True, hint=exc.hint)
            user.stop_status = "failed"
        except ApiError as exc:
            deferred = exc.defer or exc.retryable
            user.stop_reason = ErrorInfo(exc.code, str(exc), exc.log_id, deferred, exc.hint)
            user.stop_status = "deferred" if deferred else "failed"
        except StoreError as exc:
            user.stop_reason = ErrorInfo("store_error", str(exc), retryable=False, hint=exc.hint)
            user.stop_status = "failed"
        except OrchestratorError as exc:
            user.stop_reason = ErrorInfo(
                "unavailable",
                str(exc),
                retryable=True,
                hint="TikTok could not be reached; run again later",
            )
            user.stop_status = "deferred"

    def _check_against_creator(self, entry: Entry, creator: CreatorInfo | None) -> ErrorInfo | None:
        """TikTok's integration rules: honour the creator's options before sending a byte."""
        if creator is None:
            return None
        problems: list[str] = []
        fixes: list[str] = []
        needs_privacy = entry.mode is Mode.DIRECT
        if needs_privacy and str(entry.privacy_level) not in creator.privacy_level_options:
            problems.append(
                f"privacy_level {entry.privacy_level} is not offered to this creator "
                f"(offered: {', '.join(creator.privacy_level_options)})"
            )
            fixes.append(f"set privacy_level to one of {', '.join(creator.privacy_level_options)}")
        if creator.comment_disabled and not entry.disable_comment:
            problems.append("the creator has comments disabled")
            fixes.append("set disable_comment: true")
        if not entry.is_photo:
            if creator.duet_disabled and not entry.disable_duet:
                problems.append("the creator has duets disabled")
                fixes.append("set disable_duet: true")
            if creator.stitch_disabled and not entry.disable_stitch:
                problems.append("the creator has stitches disabled")
                fixes.append("set disable_stitch: true")
            duration = entry.duration_s
            limit = creator.max_video_post_duration_sec
            if duration is not None and limit and duration > limit:
                problems.append(
                    f"the video lasts {duration:.1f} s; this creator may post at most {limit} s"
                )
                fixes.append(f"cut the video to {limit} s or less")
        if not problems:
            return None
        return ErrorInfo(
            "creator_info_mismatch",
            "; ".join(problems),
            retryable=False,
            hint="; ".join(fixes),
        )

    def _check_caps(self, entry: Entry, user: _UserState) -> ErrorInfo | None:
        since = self.clock.time() - DAY
        if entry.mode is Mode.DIRECT:
            used = self.journal.uploads_since(entry.user_id, "direct", since)
            if used >= self.options.daily_direct_cap:
                return ErrorInfo(
                    "daily_cap",
                    f"{used} direct posts in the last 24 h (cap {self.options.daily_direct_cap})",
                    retryable=True,
                    hint="a later run posts it; TikTok allows about 15 direct posts a day",
                )
        else:
            used = self.journal.uploads_since(entry.user_id, "inbox", since)
            if used >= self.options.pending_inbox_cap:
                return ErrorInfo(
                    "pending_inbox_cap",
                    f"{used} inbox shares in the last 24 h (cap {self.options.pending_inbox_cap})",
                    retryable=True,
                    hint="the creator must post or delete drafts in the app; a later run sends it",
                )
        return None

    def _pre_verdict(self, item: PlannedEntry, status: str, error: ErrorInfo) -> EntryResult:
        """Fail or defer an entry before any byte, journalling it unless this is a dry run."""
        if not self.options.dry_run and item.decision.action is Action.START:
            event: Failed | Deferred
            if status == "failed":
                event = Failed(error.code, error.message, error.retryable, error.hint, error.log_id)
            else:
                event = Deferred(error.message)
            self.journal.settle(item.meta, event)
        return self._result(item.entry, item.meta, status, record=item.decision.record, error=error)

    def _dry_run_result(self, item: PlannedEntry, user: _UserState) -> EntryResult:
        entry = item.entry
        chunks = None
        size = entry.media_info.size if entry.media_info else 0
        if isinstance(entry.media, FileMedia) and size and item.decision.action is Action.START:
            chunks = plan_chunks(size).total_chunk_count
        notes = [
            "would resume or poll the earlier upload"
            if item.decision.action is Action.RESUME
            else "would post"
        ]
        if user.note:
            notes.append(user.note)
        return self._result(
            entry,
            item.meta,
            "planned",
            record=item.decision.record,
            chunks=chunks,
            error=ErrorInfo("dry_run", "; ".join(notes), retryable=True),
        )

    def _upload(self, item: PlannedEntry, user: _UserState) -> EntryResult:
        entry, meta, decision = item.entry, item.meta, item.decision
        request = _upload_request(entry)
        sink = self.journal.sink(meta.identity, entry.user_id)
        progress = _Progress(self, entry)
        total = entry.media_info.size if entry.media_info else 0
        self.observer.entry_started(entry, total)
        started = self.clock.monotonic()
        try:
            if decision.action is Action.RESUME and decision.resume_point is not None:
                outcome = self.uploader.resume(request, decision.resume_point, sink, progress)
            else:
                self.journal.begin(meta)
                outcome = self.uploader.upload(request, sink, progress)
        except RunInterrupted:
            return self._result(
                entry, meta, "deferred", error=_INTERRUPTED, bytes_sent=progress.sent
            )
        except OrchestratorError as exc:
            # The engine reports entry failures as outcomes; an error here is one it could not
            # place (the journal refused a write, the file changed under a resume).
            log.error("%s: %s", entry.location, exc)
            return self._result(
                entry,
                meta,
                "failed",
                error=ErrorInfo(type(exc).__name__, str(exc), retryable=False, hint=exc.hint),
                bytes_sent=progress.sent,
            )
        duration = self.clock.monotonic() - started
        status = _STATUS_OF[outcome.state]
        error = None
        if outcome.error is not None:
            e = outcome.error
            error = ErrorInfo(e.code, e.message, e.log_id, e.retryable, e.hint)
        if outcome.state is UploadState.DEFERRED and error is not None:
            user.stop_reason, user.stop_status = error, "deferred"
        elif outcome.state is UploadState.DEFERRED:
            user.stop_reason = ErrorInfo("deferred", "TikTok asked to post later", retryable=True)
        if outcome.needs_login and error is not None:
            user.stop_reason, user.stop_status = error, "failed"
        record = self.journal.get(meta.identity)
        return self._result(
            entry,
            meta,
            status,
            record=record,
            error=error,
            bytes_sent=progress.sent,
            chunks=outcome.chunks,
            attempts=outcome.inits,
            duration=duration,
            publish_id=outcome.publish_id,
            post_ids=outcome.post_ids,
        )

    def _result(
        self,
        entry: Entry,
        meta: EntryMeta,
        status: str,
        *,
        record: JournalRecord | None = None,
        error: ErrorInfo | None = None,
        bytes_sent: int = 0,
        chunks: int | None = None,
        attempts: int = 0,
        duration: float = 0.0,
        publish_id: str | None = None,
        post_ids: tuple[str, ...] = (),
        deferred_until: datetime | None = None,
    ) -> EntryResult:
        if record is not None:
            publish_id = publish_id or record.publish_id
            post_ids = post_ids or record.post_ids
            if chunks is None and record.plan is not None:
                chunks = record.plan.total_chunk_count
        return EntryResult(
            index=entry.index,
            id=entry.id or meta.identity,
            user_id=entry.user_id,
            source=meta.source,
            mode=str(entry.mode),
            status=status,
            publish_id=publish_id,
            post_ids=post_ids,
            bytes=bytes_sent,
            chunks=chunks or 0,
            attempts=attempts,
            duration_s=duration,
            deferred_until=deferred_until,
            error=error,
        )


_INTERRUPTED = ErrorInfo(
    "interrupted", "the run was interrupted", retryable=True, hint="run again to go on"
)
_BUDGET_SPENT = ErrorInfo(
    "retry_budget_spent",
    "the run's retry budget is spent: TikTok keeps failing",
    retryable=True,
    hint="check TikTok's status and your network, then run again",
)

_STATUS_OF = {
    UploadState.PLANNED: "failed",
    UploadState.UPLOADING: "deferred",
    UploadState.UPLOADED: "processing",
    UploadState.PROCESSING: "processing",
    UploadState.PUBLISHED: "published",
    UploadState.SENT_TO_INBOX: "sent_to_inbox",
    UploadState.FAILED: "failed",
    UploadState.DEFERRED: "deferred",
    UploadState.UNCERTAIN: "uncertain",
}


class _Progress:
    """The engine's progress subscriber: counts bytes, tells the observer, honours ``stop``."""

    def __init__(self, run: Run, entry: Entry) -> None:
        self._run = run
        self._entry = entry
        self.sent = 0

    def on_progress(self, bytes_delta: int) -> None:
        self.sent = max(0, self.sent + bytes_delta)
        self._run.observer.entry_progress(self._entry, bytes_delta)
        if self._run.stop.is_set():
            raise RunInterrupted()


def _kind(entry: Entry) -> str:
    if isinstance(entry.media, FileMedia):
        return "file"
    if isinstance(entry.media, VideoUrlMedia):
        return "video_url"
    return "photo"


def _source_text(entry: Entry) -> str:
    media = entry.media
    if isinstance(media, FileMedia):
        return _display_path(media.path)
    if isinstance(media, VideoUrlMedia):
        return media.url
    return " ".join(media.urls)


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _request_digest(entry: Entry, fingerprint: str) -> str:
    """What would be sent, fingerprinted: a change lets a permanent failure be retried."""
    material = {
        "fingerprint": fingerprint,
        "mode": str(entry.mode),
        "caption": entry.caption,
        "title": entry.title,
        "privacy_level": str(entry.privacy_level),
        "disable_comment": entry.disable_comment,
        "disable_duet": entry.disable_duet,
        "disable_stitch": entry.disable_stitch,
        "is_aigc": entry.is_aigc,
        "brand_content_toggle": entry.brand_content_toggle,
        "brand_organic_toggle": entry.brand_organic_toggle,
        "video_cover_timestamp_ms": entry.video_cover_timestamp_ms,
        "auto_add_music": entry.auto_add_music,
        "cover_index": entry.media.cover_index if isinstance(entry.media, PhotoMedia) else None,
    }
    encoded = json.dumps(material, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def _stored_error(record: JournalRecord) -> ErrorInfo:
    return ErrorInfo(
        record.error_code or "failed",
        record.error_message or "failed in an earlier run",
        record.error_log_id,
        bool(record.error_retryable),
        (record.error_hint + "; " if record.error_hint else "")
        + "use --retry-failed to try again after fixing the cause",
    )


def _upload_request(entry: Entry) -> UploadRequest:
    media = entry.media
    source: FileSource | UrlSource | PhotoSource
    if isinstance(media, FileMedia):
        assert entry.media_info is not None, "a validated file entry has been probed"
        source = FileSource(media.path, entry.media_info.size, str(entry.media_info.content_type))
    elif isinstance(media, VideoUrlMedia):
        source = UrlSource(media.url)
    else:
        source = PhotoSource(tuple(media.urls), media.cover_index)
    if entry.is_photo:
        post_info = PostInfo(
            privacy_level=str(entry.privacy_level),
            title=entry.title or "",
            description=entry.caption,
            disable_comment=entry.disable_comment,
            brand_content_toggle=entry.brand_content_toggle,
            brand_organic_toggle=entry.brand_organic_toggle,
            auto_add_music=entry.auto_add_music,
        )
    else:
        post_info = PostInfo(
            privacy_level=str(entry.privacy_level),
            title=entry.caption,
            disable_comment=entry.disable_comment,
            disable_duet=entry.disable_duet,
            disable_stitch=entry.disable_stitch,
            video_cover_timestamp_ms=entry.video_cover_timestamp_ms,
            brand_content_toggle=entry.brand_content_toggle,
            brand_organic_toggle=entry.brand_organic_toggle,
            is_aigc=entry.is_aigc,
        )
    mode = PostMode.DIRECT if entry.mode is Mode.DIRECT else PostMode.INBOX
    return UploadRequest(entry.user_id, mode, source, post_info, label=entry.location)
