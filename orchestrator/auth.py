"""The ``auth`` use cases: sign a user in, import tokens, list, refresh, revoke and remove users.

Plain functions that run without the CLI: they take the store, the transport and the clock,
return values, and raise :mod:`orchestrator.errors` types. They never print; where the user
must see something mid-way (the URL to open) they call back into the caller.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import webbrowser
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.clock import Clock
from orchestrator.config import Settings
from orchestrator.errors import (
    ApiError,
    AuthError,
    OrchestratorError,
    TokenFileError,
    TransportError,
    UnsafeConnectionError,
    UsageError,
)
from orchestrator.secret import Secret
from orchestrator.store.tokens import (
    ImportedGrant,
    SkippedGrant,
    StoredUser,
    TokenProvider,
    TokenState,
    TokenStore,
)
from orchestrator.tiktok.oauth import (
    DEFAULT_CALLBACK_TIMEOUT,
    DEFAULT_SCOPES,
    AuthorizationCode,
    CallbackServer,
    OAuthClient,
    TokenGrant,
    build_authorization_request,
    parse_pasted_redirect,
    parse_scopes,
)
from orchestrator.transport import Transport

log = logging.getLogger(__name__)

REFRESH_WARNING_DAYS = 14
"""`auth list` warns about refresh tokens that die within this many days."""

BrowserLauncher = Callable[[str], bool]


# -- login ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginResult:
    """Who signed in, and whether they granted everything that was asked."""

    user: StoredUser
    requested_scopes: tuple[str, ...]
    missing_scopes: frozenset[str]
    browser_opened: bool | None
    """Whether the browser launched (``None`` with ``--no-browser``)."""
    display_name_error: str | None = None
    """Why the display name could not be fetched, if it could not."""


def _launch_browser(url: str) -> bool:
    # webbrowser honours $BROWSER; it raises webbrowser.Error when nothing can be launched.
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


def login(
    settings: Settings,
    *,
    store: TokenStore,
    transport: Transport,
    clock: Clock,
    scopes: Sequence[str] = DEFAULT_SCOPES,
    open_browser: bool = True,
    show_url: Callable[[str], None],
    read_pasted_url: Callable[[], str],
    launch_browser: BrowserLauncher = _launch_browser,
    timeout: float = DEFAULT_CALLBACK_TIMEOUT,
) -> LoginResult:
    """Sign a user in with OAuth + PKCE and store their tokens.

    With ``open_browser``, a loopback server listens on the redirect URI's port, ``show_url``
    is given the authorize URL (in case the browser does not open), the browser is launched,
    and the redirect is awaited for ``timeout`` seconds. Without it, ``show_url`` is given the
    URL and ``read_pasted_url`` returns the address the browser was redirected to.
    """
    oauth = OAuthClient.from_settings(settings, transport, clock)
    assert settings.client_key is not None  # from_settings checked it
    request = build_authorization_request(
        auth_url=settings.auth_url,
        client_key=settings.client_key,
        redirect_uri=settings.redirect_uri,
        scopes=scopes,
    )
    browser_opened: bool | None = None
    if open_browser:
        # Listen before the browser opens, so the redirect cannot arrive to a closed port.
        with CallbackServer(settings.redirect_uri, request.state) as server:
            show_url(request.url)
            browser_opened = launch_browser(request.url)
            authorization = server.wait(timeout)
    else:
        show_url(request.url)
        authorization = parse_pasted_redirect(read_pasted_url(), expected_state=request.state)

    stored = store_authorization(
        oauth,
        store,
        authorization,
        code_verifier=request.code_verifier,
        redirect_uri=settings.redirect_uri,
        requested_scopes=request.scopes,
    )
    return LoginResult(
        user=stored.user,
        requested_scopes=request.scopes,
        missing_scopes=stored.missing_scopes,
        browser_opened=browser_opened,
        display_name_error=stored.display_name_error,
    )


@dataclass(frozen=True)
class StoredAuthorization:
    """An authorization code turned into stored tokens, and what user info said."""

    user: StoredUser
    missing_scopes: frozenset[str]
    """Requested scopes the user did not grant."""
    avatar_url: str | None = None
    display_name_error: str | None = None
    """Why the display name could not be fetched, if it could not."""


def store_authorization(
    oauth: OAuthClient,
    store: TokenStore,
    authorization: AuthorizationCode,
    *,
    code_verifier: Secret,
    redirect_uri: str,
    requested_scopes: Sequence[str],
) -> StoredAuthorization:
    """Exchange a code, name the user, and store their tokens (one row per open_id).

    The one path from a code to the store, for ``auth login`` (desktop) and a creator's web
    connect alike: connecting again replaces the user's tokens, never adds a second account.
    """
    grant = oauth.exchange_code(
        authorization.code, code_verifier=code_verifier, redirect_uri=redirect_uri
    )
    if not grant.scopes and authorization.granted_scopes:
        grant = dataclasses.replace(grant, scopes=authorization.granted_scopes)

    display_name: str | None = None
    avatar_url: str | None = None
    display_name_error: str | None = None
    if "user.info.basic" in grant.scopes:
        try:
            info = oauth.fetch_user_info(grant.access_token)
            display_name, avatar_url = info.display_name, info.avatar_url
        except (ApiError, TransportError) as exc:
            # The tokens are good; a missing display name must not waste the login.
            display_name_error = str(exc)
    user = store.save_grant(grant, display_name=display_name)
    return StoredAuthorization(
        user=user,
        missing_scopes=frozenset(requested_scopes) - grant.scopes,
        avatar_url=avatar_url,
        display_name_error=display_name_error,
    )


# -- import --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportedToken:
    """One user read from a token file."""

    grant: TokenGrant
    display_name: str | None
    obtained_at: float | None = None
    """When the file says the tokens were obtained (per entry or per file), if it says."""


_MILLISECONDS_THRESHOLD = 1e11  # 5138 AD in seconds; 1973 in milliseconds


def _parse_instant(value: object, name: str, problems: list[str], where: str) -> float | None:
    if isinstance(value, bool):
        value = None
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            problems.append(f"{where}: {name!r} must be a time")
            return None
        if value > _MILLISECONDS_THRESHOLD:
            problems.append(
                f"{where}: {name!r} looks like milliseconds; give seconds since the epoch or "
                "an ISO-8601 time"
            )
            return None
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            problems.append(
                f"{where}: {name!r} must be seconds since the epoch or an ISO-8601 time with a "
                "timezone (e.g. 2026-01-31T12:00:00Z)"
            )
            return None
        return parsed.timestamp()
    problems.append(f"{where}: {name!r} must be a time")
    return None


def _parse_duration(value: object, name: str, problems: list[str], where: str) -> float | None:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.append(f"{where}: {name!r} must be a number of seconds")
        return None
    if value < 0:
        problems.append(f"{where}: {name!r} must not be negative")
        return None
    return float(value)


def _expiry(
    entry: Mapping[str, Any],
    absolute: str,
    relative: str,
    *,
    obtained_at: float,
    problems: list[str],
    where: str,
) -> float | None:
    if absolute in entry:
        return _parse_instant(entry[absolute], absolute, problems, where)
    if relative in entry:
        seconds = _parse_duration(entry[relative], relative, problems, where)
        return None if seconds is None else obtained_at + seconds
    problems.append(f"{where}: missing {absolute!r} or {relative!r}")
    return None


def _entry_token(
    entry: object,
    *,
    open_id: str | None,
    where: str,
    obtained_at: float,
    problems: list[str],
    file_obtained_at: float | None = None,
) -> ImportedToken | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: must be an object of token fields")
        return None
    before = len(problems)
    if open_id is None:
        open_id = entry.get("open_id")
        if not isinstance(open_id, str) or not open_id.strip():
            problems.append(f"{where}: missing 'open_id'")
            open_id = None
    elif "open_id" in entry and entry["open_id"] != open_id:
        problems.append(f"{where}: 'open_id' inside differs from the key it is listed under")
    tokens: dict[str, Secret] = {}
    for name in ("access_token", "refresh_token"):
        value = entry.get(name)
        if name not in entry:
            problems.append(f"{where}: missing {name!r}")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"{where}: {name!r} must be a non-empty string")
        else:
            tokens[name] = Secret(value.strip())
    stated_obtained_at = file_obtained_at
    if "obtained_at" in entry:
        entry_obtained = _parse_instant(entry["obtained_at"], "obtained_at", problems, where)
        obtained_at = entry_obtained if entry_obtained is not None else obtained_at
        stated_obtained_at = entry_obtained
    access_expires_at = _expiry(
        entry, "expires_at", "expires_in", obtained_at=obtained_at, problems=problems, where=where
    )
    refresh_expires_at = _expiry(
        entry,
        "refresh_expires_at",
        "refresh_expires_in",
        obtained_at=obtained_at,
        problems=problems,
        where=where,
    )
    scope_key = "scope" if "scope" in entry else "scopes"
    scopes = parse_scopes(entry.get(scope_key))
    if scope_key not in entry:
        problems.append(f"{where}: missing 'scope' (the comma-separated scopes granted)")
    elif not scopes:
        problems.append(f"{where}: {scope_key!r} must list the scopes granted")
    display_name = entry.get("display_name")
    if display_name is not None and not isinstance(display_name, str):
        problems.append(f"{where}: 'display_name' must be a string")
    if len(problems) > before:
        return None
    assert open_id is not None
    assert access_expires_at is not None
    assert refresh_expires_at is not None
    return ImportedToken(
        grant=TokenGrant(
            open_id=open_id.strip(),
            access_token=tokens["access_token"],
            access_expires_at=access_expires_at,
            refresh_token=tokens["refresh_token"],
            refresh_expires_at=refresh_expires_at,
            scopes=scopes,
        ),
        display_name=display_name or None,
        obtained_at=stated_obtained_at,
    )


def read_token_file(path: Path, *, now: float) -> list[ImportedToken]:
    """Every user in a token file, or ``TokenFileError`` listing every problem in it.

    Accepted shapes: the seed format ``{open_id: {access_token, refresh_token, expires_at |
    expires_in, refresh_expires_at | refresh_expires_in, scope, display_name?}}``; a list of
    TikTok token responses; or ``{"obtained_at": T, "tokens": [responses]}``. Relative
    expiries count from the entry's or the file's ``obtained_at``, else from ``now``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenFileError(
            f"cannot read the token file {path}: {exc.strerror or exc}; nothing was imported"
        ) from None
    except UnicodeDecodeError:
        raise TokenFileError(
            f"the token file {path} is not UTF-8 text; nothing was imported"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        # The message names the position only: the text around it may be a token.
        raise TokenFileError(
            f"the token file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}); "
            "nothing was imported"
        ) from None

    problems: list[str] = []
    obtained_at = now
    file_obtained_at: float | None = None
    if isinstance(document, dict) and "obtained_at" in document:
        file_obtained_at = _parse_instant(document["obtained_at"], "obtained_at", problems, "file")
        obtained_at = file_obtained_at if file_obtained_at is not None else now

    entries: list[tuple[str, str | None, object]] = []  # (where, open_id key, entry)
    if isinstance(document, dict) and isinstance(document.get("tokens"), list):
        document = document["tokens"]
    if isinstance(document, list):
        entries = [(f"entry {index}", None, item) for index, item in enumerate(document)]
    elif isinstance(document, dict):
        entries = [
            (f"user {key!r}", key, value) for key, value in document.items() if key != "obtained_at"
        ]
    else:
        problems.append("file: must be an object of users or a list of token responses")

    imported: list[ImportedToken] = []
    for where, open_id, entry in entries:
        token = _entry_token(
            entry,
            open_id=open_id,
            where=where,
            obtained_at=obtained_at,
            problems=problems,
            file_obtained_at=file_obtained_at,
        )
        if token is not None:
            imported.append(token)
    seen: set[str] = set()
    for token in imported:
        if token.grant.open_id in seen:
            problems.append(f"user {token.grant.open_id!r} appears more than once")
        seen.add(token.grant.open_id)
    if not entries and not problems:
        problems.append("file: contains no users")
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise TokenFileError(
            f"the token file {path} has {len(problems)} problem(s); nothing was imported:\n{listed}"
        )
    return imported


@dataclass(frozen=True)
class ImportResult:
    """What ``auth import`` did: the users stored, and those left as they were (and why)."""

    imported: list[StoredUser]
    skipped: list[SkippedGrant]


def import_tokens(
    store: TokenStore, path: Path, *, clock: Clock, force: bool = False
) -> ImportResult:
    """Import every user in a token file, in one transaction; a user whose stored tokens are
    newer than the file's is skipped (unless ``force``): TikTok rotates refresh tokens, so an
    older grant would replace the only refresh token that still works.

    The file's tokens were obtained at its ``obtained_at``, else when the file was last written
    (its modification time): a file exported before the last refresh is older than the store.
    """
    imported = read_token_file(path, now=clock.time())
    try:
        written_at = path.stat().st_mtime
    except OSError:
        written_at = clock.time()
    saved, skipped = store.import_grants(
        [
            ImportedGrant(
                item.grant,
                item.display_name,
                item.obtained_at if item.obtained_at is not None else written_at,
            )
            for item in imported
        ],
        force=force,
    )
    return ImportResult(saved, skipped)


# -- list ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserStatus:
    """One row of ``auth list``."""

    user: StoredUser
    state: TokenState
    login_reason: str | None
    refresh_dies_soon: bool
    """The refresh token still works but expires within ``REFRESH_WARNING_DAYS``."""


def list_users(
    store: TokenStore, *, clock: Clock, margin: float, warning_days: int = REFRESH_WARNING_DAYS
) -> list[UserStatus]:
    """Every stored user with their state now (no network)."""
    now = clock.time()
    rows = []
    for user in store.list_users():
        state = user.state(now, margin)
        rows.append(
            UserStatus(
                user=user,
                state=state,
                login_reason=user.login_reason(now),
                refresh_dies_soon=state is not TokenState.NEEDS_LOGIN
                and user.refresh_expires_at - now <= warning_days * 86400,
            )
        )
    return rows


# -- refresh, revoke, remove ---------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshOutcome:
    """What ``auth refresh`` did for one user."""

    open_id: str
    user: StoredUser | None
    error: OrchestratorError | None

    @property
    def ok(self) -> bool:
        return self.error is None


def _known(store: TokenStore, open_ids: Iterable[str]) -> list[str]:
    ids = list(dict.fromkeys(open_ids))
    stored = {user.open_id for user in store.list_users()}
    unknown = [open_id for open_id in ids if open_id not in stored]
    if unknown:
        raise UsageError(
            f"not in the token store: {', '.join(unknown)}; nothing was done",
            hint="see `auth list` for the stored users",
        )
    return ids


def check_refresh_selection(open_ids: Sequence[str], *, all_users: bool) -> None:
    """UsageError unless exactly one of ``open_ids`` and ``all_users`` is given."""
    if all_users and open_ids:
        raise UsageError("give OPEN_IDs or --all, not both")
    if not all_users and not open_ids:
        raise UsageError("name the users to refresh, or pass --all")


def refresh_users(
    store: TokenStore,
    provider: TokenProvider,
    open_ids: Sequence[str],
    *,
    all_users: bool = False,
) -> list[RefreshOutcome]:
    """Refresh the given users (or all of them) now, each on its own: one failing does not
    stop the others. An UnsafeConnectionError (plain HTTP off the machine, a certificate that
    does not verify) is raised, as it stops a run: every user would meet it, and only the
    configuration can fix it."""
    check_refresh_selection(open_ids, all_users=all_users)
    ids = [user.open_id for user in store.list_users()] if all_users else _known(store, open_ids)
    outcomes = []
    for open_id in ids:
        try:
            outcomes.append(RefreshOutcome(open_id, provider.refresh(open_id), None))
        except UnsafeConnectionError:
            raise
        except OrchestratorError as exc:
            outcomes.append(RefreshOutcome(open_id, store.get_user(open_id), exc))
    return outcomes


def revoke_user(
    store: TokenStore, provider: TokenProvider, oauth: OAuthClient, open_id: str
) -> StoredUser:
    """Revoke the user's authorisation at TikTok, then forget their tokens."""
    _known(store, [open_id])
    try:
        access_token = provider.access_token(open_id)
    except AuthError as exc:
        raise AuthError(
            f"cannot revoke {open_id}: no working access token ({exc})",
            hint=(
                f"`auth remove {open_id}` forgets the tokens locally; the user can also remove "
                "the app in TikTok's settings (Security > Manage app permissions)"
            ),
        ) from exc
    oauth.revoke(access_token)
    user = store.get_user(open_id)
    store.remove(open_id)
    assert user is not None
    log.info("user %s: revoked at TikTok and removed", open_id)
    return user


def remove_user(store: TokenStore, open_id: str) -> StoredUser:
    """Forget a user's tokens locally (TikTok is not told)."""
    _known(store, [open_id])
    user = store.get_user(open_id)
    store.remove(open_id)
    assert user is not None
    return user
