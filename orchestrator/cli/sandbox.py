"""`sandbox`: serve the built-in TikTok simulator on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import sys
import threading

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

    from orchestrator.sandbox import Sandbox

    # One line per request on stderr (paths only: upload URLs carry their token in the query).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    sandbox_log = logging.getLogger("orchestrator.sandbox")
    simulator = Sandbox(port=port)
    try:
        simulator.start()
    except OSError as exc:
        raise UsageError(
            f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}",
            hint="pick another --port, or --port 0 for any free one",
        ) from None
    # From here a Ctrl-C stops the simulator (exit 0); one during start() is "interrupted", 130.
    try:
        sandbox_log.addHandler(handler)
        sandbox_log.setLevel(logging.INFO)
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
        wait_for_interrupt()
    except KeyboardInterrupt:
        click.echo("sandbox stopped", err=True)
    finally:
        simulator.stop()
        sandbox_log.removeHandler(handler)


def wait_for_interrupt() -> None:
    """Block until Ctrl-C, which raises KeyboardInterrupt here, however the signal arrives.

    Not ``threading.Event().wait(3600)``: Python runs its SIGINT handler only between bytecodes
    of the main thread, and a lock wait wakes for it only if the signal interrupts that very
    wait. A SIGINT taken by another thread (POSIX lets the kernel pick any), or by this one before
    it blocks (on a busy machine: while it waits for the GIL), only sets a flag, and Ctrl-C was
    ignored for up to an hour. The C handler also writes to the wakeup fd, whatever the thread
    and moment, so select() on it always returns, and the return to Python runs the handler.
    """
    if threading.current_thread() is not threading.main_thread():
        # No signal handler runs in this thread: nothing can interrupt the wait but the process.
        threading.Event().wait()
        return
    reader, writer = socket.socketpair()
    with reader, writer:
        reader.setblocking(False)
        writer.setblocking(False)
        previous = -1  # what a Ctrl-C right after the set leaves to restore: nobody's
        try:
            previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
            # Serving until Ctrl-C is this command's job: the wait is deliberately unbounded.
            while True:
                select.select([reader], [], [])
                with contextlib.suppress(BlockingIOError):
                    reader.recv(64)  # another signal with a handler (none raises): wait on
        finally:
            signal.set_wakeup_fd(previous)
