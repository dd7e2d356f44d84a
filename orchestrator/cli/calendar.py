"""`calendar`: per creator and day, what is scheduled, what went out, and the room left under
the caps; a table on a terminal, ``--json`` for scripts."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli import cli, handles_errors, options_of, render
from orchestrator.clock import SystemClock


@cli.command("calendar")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option(
    "--days", type=click.IntRange(1, 366), default=14, show_default=True, help="Days shown."
)
@click.option("--tz", metavar="ZONE", help="IANA timezone of the days (default: this machine's).")
@click.option(
    "--daily-cap",
    type=click.IntRange(min=0),
    default=15,
    show_default=True,
    help="Direct posts per user per 24 h, as `run --daily-cap`.",
)
@click.option(
    "--inbox-cap",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Inbox shares per user per 24 h, as `run --inbox-cap`.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
@click.pass_context
@handles_errors
def calendar_command(
    ctx: click.Context,
    manifest: str,
    days: int,
    tz: str | None,
    daily_cap: int,
    inbox_cap: int,
    as_json: bool,
) -> None:
    """Show MANIFEST's posts per creator and day, against the journal and the caps.

    Marks the posts a run would defer because a cap is full. Reads only: sends nothing.
    Exit codes: 0 shown, 2 invalid manifest.
    """
    import json

    from orchestrator.calendar import read_calendar
    from orchestrator.manifest.folder import timezone_named

    calendar = read_calendar(
        options_of(ctx).settings(),
        Path(manifest),
        clock=SystemClock(),
        days=days,
        tz=timezone_named(tz),
        daily_direct_cap=daily_cap,
        pending_inbox_cap=inbox_cap,
    )
    if as_json:
        click.echo(json.dumps(render.calendar_json(calendar), indent=2, ensure_ascii=False))
    else:
        render.print_calendar(calendar)
