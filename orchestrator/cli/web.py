"""`serve`, `auth invite` and the `api-key` group: the web side from the command line.

``serve`` runs the web application (``orchestrator.web.server``); ``auth invite`` and
``api-key create`` print their secret exactly once, on stdout, for scripts to capture, and keep
only its hash. Nothing here prints a password, a token or a key anywhere else.
"""

from __future__ import annotations

import dataclasses
import re

import click

from orchestrator.cli import cli, handles_errors, options_of
from orchestrator.cli.auth import auth
from orchestrator.clock import Clock, SystemClock
from orchestrator.config import (
    DEFAULT_SCOPES,
    DEFAULT_WEB_HOST,
    DEFAULT_WEB_PORT,
    ENV_ADMIN_PASSWORD,
    ENV_PUBLIC_URL,
    ENV_TRUSTED_PROXIES,
    ENV_UPLOAD_ROOTS,
    ENV_WEB_PKCE,
    WEB_PKCE_READINGS,
    Settings,
    WebConfig,
    load_web_config,
)
from orchestrator.errors import StoreMissingError, UsageError
from orchestrator.humantime import utc_text
from orchestrator.secret import Secret

_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_INVITE_DAYS = 90


def parse_lifetime(text: str) -> float:
    """``30m``, ``12h``, ``7d``, ``2w`` as seconds (at most :data:`MAX_INVITE_DAYS` days)."""
    match = _DURATION.match(text.lower())
    if not match or int(match.group(1)) == 0:
        raise UsageError(
            f"--expires {text!r} is not a duration", hint="e.g. --expires 7d, 12h, 30m or 2w"
        )
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_INVITE_DAYS * 86400:
        raise UsageError(
            f"--expires {text} is longer than {MAX_INVITE_DAYS} days",
            hint="make a new invite later instead: an invite is a credential while it lasts",
        )
    return float(seconds)


# -- serve ---------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--host",
    default=DEFAULT_WEB_HOST,
    show_default=True,
    help="Address to listen on (loopback by default; put a TLS reverse proxy in front).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_WEB_PORT, show_default=True)
@click.option(
    "--public-url",
    metavar="URL",
    help=f"The https:// address creators' browsers see. Env: {ENV_PUBLIC_URL}.",
)
@click.option(
    "--trusted-proxies",
    type=click.IntRange(0, 10),
    default=None,
    help=f"Reverse proxies in front whose X-Forwarded-* to trust. Env: {ENV_TRUSTED_PROXIES}.",
)
@click.option(
    "--upload-roots",
    metavar="DIRS",
    help=f"Folders a posted video_path may name (os.pathsep-separated). Env: {ENV_UPLOAD_ROOTS}.",
)
@click.option(
    "--pkce",
    type=click.Choice(WEB_PKCE_READINGS),
    default=None,
    help=f"How the connect flow writes the PKCE challenge. Env: {ENV_WEB_PKCE}.",
)
@click.option(
    "--sandbox",
    is_flag=True,
    help="Serve against the built-in simulator with a throw-away home; prints the admin "
    "password and a ready invite.",
)
@click.pass_context
@handles_errors
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    public_url: str | None,
    trusted_proxies: int | None,
    upload_roots: str | None,
    pkce: str | None,
    sandbox: bool,
) -> None:
    """Serve the web application: creators connect their accounts, the operator's pages, and
    the HTTP API (/api/v1). The admin password comes from ORCHESTRATOR_ADMIN_PASSWORD_HASH or
    ORCHESTRATOR_ADMIN_PASSWORD (never an argument: arguments show in `ps`)."""
    import contextlib

    config = load_web_config(
        host=host,
        port=port,
        public_url=public_url,
        trusted_proxies=trusted_proxies,
        upload_roots=upload_roots,
        pkce=pkce,
        require_password=not sandbox,
    )
    for warning in config.warnings:
        click.echo(f"warning: {warning}", err=True)
    clock = SystemClock()
    settings = options_of(ctx).settings()
    with contextlib.ExitStack() as stack:
        admin_password = None
        if sandbox:
            from orchestrator.web.server import sandbox_settings

            session = stack.enter_context(
                sandbox_settings(settings, clock=clock, redirect_uri=config.redirect_uri)
            )
            settings = session.settings
            if config.admin_password is None and config.admin_password_hash is None:
                config = dataclasses.replace(config, admin_password=session.admin_password)
                admin_password = session.admin_password
        _serve(config, settings, clock, sandbox=sandbox, admin_password=admin_password)


def _serve(
    config: WebConfig,
    settings: Settings,
    clock: Clock,
    *,
    sandbox: bool,
    admin_password: Secret | None,
) -> None:
    from orchestrator.store.tokens import TokenStore
    from orchestrator.store.web import InviteStore
    from orchestrator.web.server import ServeStarted, serve

    with TokenStore.open(settings, clock=clock) as store:
        invite_line = None
        if sandbox:
            made = InviteStore(store.database, clock=clock).create(
                "sandbox creator", DEFAULT_SCOPES
            )
            invite_line = f"{config.public_url}/connect/{made.token}"

        def ready(started: ServeStarted) -> None:
            click.echo(f"Serving on {started.url}  (Ctrl-C to stop)")
            click.echo(f"  operator pages: {started.public_url}/login")
            if admin_password is not None:
                click.echo(
                    f"  admin password: {admin_password.reveal()}  (made for this sandbox "
                    f"session; set {ENV_ADMIN_PASSWORD} to choose one)"
                )
            if invite_line is not None:
                click.echo(f"  invite a sandbox creator: {invite_line}")

        try:
            serve(config, settings=settings, clock=clock, token_store=store, on_ready=ready)
        except OSError as exc:
            raise UsageError(
                f"cannot serve on {config.host}:{config.port}: {exc.strerror or exc}",
                hint="another program uses that port: pick another --port",
            ) from None


# -- auth invite ---------------------------------------------------------------------------------


@auth.command("invite")
@click.option("--label", required=True, help="Who the invite is for (shown on the pages).")
@click.option(
    "--expires", default="7d", show_default=True, help="How long it stays valid: 30m, 12h, 7d, 2w."
)
@click.option("--scopes", default=",".join(DEFAULT_SCOPES), show_default=True)
@click.option("--public-url", metavar="URL", help=f"Env: {ENV_PUBLIC_URL}.")
@click.pass_context
@handles_errors
def auth_invite(
    ctx: click.Context, label: str, expires: str, scopes: str, public_url: str | None
) -> None:
    """Make a one-time URL a creator opens to connect their TikTok account (printed once)."""
    from orchestrator.store.tokens import TokenStore
    from orchestrator.store.web import InviteStore

    lifetime = parse_lifetime(expires)
    config = load_web_config(public_url=public_url, require_password=False)
    wanted = tuple(s.strip() for s in scopes.split(",") if s.strip())
    if not wanted:
        raise UsageError("--scopes is empty", hint=f"e.g. --scopes {','.join(DEFAULT_SCOPES)}")
    clock = SystemClock()
    with TokenStore.open(options_of(ctx).settings(), clock=clock) as store:
        made = InviteStore(store.database, clock=clock).create(label, wanted, lifetime=lifetime)
    click.echo(f"{config.public_url}/connect/{made.token}")
    click.echo(
        f"invite {made.invite.id} for {made.invite.label!r}: one use, valid until "
        f"{utc_text(made.invite.expires_at)}; revoke it on the Invites page",
        err=True,
    )


# -- api-key -------------------------------------------------------------------------------------


@cli.group("api-key")
def api_key() -> None:
    """Keys for the HTTP API (/api/v1): made (shown once), listed, revoked."""


@api_key.command("create")
@click.option("--label", required=True, help="What will use the key (n8n, Make, a script).")
@click.pass_context
@handles_errors
def api_key_create(ctx: click.Context, label: str) -> None:
    """Make a key and print it once (it is stored hashed and cannot be shown again)."""
    from orchestrator.store.tokens import TokenStore
    from orchestrator.store.web import ApiKeyStore

    clock = SystemClock()
    with TokenStore.open(options_of(ctx).settings(), clock=clock) as store:
        made = ApiKeyStore(store.database, clock=clock).create(label)
    click.echo(made.value)
    click.echo(
        f"API key {made.key.id} ({made.key.label!r}) made; this is the only time it is shown",
        err=True,
    )


@api_key.command("list")
@click.pass_context
@handles_errors
def api_key_list(ctx: click.Context) -> None:
    """Every key: id, label, when made and last used, active or revoked (never the key)."""
    from orchestrator.store.tokens import TokenStore
    from orchestrator.store.web import ApiKeyStore

    clock = SystemClock()
    try:
        with TokenStore.open(options_of(ctx).settings(), clock=clock, create=False) as store:
            keys = ApiKeyStore(store.database, clock=clock).list()
    except StoreMissingError:
        keys = []
    if not keys:
        click.echo("No API keys. Make one with `api-key create --label L`.")
        return
    for key in keys:
        used = utc_text(key.last_used_at) if key.last_used_at else "never used"
        state = "active" if key.active else "revoked"
        click.echo(f"{key.id}  {state:<7}  {utc_text(key.created_at)}  {used:<20}  {key.label}")


@api_key.command("revoke")
@click.argument("key_id")
@click.pass_context
@handles_errors
def api_key_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke a key: requests with it are refused from now on."""
    from orchestrator.store.tokens import TokenStore
    from orchestrator.store.web import ApiKeyStore

    clock = SystemClock()
    with TokenStore.open(options_of(ctx).settings(), clock=clock, create=False) as store:
        keys = ApiKeyStore(store.database, clock=clock)
        if not any(key.id == key_id for key in keys.list()):
            raise UsageError(
                f"there is no API key {key_id}", hint="see the ids with `api-key list`"
            )
        if keys.revoke(key_id):
            click.echo(f"revoked API key {key_id}")
        else:
            click.echo(f"API key {key_id} was already revoked")
