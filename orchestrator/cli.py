"""The command line: parse, wire, report. The only module that prints.

Every command is a thin shell around a plain function elsewhere in the package; errors become
exit codes here and nowhere else (:func:`exit_code_for`).

Exit codes (SPEC §8): 0 nothing failed · 1 an entry failed or is uncertain · 2 invalid manifest,
configuration or usage (nothing was sent) · 75 another run holds the lock · 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, NoReturn, ParamSpec, TypeVar

import click

from orchestrator import __version__
from orchestrator.config import Settings, load_settings
from orchestrator.errors import (
    ManifestError,
    NotBuiltError,
    OrchestratorError,
    RunLockedError,
    UsageError,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75
EXIT_INTERRUPTED = 130

P = ParamSpec("P")
R = TypeVar("R")


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error that ended a command (the one place this is decided)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, RunLockedError):
        return EXIT_LOCKED
    if isinstance(exc, UsageError | ManifestError | click.UsageError):
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


def not_built(what: str, issue: int) -> NoReturn:
    raise NotBuiltError(
        f"`{what}` is not built yet (tracked as issue {issue}); nothing was done",
        hint="see README.md for what works today",
    )


@dataclass(frozen=True)
class GlobalOptions:
    """Options given before the command; turned into Settings on demand."""

    home: str | None
    api_base: str | None
    auth_url: str | None
    redirect_uri: str | None
    client_key: str | None

    def settings(self) -> Settings:
        return load_settings(
            home=self.home,
            api_base=self.api_base,
            auth_url=self.auth_url,
            redirect_uri=self.redirect_uri,
            client_key=self.client_key,
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
@click.pass_context
def cli(
    ctx: click.Context,
    home: str | None,
    api_base: str | None,
    auth_url: str | None,
    redirect_uri: str | None,
    client_key: str | None,
) -> None:
    """Batch upload orchestrator for TikTok's Content Posting API.

    Validates a manifest of videos and photo posts, resolves each user's tokens, uploads in
    chunks with retries and status polling, journals every step so a rerun never posts twice,
    and writes a report for cron and CI.

    Exit codes: 0 ok, 1 an entry failed, 2 invalid input (nothing sent), 75 locked, 130 interrupted.
    """
    ctx.obj = GlobalOptions(home, api_base, auth_url, redirect_uri, client_key)


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
@click.option("-v", "--verbose", count=True, help="More log output.")
@click.option("-q", "--quiet", count=True, help="Less log output.")
@handles_errors
def run(manifest: str, **_options: Any) -> None:
    """Validate MANIFEST, then upload everything that is due and write the report."""
    not_built("run", 6)


@cli.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--online", is_flag=True, help="Also check each user's token and creator_info.")
@handles_errors
def validate(manifest: str, online: bool) -> None:
    """Check MANIFEST offline (schema, semantics, media) and list every problem at once."""
    # Imported here: jsonschema and yaml take a noticeable moment to import, which `--help` and
    # the other commands need not pay.
    from orchestrator.manifest import load_manifest

    if online:
        raise NotBuiltError(
            "`validate --online` needs the token store (issue 4) and the API client (issue 5), "
            "which are not wired in yet; nothing was checked",
            hint="run `validate` without --online for the offline checks",
        )
    checked = load_manifest(manifest)
    click.echo(checked.summary())
    for note in checked.notes:
        click.echo(f"note: {note}", err=True)


@cli.group()
def auth() -> None:
    """Sign users in and manage the token store."""


@auth.command("login")
@click.option("--no-browser", is_flag=True, help="Print the URL and read the redirected URL back.")
@click.option("--scopes", default="user.info.basic,video.publish,video.upload", show_default=True)
@handles_errors
def auth_login(no_browser: bool, scopes: str) -> None:
    """Sign a user in with OAuth (PKCE) in the browser and store the tokens."""
    not_built("auth login", 4)


@auth.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@handles_errors
def auth_import(file: str) -> None:
    """Import tokens from user_tokens.json or a list of TikTok token responses."""
    not_built("auth import", 4)


@auth.command("list")
@handles_errors
def auth_list() -> None:
    """One row per stored user: scopes, expiries and state."""
    not_built("auth list", 4)


@auth.command("refresh")
@click.argument("open_ids", nargs=-1)
@click.option("--all", "refresh_all", is_flag=True, help="Refresh every stored user.")
@handles_errors
def auth_refresh(open_ids: tuple[str, ...], refresh_all: bool) -> None:
    """Refresh tokens now (for a timer that keeps them alive between runs)."""
    not_built("auth refresh", 4)


@auth.command("revoke")
@click.argument("open_id")
@handles_errors
def auth_revoke(open_id: str) -> None:
    """Revoke OPEN_ID's token at TikTok and forget it."""
    not_built("auth revoke", 4)


@auth.command("remove")
@click.argument("open_id")
@handles_errors
def auth_remove(open_id: str) -> None:
    """Forget OPEN_ID's tokens locally (TikTok is not told)."""
    not_built("auth remove", 4)


@cli.command()
@click.argument("publish_id")
@click.option("--user", "open_id", required=True, metavar="OPEN_ID", help="Whose post it is.")
@handles_errors
def status(publish_id: str, open_id: str) -> None:
    """Fetch a post's status from TikTok."""
    not_built("status", 6)


@cli.command()
@click.option("--user", "open_id", metavar="OPEN_ID", help="Only this user.")
@click.option("--since", metavar="WHEN", help="Only entries since this ISO date/time.")
@handles_errors
def history(open_id: str | None, since: str | None) -> None:
    """What the journal knows: entry, user, state, publish_id, post ids, when."""
    not_built("history", 6)


@cli.command()
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (0: any free one)."
)
@handles_errors
def sandbox(port: int) -> None:
    """Serve the built-in TikTok simulator on 127.0.0.1."""
    not_built("sandbox", 2)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tiktok-orchestrator")
