"""The ``manifest`` group: ``convert`` between CSV, YAML and JSON, and ``new`` from a folder."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import click

from orchestrator.cli import cli, handles_errors
from orchestrator.errors import UsageError


@cli.group()
def manifest() -> None:
    """Write manifests: convert between CSV, YAML and JSON, or make one from a folder."""


@manifest.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace TARGET if it exists.")
@handles_errors
def convert(source: str, target: str, force: bool) -> None:
    """Convert SOURCE to TARGET (CSV, YAML or JSON, by extension), losslessly.

    Converting to CSV writes the manifest's defaults into each entry (a CSV has no defaults);
    a relative video_path is rewritten for TARGET's folder. SOURCE must pass the schema.
    """
    from orchestrator.manifest.convert import convert_manifest

    count = convert_manifest(Path(source), Path(target), force=force)
    click.echo(f"wrote {target}: {count} {'entry' if count == 1 else 'entries'}")


@manifest.command("new")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--user", "user_id", required=True, metavar="OPEN_ID", help="Who posts them.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="The manifest to write or extend (.yaml, .json or .csv). Default: FOLDER/manifest.yaml.",
)
@click.option("--mode", type=click.Choice(["direct", "inbox"]), help="Written into each entry.")
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Schedule: the first day (YYYY-MM-DD). Without it no publish_at is written.",
)
@click.option("--every", default="1d", show_default=True, help="Schedule: step between slots.")
@click.option("--at", "at_", default="18:00", show_default=True, help="Schedule: time (HH:MM).")
@click.option("--tz", metavar="ZONE", help="Schedule: IANA timezone (default: this machine's).")
@click.option(
    "--per-day",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Schedule: at most N posts per creator per day (within the run's daily cap).",
)
@handles_errors
def new(
    folder: str,
    user_id: str,
    output: str | None,
    mode: str | None,
    start: datetime | None,
    every: str,
    at_: str,
    tz: str | None,
    per_day: int,
) -> None:
    """Make a manifest from the videos in FOLDER (found by their bytes), or add new ones to it.

    Captions come from sidecar files beside each video: clip.txt is the description,
    clip.yaml / clip.json hold any entry fields. Each entry's id comes from its path, so a
    rerun keeps ids and edits and adds only the videos the manifest does not name yet.
    """
    from orchestrator.manifest.folder import Schedule, new_manifest, parse_every, timezone_named
    from orchestrator.scheduler.plan import RunOptions

    schedule = None
    if start is not None:
        cap = RunOptions().daily_direct_cap if mode != "inbox" else RunOptions().pending_inbox_cap
        if per_day > cap:
            raise UsageError(
                f"--per-day {per_day} is over the {mode or 'direct'} cap of {cap} a day",
                hint=f"use --per-day {cap} or fewer; a run defers what is over the cap",
            )
        schedule = Schedule(
            start=date(start.year, start.month, start.day),
            every=parse_every(every),
            at=_parse_time(at_),
            tz=timezone_named(tz),
            per_day=per_day,
        )
    target = Path(output) if output else Path(folder) / "manifest.yaml"
    done = new_manifest(Path(folder), target, user_id=user_id, mode=mode, schedule=schedule)
    for name in done.skipped:
        click.echo(f"note: {name} is not a video (by its content); left out", err=True)
    click.echo(f"wrote {done.path}: {done.added} new, {done.kept} kept")


def _parse_time(text: str) -> time:
    try:
        return time.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--at {text!r} is not a time", hint="write HH:MM, e.g. 18:00") from None
