"""The command line: parse, wire, report. The only module that prints.

Every command is a thin shell around a plain function elsewhere in the package; errors become
exit codes here and nowhere else (:func:`exit_code_for`).

Exit codes (SPEC §8): 0 nothing failed · 1 an entry failed or is uncertain · 2 invalid manifest,
configuration or usage (nothing was sent) · 69 nothing failed but TikTok could not be reached or
kept failing, so entries were deferred · 75 another run holds the lock · 130 interrupted.
Precedence when several apply: 2, then 130, then 1, then 69, then 0.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from orchestrator import __version__
from orchestrator.clock import Clock, SystemClock
from orchestrator.config import DEFAULT_CALLBACK_TIMEOUT, DEFAULT_SCOPES, Settings, load_settings
from orchestrator.errors import (
    ManifestError,
    OrchestratorError,
    RunLockedError,
    StoreKeyError,
    StoreMissingError,
    StorePermissionError,
    UnsafeConnectionError,
    UsageError,
)

# The rest is imported inside the commands that use it: the token store, OAuth, requests and
# rich cost about 0.1 s to import, which `--help`, `validate` and the other commands need not pay.
if TYPE_CHECKING:
    from orchestrator.report import RunReport
    from orchestrator.store.tokens import TokenStore

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69
EXIT_LOCKED = 75
EXIT_INTERRUPTED = 130

P = ParamSpec("P")
R = TypeVar("R")


def exit_code_for_report(report: RunReport) -> int:
    """The exit code of a run that ended with a report (the other half of this decision):
    130 interrupted, then 1 a failure, then 69 an outage deferred entries, then 0."""
    if report.interrupted:
        return EXIT_INTERRUPTED
    if report.has_failures:
        return EXIT_FAILED
    if report.has_outage:
        return EXIT_UNAVAILABLE
    return EXIT_OK


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error that ended a command (the one place this is decided)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, RunLockedError):
        return EXIT_LOCKED
    # A missing or wrong token key and a store others can read are configuration problems:
    # nothing was sent, and the fix is the user's.
    # A read-only command on a home with no state database: a wrong --home, or nobody signed in.
    if isinstance(
        exc, UsageError | ManifestError | StoreKeyError | StorePermissionError | StoreMissingError
    ):
        return EXIT_USAGE
    if isinstance(exc, click.UsageError):
        return EXIT_USAGE
    # Plain HTTP off the machine, a certificate that does not verify: the run stopped before
    # sending to that server, and only the user's configuration can fix it.
    if isinstance(exc, UnsafeConnectionError):
        return EXIT_USAGE
    return EXIT_FAILED


def _fail(exc: OrchestratorError) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    if isinstance(exc, ManifestError):
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)
    sys.exit(exit_code_for(exc))


def handles_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn our errors into a message and an exit code; Ctrl-C into 130. No tracebacks."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except OrchestratorError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


@dataclass(frozen=True)
class GlobalOptions:
    """Options given before the command; turned into Settings on demand."""

    home: str | None
    api_base: str | None
    auth_url: str | None
    redirect_uri: str | None
    client_key: str | None
    store: str | None = None

    def settings(self) -> Settings:
        return load_settings(
            home=self.home,
            api_base=self.api_base,
            auth_url=self.auth_url,
            redirect_uri=self.redirect_uri,
            client_key=self.client_key,
            store=self.store,
        )


def _options(ctx: click.Context) -> GlobalOptions:
    obj = ctx.find_object(GlobalOptions)
    assert obj is not None, "the group callback sets GlobalOptions"
    return obj


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tiktok-orchestrator")
@click.option(
    "--home", metavar="DIR", help="State folder (tokens, journal). Env: ORCHESTRATOR_HOME."
)
@click.option("--api-base", metavar="URL", help="API base URL. Env: ORCHESTRATOR_API_BASE.")
@click.option("--auth-url", metavar="URL", help="Authorize page URL. Env: ORCHESTRATOR_AUTH_URL.")
@click.option(
    "--redirect-uri", metavar="URL", help="Loopback redirect URI. Env: TIKTOK_REDIRECT_URI."
)
@click.option(
    "--client-key",
    metavar="KEY",
    help="App client key. Env: TIKTOK_CLIENT_KEY. (The client secret is read from "
    "TIKTOK_CLIENT_SECRET only: arguments show in `ps`.)",
)
@click.option(
    "--store",
    metavar="URL",
    help="State database: `sqlite` (the home's state.db, the default) or a postgresql:// URL "
    "shared by workers on several machines. Env: ORCHESTRATOR_STORE (better for a URL with a "
    "password: arguments show in `ps`).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    home: str | None,
    api_base: str | None,
    auth_url: str | None,
    redirect_uri: str | None,
    client_key: str | None,
    store: str | None,
) -> None:
    """Batch upload orchestrator for TikTok's Content Posting API.

    Validates a manifest of videos and photo posts, resolves each user's tokens, uploads in
    chunks with retries and status polling, journals every step so a rerun never posts twice,
    and writes a report for cron and CI.

    Exit codes: 0 ok, 1 an entry failed, 2 invalid input (nothing sent), 75 locked, 130 interrupted.
    """
    ctx.obj = GlobalOptions(home, api_base, auth_url, redirect_uri, client_key, store)


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
@click.option("--limit", type=click.IntRange(min=1), help="At most N entries.")
@click.option("--retry-failed", is_flag=True, help="Retry entries that failed permanently before.")
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
    poll_timeout: float,
    sandbox: bool,
    log_format: str,
    no_progress: bool,
    daily_cap: int,
    inbox_cap: int,
    chunk_size: int | None,
    run_id: str | None,
    lease: float,
    verbose: int,
    quiet: int,
) -> None:
    """Validate MANIFEST, then upload everything that is due and write the report.

    Without --report the JSON report goes to the home's reports/ folder. A rerun never posts
    twice: what is done is reported as already_done, an interrupted upload resumes.

    Exit codes: 0 nothing failed (planned deferrals and processing are not failures), 1 an entry
    failed or is uncertain (or the report could not be written), 2 invalid manifest or
    configuration (nothing sent), 69 TikTok could not be reached or kept failing so entries
    were deferred (nothing failed), 75 another run holds the lock, 130 interrupted (the report
    says so).
    """
    from orchestrator.logs import configure_logging
    from orchestrator.scheduler import RunOptions
    from orchestrator.settings import RunSettings as Tunables

    configure_logging(verbosity=verbose - quiet, fmt=log_format)
    options = RunOptions(
        jobs=jobs,
        dry_run=dry_run,
        only_users=frozenset(only_user),
        limit=limit,
        retry_failed=retry_failed,
        daily_direct_cap=daily_cap,
        pending_inbox_cap=inbox_cap,
    )
    outputs = _ReportPaths(
        json=Path(report_path) if report_path else None,
        junit=Path(junit_path) if junit_path else None,
        markdown=Path(markdown_path) if markdown_path else None,
    )
    tunables = Tunables(poll_timeout=poll_timeout, chunk_size=chunk_size, lease=lease)
    show_bars = not no_progress and sys.stderr.isatty() and log_format == "text"
    if sandbox:
        from orchestrator.sandbox.demo import sandbox_session

        with sandbox_session(_options(ctx).settings()) as settings:
            code = _run_and_report(
                settings, Path(manifest), options, outputs, tunables, show_bars, sandbox=True
            )
    else:
        code = _run_and_report(
            _options(ctx).settings(),
            Path(manifest),
            options,
            outputs,
            tunables,
            show_bars,
            run_id=run_id,
        )
    ctx.exit(code)


@dataclass(frozen=True)
class _ReportPaths:
    json: Path | None
    junit: Path | None
    markdown: Path | None


def _run_and_report(
    settings: Settings,
    manifest_path: Path,
    options: Any,
    outputs: _ReportPaths,
    tunables: Any,
    show_bars: bool,
    *,
    sandbox: bool = False,
    run_id: str | None = None,
) -> int:
    import os
    import signal

    from rich.console import Console

    from orchestrator.errors import ReportsNotWritten
    from orchestrator.progress import BarObserver, LogObserver
    from orchestrator.report import write_reports
    from orchestrator.runner import run_manifest

    def terminate(_signum: int, _frame: object) -> None:
        # systemd stops a unit with SIGTERM: treat it like Ctrl-C (finish the step, report).
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        observer = BarObserver(Console(stderr=True)) if show_bars else LogObserver()
        with observer if isinstance(observer, BarObserver) else contextlib.nullcontext():
            report = run_manifest(
                settings,
                manifest_path,
                options,
                tunables=tunables,
                observer=observer,
                run_id=run_id,
            )
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print_summary(report)
    code = exit_code_for_report(report)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    try:
        written = write_reports(
            report,
            json_path=outputs.json or _default_report_path(settings, report, sandbox),
            junit_path=outputs.junit,
            markdown_path=outputs.markdown,
            step_summary=Path(step_summary) if step_summary else None,
        )
    except ReportsNotWritten as exc:
        # The run is over and journalled whatever happens here: say what was not written.
        # The exit code still tells about the entries (1 and 130 stay); a run that went
        # well (or only met an outage, 69) exits 1, because an output the user asked for is
        # missing.
        written = [path for path in exc.written if isinstance(path, Path)]
        for failure in exc.failures:
            click.echo(f"error: report not written: {failure}", err=True)
        click.echo(
            f"hint: {exc.hint or 'free some disk space or choose another path'}; the journal "
            "is intact (`tiktok-orchestrator history` shows every entry)",
            err=True,
        )
        if code in (EXIT_OK, EXIT_UNAVAILABLE):
            code = EXIT_FAILED
    for path in written:
        click.echo(f"report: {path}")
    if report.interrupted:
        click.echo("interrupted: the report lists what is left; run again to go on", err=True)
    elif code == EXIT_UNAVAILABLE:
        click.echo(
            "error: TikTok could not be reached or kept failing; the entries it left were "
            f"deferred (exit {EXIT_UNAVAILABLE})\nhint: check the network, "
            "ORCHESTRATOR_API_BASE and TikTok's status, then run again",
            err=True,
        )
    return code


def _default_report_path(settings: Settings, report: Any, sandbox: bool) -> Path | None:
    """Where the JSON report goes without --report: the home's reports folder, or for a
    sandbox run (whose home is thrown away) ./reports in the current folder. A dry run keeps
    its plan only where --report says: the home is not written by a dry run."""
    if report.dry_run and not sandbox:
        return None
    if sandbox:
        return Path("reports") / f"sandbox-run-{report.run_id}.json"
    return settings.home / "reports" / f"run-{report.run_id}.json"


def _print_summary(report: Any) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from orchestrator.report import STATUSES

    # Cron mail and CI logs are not terminals: give the table room instead of rich's 80 columns.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    table = Table(box=box.SIMPLE, title="dry run: the plan" if report.dry_run else None)
    table.add_column("#", justify="right")
    table.add_column("entry", overflow="fold", min_width=16, max_width=48)
    table.add_column("user", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("publish_id", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for entry in report.entries:
        detail = ""
        if entry.error is not None:
            detail = (
                entry.error.message
                if entry.status == "planned"
                else (f"{entry.error.code}: {entry.error.message}")
            )
            if entry.error.hint and entry.status != "planned":
                detail += f" — {entry.error.hint}"
        elif entry.post_ids:
            detail = "post " + ", ".join(entry.post_ids)
        name = entry.id if entry.id and not entry.id.startswith("sha256:") else entry.source
        table.add_row(
            str(entry.index), name, entry.user_id, entry.status, entry.publish_id or "", detail
        )
    console.print(table)
    counts = report.summary()
    shown = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    console.print(f"{counts['total']} entries: {shown or 'nothing to do'}")


@cli.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option(
    "--online",
    is_flag=True,
    help="Also check each user's token, scopes and creator_info (privacy levels, disabled "
    "interactions, max duration). Sends no post.",
)
@click.pass_context
@handles_errors
def validate(ctx: click.Context, manifest: str, online: bool) -> None:
    """Check MANIFEST offline (schema, semantics, media) and list every problem at once."""
    # Imported here: jsonschema and yaml take a noticeable moment to import, which `--help` and
    # the other commands need not pay.
    from orchestrator.runner import check_with_journal

    checked, journal_notes = check_with_journal(_options(ctx).settings(), Path(manifest))
    for note in (*checked.notes, *journal_notes):
        click.echo(f"note: {note}", err=True)
    if not online:
        click.echo(checked.summary())
        return
    from orchestrator.preflight import check_online

    settings = _options(ctx).settings()
    settings.require_client()
    found = check_online(settings, checked, clock=SystemClock())
    for note in found.notes:
        click.echo(f"note: {note}", err=True)
    if found.problems:
        raise ManifestError(
            f"{len(found.problems)} problem(s) found online for "
            f"{found.users_checked} user(s); nothing was posted",
            list(found.problems),
        )
    click.echo(f"{checked.summary()}; online: {found.users_checked} user(s) checked")


@cli.group()
def auth() -> None:
    """Sign users in and manage the token store."""


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _relative(seconds: float) -> str:
    """A short human duration: 3d 4h, 2h 5m, 45m, 30s."""
    seconds = abs(int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days >= 7:
        return f"{days}d"
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def _expiry_text(timestamp: float, now: float) -> str:
    when = _utc(timestamp)
    if timestamp > now:
        return f"{when} (in {_relative(timestamp - now)})"
    return f"{when} ({_relative(now - timestamp)} ago)"


def _open_store(settings: Settings, clock: Clock, *, create: bool = True) -> TokenStore:
    """The token store; ``create=False`` for commands that must not make a home or a store."""
    from orchestrator.store.tokens import TokenStore

    return TokenStore.open(settings, clock=clock, create=create)


@auth.command("login")
@click.option("--no-browser", is_flag=True, help="Print the URL and read the redirected URL back.")
@click.option("--scopes", default=",".join(DEFAULT_SCOPES), show_default=True)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=DEFAULT_CALLBACK_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the browser to come back.",
)
@click.pass_context
@handles_errors
def auth_login(ctx: click.Context, no_browser: bool, scopes: str, timeout: float) -> None:
    """Sign a user in with OAuth (PKCE) in the browser and store the tokens."""
    from orchestrator import auth as auth_use_cases
    from orchestrator.tiktok.oauth import parse_scopes
    from orchestrator.transport import HttpTransport

    settings = _options(ctx).settings()
    settings.require_client()  # before anything opens: a missing secret is a usage error
    requested = sorted(parse_scopes(scopes))
    clock = SystemClock()

    def show_url(url: str) -> None:
        if no_browser:
            click.echo("Open this URL in a browser (on any machine) and sign in:", err=True)
            click.echo(url)
            click.echo(
                "The browser then goes to an address starting with "
                f"{settings.redirect_uri} (the page may fail to load: that is fine).",
                err=True,
            )
        else:
            click.echo("Opening your browser to sign in. If it does not open, visit:", err=True)
            click.echo(f"  {url}", err=True)
            click.echo(f"Waiting up to {timeout:g} s for the sign-in to finish...", err=True)

    def read_pasted_url() -> str:
        # Not hidden: the code is single-use and worthless without this process's PKCE
        # verifier, and a hidden prompt would read /dev/tty instead of a pipe.
        value: str = click.prompt("Paste that address here", err=True)
        return value

    with _open_store(settings, clock) as store, contextlib.closing(HttpTransport()) as transport:
        result = auth_use_cases.login(
            settings,
            store=store,
            transport=transport,
            clock=clock,
            scopes=requested,
            open_browser=not no_browser,
            show_url=show_url,
            read_pasted_url=read_pasted_url,
            timeout=timeout,
        )
    user = result.user
    name = f"{user.display_name} ({user.open_id})" if user.display_name else user.open_id
    click.echo(f"Signed in as {name}; scopes: {', '.join(sorted(user.scopes)) or '-'}")
    click.echo(f"Access token valid until {_expiry_text(user.access_expires_at, clock.time())}.")
    if result.display_name_error:
        click.echo(
            f"warning: could not fetch the display name: {result.display_name_error}", err=True
        )
    if result.missing_scopes:
        click.echo(
            f"warning: the user did not grant {', '.join(sorted(result.missing_scopes))}; "
            "posts needing it will fail. Run `auth login` again and allow every permission.",
            err=True,
        )


@auth.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--force",
    is_flag=True,
    help="Replace stored tokens even when they are newer than the file's.",
)
@click.pass_context
@handles_errors
def auth_import(ctx: click.Context, file: str, force: bool) -> None:
    """Import tokens from user_tokens.json or a list of TikTok token responses.

    \b
    Seed format: {"OPEN_ID": {"access_token", "refresh_token",
                  "expires_at" | "expires_in", "refresh_expires_at" | "refresh_expires_in",
                  "scope", "display_name"?}}
    Or a list of token responses; "expires_in" counts from "obtained_at" if given, else now.
    The whole file is checked first: with any problem, nothing is imported.

    A user whose stored tokens are newer than the file's (refreshed since the file was
    written: the file's refresh token no longer works) is skipped, and the command exits 1
    naming them; --force replaces them anyway. The other users are imported.
    """
    from orchestrator import auth as auth_use_cases

    settings = _options(ctx).settings()
    clock = SystemClock()
    with _open_store(settings, clock) as store:
        result = auth_use_cases.import_tokens(store, Path(file), clock=clock, force=force)
    now = clock.time()
    for user in result.imported:
        state = user.state(now)
        click.echo(f"imported {user.open_id}: {state.value.replace('_', ' ')}")
        reason = user.login_reason(now)
        if reason:
            click.echo(f"warning: {user.open_id} must sign in again: {reason}", err=True)
    for skipped in result.skipped:
        click.echo(f"skipped {skipped.open_id}: the store holds newer tokens: {skipped.reason}")
    click.echo(f"{len(result.imported)} user(s) imported.")
    if result.skipped:
        names = ", ".join(skipped.open_id for skipped in result.skipped)
        click.echo(
            f"error: {len(result.skipped)} user(s) not imported, their stored tokens are newer "
            f"than the file's: {names}",
            err=True,
        )
        click.echo(
            "hint: nothing to do if the store's tokens work (`auth list`); to replace them "
            "anyway, run `auth import --force FILE`",
            err=True,
        )
        ctx.exit(EXIT_FAILED)


@auth.command("list")
@click.pass_context
@handles_errors
def auth_list(ctx: click.Context) -> None:
    """One row per stored user: scopes, expiries and state."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from orchestrator import auth as auth_use_cases
    from orchestrator.store.tokens import DEFAULT_REFRESH_MARGIN

    settings = _options(ctx).settings()
    clock = SystemClock()
    try:
        with _open_store(settings, clock, create=False) as store:
            rows = auth_use_cases.list_users(store, clock=clock, margin=DEFAULT_REFRESH_MARGIN)
    except StoreMissingError:
        rows = []  # a home nobody signed in on: say so, and create nothing
    if not rows:
        click.echo("No users stored. Add one with `auth login` or `auth import FILE`.")
        return
    now = clock.time()
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in ("open_id", "display name", "scopes", "access expires", "refresh expires"):
        table.add_column(header, overflow="fold")
    table.add_column("state")
    for row in rows:
        user = row.user
        table.add_row(
            user.open_id,
            user.display_name or "-",
            ",".join(sorted(user.scopes)) or "-",
            _expiry_text(user.access_expires_at, now),
            _expiry_text(user.refresh_expires_at, now),
            row.state.value.replace("_", " "),
        )
    # Off a terminal (cron mail, CI logs, pipes) rich would assume 80 columns and fold cells.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    console.print(table)
    for row in rows:
        if row.login_reason:
            click.echo(
                f"warning: {row.user.open_id} must sign in again ({row.login_reason}): "
                "run `auth login`",
                err=True,
            )
        elif row.refresh_dies_soon:
            click.echo(
                f"warning: the refresh token of {row.user.open_id} dies in "
                f"{_relative(row.user.refresh_expires_at - now)} "
                f"({_utc(row.user.refresh_expires_at)}); after that the user must run "
                "`auth login` again",
                err=True,
            )


@auth.command("refresh")
@click.argument("open_ids", nargs=-1)
@click.option("--all", "refresh_all", is_flag=True, help="Refresh every stored user.")
@click.pass_context
@handles_errors
def auth_refresh(ctx: click.Context, open_ids: tuple[str, ...], refresh_all: bool) -> None:
    """Refresh tokens now (for a timer that keeps them alive between runs).

    Exits 1 if any user could not be refreshed; the others are refreshed regardless.
    """
    from orchestrator import auth as auth_use_cases
    from orchestrator.store.tokens import TokenProvider
    from orchestrator.tiktok.oauth import OAuthClient
    from orchestrator.transport import HttpTransport

    auth_use_cases.check_refresh_selection(open_ids, all_users=refresh_all)
    settings = _options(ctx).settings()
    settings.require_client()
    clock = SystemClock()
    try:
        store = _open_store(settings, clock, create=False)
    except StoreMissingError:
        if not refresh_all:
            raise
        click.echo("No users stored; nothing to refresh.")
        return
    with store, contextlib.closing(HttpTransport()) as transport:
        provider = TokenProvider(
            store, OAuthClient.from_settings(settings, transport, clock), clock=clock
        )
        outcomes = auth_use_cases.refresh_users(
            store, provider, list(open_ids), all_users=refresh_all
        )
    now = clock.time()
    for outcome in outcomes:
        if outcome.user is not None and outcome.error is None:
            click.echo(
                f"refreshed {outcome.open_id}: access valid until "
                f"{_expiry_text(outcome.user.access_expires_at, now)}"
            )
        else:
            message = str(outcome.error)
            if outcome.open_id not in message:
                message = f"{outcome.open_id}: {message}"
            click.echo(f"error: {message}", err=True)
            if outcome.error is not None and outcome.error.hint:
                click.echo(f"hint: {outcome.error.hint}", err=True)
    if not outcomes:
        click.echo("No users stored; nothing to refresh.")
    if any(not outcome.ok for outcome in outcomes):
        ctx.exit(EXIT_FAILED)


@auth.command("revoke")
@click.argument("open_id")
@click.pass_context
@handles_errors
def auth_revoke(ctx: click.Context, open_id: str) -> None:
    """Revoke OPEN_ID's token at TikTok and forget it."""
    from orchestrator import auth as auth_use_cases
    from orchestrator.store.tokens import TokenProvider
    from orchestrator.tiktok.oauth import OAuthClient
    from orchestrator.transport import HttpTransport

    settings = _options(ctx).settings()
    clock = SystemClock()
    with (
        _open_store(settings, clock, create=False) as store,
        contextlib.closing(HttpTransport()) as transport,
    ):
        oauth = OAuthClient.from_settings(settings, transport, clock)
        provider = TokenProvider(store, oauth, clock=clock)
        auth_use_cases.revoke_user(store, provider, oauth, open_id)
    click.echo(f"revoked {open_id} at TikTok and removed it from the token store")


@auth.command("remove")
@click.argument("open_id")
@click.pass_context
@handles_errors
def auth_remove(ctx: click.Context, open_id: str) -> None:
    """Forget OPEN_ID's tokens locally (TikTok is not told)."""
    from orchestrator import auth as auth_use_cases

    settings = _options(ctx).settings()
    clock = SystemClock()
    with _open_store(settings, clock, create=False) as store:
        auth_use_cases.remove_user(store, open_id)
    click.echo(
        f"removed {open_id} from the token store (TikTok was not told; "
        "`auth revoke` also withdraws the app's access)"
    )


@cli.command()
@click.argument("publish_id")
@click.option("--user", "open_id", required=True, metavar="OPEN_ID", help="Whose post it is.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
@click.pass_context
@handles_errors
def status(ctx: click.Context, publish_id: str, open_id: str, as_json: bool) -> None:
    """Fetch a post's status from TikTok (and show what the journal knows of it).

    Exits 0 when TikTok answered, whatever the status; 1 when it could not be asked.
    """
    import json

    from orchestrator.lookup import fetch_post_status

    clock = SystemClock()
    found = fetch_post_status(_options(ctx).settings(), publish_id, open_id, clock=clock)
    status_ = found.status
    entry = found.entry
    if as_json:
        document: dict[str, Any] = {
            "publish_id": publish_id,
            "user_id": open_id,
            "status": status_.status,
            "fail_reason": status_.fail_reason,
            "retryable": found.fail_reason.retryable if found.fail_reason else None,
            "hint": found.fail_reason.hint if found.fail_reason else None,
            "post_ids": list(status_.post_ids),
            "uploaded_bytes": status_.uploaded_bytes,
            "downloaded_bytes": status_.downloaded_bytes,
            "journal": None if entry is None else _history_json(entry),
        }
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    click.echo(f"publish_id: {publish_id}")
    click.echo(f"user:       {open_id}")
    click.echo(f"status:     {status_.status or '(none given)'}")
    if status_.fail_reason:
        meaning = found.fail_reason
        kind = "retryable" if meaning is not None and meaning.retryable else "permanent"
        click.echo(f"fail reason: {status_.fail_reason} ({kind})")
        if meaning is not None:
            click.echo(f"hint:       {meaning.hint}")
    if status_.post_ids:
        click.echo(f"post ids:   {', '.join(status_.post_ids)}")
    if status_.uploaded_bytes is not None:
        click.echo(f"uploaded:   {status_.uploaded_bytes:,} bytes")
    if entry is not None:
        name = entry.entry_id or entry.source
        click.echo(f"journal:    {name} is {entry.state.value} (updated {_utc(entry.updated_at)})")
    else:
        click.echo("journal:    not an upload of this home")


def _parse_since(text: str, now: float) -> float:
    """``--since``: an age (30m, 24h, 7d) or an ISO date / date-time (UTC unless it says)."""
    import re

    value = text.strip()
    age = re.fullmatch(r"(\d+)\s*([mhdw])", value, flags=re.IGNORECASE)
    if age:
        unit = {"m": 60, "h": 3600, "d": 86_400, "w": 604_800}[age.group(2).lower()]
        return now - int(age.group(1)) * unit
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither an age (30m, 24h, 7d) nor an ISO date or date-time "
            "(2026-05-01, 2026-05-01T18:00:00Z)",
            param_hint="--since",
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _history_json(record: Any) -> dict[str, Any]:
    def when(timestamp: float | None) -> str | None:
        if timestamp is None:
            return None
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")

    error = None
    if record.error_code is not None:
        error = {
            "code": record.error_code,
            "message": record.error_message,
            "log_id": record.error_log_id,
            "retryable": record.error_retryable,
            "hint": record.error_hint,
        }
    return {
        "identity": record.identity,
        "id": record.entry_id,
        "user_id": record.user_id,
        "source": record.source,
        "mode": record.mode,
        "state": record.state.value,
        "publish_id": record.publish_id,
        "post_ids": list(record.post_ids),
        "bytes_confirmed": record.bytes_confirmed,
        "attempts": record.attempts,
        "error": error,
        "deferred_until": when(record.deferred_until),
        "created_at": when(record.created_at),
        "updated_at": when(record.updated_at),
        "finished_at": when(record.finished_at),
    }


@cli.command()
@click.option("--user", "open_id", metavar="OPEN_ID", help="Only this user.")
@click.option(
    "--since",
    metavar="WHEN",
    help="Only entries changed since WHEN: an age (30m, 24h, 7d) or an ISO date or date-time "
    "(UTC unless it says).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="At most N entries (the most recent).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (for scripts).")
@click.pass_context
@handles_errors
def history(
    ctx: click.Context, open_id: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """What the journal knows: entry, user, state, publish_id, post ids, when.

    Most recently changed first. Reads only: safe while a run is going.
    """
    import json
    import shutil

    from orchestrator.lookup import read_history

    clock = SystemClock()
    cutoff = _parse_since(since, clock.time()) if since else None
    records = read_history(_options(ctx).settings(), clock=clock, user_id=open_id, since=cutoff)
    shown = records[:limit]
    if as_json:
        click.echo(json.dumps([_history_json(r) for r in shown], indent=2, ensure_ascii=False))
        return
    if not records:
        click.echo("The journal has no entries" + (" matching that." if open_id or since else "."))
        return
    rows = []
    for record in shown:
        detail = ""
        if record.error_code and record.state.value not in ("published", "sent_to_inbox"):
            detail = f"{record.error_code}: {record.error_message or ''}".strip()
        elif record.state.value == "uploading" and record.plan is not None:
            detail = f"{record.bytes_confirmed:,} of {record.plan.video_size:,} bytes sent"
        if record.deferred_until:
            detail += f" (until {_utc(record.deferred_until)})"
        rows.append(
            (
                datetime.fromtimestamp(record.updated_at, UTC).strftime("%Y-%m-%d %H:%M"),
                record.user_id,
                record.entry_id or record.source,
                record.state.value,
                record.publish_id or "-",
                ", ".join(record.post_ids) or "-",
                detail,
            )
        )
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else 200
    headers = ("when (UTC)", "user", "entry", "state", "publish_id", "post ids", "detail")
    for line in _table_lines(headers, rows, width=width):
        click.echo(line)
    if len(records) > len(shown):
        click.echo(f"({len(records) - len(shown)} older entries not shown; use --limit or --since)")


_COLUMN_GAP = "   "


def _table_lines(
    headers: tuple[str, ...], rows: Sequence[tuple[str, ...]], *, width: int
) -> Iterator[str]:
    """A plain table (a header, a rule, one line per row, columns aligned), line by line.

    Column widths come from the cells alone, so each line is written as it is made: 5,000 rows
    take a fraction of a second, where laying them out with rich took seconds (issue 14). When
    the table is wider than ``width`` the widest columns narrow and their cells fold onto more
    lines, as rich's ``overflow="fold"`` did.
    """
    import textwrap

    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(known, len(cell)) for known, cell in zip(widths, row, strict=True)]
    room = max(width - len(_COLUMN_GAP) * (len(headers) - 1), len(headers))
    while sum(widths) > room and max(widths) > 1:
        widest = widths.index(max(widths))
        widths[widest] -= 1

    def lines_of(cells: tuple[str, ...]) -> Iterator[str]:
        folded = [
            textwrap.wrap(cell, size, break_long_words=True) or [""] if len(cell) > size else [cell]
            for cell, size in zip(cells, widths, strict=True)
        ]
        for index in range(max(len(parts) for parts in folded)):
            parts = [part[index] if index < len(part) else "" for part in folded]
            yield _COLUMN_GAP.join(
                part.ljust(size) for part, size in zip(parts, widths, strict=True)
            ).rstrip()

    yield from lines_of(headers)
    yield "\u2500" * (sum(widths) + len(_COLUMN_GAP) * (len(headers) - 1))
    for row in rows:
        yield from lines_of(row)


@cli.command("report")
@click.option("--run-id", "run_id", required=True, metavar="ID", help="The run to report.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (for scripts).")
@click.pass_context
@handles_errors
def report_command(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """One run's entries from the journal: with a PostgreSQL --store, the whole shared run
    whichever worker did each entry (and what is still pending).

    Reads only: safe while workers are running. Exit codes: 0 nothing failed, 1 an entry
    failed or is uncertain, 2 no such run.
    """
    import json

    from rich import box
    from rich.console import Console
    from rich.table import Table

    from orchestrator.lookup import read_run

    entries = read_run(_options(ctx).settings(), run_id, clock=SystemClock())
    if not entries:
        raise UsageError(
            f"the store has no run {run_id}",
            hint="shared runs are named by `run --run-id` (default: m- and the manifest's "
            "digest, shown in each worker's report)",
        )
    rows: list[dict[str, Any]] = []
    for entry in entries:
        record, queued = entry.record, entry.queued
        state = record.state.value if record is not None else "not started"
        if queued is not None and queued.state == "pending":
            state = f"{state} (claimed)" if queued.worker else f"{state} (pending)"
        rows.append(
            {
                "entry": (record.entry_id or record.source) if record else entry.identity,
                "user_id": record.user_id if record else (queued.user_id if queued else ""),
                "state": state,
                "result": queued.result if queued else None,
                "worker": queued.worker if queued else None,
                "claims": queued.claims if queued else None,
                "publish_id": record.publish_id if record else None,
                "post_ids": list(record.post_ids) if record else [],
                "error": f"{record.error_code}: {record.error_message}"
                if record and record.error_code and state not in ("published", "sent_to_inbox")
                else None,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for header in ("entry", "user", "state", "worker", "claims", "post ids", "detail"):
            table.add_column(header, overflow="fold")
        for row in rows:
            table.add_row(
                str(row["entry"]),
                str(row["user_id"]),
                str(row["state"]),
                str(row["worker"] or "-"),
                "-" if row["claims"] is None else str(row["claims"]),
                ", ".join(row["post_ids"]) or "-",
                str(row["error"] or ""),
            )
        Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)
        counts: dict[str, int] = {}
        for row in rows:
            counts[str(row["state"])] = counts.get(str(row["state"]), 0) + 1
        summary = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
        click.echo(f"run {run_id}: {len(rows)} entries: {summary}")
    bad = any(
        entry.record is not None and entry.record.state.value in ("failed", "uncertain")
        for entry in entries
    )
    ctx.exit(1 if bad else 0)


@cli.group()
def store() -> None:
    """Look after the home's state database."""


@store.command("accept-restore")
@click.pass_context
@handles_errors
def store_accept_restore(ctx: click.Context) -> None:
    """Use a deliberately restored (older) state.db: make it the home's latest.

    Only after taking out of the manifest the entries posted since the backup was made: its
    journal does not know them, and a run would post them again.
    """
    from orchestrator.store.db import Database
    from orchestrator.store.generation import check_generation, read_file_generation

    settings = _options(ctx).settings()
    if settings.store_url is not None:
        raise UsageError(
            "store accept-restore is for the home's state.db; a PostgreSQL store is not "
            "restored from a file copy and has no restore guard",
            hint="drop --store / ORCHESTRATOR_STORE, or restore the server with its own tools",
        )
    seen = read_file_generation(settings.home)
    with Database.open(settings.home, create=False, accept_restore=True) as database:
        now = check_generation(database, settings.home)
    click.echo(
        f"{database.path} is now this home's latest state database (generation {now}; the "
        f"home had seen {seen if seen is not None else 'none'}); runs will trust its journal"
    )


@cli.command()
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (0: any free one)."
)
@handles_errors
def sandbox(port: int) -> None:
    """Serve the built-in TikTok simulator on 127.0.0.1."""
    import logging
    import threading

    from orchestrator.sandbox import Sandbox

    simulator = Sandbox(port=port)
    try:
        simulator.start()
    except OSError as exc:
        raise UsageError(
            f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}",
            hint="pick another --port, or --port 0 for any free one",
        ) from None
    # One line per request on stderr (paths only: upload URLs carry their token in the query).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    sandbox_log = logging.getLogger("orchestrator.sandbox")
    sandbox_log.addHandler(handler)
    sandbox_log.setLevel(logging.INFO)
    try:
        config = simulator.config
        click.echo(f"TikTok sandbox serving on {simulator.base_url}  (Ctrl-C to stop)")
        click.echo(f"  authorize page: {simulator.auth_url}")
        click.echo(f"  client key:     {config.client_key}")
        click.echo(f"  client secret:  {config.client_secret}  (a sandbox value, not a secret)")
        click.echo("  users:")
        for user in config.users:
            kind = "private" if user.private else "public"
            click.echo(f"    {user.open_id:<18} {user.display_name:<16} {kind}")
        click.echo("Point the orchestrator at it:")
        click.echo(f"  export ORCHESTRATOR_API_BASE={simulator.base_url}")
        click.echo(f"  export ORCHESTRATOR_AUTH_URL={simulator.auth_url}")
        click.echo(f"  export TIKTOK_CLIENT_KEY={config.client_key}")
        click.echo(f"  export TIKTOK_CLIENT_SECRET={config.client_secret}")
        # Serving until Ctrl-C is this command's job: the wait is deliberately unbounded.
        stop = threading.Event()
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        click.echo("sandbox stopped", err=True)
    finally:
        simulator.stop()
        sandbox_log.removeHandler(handler)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tiktok-orchestrator")
