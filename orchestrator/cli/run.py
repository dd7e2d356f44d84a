"""`run`: parse the options, call the use case, render, pick the exit code."""

from __future__ import annotations

import contextlib
import logging
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    cli,
    exit_code_for,
    exit_code_for_report,
    handles_errors,
    options_of,
    render,
)
from orchestrator.clock import SystemClock
from orchestrator.config import Settings
from orchestrator.errors import ManifestError, OrchestratorError, UnsafeConnectionError
from orchestrator.notify import DEFAULT_NOTIFY_TIMEOUT, NotifyOn, check_targets
from orchestrator.secret import Secret

if TYPE_CHECKING:
    from orchestrator.report import RunReport
    from orchestrator.scheduler import RunObserver


@cli.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option(
    "--report", "report_path", type=click.Path(dir_okay=False), help="Write the JSON report here."
)
@click.option(
    "--junit", "junit_path", type=click.Path(dir_okay=False), help="Write JUnit XML here."
)
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(dir_okay=False),
    help="Write a Markdown summary here.",
)
@click.option(
    "--jobs", type=click.IntRange(1, 64), default=4, show_default=True, help="Users in parallel."
)
@click.option("--dry-run", is_flag=True, help="Plan only: no upload, no token refresh written.")
@click.option("--only-user", multiple=True, metavar="OPEN_ID", help="Only this user (repeatable).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Only the first N entries that are due (not done, not scheduled for later).",
)
@click.option("--retry-failed", is_flag=True, help="Retry entries that failed permanently before.")
@click.option(
    "--review",
    type=click.Choice(["creator"]),
    default=None,
    help="Every direct post waits for its creator's confirmation on the review page of `serve` "
    "(as `review: creator` on each entry; README 'Creator review').",
)
@click.option(
    "--poll-timeout",
    type=click.FloatRange(min=0),
    default=600,
    show_default=True,
    help="Seconds to poll for a final status.",
)
@click.option(
    "--sandbox", is_flag=True, help="Run against the built-in simulator with a throw-away home."
)
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--no-progress", is_flag=True, help="Plain log lines even on a terminal.")
@click.option(
    "--daily-cap",
    type=click.IntRange(min=0),
    default=15,
    show_default=True,
    help="Direct posts per user per 24 h (counted from the journal); the rest are deferred.",
)
@click.option(
    "--inbox-cap",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Inbox shares per user per 24 h; the rest are deferred.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(5_242_880, 64_000_000),
    default=None,
    metavar="BYTES",
    help="Preferred chunk size, 5242880..64000000 (default: the largest; smaller chunks "
    "resend less after a failure on a poor connection).",
)
@click.option(
    "--run-id",
    metavar="ID",
    help="With a PostgreSQL --store: the shared run this worker joins (default: from the "
    "manifest's content, so workers given the same file share it). See `report --run-id`.",
)
@click.option(
    "--lease",
    type=click.FloatRange(min=1),
    default=60,
    show_default=True,
    metavar="SECONDS",
    help="With a PostgreSQL --store: seconds, on the database server's clock, after a worker's "
    "last heartbeat before another worker may take over its entries and creators (a dead or "
    "paused worker's).",
)
@click.option(
    "--notify",
    "notify_urls",
    multiple=True,
    metavar="URL",
    help="Send the run's outcome to this Apprise URL (repeatable): json://, slack://, "
    "discord://, tgram://, mailto://, ntfy://... Env: ORCHESTRATOR_NOTIFY (space-separated; "
    "better for URLs with tokens: arguments show in `ps`).",
)
@click.option(
    "--notify-on",
    type=click.Choice([choice.value for choice in NotifyOn]),
    default=NotifyOn.FAILURE.value,
    show_default=True,
    help="failure: an entry failed or is uncertain, a user must sign in again, or TikTok "
    "could not be reached; always; "
    "change: the outcome differs from the previous run's of this manifest.",
)
@click.option(
    "--notify-timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_NOTIFY_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long each notification target may take; a slow or failing one never changes "
    "the run's result.",
)
@click.option(
    "--notify-review-links",
    is_flag=True,
    help="When the run leaves posts awaiting review, put a fresh review link per creator in "
    "the notice (needs ORCHESTRATOR_PUBLIC_URL). Links are single-use bearer tokens: only "
    "for targets the creators alone read. Env: ORCHESTRATOR_NOTIFY_REVIEW_LINKS=1.",
)
@click.option(
    "--expect-state",
    is_flag=True,
    help="Refuse to start (exit 2, nothing sent or created) when the home has no state "
    "database: for CI that restores the home, so a lost one cannot post everything again. "
    "Env: ORCHESTRATOR_EXPECT_STATE=1.",
)
@click.option("-v", "--verbose", count=True, help="More log output.")
@click.option("-q", "--quiet", count=True, help="Less log output.")
@click.pass_context
@handles_errors
def run(
    ctx: click.Context,
    manifest: str,
    report_path: str | None,
    junit_path: str | None,
    markdown_path: str | None,
    jobs: int,
    dry_run: bool,
    only_user: tuple[str, ...],
    limit: int | None,
    retry_failed: bool,
    review: str | None,
    poll_timeout: float,
    sandbox: bool,
    log_format: str,
    no_progress: bool,
    daily_cap: int,
    inbox_cap: int,
    chunk_size: int | None,
    run_id: str | None,
    lease: float,
    notify_urls: tuple[str, ...],
    notify_on: str,
    notify_timeout: float,
    notify_review_links: bool,
    expect_state: bool,
    verbose: int,
    quiet: int,
) -> None:
    """Validate MANIFEST, then upload everything that is due and write the report.

    Without --report the JSON report goes to the home's reports/ folder. A rerun never posts
    twice: what is done is reported as already_done, an interrupted upload resumes.

    Exit codes: 0 nothing failed (planned deferrals, processing and posts awaiting their
    creator's review are not failures), 1 an entry
    failed or is uncertain (or the report could not be written), 2 invalid manifest or
    configuration (nothing sent), 69 TikTok could not be reached or kept failing so entries
    were deferred (nothing failed), 75 another run holds the lock, 130 interrupted (the report
    says so).
    """
    from orchestrator import api
    from orchestrator.logs import configure_logging

    configure_logging(verbosity=verbose - quiet, fmt=log_format)
    outputs = _ReportPaths(
        json=Path(report_path) if report_path else None,
        junit=Path(junit_path) if junit_path else None,
        markdown=Path(markdown_path) if markdown_path else None,
    )

    def go() -> int:
        show_bars = not no_progress and sys.stderr.isatty() and log_format == "text"
        settings = options_of(ctx).settings()
        if expect_state:
            settings = settings.with_overrides(expect_state=True)
        if notify_review_links:
            settings = settings.with_overrides(notify_review_links=True)
        if notify_urls:
            settings = settings.with_overrides(
                notify_urls=tuple(Secret(url) for url in notify_urls if url.strip())
            )
        notices = _NotifyPlan(
            # Checked before anything is sent: a mistyped URL is a usage error, not a lost alert.
            urls=check_targets(url.reveal() for url in settings.notify_urls),
            on=NotifyOn(notify_on),
            timeout=notify_timeout,
        )

        def start(settings: Settings, observer: RunObserver) -> RunReport:
            return api.run(
                Path(manifest),
                settings=settings,
                observer=observer,
                jobs=jobs,
                dry_run=dry_run,
                only_users=only_user,
                limit=limit,
                retry_failed=retry_failed,
                review=review,
                daily_cap=daily_cap,
                inbox_cap=inbox_cap,
                poll_timeout=poll_timeout,
                chunk_size=chunk_size,
                lease=lease,
                # The sandbox's run is its own (a throw-away home): no shared run to join.
                run_id=None if sandbox else run_id,
            )

        if sandbox:
            from orchestrator.sandbox.demo import sandbox_session

            with sandbox_session(settings) as sandbox_settings:
                return _run_and_report(
                    sandbox_settings, start, outputs, show_bars, notices, shown, sandbox=True
                )
        return _run_and_report(settings, start, outputs, show_bars, notices, shown)

    shown = _Shown(json_log=log_format == "json", table=quiet == 0 and log_format == "text")
    try:
        code = go()
    except OrchestratorError as exc:
        if isinstance(exc, ManifestError):
            # CI keeps an artifact saying why nothing ran.
            _write_invalid_report(Path(manifest), exc, outputs, dry_run=dry_run)
        if not shown.json_log:
            raise
        _log_error(exc)
        code = exit_code_for(exc)
    ctx.exit(code)


@dataclass(frozen=True)
class _ReportPaths:
    json: Path | None
    junit: Path | None
    markdown: Path | None


@dataclass(frozen=True)
class _Shown:
    """What the run prints besides the log: the table (not with -q, not with JSON logs); with
    ``--log-format json`` every line on stderr is a JSON object and stdout stays empty."""

    json_log: bool
    table: bool

    def say(self, text: str, *, level: int = logging.INFO, **fields: object) -> None:
        """One message: a plain line on stderr, or a JSON log line (``event`` in fields)."""
        if self.json_log:
            _log.log(level, "%s", text, extra={"fields": fields})
        else:
            click.echo(text, err=True)


_log = logging.getLogger("orchestrator.run")


def _log_error(exc: OrchestratorError) -> None:
    """An error that ended the command, as one JSON log line (``--log-format json``)."""
    problems = exc.problems if isinstance(exc, ManifestError) else []
    _log.error(
        "%s",
        exc,
        extra={
            "fields": {
                "event": "error",
                "error": type(exc).__name__,
                "exit_code": exit_code_for(exc),
                "problems": problems,
                "hint": exc.hint,
            }
        },
    )


def _write_invalid_report(
    manifest: Path, exc: ManifestError, outputs: _ReportPaths, *, dry_run: bool
) -> None:
    """The reports asked for (--report/--junit/--markdown), saying the manifest is invalid and
    listing every problem; nothing ran. A report that cannot be written is said, no more."""
    from datetime import UTC, datetime

    from orchestrator.errors import ReportsNotWritten
    from orchestrator.report import RunReport, write_reports

    now = datetime.now(UTC)
    report = RunReport(
        run_id=uuid.uuid4().hex[:12],
        started_at=now,
        finished_at=now,
        manifest=str(manifest),
        dry_run=dry_run,
        interrupted=False,
        problems=tuple(exc.problems) or (str(exc),),
    )
    try:
        write_reports(
            report,
            json_path=outputs.json,
            junit_path=outputs.junit,
            markdown_path=outputs.markdown,
        )
    except ReportsNotWritten as failed:
        for failure in failed.failures:
            click.echo(f"error: report not written: {failure}", err=True)


@dataclass(frozen=True)
class _NotifyPlan:
    urls: tuple[str, ...]
    on: NotifyOn
    timeout: float


def _run_and_report(
    settings: Settings,
    start: Callable[[Settings, RunObserver], RunReport],
    outputs: _ReportPaths,
    show_bars: bool,
    notices: _NotifyPlan,
    shown: _Shown,
    *,
    sandbox: bool = False,
) -> int:
    """Run (``start``) with progress shown, print the summary, write the reports; the exit
    code."""
    import signal

    from orchestrator.errors import ReportsNotWritten
    from orchestrator.outcomes import STATUSES
    from orchestrator.progress import BarObserver, plural
    from orchestrator.report import write_reports

    def terminate(_signum: int, _frame: object) -> None:
        # systemd stops a unit with SIGTERM: treat it like Ctrl-C (finish the step, report).
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        observer = render.progress_observer(show_bars)
        with observer if isinstance(observer, BarObserver) else contextlib.nullcontext():
            report = start(settings, observer)
    except UnsafeConnectionError as exc:
        # Stopped before sending to that server (exit 2): cron and CI readers of the report
        # must still find why, and which entries were left.
        from orchestrator.report import RunReport

        if isinstance(exc.report, RunReport):
            _write_stopped_report(settings, exc.report, outputs, shown, sandbox=sandbox)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if shown.table:
        render.print_run_summary(report)
    code = exit_code_for_report(report)
    json_path = outputs.json or _default_report_path(settings, report, sandbox)
    try:
        written = write_reports(
            report,
            json_path=json_path,
            junit_path=outputs.junit,
            markdown_path=outputs.markdown,
            step_summary=settings.step_summary,
        )
    except ReportsNotWritten as exc:
        # The run is over and journalled whatever happens here: say what was not written.
        # The exit code still tells about the entries (1 and 130 stay); a run that went
        # well (or only met an outage, 69) exits 1, because an output the user asked for is
        # missing.
        written = [path for path in exc.written if isinstance(path, Path)]
        hint = (
            f"{exc.hint or 'free some disk space or choose another path'}; the journal "
            "is intact (`tiktok-orchestrator history` shows every entry)"
        )
        for failure in exc.failures:
            shown.say(
                f"error: report not written: {failure}",
                level=logging.ERROR,
                event="report_not_written",
                hint=hint,
            )
        if not shown.json_log:
            click.echo(f"hint: {hint}", err=True)
        if code in (EXIT_OK, EXIT_UNAVAILABLE):
            code = EXIT_FAILED
    if notices.urls:
        _send_notices(report, notices, written, json_path, shown, settings)
    if shown.json_log:
        counts = report.summary()
        _log.info(
            "%s: %s",
            plural(counts["total"], "entry", "entries"),
            ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s]) or "nothing to do",
            extra={
                "fields": {
                    "event": "summary",
                    "run_id": report.run_id,
                    "status": report.status,
                    "exit_code": code,
                    "counts": counts,
                    "reports": [str(path) for path in written],
                }
            },
        )
    else:
        for path in written:
            click.echo(f"report: {path}")
    if report.interrupted:
        shown.say(
            "interrupted: the report lists what is left; run again to go on",
            level=logging.WARNING,
            event="interrupted",
        )
    elif code == EXIT_UNAVAILABLE:
        shown.say(
            "error: TikTok could not be reached or kept failing; the entries it left were "
            f"deferred (exit {EXIT_UNAVAILABLE})\nhint: check the network, "
            "ORCHESTRATOR_API_BASE and TikTok's status, then run again",
            level=logging.ERROR,
            event="unavailable",
        )
    return code


def _write_stopped_report(
    settings: Settings, report: RunReport, outputs: _ReportPaths, shown: _Shown, *, sandbox: bool
) -> None:
    """The reports of a run an unsafe connection stopped, where a finished run's go; one that
    cannot be written is said (the stop's own error follows and sets the exit code)."""
    from orchestrator.errors import ReportsNotWritten
    from orchestrator.report import write_reports

    try:
        written = write_reports(
            report,
            json_path=outputs.json or _default_report_path(settings, report, sandbox),
            junit_path=outputs.junit,
            markdown_path=outputs.markdown,
            step_summary=settings.step_summary,
        )
    except ReportsNotWritten as exc:
        written = [path for path in exc.written if isinstance(path, Path)]
        for failure in exc.failures:
            shown.say(
                f"error: report not written: {failure}",
                level=logging.ERROR,
                event="report_not_written",
            )
    for path in written:
        if shown.json_log:
            shown.say(f"report: {path}", event="report_written", path=str(path))
        else:
            click.echo(f"report: {path}")


def _send_notices(
    report: RunReport,
    notices: _NotifyPlan,
    written: list[Path],
    json_path: Path | None,
    shown: _Shown,
    settings: Settings,
) -> None:
    """Notify per --notify-on (and whenever the run left posts awaiting review), then add the
    deliveries to the JSON report. Whatever happens here (a target down, a report folder gone)
    the run's result and exit code stand."""
    from dataclasses import replace

    from orchestrator.errors import ReportsNotWritten
    from orchestrator.notify import (
        deliver,
        read_last_outcome,
        record_outcome,
        review_lines,
        run_notice,
        run_outcome,
        should_notify,
    )
    from orchestrator.report import write_reports
    from orchestrator.review_links import awaiting_review, left_for_review

    outcome = run_outcome(report)
    folder = json_path.parent if json_path is not None else None
    previous = read_last_outcome(folder, report.manifest) if folder is not None else None
    if folder is not None and json_path in written and not report.dry_run:
        record_outcome(folder, report.manifest, outcome)
    reviewing = left_for_review(report) and not report.dry_run
    if not should_notify(outcome, notices.on, previous) and not reviewing:
        return
    review: list[str] = []
    if reviewing:
        try:
            waiting = awaiting_review(
                settings, report, clock=SystemClock(), links=settings.notify_review_links
            )
        except OrchestratorError as exc:  # the store went away: say so, send the rest
            shown.say(
                f"warning: no review links: {exc}", level=logging.WARNING, event="no_review_links"
            )
            waiting = ()
        review = review_lines(
            waiting,
            links_wanted=settings.notify_review_links,
            public_url=settings.public_url is not None,
        )
    notice = run_notice(report, written, review)
    deliveries = deliver(notices.urls, notice, timeout=notices.timeout)
    for delivery in deliveries:
        if not delivery.delivered:
            shown.say(
                f"warning: notification not delivered to {delivery.target}: {delivery.error}",
                level=logging.WARNING,
                event="notification_not_delivered",
                target=delivery.target,
            )
    if json_path is not None and json_path in written:
        with contextlib.suppress(ReportsNotWritten):
            write_reports(replace(report, notifications=deliveries), json_path=json_path)


def _default_report_path(settings: Settings, report: RunReport, sandbox: bool) -> Path | None:
    """Where the JSON report goes without --report: the home's reports folder, or for a
    sandbox run (whose home is thrown away) ./reports in the current folder. A dry run keeps
    its plan only where --report says: the home is not written by a dry run."""
    if report.dry_run and not sandbox:
        return None
    if sandbox:
        return Path("reports") / f"sandbox-run-{report.run_id}.json"
    return settings.home / "reports" / f"run-{report.run_id}.json"
