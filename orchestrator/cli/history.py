"""`history`, `status` and `report`: what the journal knows, and what TikTok says now.

They only read (safe while a run is going); the tables are drawn by ``render``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from orchestrator.cli import cli, handles_errors, options_of, render
from orchestrator.clock import SystemClock
from orchestrator.errors import UsageError
from orchestrator.humantime import utc_text


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

    from orchestrator import api

    found = api.post_status(publish_id, open_id, settings=options_of(ctx).settings())
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
            "journal": None if entry is None else render.history_json(entry),
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
        click.echo(
            f"journal:    {name} is {entry.state.value} (updated {utc_text(entry.updated_at)})"
        )
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

    from orchestrator.lookup import read_consents, read_history

    clock = SystemClock()
    cutoff = _parse_since(since, clock.time()) if since else None
    records = read_history(options_of(ctx).settings(), clock=clock, user_id=open_id, since=cutoff)
    shown = records[:limit]
    if as_json:
        consents = read_consents(
            options_of(ctx).settings(), [r.identity for r in shown], clock=clock
        )
        rows = [render.history_json(r) for r in shown]
        for row in rows:  # the creator's review of the post, when they gave one (review.py)
            consent = consents.get(row["identity"])
            row["consent"] = None if consent is None else consent.as_json()
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not records:
        click.echo("The journal has no entries" + (" matching that." if open_id or since else "."))
        return
    render.print_history_table(shown)
    if len(records) > len(shown):
        click.echo(f"({len(records) - len(shown)} older entries not shown; use --limit or --since)")


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

    from orchestrator.lookup import read_run
    from orchestrator.store.journal import EntryState

    entries = read_run(options_of(ctx).settings(), run_id, clock=SystemClock())
    if not entries:
        raise UsageError(
            f"the store has no run {run_id}",
            hint="shared runs are named by `run --run-id` (default: m- and the manifest's "
            "digest, shown in each worker's report)",
        )
    rows = render.run_rows(entries)
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        render.print_run_table(run_id, rows)
    bad = any(
        entry.record is not None and entry.record.state in (EntryState.FAILED, EntryState.UNCERTAIN)
        for entry in entries
    )
    ctx.exit(1 if bad else 0)
