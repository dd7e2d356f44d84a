"""Notifications through Apprise: what to say, whether to say it, and delivery with a bound.

A run at 02:30 from a timer has nobody watching it. This module turns a finished run (or an
``auth refresh --all``) into one short Markdown message and hands it to Apprise, which knows
how to reach Slack, Discord, Telegram, e-mail, ntfy, Matrix, a JSON webhook and the rest: no
service is written by hand here.

Rules it keeps:

- Delivery never raises and never changes a run's result: each target's outcome is a
  :class:`Delivery` (delivered, or the error) that the caller logs and puts in the report.
- Every delivery is bounded by a timeout: a receiver that never answers costs at most that
  long (the sending thread is left behind as a daemon; the socket timeouts end it soon after).
- An Apprise URL carries credentials (webhook tokens, passwords): a target is only ever shown
  redacted (:func:`redact_target`), and Apprise's own log lines, which may quote the URL, are
  kept out of ours.
- The message is built from report fields only (codes, hints, log_ids, open_ids, paths), which
  carry no token or upload URL by construction.

It must not print, read the environment or touch the store.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from orchestrator.errors import ConfigError
from orchestrator.files import write_atomic
from orchestrator.logs import LOGGER_NAME
from orchestrator.outcomes import FAILURE_STATUSES
from orchestrator.report import Delivery, RunReport
from orchestrator.secret import Secret

if TYPE_CHECKING:
    from apprise import AppriseAsset

log = logging.getLogger(f"{LOGGER_NAME}.notify")

DEFAULT_NOTIFY_TIMEOUT: Final = 10.0
"""Seconds one target may take to accept a message before it counts as not delivered."""
REFRESH_WARNING_DAYS: Final = 14
"""``auth refresh --all`` warns when a refresh token dies within this many days."""
LAST_OUTCOME_FILE: Final = "last-outcome.json"
"""Beside the JSON report: each manifest's last run outcome, for ``--notify-on change``."""

_HOST_SCHEMES: Final = frozenset(
    {"json", "jsons", "form", "forms", "xml", "xmls", "mailto", "mailtos"}
)
"""Schemes whose host part is a real host name. In most other Apprise URLs (``slack://``,
``discord://``, ``tgram://``…) the "host" is itself a token, so only the scheme is shown."""


class NotifyOn(StrEnum):
    """When a run sends its notification (``--notify-on``)."""

    FAILURE = "failure"
    """Something failed, is uncertain, or a user needs ``auth login`` (the default)."""
    ALWAYS = "always"
    CHANGE = "change"
    """The run's outcome differs from the previous run's of the same manifest."""


class Outcome(StrEnum):
    """A run's outcome in one word, compared between runs for ``--notify-on change``."""

    OK = "ok"
    FAILED = "failed"
    NEEDS_LOGIN = "needs_login"
    UNAVAILABLE = "unavailable"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Notice:
    """One message: a title, a Markdown body, and whether it reports trouble."""

    title: str
    body: str
    trouble: bool


@dataclass(frozen=True)
class AwaitingReview:
    """A creator with posts awaiting their review, for the run's notice."""

    open_id: str
    posts: int
    link: Secret | None = field(default=None, repr=False)
    """A fresh review link (a single-use bearer token): only when the operator opted in."""
    expires_at: float | None = None


def review_lines(
    waiting: Sequence[AwaitingReview], *, links_wanted: bool, public_url: bool
) -> list[str]:
    """The notice's part about posts awaiting review: each creator, and their link when the
    operator opted in (``--notify-review-links``) and the public URL is known; otherwise where
    to make links."""
    if not waiting:
        return []
    total = sum(creator.posts for creator in waiting)
    head = f"{total} post{'' if total == 1 else 's'} await{'s' if total == 1 else ''} review"
    lines = [""]
    if links_wanted and public_url:
        lines.append(f"{head} — each link opens once, in one browser, until it expires:")
    elif links_wanted:
        lines.append(
            f"{head}; no link sent: ORCHESTRATOR_PUBLIC_URL is not set (the https:// address "
            "of `serve` that review links point to); set it, or make links on the Reviews page"
        )
    else:
        lines.append(f"{head}; make links on the Reviews page (`serve`, /review-links)")
    for creator in waiting:
        line = f"- {creator.open_id}: {creator.posts} post{'' if creator.posts == 1 else 's'}"
        if creator.link is not None:
            line += f": {creator.link.reveal()}"
            if creator.expires_at is not None:
                until = datetime.fromtimestamp(creator.expires_at, UTC)
                line += f" (until {until:%Y-%m-%d %H:%M} UTC)"
        lines.append(line)
    return lines


def redact_target(url: str) -> str:
    """A target as it may be shown: ``scheme://host[:port]`` for host-addressed schemes
    (JSON/form/XML webhooks, e-mail), ``scheme://`` for the rest; never userinfo, path or
    query (where Apprise URLs keep their tokens and passwords)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower() or "unknown"
    if scheme in _HOST_SCHEMES and parts.hostname:
        try:
            port = parts.port
        except ValueError:
            port = None
        return f"{scheme}://{parts.hostname}" + (f":{port}" if port else "")
    return f"{scheme}://"


def check_targets(urls: Iterable[str]) -> tuple[str, ...]:
    """The URLs, each checked to be one Apprise understands; a ConfigError (naming the target
    redacted, never the URL) otherwise, before the run sends anything."""
    import apprise

    checked = []
    for url in urls:
        url = url.strip()
        if not url:
            continue
        if apprise.Apprise.instantiate(url, asset=_asset(), suppress_exceptions=True) is None:
            raise ConfigError(
                f"--notify/ORCHESTRATOR_NOTIFY: {redact_target(url)} is not an Apprise URL "
                "this installation understands",
                hint="see https://github.com/caronc/apprise/wiki for each service's URL form, "
                "e.g. json://hooks.example.com/path or ntfys://ntfy.sh/TOPIC",
            )
        checked.append(url)
    return tuple(checked)


def run_outcome(report: RunReport) -> Outcome:
    if report.interrupted:
        return Outcome.INTERRUPTED
    if _needs_login(report):
        return Outcome.NEEDS_LOGIN
    if report.has_failures:
        return Outcome.FAILED
    if report.has_outage:
        return Outcome.UNAVAILABLE
    return Outcome.OK


def should_notify(outcome: Outcome, when: NotifyOn, previous: Outcome | None) -> bool:
    """Whether a run with ``outcome`` sends its notice. ``change`` with no previous outcome
    on record counts as a change (the first run says how things stand)."""
    if when is NotifyOn.ALWAYS:
        return True
    if when is NotifyOn.CHANGE:
        return outcome is not previous
    # An outage (exit 69) is a failure to the person the notice is for: nothing could be posted.
    return outcome in (Outcome.FAILED, Outcome.NEEDS_LOGIN, Outcome.UNAVAILABLE)


def _needs_login(report: RunReport) -> list[str]:
    users = [
        entry.user_id
        for entry in report.entries
        if entry.error is not None and entry.error.code == "needs_login"
    ]
    return list(dict.fromkeys(users))


def run_notice(
    report: RunReport, report_paths: Sequence[Path], review: Sequence[str] = ()
) -> Notice:
    """The message about a finished run: the summary line, each failed or uncertain entry
    (TikTok's code, the fix, the log_id), the users who must sign in again, the posts awaiting
    review (``review``: :func:`review_lines`), the reports."""
    summary = report.summary()
    outcome = run_outcome(report)
    counts = ", ".join(f"{summary[k]} {k}" for k in summary if k != "total" and summary[k])
    title = f"tiktok-orchestrator: run {outcome.value}" + (" (dry run)" if report.dry_run else "")
    lines = [
        f"**{summary['total']} entr{'y' if summary['total'] == 1 else 'ies'}**: "
        f"{counts or 'nothing to do'}",
        f"Manifest `{report.manifest}` · run `{report.run_id}`",
    ]
    troubled = [entry for entry in report.entries if entry.status in FAILURE_STATUSES]
    if troubled:
        lines += ["", "**Failed or uncertain:**"]
    for entry in troubled:
        name = entry.id or f"entries[{entry.index}]"
        line = f"- `{name}` ({entry.user_id}): {entry.status}"
        if entry.error is not None:
            line += f" `{entry.error.code}`: {entry.error.message}"
            if entry.error.hint:
                line += f" — fix: {entry.error.hint}"
            if entry.error.log_id:
                line += f" (log_id `{entry.error.log_id}`)"
        lines.append(line)
    users = _needs_login(report)
    if users:
        lines += ["", "**Must sign in again** (`tiktok-orchestrator auth login`):"]
        lines += [f"- {user}" for user in users]
    lines += review
    if report_paths:
        lines += ["", "Report: " + ", ".join(f"`{path}`" for path in report_paths)]
    else:
        lines += ["", "Report: not written (see the run's log)"]
    return Notice(title, "\n".join(lines), trouble=outcome is not Outcome.OK)


@dataclass(frozen=True)
class TokenWarning:
    """A user whose tokens need attention, for the ``auth refresh --all`` notice."""

    open_id: str
    reason: str
    needs_login: bool


def token_warning(
    open_id: str,
    *,
    refresh_expires_at: float | None,
    login_reason: str | None,
    now: float,
) -> TokenWarning | None:
    """Whether a user's tokens need a person soon: they must sign in again now, or their
    refresh token dies within :data:`REFRESH_WARNING_DAYS` (the next weekly refresh may be
    too late)."""
    if login_reason is not None:
        return TokenWarning(open_id, f"must sign in again: {login_reason}", needs_login=True)
    if refresh_expires_at is None:
        return None
    left = refresh_expires_at - now
    if left < REFRESH_WARNING_DAYS * 86400:
        when = datetime.fromtimestamp(refresh_expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        days = max(0, int(left // 86400))
        return TokenWarning(
            open_id,
            f"the refresh token expires in {days} day(s), on {when}; TikTok does not extend it",
            needs_login=False,
        )
    return None


def refresh_notice(warnings: Sequence[TokenWarning]) -> Notice:
    """The message ``auth refresh --all`` sends when tokens need a person."""
    lines = [f"**{len(warnings)} user(s) need attention** before the next run:"]
    for warning in warnings:
        lines.append(f"- {warning.open_id}: {warning.reason}")
    lines += ["", "Fix: run `tiktok-orchestrator auth login` as each of them."]
    return Notice("tiktok-orchestrator: tokens need a login", "\n".join(lines), trouble=True)


def deliver(
    urls: Sequence[str], notice: Notice, *, timeout: float = DEFAULT_NOTIFY_TIMEOUT
) -> tuple[Delivery, ...]:
    """Send ``notice`` to each target on its own, each bounded by ``timeout`` seconds. Never
    raises: a target that fails, answers an error or does not answer in time is a Delivery
    with the error, logged as a warning."""
    deliveries = tuple(_deliver_one(url, notice, timeout) for url in urls)
    for delivery in deliveries:
        if delivery.delivered:
            log.info("notification delivered to %s", delivery.target)
        else:
            log.warning("notification not delivered to %s: %s", delivery.target, delivery.error)
    return deliveries


def _deliver_one(url: str, notice: Notice, timeout: float) -> Delivery:
    import apprise

    target = redact_target(url)
    server = apprise.Apprise.instantiate(url, asset=_asset(), suppress_exceptions=True)
    if server is None:
        return Delivery(target, False, "not an Apprise URL this installation understands")
    # Bound each socket operation too, so the thread left behind after a timeout ends soon.
    server.socket_connect_timeout = timeout
    server.socket_read_timeout = timeout
    apobj = apprise.Apprise(asset=_asset())
    apobj.add(server)
    reasons: list[str] = []
    delivered = threading.Event()

    def send() -> None:
        try:
            result = apobj.notify(
                body=notice.body,
                title=notice.title,
                body_format=apprise.NotifyFormat.MARKDOWN,
                notify_type=apprise.NotifyType.FAILURE
                if notice.trouble
                else apprise.NotifyType.SUCCESS,
            )
        except Exception as exc:  # a plugin's bug must not end the run
            reasons.append(type(exc).__name__)
            return
        if result:
            delivered.set()
        else:
            reasons.extend(entry.message for entry in result.logs() if entry.message)

    # Apprise's log records may quote the URL: they never reach a handler of ours or the
    # last-resort handler on stderr; the reason comes from the result, cleaned.
    logging.getLogger("apprise").propagate = False
    worker = threading.Thread(target=send, name="notify", daemon=True)
    worker.start()
    worker.join(timeout)
    if delivered.is_set():
        return Delivery(target, True)
    if worker.is_alive():
        return Delivery(target, False, f"no answer within {timeout:g} s")
    return Delivery(target, False, _clean(reasons[-1], url) if reasons else "not delivered")


def _clean(message: str, url: str) -> str:
    """Apprise's reason with every secret-bearing piece of the URL taken out."""
    from orchestrator.logs import redact_text

    parts = urlsplit(url)
    pieces = [url, parts.netloc, parts.path, parts.query, parts.username, parts.password]
    pieces += [segment for segment in parts.path.split("/") if segment]
    if parts.scheme.lower() not in _HOST_SCHEMES:
        pieces.append(parts.hostname)
    for piece in sorted((p for p in pieces if p), key=len, reverse=True):
        if len(piece) > 2:
            message = message.replace(piece, "<hidden>")
    return redact_text(message).strip() or "not delivered"


def _asset() -> AppriseAsset:
    import apprise

    # Memory only: Apprise would otherwise keep a cache in the user's home uninvited.
    return apprise.AppriseAsset(storage_mode=apprise.PersistentStoreMode.MEMORY)


def read_last_outcome(folder: Path, manifest: str) -> Outcome | None:
    """The previous run's outcome for ``manifest``, kept in ``folder`` (beside the report);
    None when none is on record or the file is unreadable."""
    try:
        recorded = json.loads((folder / LAST_OUTCOME_FILE).read_text()).get(manifest)
        return Outcome(recorded) if recorded else None
    except (OSError, ValueError, AttributeError):
        return None


def record_outcome(folder: Path, manifest: str, outcome: Outcome) -> None:
    """Remember ``outcome`` for ``manifest`` beside the report (best effort: a failure is
    logged, the run's result stands)."""
    from orchestrator.errors import FileWriteError

    path = folder / LAST_OUTCOME_FILE
    try:
        document = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(document, dict):
            document = {}
    except (OSError, ValueError):
        document = {}
    document[manifest] = outcome.value
    try:
        write_atomic(path, (json.dumps(document, indent=2, sort_keys=True) + "\n").encode())
    except FileWriteError as exc:
        log.warning("could not record the run's outcome for --notify-on change: %s", exc)
