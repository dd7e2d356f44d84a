"""The `auth` group: sign users in, import, list, refresh, revoke and remove their tokens."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.cli import EXIT_FAILED, cli, handles_errors, options_of, render
from orchestrator.clock import Clock, SystemClock
from orchestrator.config import DEFAULT_CALLBACK_TIMEOUT, DEFAULT_SCOPES, Settings
from orchestrator.humantime import expiry_text
from orchestrator.notify import DEFAULT_NOTIFY_TIMEOUT

if TYPE_CHECKING:
    from orchestrator.auth import RefreshOutcome
    from orchestrator.store.tokens import TokenStore


@cli.group()
def auth() -> None:
    """Sign users in and manage the token store."""


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

    settings = options_of(ctx).settings()
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
    click.echo(f"Access token valid until {expiry_text(user.access_expires_at, clock.time())}.")
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

    settings = options_of(ctx).settings()
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
    from orchestrator import api

    clock = SystemClock()
    # A home nobody signed in on has no users: say so, and create nothing.
    rows = api.list_users(settings=options_of(ctx).settings(), clock=clock)
    if not rows:
        click.echo("No users stored. Add one with `auth login` or `auth import FILE`.")
        return
    render.print_users_table(rows, clock.time())


@auth.command("refresh")
@click.argument("open_ids", nargs=-1)
@click.option("--all", "refresh_all", is_flag=True, help="Refresh every stored user.")
@click.option(
    "--notify",
    "notify_urls",
    multiple=True,
    metavar="URL",
    help="Tell this Apprise URL (repeatable) when a user must sign in again or their refresh "
    "token dies within 14 days. Env: ORCHESTRATOR_NOTIFY (space-separated).",
)
@click.option(
    "--notify-timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_NOTIFY_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long each notification target may take.",
)
@click.pass_context
@handles_errors
def auth_refresh(
    ctx: click.Context,
    open_ids: tuple[str, ...],
    refresh_all: bool,
    notify_urls: tuple[str, ...],
    notify_timeout: float,
) -> None:
    """Refresh tokens now (for a timer that keeps them alive between runs).

    Exits 1 if any user could not be refreshed; the others are refreshed regardless. A TLS
    certificate that does not verify (or plain http:// off this machine) stops it with exit 2,
    as it stops a run. With --notify (or ORCHESTRATOR_NOTIFY) a user who must sign in again,
    or whose refresh token dies within 14 days, is announced, so the login happens before a
    nightly run fails; a notification that cannot be delivered is a warning and does not
    change the exit code.
    """
    from orchestrator import api
    from orchestrator.notify import check_targets

    clock = SystemClock()
    settings = options_of(ctx).settings()
    targets = check_targets(notify_urls or [url.reveal() for url in settings.notify_urls])
    outcomes = api.refresh_users(open_ids, all_users=refresh_all, settings=settings, clock=clock)
    now = clock.time()
    for outcome in outcomes:
        if outcome.user is not None and outcome.error is None:
            click.echo(
                f"refreshed {outcome.open_id}: access valid until "
                f"{expiry_text(outcome.user.access_expires_at, now)}"
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
    if targets:
        _notify_token_warnings(outcomes, targets, now, notify_timeout)
    if any(not outcome.ok for outcome in outcomes):
        ctx.exit(EXIT_FAILED)


def _notify_token_warnings(
    outcomes: list[RefreshOutcome], targets: tuple[str, ...], now: float, timeout: float
) -> None:
    from orchestrator.errors import NeedsLoginError
    from orchestrator.notify import deliver, refresh_notice, token_warning

    warnings = []
    for outcome in outcomes:
        login_reason = None
        if isinstance(outcome.error, NeedsLoginError):
            login_reason = str(outcome.error).removeprefix(f"user {outcome.open_id}: ")
        elif outcome.user is not None:
            login_reason = outcome.user.login_reason(now)
        warning = token_warning(
            outcome.open_id,
            refresh_expires_at=outcome.user.refresh_expires_at if outcome.user else None,
            login_reason=login_reason,
            now=now,
        )
        if warning is not None:
            warnings.append(warning)
    if not warnings:
        return
    for delivery in deliver(targets, refresh_notice(warnings), timeout=timeout):
        if delivery.delivered:
            click.echo(f"notified {delivery.target}: {len(warnings)} user(s) need attention")
        else:
            click.echo(
                f"warning: notification not delivered to {delivery.target}: {delivery.error}",
                err=True,
            )


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

    settings = options_of(ctx).settings()
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

    settings = options_of(ctx).settings()
    clock = SystemClock()
    with _open_store(settings, clock, create=False) as store:
        auth_use_cases.remove_user(store, open_id)
    click.echo(
        f"removed {open_id} from the token store (TikTok was not told; "
        "`auth revoke` also withdraws the app's access)"
    )
