"""`doctor`: the go-live check, rendered as lines (or JSON) with an exit code."""

from __future__ import annotations

import contextlib
import json

import click

from orchestrator.cli import EXIT_FAILED, EXIT_OK, cli, handles_errors, options_of
from orchestrator.clock import SystemClock
from orchestrator.errors import ConfigError

_MARKS = {"ok": "ok", "warning": "warn", "problem": "FAIL", "skipped": "skip"}


@cli.command()
@click.option(
    "--app-type",
    type=click.Choice(["desktop", "web"]),
    default="desktop",
    show_default=True,
    help="The app type registered on developers.tiktok.com (it decides the redirect URI's shape).",
)
@click.option(
    "--web-redirect-uri",
    metavar="URL",
    help="With --app-type web: the https redirect URI registered for the app.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
@click.pass_context
@handles_errors
def doctor(ctx: click.Context, app_type: str, web_redirect_uri: str | None, as_json: bool) -> None:
    """Check everything a first live run trips on, and say how to fix it.

    The app's key and secret against TikTok's token endpoint (one client-credentials request;
    no user token is used), the redirect URI, the home's permissions and the token key, the
    store, each user's tokens and scopes, ffprobe, and this machine's clock against TikTok's.

    Exit codes: 0 no problem (warnings allowed), 1 at least one problem.
    """
    from orchestrator.doctor import Check, Findings, Status, run_checks
    from orchestrator.transport import HttpTransport

    try:
        settings = options_of(ctx).settings()
    except ConfigError as exc:
        findings = Findings((Check("configuration", Status.PROBLEM, str(exc), exc.hint),))
    else:
        with contextlib.closing(HttpTransport()) as transport:
            findings = run_checks(
                settings,
                transport=transport,
                clock=SystemClock(),
                app_type=app_type,
                redirect_uri=web_redirect_uri if app_type == "web" else None,
            )
    if as_json:
        document = {
            "ok": findings.ok,
            "checks": [
                {
                    "name": check.name,
                    "status": check.status.value,
                    "detail": check.detail,
                    "fix": check.fix,
                }
                for check in findings.checks
            ],
        }
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        for check in findings.checks:
            click.echo(f"[{_MARKS[check.status.value]:>4}] {check.name}: {check.detail}")
            if check.fix and check.status in (Status.PROBLEM, Status.WARNING):
                click.echo(f"       fix: {check.fix}")
        problems = sum(check.status is Status.PROBLEM for check in findings.checks)
        warnings = sum(check.status is Status.WARNING for check in findings.checks)
        click.echo(
            "All set for a live run."
            if not problems and not warnings
            else f"{problems} problem(s), {warnings} warning(s)."
        )
    ctx.exit(EXIT_OK if findings.ok else EXIT_FAILED)
