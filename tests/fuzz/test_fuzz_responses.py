"""Fuzzing what TikTok may answer: any status, any body, into every parser we have.

TikTok's answers are input we do not control (a proxy's HTML page, a truncated body, a field of
the wrong type, a number spelled in another script). Whatever arrives, the parsers return a
value or raise one of our documented errors: :class:`ApiError` for the posting API,
:class:`OAuthError` / :class:`AuthError` for OAuth, :class:`UploadError` for an upload server's
progress. Any other exception would end an entry as a bug. And the ``status`` command, whatever
the status endpoint answers, shows a message, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.cli import cli
from orchestrator.clock import SystemClock
from orchestrator.config import Settings
from orchestrator.errors import ApiError, AuthError, UploadError
from orchestrator.secret import Secret
from orchestrator.store.tokens import TokenStore
from orchestrator.tiktok.chunks import MIN_CHUNK, plan_chunks
from orchestrator.tiktok.client import (
    STATUS_PATH,
    CreatorInfo,
    InitResult,
    PostInfo,
    PostMode,
    PublishStatus,
    creator_info_call,
    parse_creator_info,
    parse_init,
    parse_status,
    read_envelope,
    status_call,
    video_init_call,
)
from orchestrator.tiktok.oauth import (
    OAuthClient,
    TokenGrant,
    UserInfo,
    authorization_from_params,
    parse_pasted_redirect,
    parse_token_response,
)
from orchestrator.transport import HttpResponse, Timeouts
from orchestrator.upload import (
    ChunkAnswer,
    FileSource,
    NullJournal,
    ResumePoint,
    UploadMachine,
    UploadRequest,
    UploadState,
)
from tests.support.tiers import fuzz_examples

FUZZ = settings(
    # --all runs the full count; FUZZ_EXAMPLES=5000 for a longer hunt.
    max_examples=fuzz_examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# JSON values, with the awkward corners: unicode digits, huge and non-finite numbers, nesting.
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["²", "٣", "1e999", "NaN", "-1", "0x10", " 12 ", "ok", ""])
)
json_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

_DATA_KEYS = [
    "publish_id",
    "upload_url",
    "status",
    "fail_reason",
    "publicaly_available_post_id",
    "publicly_available_post_id",
    "uploaded_bytes",
    "downloaded_bytes",
    "privacy_level_options",
    "max_video_post_duration_sec",
    "comment_disabled",
    "duet_disabled",
    "stitch_disabled",
    "creator_username",
    "creator_nickname",
    "creator_avatar_url",
]
# Numbers as TikTok's JSON might spell them: strings of digits from any script included.
numberish = (
    st.text(alphabet="0123456789\u00b2\u00b3\u0663\u0661\u06f5 -+.eE_", max_size=8) | json_values
)
_NUMBER_KEYS = ("uploaded_bytes", "downloaded_bytes", "max_video_post_duration_sec")
data_objects = st.fixed_dictionaries(
    {},
    optional={key: numberish if key in _NUMBER_KEYS else json_values for key in _DATA_KEYS},
)
error_objects = st.fixed_dictionaries(
    {},
    optional={
        "code": st.sampled_from(["ok", "internal_error", "access_token_invalid", ""]) | json_values,
        "message": json_values,
        "log_id": json_values,
    },
)
envelopes = st.fixed_dictionaries(
    {}, optional={"data": data_objects | json_values, "error": error_objects | json_values}
)
statuses = st.integers(min_value=100, max_value=599)


def _encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


bodies = (
    st.binary(max_size=200)
    | envelopes.map(_encode)
    | json_values.map(_encode)
    | st.sampled_from([b"", b"<html>502 Bad Gateway</html>", b'{"error": {"code": "ok"}', b"null"])
)


@FUZZ
@given(status=statuses, body=bodies)
def test_any_answer_to_an_api_call_is_data_or_an_api_error(status: int, body: bytes) -> None:
    """read_envelope returns the answer's data (a mapping) or raises ApiError, nothing else."""
    for call in (creator_info_call(), status_call("p")):
        try:
            data = read_envelope(call, HttpResponse(status, {}, body))
        except ApiError as error:
            code = error.code
        else:
            assert isinstance(data, dict)
            assert 200 <= status < 300
            continue
        assert code


@FUZZ
@given(data=data_objects)
def test_any_data_parses_into_creator_info_and_status(data: dict[str, Any]) -> None:
    """creator_info's and status's data always parse: unknown shapes become safe defaults."""
    info = parse_creator_info(data)
    assert isinstance(info, CreatorInfo)
    assert all(isinstance(o, str) for o in info.privacy_level_options)
    status = parse_status(data)
    assert isinstance(status, PublishStatus)
    for count in (status.uploaded_bytes, status.downloaded_bytes):
        assert count is None or isinstance(count, int)


@FUZZ
@given(data=data_objects, expects_upload_url=st.booleans())
def test_any_init_data_is_an_init_result_or_an_api_error(
    data: dict[str, Any], expects_upload_url: bool
) -> None:
    """An init's data gives a publish_id (and an upload URL for a file) or ApiError."""
    call = video_init_call(PostMode.DIRECT, plan_chunks(1000), PostInfo(privacy_level="SELF_ONLY"))
    try:
        result = parse_init(call, data, expects_upload_url=expects_upload_url)
    except ApiError as error:
        code = error.code
    else:
        assert isinstance(result, InitResult)
        assert result.publish_id
        assert (result.upload_url is not None) == expects_upload_url
        return
    assert code == "invalid_response"


token_fields = st.fixed_dictionaries(
    {},
    optional={
        name: numberish | st.sampled_from(["act.x", "rft.y", "open-1", "7200"])
        for name in (
            "access_token",
            "refresh_token",
            "open_id",
            "expires_in",
            "refresh_expires_in",
            "scope",
            "token_type",
            "error",
            "error_description",
            "log_id",
        )
    },
)


# A token answer right in every field but the lifetimes, which are anything a number may be.
lifetimes = numberish | st.floats(allow_nan=True, allow_infinity=True) | st.just("nan")
grant_shaped = st.fixed_dictionaries(
    {
        "access_token": st.just("act.x"),
        "refresh_token": st.just("rft.y"),
        "open_id": st.just("open-1"),
        "expires_in": lifetimes,
        "refresh_expires_in": lifetimes,
    },
    optional={"scope": json_values, "token_type": json_values},
)


@FUZZ
@given(status=statuses, body=bodies | token_fields.map(_encode) | grant_shaped.map(_encode))
def test_any_token_endpoint_answer_is_a_grant_or_an_oauth_error(status: int, body: bytes) -> None:
    """A token answer is a TokenGrant with finite expiries, or an AuthError (OAuthError)."""
    try:
        grant = parse_token_response(HttpResponse(status, {}, body), received_at=1000.0)
    except AuthError:
        return
    assert isinstance(grant, TokenGrant)
    for expiry in (grant.access_expires_at, grant.refresh_expires_at):
        assert math.isfinite(expiry)
        datetime.fromtimestamp(expiry, UTC)  # shown by `auth list`: must be a date
    assert grant.open_id


class _Answer:
    """A transport that answers every request with one canned response."""

    def __init__(self, response: HttpResponse) -> None:
        self.response = response

    def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        return self.response

    def close(self) -> None:
        return None


class _Clock:
    def time(self) -> float:
        return 1000.0

    def monotonic(self) -> float:
        return 1000.0

    def sleep(self, seconds: float) -> None:
        return None


@FUZZ
@given(status=statuses, body=bodies)
def test_any_user_info_or_revoke_answer_is_a_value_or_our_error(status: int, body: bytes) -> None:
    """user info gives a UserInfo or ApiError; revoke returns or raises an AuthError."""
    client = OAuthClient(
        _Answer(HttpResponse(status, {}, body)),
        api_base="http://127.0.0.1:9",
        client_key="key",
        client_secret=Secret("secret"),
        clock=_Clock(),
        timeouts=Timeouts(1, 1, 1),
    )
    with contextlib.suppress(ApiError):
        assert isinstance(client.fetch_user_info(Secret("token")), UserInfo)
    with contextlib.suppress(AuthError):
        client.revoke(Secret("token"))


params = st.dictionaries(
    st.sampled_from(["code", "state", "error", "error_description", "scopes", "other"]),
    st.lists(st.text(max_size=30), max_size=3),
    max_size=6,
)


@FUZZ
@given(query=params, pasted=st.text(max_size=200))
def test_any_redirect_back_is_a_code_or_an_auth_error(
    query: dict[str, list[str]], pasted: str
) -> None:
    """The loopback callback's parameters and a pasted redirect give a code or AuthError."""
    state = Secret("expected-state")
    for attempt in (
        lambda: authorization_from_params(query, expected_state=state),
        lambda: parse_pasted_redirect(pasted, expected_state=state),
        lambda: parse_pasted_redirect(
            "http://127.0.0.1:8765/callback/?" + pasted + "&state=expected-state",
            expected_state=state,
        ),
    ):
        try:
            code = attempt()
        except AuthError:
            continue
        assert code.code.reveal()


SIZE = 2 * MIN_CHUNK + 999


def _machine() -> UploadMachine:
    plan = plan_chunks(SIZE, MIN_CHUNK)
    request = UploadRequest(
        "open-1",
        PostMode.DIRECT,
        FileSource(Path("/nonexistent.mp4"), SIZE, "video/mp4"),
        PostInfo(privacy_level="SELF_ONLY"),
    )
    point = ResumePoint(
        state=UploadState.UPLOADING,
        publish_id="p",
        upload_url=Secret("http://127.0.0.1:9/upload/?upload_token=t"),
        url_expires_at=5000.0,
        plan=plan,
    )
    return UploadMachine.resumed(request, point, NullJournal())


@FUZZ
@given(
    status=statuses,
    content_range=st.none()
    | st.text(max_size=40)
    | st.builds(
        "bytes {}-{}/{}".format,
        st.integers(-5, SIZE + 5),
        st.integers(-5, SIZE + 5),
        st.integers(-5, SIZE + 5) | st.just("*"),
    ),
)
def test_any_chunk_answer_is_read_or_an_upload_error(
    status: int, content_range: str | None
) -> None:
    """A chunk PUT's answer, whatever its status and Content-Range, is understood (a resync
    lands on a chunk boundary) or is an UploadError."""
    machine = _machine()
    assert machine.plan is not None
    chunk = machine.plan.chunk(0)
    headers = {} if content_range is None else {"content-range": content_range}
    try:
        answer = machine.read_chunk_reply(chunk, HttpResponse(status, headers, b""))
    except UploadError:
        return
    assert isinstance(answer, ChunkAnswer)
    if answer.received is not None:
        assert machine.plan.is_boundary(answer.received)


_API = "https://api.test"


@pytest.fixture(scope="module")
def signed_in_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with one user whose access token is fresh for a day."""
    home = tmp_path_factory.mktemp("fuzz-home") / "home"
    settings = Settings(home=home, api_base=_API, client_key="key", client_secret=Secret("s"))
    clock = SystemClock()
    now = clock.time()
    grant = TokenGrant(
        open_id="open-1",
        access_token=Secret("act.fuzz"),
        access_expires_at=now + 86_400,
        refresh_token=Secret("rft.fuzz"),
        refresh_expires_at=now + 86_400 * 30,
        scopes=frozenset({"video.publish", "video.upload"}),
    )
    with TokenStore.open(settings, clock=clock) as store:
        store.save_grants([(grant, None)])
    return home


@FUZZ
@given(
    status=statuses, body=bodies | envelopes.map(lambda e: _encode({**e, "data": e.get("data")}))
)
def test_status_command_shows_no_traceback_whatever_tiktok_answers(
    signed_in_home: Path, status: int, body: bytes
) -> None:
    """`status PUBLISH_ID --user` against any answer of the status endpoint exits 0 (TikTok
    answered) or 1 (it could not be asked) with a message, never a traceback."""
    env = {
        "ORCHESTRATOR_HOME": str(signed_in_home),
        "ORCHESTRATOR_API_BASE": _API,
        "TIKTOK_CLIENT_KEY": "key",
        "TIKTOK_CLIENT_SECRET": "s",
    }
    with (
        responses.RequestsMock(assert_all_requests_are_fired=False) as mocked,
        pytest.MonkeyPatch.context() as patch,
    ):
        # Retries of 5xx answers would sit out real backoffs: time does not matter here.
        patch.setattr(SystemClock, "sleep", lambda self, seconds: None)
        mocked.post(_API + STATUS_PATH, body=body, status=status)
        mocked.post(_API + "/v2/oauth/token/", body=body, status=status)
        result = CliRunner().invoke(cli, ["status", "p_1", "--user", "open-1"], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        assert "error:" in result.output
