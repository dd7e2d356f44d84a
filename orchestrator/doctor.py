"""The go-live check (`doctor`): everything a first live run trips on, each with its fix.

Checks, in order: the app's credentials against TikTok's token endpoint (a
``client_credentials`` request: ``invalid_client`` means a wrong key or secret), the redirect
URI's shape for the app type, the home's permissions and the token key, the store (SQLite
``integrity_check``, or PostgreSQL reachability, with the schema version), each user's token
health and granted scopes, ffprobe, and this machine's clock against TikTok's ``Date`` header.

Each check is a :class:`Check` (ok / warning / problem / skipped, what was found, the fix);
the caller renders them. A warning does not fail the check run, a problem does. No secret is
ever in a check's text: a variable is named, never its value. It must not print.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from orchestrator.clock import Clock
from orchestrator.config import (
    DEFAULT_SCOPES,
    ENV_CLIENT_KEY,
    ENV_CLIENT_SECRET,
    ENV_HOME,
    ENV_REDIRECT_URI,
    ENV_TOKEN_KEY,
    Settings,
    is_loopback_host,
)
from orchestrator.errors import (
    StoreCorruptError,
    StoreError,
    StoreKeyError,
    StoreMissingError,
    StorePermissionError,
    TransportError,
)
from orchestrator.transport import Transport

if TYPE_CHECKING:
    from orchestrator.store.tokens import TokenStore

CLOCK_WARN_SECONDS: Final = 5.0
CLOCK_FAIL_SECONDS: Final = 60.0
"""Skew beyond which expiries (refresh margins of minutes) and leases (60 s) go wrong."""
REFRESH_WARN_DAYS: Final = 14
WEB_REDIRECT_MAX: Final = 512


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it stands, what was seen, and the fix."""

    name: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Findings:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """No problem (warnings allowed)."""
        return all(check.status is not Status.PROBLEM for check in self.checks)


def run_checks(
    settings: Settings,
    *,
    transport: Transport,
    clock: Clock,
    app_type: str = "desktop",
    redirect_uri: str | None = None,
    which: Callable[[str], str | None] = shutil.which,
) -> Findings:
    """Every check against ``settings``; ``redirect_uri`` overrides the settings' one (a web
    app's https address). Sends one request to TikTok (the client-credentials grant)."""
    checks: list[Check] = []
    credentials, server_date = _credentials(settings, transport)
    checks.append(credentials)
    checks.append(check_redirect_uri(redirect_uri or settings.redirect_uri, app_type))
    checks.extend(_home(settings))
    checks.extend(_store_and_users(settings, clock))
    checks.append(_ffprobe(which))
    checks.append(_clock(server_date, clock))
    return Findings(tuple(checks))


def _credentials(settings: Settings, transport: Transport) -> tuple[Check, str | None]:
    from orchestrator.tiktok.oauth import OAuthClient

    name = "app credentials"
    missing = [ENV_CLIENT_KEY] if not settings.client_key else []
    missing += [ENV_CLIENT_SECRET] if settings.client_secret is None else []
    if missing:
        return Check(
            name,
            Status.PROBLEM,
            f"{' and '.join(missing)} not set",
            "export the app's client key and secret from developers.tiktok.com (Manage apps)",
        ), None
    assert settings.client_key is not None
    assert settings.client_secret is not None
    oauth = OAuthClient(
        transport,
        api_base=settings.api_base,
        client_key=settings.client_key,
        client_secret=settings.client_secret,
        clock=_NoClock(),
    )
    try:
        answer = oauth.check_client()
    except TransportError as exc:
        return Check(
            name,
            Status.PROBLEM,
            f"TikTok's token endpoint at {settings.api_base} could not be reached: {exc}",
            exc.hint or "check the network, the proxy settings and ORCHESTRATOR_API_BASE",
        ), None
    log_id = f" (log_id {answer.log_id})" if answer.log_id else ""
    if answer.error == "invalid_client":
        return Check(
            name,
            Status.PROBLEM,
            f"TikTok does not recognise the client key or secret (invalid_client){log_id}",
            f"check {ENV_CLIENT_KEY} (or --client-key) and {ENV_CLIENT_SECRET} against the "
            "app's page on developers.tiktok.com; the secret changes when it is reset there",
        ), answer.server_date
    if not answer.recognised:
        return Check(
            name,
            Status.PROBLEM,
            f"TikTok's token endpoint answered {answer.error} (HTTP {answer.http_status})"
            f"{log_id}: the credentials could not be checked",
            "try again later; if it persists check ORCHESTRATOR_API_BASE and TikTok's status",
        ), answer.server_date
    detail = "TikTok recognised the app's key and secret"
    if answer.error is not None:
        detail += f" (it answered {answer.error}, which a check of the credentials allows)"
    return Check(name, Status.OK, detail), answer.server_date


class _NoClock:
    """The credentials check keeps no token, so no expiry is computed from a clock."""

    def time(self) -> float:
        return 0.0

    def monotonic(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        return None


def check_redirect_uri(uri: str, app_type: str) -> Check:
    """The redirect URI's shape: a desktop app's loopback ``http://127.0.0.1:PORT/...``, or a
    web app's static absolute ``https://`` address under 512 characters (tiktok-api.md §2)."""
    name = f"redirect URI ({app_type} app)"
    parts = urlsplit(uri)
    if app_type == "web":
        problems = []
        if parts.scheme != "https" or not parts.hostname:
            problems.append("must be an absolute https:// URL")
        if parts.query or parts.fragment or "?" in uri or "#" in uri:
            problems.append("must be static: no query and no fragment")
        if len(uri) >= WEB_REDIRECT_MAX:
            problems.append(f"must be under {WEB_REDIRECT_MAX} characters")
        if problems:
            return Check(
                name,
                Status.PROBLEM,
                f"{uri}: " + "; ".join(problems),
                "register e.g. https://connect.example.com/callback/ on developers.tiktok.com "
                "(Login Kit > Web) and use exactly that address",
            )
        return Check(name, Status.OK, f"{uri} (must match the registered one exactly)")
    if parts.scheme != "http" or not is_loopback_host(parts.hostname) or not parts.port:
        return Check(
            name,
            Status.PROBLEM,
            f"{uri} is not a loopback address with a port",
            f"set {ENV_REDIRECT_URI} to http://127.0.0.1:PORT/callback/ and register the "
            "same on developers.tiktok.com (Login Kit > Desktop)",
        )
    return Check(
        name,
        Status.OK,
        f"{uri} (register exactly this under Login Kit > Desktop; `auth login` listens there)",
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _home(settings: Settings) -> Iterator[Check]:
    home = settings.home
    if not home.exists():
        yield Check(
            "home",
            Status.WARNING,
            f"{home} does not exist yet",
            f"the first `auth login` creates it (0700); set {ENV_HOME} to keep it elsewhere",
        )
    elif not home.is_dir():
        yield Check("home", Status.PROBLEM, f"{home} is not a folder", f"point {ENV_HOME} at one")
    elif os.name == "posix" and _mode(home) & 0o077:
        yield Check(
            "home",
            Status.PROBLEM,
            f"{home} can be accessed by group or others (mode {_mode(home):04o})",
            f"chmod 700 {home}",
        )
    else:
        loose = [
            path
            for path in sorted(home.iterdir())
            if path.is_file() and os.name == "posix" and _mode(path) & 0o077
        ]
        if loose:
            yield Check(
                "home",
                Status.PROBLEM,
                "readable by group or others: " + ", ".join(path.name for path in loose),
                "chmod 600 " + " ".join(str(path) for path in loose),
            )
        else:
            yield Check("home", Status.OK, f"{home} is private (0700, files 0600)")
    key_file = home / "token.key"
    if settings.token_key is not None:
        yield Check("token key", Status.OK, f"from {ENV_TOKEN_KEY} (32 bytes)")
    elif key_file.is_file():
        yield Check("token key", Status.OK, f"the key file {key_file}")
    elif settings.store_url is not None:
        yield Check(
            "token key",
            Status.PROBLEM,
            f"a shared PostgreSQL store needs {ENV_TOKEN_KEY} (the same on every worker)",
            f"set {ENV_TOKEN_KEY} to the base64 key the other workers use",
        )
    else:
        yield Check(
            "token key",
            Status.WARNING,
            f"no {ENV_TOKEN_KEY} and no {key_file} yet",
            "the first `auth login` makes the key file; back it up with state.db",
        )


def _store_and_users(settings: Settings, clock: Clock) -> Iterator[Check]:
    from orchestrator.store.db import Database
    from orchestrator.store.tokens import TokenStore

    kind = "PostgreSQL" if settings.store_url is not None else "SQLite"
    try:
        store = TokenStore.open(settings, clock=clock, create=False)
    except StoreMissingError:
        yield Check("store", Status.WARNING, "no state database yet", "`auth login` creates it")
        yield Check("users", Status.SKIPPED, "no store to read")
        return
    except (StoreKeyError, StorePermissionError, StoreCorruptError, StoreError) as exc:
        yield Check("store", Status.PROBLEM, f"{kind}: {exc}", exc.hint)
        yield Check("users", Status.SKIPPED, "the store could not be opened")
        return
    with store:
        database = store.database
        if isinstance(database, Database):
            version = database.schema_version()
            rows = database.fetch_all("PRAGMA integrity_check")
            problems = [str(row[0]) for row in rows if str(row[0]) != "ok"]
            if problems:
                yield Check(
                    "store",
                    Status.PROBLEM,
                    f"SQLite integrity_check: {'; '.join(problems[:3])}",
                    "restore state.db from a backup (`store restore`) before the next run",
                )
            else:
                yield Check("store", Status.OK, f"SQLite: integrity ok, schema version {version}")
        else:
            from orchestrator.store.postgres import PostgresDatabase

            assert isinstance(database, PostgresDatabase)
            version = database.schema_version()
            yield Check("store", Status.OK, f"PostgreSQL: reachable, schema version {version}")
        yield from _users(store, clock.time())


def _users(store: TokenStore, now: float) -> Iterator[Check]:
    users = store.list_users()
    if not users:
        yield Check(
            "users", Status.WARNING, "no users stored", "run `tiktok-orchestrator auth login`"
        )
        return
    for user in users:
        name = f"user {user.open_id}"
        reason = user.login_reason(now)
        missing = user.missing_scopes(DEFAULT_SCOPES)
        scopes = ", ".join(sorted(user.scopes)) or "none"
        if reason is not None:
            yield Check(
                name,
                Status.PROBLEM,
                f"must sign in again: {reason}",
                f"run `tiktok-orchestrator auth login` as {user.open_id}",
            )
        elif missing:
            yield Check(
                name,
                Status.WARNING,
                f"scopes {scopes}; not granted: {', '.join(sorted(missing))} (posts needing "
                "them fail with scope_not_authorized)",
                f"run `auth login` as {user.open_id} and allow every permission",
            )
        elif user.refresh_expires_at - now < REFRESH_WARN_DAYS * 86400:
            days = max(0, int((user.refresh_expires_at - now) // 86400))
            yield Check(
                name,
                Status.WARNING,
                f"the refresh token dies in {days} day(s); scopes {scopes}",
                f"run `auth login` as {user.open_id} before then",
            )
        else:
            yield Check(name, Status.OK, f"{user.state(now).value}; scopes {scopes}")


def _ffprobe(which: Callable[[str], str | None]) -> Check:
    found = which("ffprobe")
    if found:
        return Check("ffprobe", Status.OK, f"{found}: duration, frame rate and size are checked")
    return Check(
        "ffprobe",
        Status.WARNING,
        "not found: frame rate is not checked before upload (the built-in MP4/MOV and WebM "
        "readers measure duration and size only); TikTok rejects a bad one after the upload",
        "install ffmpeg (apt install ffmpeg, brew install ffmpeg) so `validate` checks them",
    )


def _clock(server_date: str | None, clock: Clock) -> Check:
    if not server_date:
        return Check("clock", Status.SKIPPED, "TikTok's answer carried no Date header")
    try:
        server = parsedate_to_datetime(server_date).timestamp()
    except (TypeError, ValueError):
        return Check("clock", Status.SKIPPED, "TikTok's Date header could not be read")
    skew = clock.time() - server
    direction = "ahead of" if skew > 0 else "behind"
    detail = f"this machine is {abs(skew):.0f} s {direction} TikTok's clock"
    fix = "enable time sync (timedatectl set-ntp true, or chrony/ntpd)"
    if abs(skew) > CLOCK_FAIL_SECONDS:
        return Check(
            "clock",
            Status.PROBLEM,
            detail + ": token expiries and worker leases are computed wrong",
            fix,
        )
    if abs(skew) > CLOCK_WARN_SECONDS:
        return Check("clock", Status.WARNING, detail, fix)
    return Check("clock", Status.OK, detail + " (the Date header counts whole seconds)")
