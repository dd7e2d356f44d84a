"""`validate`: check a manifest offline (and, with ``--online``, each user's account) and list
every problem at once."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli import cli, handles_errors, options_of
from orchestrator.clock import SystemClock
from orchestrator.errors import ManifestError


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
    # the other commands need not pay; the run's engine only where a journal can matter.
    from orchestrator.manifest import load_manifest
    from orchestrator.store.backend import has_state

    if has_state(options_of(ctx).settings()):
        from orchestrator.runner import check_with_journal

        checked, journal_notes = check_with_journal(options_of(ctx).settings(), Path(manifest))
    else:
        checked, journal_notes = load_manifest(Path(manifest)), []
    for note in (*checked.notes, *journal_notes):
        click.echo(f"note: {note}", err=True)
    if not online:
        click.echo(checked.summary())
        return
    from orchestrator.preflight import check_online
    from orchestrator.progress import plural

    settings = options_of(ctx).settings()
    settings.require_client()
    found = check_online(settings, checked, clock=SystemClock())
    for note in found.notes:
        click.echo(f"note: {note}", err=True)
    if found.problems:
        raise ManifestError(
            f"{plural(len(found.problems), 'problem', 'problems')} found online for "
            f"{plural(found.users_checked, 'user', 'users')}; nothing was posted",
            list(found.problems),
        )
    click.echo(
        f"{checked.summary()}; online: {plural(found.users_checked, 'user', 'users')} checked"
    )
