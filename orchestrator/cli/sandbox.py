"""`sandbox`: serve the built-in TikTok simulator on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import sys

import click

from orchestrator.cli import cli, handles_errors
from orchestrator.errors import UsageError


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
