"""The command line: parse, wire, report. The only package that prints.

Every command is a thin shell around a plain function elsewhere in the package (mostly
``orchestrator.api``); errors become exit codes here and nowhere else (:func:`exit_code_for`).

Layout: this module holds the click group, the global options and the exit codes; the commands
live in ``run`` (run, validate), ``auth`` (the auth group), ``manifest`` (convert, new),
``calendar``, ``doctor``, ``history`` (history, status, report), ``store`` (the store group),
``sandbox`` and ``web`` (serve, auth invite, api-key); ``render`` draws every table, summary and
progress display.

Exit codes (SPEC §8): 0 nothing failed · 1 an entry failed or is uncertain · 2 invalid manifest,
configuration or usage (nothing was sent) · 69 nothing failed but TikTok could not be reached or
kept failing, so entries were deferred · 75 another run holds the lock · 130 interrupted.
Precedence when several apply: 2, then 130, then 1, then 69, then 0.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import wraps
from typing import IO, TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from orchestrator import __version__
from orchestrator.config import Settings, load_settings
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


def options_of(ctx: click.Context) -> GlobalOptions:
    """The global options the group callback stored on the context."""
    obj = ctx.find_object(GlobalOptions)
    assert obj is not None, "the group callback sets GlobalOptions"
    return obj


def _asks_for_json_log(args: Sequence[str]) -> bool:
    """Whether the command line asks for ``--log-format json`` (read before click parses it:
    a usage error happens while parsing)."""
    for position, arg in enumerate(args):
        if arg == "--":
            return False
        if arg == "--log-format=json" or (
            arg == "--log-format" and args[position + 1 : position + 2] == ["json"]
        ):
            return True
    return False


class _JsonUsageError(click.UsageError):
    """A usage error shown as the JSON error event ``--log-format json`` promises."""

    def __init__(self, error: click.UsageError) -> None:
        super().__init__(error.format_message(), error.ctx)

    def show(self, file: IO[Any] | None = None) -> None:
        from orchestrator.logs import configure_logging

        command = self.ctx.command_path if self.ctx is not None else "tiktok-orchestrator"
        configure_logging(fmt="json")  # stderr, where click shows a usage error
        logging.getLogger("orchestrator.cli").error(
            "%s: %s",
            command,
            self.format_message(),
            extra={
                "fields": {
                    "event": "error",
                    "error": "UsageError",
                    "exit_code": self.exit_code,
                    "problems": [],
                    "hint": f"see `{command} --help` for the options and arguments",
                }
            },
        )


class _Group(click.Group):
    """The command group: with ``--log-format json`` on the command line a usage error
    (unknown option, missing argument, bad choice) is a JSON line too, still exit 2."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        json_log = _asks_for_json_log(args)
        try:
            context = super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise _JsonUsageError(exc) if json_log else exc from None
        context.meta["orchestrator.json_usage_errors"] = json_log
        return context

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except _JsonUsageError:
            raise
        except click.UsageError as exc:
            if ctx.meta.get("orchestrator.json_usage_errors"):
                raise _JsonUsageError(exc) from None
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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

    Exit codes: 0 ok, 1 an entry failed, 2 invalid input (nothing sent), 69 TikTok unreachable
    (entries deferred), 75 locked, 130 interrupted.
    """
    ctx.obj = GlobalOptions(home, api_base, auth_url, redirect_uri, client_key, store)


# The commands register themselves on the group above; imported last because they import it.
# Each keeps its heavy imports inside its functions (the `--help` fast path).
from orchestrator.cli import (  # noqa: E402
    auth,
    calendar,
    doctor,
    history,
    manifest,
    run,
    sandbox,
    store,
    validate,
    web,
)

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "GlobalOptions",
    "auth",
    "calendar",
    "cli",
    "doctor",
    "exit_code_for",
    "exit_code_for_report",
    "handles_errors",
    "history",
    "main",
    "manifest",
    "options_of",
    "run",
    "sandbox",
    "store",
    "validate",
    "web",
]


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tiktok-orchestrator")
