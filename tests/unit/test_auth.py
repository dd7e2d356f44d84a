"""The auth use cases: token files (seed format and token responses), list, refresh, remove,
and login's paste-back path."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from orchestrator import auth
from orchestrator.clock import ManualClock
from orchestrator.config import Settings
from orchestrator.errors import AuthError, OAuthError, TokenFileError, UsageError
from orchestrator.secret import Secret
from orchestrator.store.tokens import TokenProvider, TokenState, TokenStore
from orchestrator.tiktok.oauth import OAuthClient, TokenGrant
from orchestrator.transport import HttpTransport

DAY = 86400.0
API = "http://127.0.0.1:9"


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "user_tokens.json"
    path.write_text(json.dumps(document))
    return path


SEED = {
    "user-a": {
        "access_token": "act.AAA",
        "refresh_token": "rft.AAA",
        "expires_in": 7200,
        "refresh_expires_in": 180 * 86400,
        "scope": "user.info.basic,video.publish",
        "display_name": "Ann",
    },
    "user-b": {
        "access_token": "act.BBB",
        "refresh_token": "rft.BBB",
        "expires_at": "2027-01-15T10:00:00Z",
        "refresh_expires_at": 1_900_000_000,
        "scope": "video.upload",
    },
}


# -- token files --------------------------------------------------------------------------------


def test_seed_format_imports_every_user(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """The seed format imports each user with relative and absolute expiries resolved."""
    users = auth.import_tokens(store, write(tmp_path, SEED), clock=clock).imported
    assert [u.open_id for u in users] == ["user-a", "user-b"]
    a, b = users
    assert a.display_name == "Ann"
    assert a.access_expires_at == clock.time() + 7200
    assert a.refresh_expires_at == clock.time() + 180 * DAY
    assert a.scopes == {"user.info.basic", "video.publish"}
    assert b.access_expires_at == 1_800_007_200.0  # 2027-01-15T10:00:00Z
    assert b.refresh_expires_at == 1_900_000_000.0
    credentials = store.credentials("user-b")
    assert credentials is not None
    assert credentials.refresh_token.reveal() == "rft.BBB"


def test_token_response_list_counts_from_the_files_obtained_at(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """A list of token responses wrapped with obtained_at counts expires_in from that time."""
    document = {
        "obtained_at": "2027-01-01T00:00:00Z",
        "tokens": [
            {
                "access_token": "act.C",
                "expires_in": 86400,
                "open_id": "user-c",
                "refresh_token": "rft.C",
                "refresh_expires_in": 31536000,
                "scope": "user.info.basic",
                "token_type": "Bearer",
            }
        ],
    }
    [user] = auth.import_tokens(store, write(tmp_path, document), clock=clock).imported
    obtained = 1_798_761_600.0  # 2027-01-01T00:00:00Z
    assert user.access_expires_at == obtained + 86400
    assert user.refresh_expires_at == obtained + 31536000


def test_bare_list_of_token_responses_counts_from_now(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """A bare list of token responses (no obtained_at) counts expires_in from now."""
    response = {
        "access_token": "act.D",
        "expires_in": 100,
        "open_id": "user-d",
        "refresh_token": "rft.D",
        "refresh_expires_in": 200,
        "scope": "video.upload",
    }
    [user] = auth.import_tokens(store, write(tmp_path, [response]), clock=clock).imported
    assert user.access_expires_at == clock.time() + 100


def test_missing_fields_are_all_named_and_nothing_is_imported(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """Every entry and missing field is named at once, and not even the good user is stored."""
    document = {
        "good": SEED["user-a"],
        "bad": {"access_token": "act.X", "expires_in": 10, "scope": "video.upload"},
    }
    with pytest.raises(TokenFileError) as caught:
        auth.import_tokens(store, write(tmp_path, document), clock=clock)
    message = str(caught.value)
    assert "nothing was imported" in message
    assert "user 'bad': missing 'refresh_token'" in message
    assert "user 'bad': missing 'refresh_expires_at' or 'refresh_expires_in'" in message
    assert "2 problem(s)" in message
    assert store.list_users() == []


def test_token_values_never_appear_in_file_errors(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """Problems name fields, never their values (which may be tokens)."""
    document = [
        {
            "open_id": "u",
            "access_token": "act.SECRET",
            "refresh_token": "rft.SECRET",
            "expires_in": "act.SECRET",
            "refresh_expires_at": "rft.SECRET",
            "scope": "video.upload",
        }
    ]
    with pytest.raises(TokenFileError) as caught:
        auth.import_tokens(store, write(tmp_path, document), clock=clock)
    assert "SECRET" not in str(caught.value)
    assert "'expires_in' must be a number of seconds" in str(caught.value)


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([{"access_token": "a"}], "entry 0: missing 'open_id'"),
        ({"u": "just a string"}, "user 'u': must be an object of token fields"),
        ({"u": {**SEED["user-a"], "scope": ""}}, "'scope' must list the scopes granted"),
        ({"u": {**SEED["user-a"], "access_token": ""}}, "'access_token' must be a non-empty"),
        ({"u": {**SEED["user-a"], "expires_in": -5}}, "'expires_in' must not be negative"),
        (
            {"u": {k: v for k, v in SEED["user-a"].items() if k != "scope"}},
            "user 'u': missing 'scope'",
        ),
        (
            {"u": {**SEED["user-a"], "expires_at": 1_800_000_000_000}},
            "looks like milliseconds",
        ),
        (
            {"u": {**SEED["user-a"], "expires_at": "2027-01-01T00:00:00"}},
            "ISO-8601 time with a timezone",
        ),
        ({"u": {**SEED["user-a"], "open_id": "v"}}, "differs from the key"),
        (
            [{**SEED["user-a"], "open_id": "x"}, {**SEED["user-a"], "open_id": "x"}],
            "more than once",
        ),
        ({}, "contains no users"),
        ("text", "must be an object of users or a list"),
    ],
)
def test_bad_token_files_are_refused_with_the_problem_named(
    store: TokenStore, clock: ManualClock, tmp_path: Path, document: Any, problem: str
) -> None:
    """Each kind of bad entry gives a TokenFileError naming it."""
    with pytest.raises(TokenFileError, match="nothing was imported") as caught:
        auth.import_tokens(store, write(tmp_path, document), clock=clock)
    assert problem in str(caught.value)


def test_invalid_json_names_the_position_only(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """Broken JSON reports line and column, not the text around it."""
    path = tmp_path / "t.json"
    path.write_text('{"u": {"access_token": "act.SECRET",,}}')
    with pytest.raises(TokenFileError, match=r"not valid JSON \(line 1, column") as caught:
        auth.import_tokens(store, path, clock=clock)
    assert "SECRET" not in str(caught.value)


def test_missing_file_is_a_usage_error(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """A token file that does not exist is reported (exit 2 class), nothing imported."""
    with pytest.raises(TokenFileError, match="cannot read"):
        auth.import_tokens(store, tmp_path / "absent.json", clock=clock)


def test_reimport_replaces_tokens_and_clears_needs_login(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """Importing a user again replaces their tokens and their 'needs login' mark."""
    path = write(tmp_path, SEED)
    auth.import_tokens(store, path, clock=clock)
    store.mark_needs_login("user-a", "rejected")
    auth.import_tokens(store, path, clock=clock)
    user = store.get_user("user-a")
    assert user is not None
    assert user.needs_login is None


# -- list, refresh, remove ----------------------------------------------------------------------


def test_list_flags_refresh_tokens_dying_within_14_days(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """A refresh token with 10 days left is flagged; one with 180 days is not."""
    document = {
        "soon": {**SEED["user-a"], "refresh_expires_in": 10 * 86400},
        "later": SEED["user-a"],
    }
    auth.import_tokens(store, write(tmp_path, document), clock=clock)
    rows = {row.user.open_id: row for row in auth.list_users(store, clock=clock, margin=300)}
    assert rows["soon"].refresh_dies_soon
    assert not rows["later"].refresh_dies_soon
    assert rows["later"].state is TokenState.FRESH


def test_list_shows_needs_login_with_the_reason(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """A user marked needs login lists in that state with the reason."""
    auth.import_tokens(store, write(tmp_path, SEED), clock=clock)
    store.mark_needs_login("user-a", "TikTok rejected the refresh token")
    row = next(
        r for r in auth.list_users(store, clock=clock, margin=300) if r.user.open_id == "user-a"
    )
    assert row.state is TokenState.NEEDS_LOGIN
    assert row.login_reason == "TikTok rejected the refresh token"
    assert not row.refresh_dies_soon


class RotatingEndpoint:
    def __init__(self, clock: ManualClock, reject: set[str] | None = None) -> None:
        self.clock = clock
        self.reject = reject or set()
        self.calls = 0

    def refresh(self, refresh_token: Secret) -> TokenGrant:
        self.calls += 1
        open_id = refresh_token.reveal().split(".")[1].lower()
        open_id = {"aaa": "user-a", "bbb": "user-b"}.get(open_id, open_id)
        if open_id in self.reject:
            raise OAuthError("invalid_grant", "Refresh token is invalid.")
        now = self.clock.time()
        return TokenGrant(
            open_id=open_id,
            access_token=Secret(f"act.new{self.calls}"),
            access_expires_at=now + 7200,
            refresh_token=Secret(f"rft.{open_id}.{self.calls}"),
            refresh_expires_at=now + 180 * DAY,
            scopes=frozenset(),
        )


def test_refresh_all_goes_on_after_one_user_fails(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """One rejected user fails alone; the other is refreshed."""
    auth.import_tokens(store, write(tmp_path, SEED), clock=clock)
    provider = TokenProvider(store, RotatingEndpoint(clock, reject={"user-a"}), clock=clock)
    outcomes = {o.open_id: o for o in auth.refresh_users(store, provider, [], all_users=True)}
    assert not outcomes["user-a"].ok
    assert "auth login" in (outcomes["user-a"].error.hint or "")  # type: ignore[union-attr]
    assert outcomes["user-b"].ok


def test_refresh_needs_ids_or_all(store: TokenStore, clock: ManualClock) -> None:
    """Neither ids nor --all, or both, is a usage error."""
    provider = TokenProvider(store, RotatingEndpoint(clock), clock=clock)
    with pytest.raises(UsageError, match="--all"):
        auth.refresh_users(store, provider, [])
    with pytest.raises(UsageError, match="not both"):
        auth.refresh_users(store, provider, ["x"], all_users=True)


def test_refresh_unknown_id_does_nothing(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """An unknown open_id is a usage error and no user is refreshed."""
    auth.import_tokens(store, write(tmp_path, SEED), clock=clock)
    endpoint = RotatingEndpoint(clock)
    provider = TokenProvider(store, endpoint, clock=clock)
    with pytest.raises(UsageError, match="not in the token store: ghost"):
        auth.refresh_users(store, provider, ["user-a", "ghost"])
    assert endpoint.calls == 0


def test_remove_forgets_and_unknown_is_a_usage_error(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """remove forgets a stored user; an unknown one is a usage error."""
    auth.import_tokens(store, write(tmp_path, SEED), clock=clock)
    assert auth.remove_user(store, "user-a").open_id == "user-a"
    assert store.get_user("user-a") is None
    with pytest.raises(UsageError):
        auth.remove_user(store, "user-a")


def test_revoke_of_a_user_needing_login_points_to_remove(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """Revoking a user with no working token fails with the `auth remove` hint; nothing lost."""
    auth.import_tokens(store, write(tmp_path, SEED), clock=clock)
    store.mark_needs_login("user-a", "rejected")
    provider = TokenProvider(store, RotatingEndpoint(clock), clock=clock)
    with contextlib.closing(HttpTransport()) as transport:
        oauth = OAuthClient(
            transport, api_base=API, client_key="k", client_secret=Secret("s"), clock=clock
        )
        with pytest.raises(AuthError) as caught:
            auth.revoke_user(store, provider, oauth, "user-a")
    assert "auth remove user-a" in (caught.value.hint or "")
    assert store.get_user("user-a") is not None


@responses.activate
def test_revoke_calls_tiktok_then_forgets(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """Revoke posts the current access token to TikTok, then removes the user."""
    auth.import_tokens(store, write(tmp_path, SEED), clock=clock)
    responses.post(f"{API}/v2/oauth/revoke/", json={})
    provider = TokenProvider(store, RotatingEndpoint(clock), clock=clock)
    with contextlib.closing(HttpTransport()) as transport:
        oauth = OAuthClient(
            transport, api_base=API, client_key="k", client_secret=Secret("s"), clock=clock
        )
        auth.revoke_user(store, provider, oauth, "user-a")
    body = responses.calls[0].request.body
    assert isinstance(body, bytes)
    assert parse_qs(body.decode())["token"] == ["act.AAA"]
    assert store.get_user("user-a") is None


@responses.activate
def test_revoke_refused_by_tiktok_keeps_the_user(
    store: TokenStore, clock: ManualClock, tmp_path: Path
) -> None:
    """If TikTok refuses the revoke, the user's tokens are kept (nothing half done)."""
    auth.import_tokens(store, write(tmp_path, SEED), clock=clock)
    responses.post(f"{API}/v2/oauth/revoke/", json={"error": "invalid_client"})
    provider = TokenProvider(store, RotatingEndpoint(clock), clock=clock)
    with contextlib.closing(HttpTransport()) as transport:
        oauth = OAuthClient(
            transport, api_base=API, client_key="k", client_secret=Secret("s"), clock=clock
        )
        with pytest.raises(OAuthError, match="invalid_client"):
            auth.revoke_user(store, provider, oauth, "user-a")
    assert store.get_user("user-a") is not None


# -- login (paste-back path; the browser path runs against the sandbox) ---------------------------


def login_settings(home: Path) -> Settings:
    return Settings(
        home=home,
        api_base=API,
        auth_url="https://auth.example/v2/auth/authorize/",
        redirect_uri="http://127.0.0.1:8765/callback/",
        client_key="ck",
        client_secret=Secret("cs"),
    )


TOKEN_ANSWER = {
    "access_token": "act.LOGIN",
    "expires_in": 86400,
    "open_id": "user-l",
    "refresh_token": "rft.LOGIN",
    "refresh_expires_in": 31536000,
    "scope": "user.info.basic,video.upload",
    "token_type": "Bearer",
}


@responses.activate
def test_login_with_pasted_url_stores_the_user_and_reports_missing_scopes(
    store: TokenStore, clock: ManualClock, home: Path
) -> None:
    """--no-browser: URL shown, pasted redirect exchanged with the verifier, user stored with
    the display name; a scope not granted is reported."""
    responses.post(f"{API}/v2/oauth/token/", json=TOKEN_ANSWER)
    responses.get(
        f"{API}/v2/user/info/",
        json={
            "data": {"user": {"open_id": "user-l", "display_name": "Lee"}},
            "error": {"code": "ok", "message": "", "log_id": "L"},
        },
    )
    shown: list[str] = []

    def paste() -> str:
        state = parse_qs(urlsplit(shown[0]).query)["state"][0]
        return f"http://127.0.0.1:8765/callback/?code=C0DE&scopes=user.info.basic&state={state}"

    with contextlib.closing(HttpTransport()) as transport:
        result = auth.login(
            login_settings(home),
            store=store,
            transport=transport,
            clock=clock,
            open_browser=False,
            show_url=shown.append,
            read_pasted_url=paste,
        )
    assert result.user.open_id == "user-l"
    assert result.user.display_name == "Lee"
    assert result.missing_scopes == {"video.publish"}
    assert result.browser_opened is None
    exchange = parse_qs(responses.calls[0].request.body.decode())  # type: ignore[union-attr]
    assert exchange["code"] == ["C0DE"]
    challenge = parse_qs(urlsplit(shown[0]).query)["code_challenge"][0]
    verifier = exchange["code_verifier"][0]
    assert hashlib.sha256(verifier.encode()).hexdigest() == challenge
    credentials = store.credentials("user-l")
    assert credentials is not None
    assert credentials.refresh_token.reveal() == "rft.LOGIN"


@responses.activate
def test_login_with_a_stale_paste_exchanges_nothing(
    store: TokenStore, clock: ManualClock, home: Path
) -> None:
    """A pasted URL from another login attempt is refused before any token request."""
    with contextlib.closing(HttpTransport()) as transport, pytest.raises(AuthError, match="state"):
        auth.login(
            login_settings(home),
            store=store,
            transport=transport,
            clock=clock,
            open_browser=False,
            show_url=lambda url: None,
            read_pasted_url=lambda: "http://127.0.0.1:8765/callback/?code=C&state=old",
        )
    assert len(responses.calls) == 0
    assert store.list_users() == []


@responses.activate
def test_login_keeps_tokens_when_user_info_fails(
    store: TokenStore, clock: ManualClock, home: Path
) -> None:
    """A failing user-info call does not waste the login: tokens stored, reason reported."""
    responses.post(f"{API}/v2/oauth/token/", json=TOKEN_ANSWER)
    responses.get(f"{API}/v2/user/info/", body="busy", status=503)
    shown: list[str] = []

    def paste() -> str:
        state = parse_qs(urlsplit(shown[0]).query)["state"][0]
        return f"?code=C&state={state}"

    with contextlib.closing(HttpTransport()) as transport:
        result = auth.login(
            login_settings(home),
            store=store,
            transport=transport,
            clock=clock,
            open_browser=False,
            show_url=shown.append,
            read_pasted_url=paste,
        )
    assert result.user.display_name is None
    assert result.display_name_error
    assert store.get_user("user-l") is not None
