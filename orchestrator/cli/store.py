"""The `store` group: look after the home's state database."""

from __future__ import annotations

import click

from orchestrator.cli import cli, handles_errors, options_of
from orchestrator.errors import UsageError


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

    settings = options_of(ctx).settings()
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


@store.command("rotate-session-key")
@click.pass_context
@handles_errors
def store_rotate_session_key(ctx: click.Context) -> None:
    """Give `serve` a new session key: every operator and review session ends.

    After a leak, or to sign everyone out. Restart every `serve` instance on this store
    afterwards: each reads the key when it starts.
    """
    from orchestrator.clock import SystemClock
    from orchestrator.store.tokens import TokenStore
    from orchestrator.store.web import rotate_session_key

    with TokenStore.open(options_of(ctx).settings(), clock=SystemClock(), create=False) as opened:
        rotate_session_key(opened.database, opened.cipher)
        where = opened.database.location
    click.echo(
        f"new session key in {where}; restart every `serve` instance on it: their sessions end"
    )
