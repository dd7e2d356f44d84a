"""creator_info, the three inits, caps, unaudited mode, rate windows and status, by raw HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from orchestrator.clock import ManualClock
from orchestrator.sandbox import Sandbox, SandboxConfig, SandboxUser
from tests.support.sandbox_api import MIN_CHUNK, Api, error_code, put_chunk, running_api

SMALL = 1_000  # a whole one-chunk upload


def direct(api: Api, token: str, **post_info: Any) -> requests.Response:
    info = {"title": "hello", "privacy_level": "SELF_ONLY", **post_info}
    return api.init_video(token, SMALL, SMALL, 1, post_info=info)


def photo(api: Api, token: str, mode: str = "DIRECT_POST", **changes: Any) -> requests.Response:
    body: dict[str, Any] = {
        "media_type": "PHOTO",
        "post_mode": mode,
        "post_info": {"title": "pics", "description": "desc", "privacy_level": "SELF_ONLY"},
        "source_info": {
            "source": "PULL_FROM_URL",
            "photo_images": ["https://media.example.com/a.jpg", "https://media.example.com/b.jpg"],
            "photo_cover_index": 1,
        },
    }
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            body[section][name] = value
        else:
            body[section] = value
    return api.post("content_init", token, body)


def poll(api: Api, token: str, publish_id: str) -> dict[str, Any]:
    response = api.status(token, publish_id)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


# -- creator_info ---------------------------------------------------------------------------


def test_creator_info_public_and_private_accounts(api: Api) -> None:
    """Public accounts get everyone/friends/self; private accounts followers/friends/self."""
    public = api.creator_info(api.token("sandbox-user-1")).json()
    private = api.creator_info(api.token("sandbox-user-3")).json()
    assert public["error"]["code"] == "ok"
    assert public["data"]["privacy_level_options"] == [
        "PUBLIC_TO_EVERYONE",
        "MUTUAL_FOLLOW_FRIENDS",
        "SELF_ONLY",
    ]
    assert private["data"]["privacy_level_options"] == [
        "FOLLOWER_OF_CREATOR",
        "MUTUAL_FOLLOW_FRIENDS",
        "SELF_ONLY",
    ]
    assert public["data"]["creator_nickname"] == "Sandbox One"
    assert public["data"]["max_video_post_duration_sec"] == 600
    assert public["error"]["log_id"]


def test_creator_info_reports_configured_user(clock: ManualClock) -> None:
    """Disabled interactions and max duration come from the SandboxUser."""
    user = SandboxUser(
        "picky",
        "Picky",
        comment_disabled=True,
        duet_disabled=True,
        stitch_disabled=True,
        max_video_post_duration_sec=60,
    )
    with running_api(SandboxConfig(users=(user,)), clock) as api:
        data = api.creator_info(api.token("picky")).json()["data"]
        assert (data["comment_disabled"], data["duet_disabled"], data["stitch_disabled"]) == (
            True,
            True,
            True,
        )
        assert data["max_video_post_duration_sec"] == 60
        assert data["creator_username"] == "picky"


def test_creator_info_needs_video_publish(api: Api) -> None:
    """Without video.publish, creator_info is 401 scope_not_authorized."""
    response = api.creator_info(api.token(scopes=["user.info.basic", "video.upload"]))
    assert (response.status_code, error_code(response)) == (401, "scope_not_authorized")


def test_banned_user(clock: ManualClock) -> None:
    """A banned user: creator_info says so at HTTP 200; an init is 403."""
    config = SandboxConfig(users=(SandboxUser("bad", "Bad", banned=True),))
    with running_api(config, clock) as api:
        token = api.token("bad")
        info = api.creator_info(token)
        assert (info.status_code, error_code(info)) == (200, "spam_risk_user_banned_from_posting")
        init = direct(api, token)
        assert (init.status_code, error_code(init)) == (403, "spam_risk_user_banned_from_posting")


# -- video init -----------------------------------------------------------------------------


def test_direct_init_answers_publish_id_and_upload_url(api: Api, sandbox: Sandbox) -> None:
    """A direct FILE_UPLOAD init gives a v_pub_file publish_id and an upload_url; it is recorded."""
    token = api.token()
    api.creator_info(token)
    response = direct(api, token)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["publish_id"].startswith("v_pub_file~v2-1.")
    assert len(data["publish_id"]) <= 64
    assert data["upload_url"].startswith(sandbox.base_url + "/upload/?")
    [record] = sandbox.publishes()
    assert (record.publish_id, record.mode, record.source) == (
        data["publish_id"],
        "direct",
        "FILE_UPLOAD",
    )
    assert record.post_info["title"] == "hello"
    assert (record.completed, record.sha256, record.status) == (False, None, "PROCESSING_UPLOAD")
    assert sandbox.violations() == []


def test_privacy_level_must_be_an_option(api: Api, sandbox: Sandbox) -> None:
    """A public account posting FOLLOWER_OF_CREATOR is 403 privacy_level_option_mismatch."""
    token = api.token()
    api.creator_info(token)
    response = direct(api, token, privacy_level="FOLLOWER_OF_CREATOR")
    assert (response.status_code, error_code(response)) == (403, "privacy_level_option_mismatch")
    assert sandbox.publishes() == []


@pytest.mark.parametrize(
    "post_info",
    [{"title": "x"}, {"title": "x", "privacy_level": "FRIENDS"}, {"privacy_level": 3}],
)
def test_a_missing_or_unoffered_privacy_level_is_an_option_mismatch(
    api: Api, sandbox: Sandbox, post_info: dict[str, Any]
) -> None:
    """tiktok-api.md §4: privacy_level is required and one of the creator's options; missing,
    unknown or not offered is 403 privacy_level_option_mismatch, as TikTok answers."""
    token = api.token()
    api.creator_info(token)
    response = api.init_video(token, SMALL, SMALL, 1, post_info=post_info)
    assert (response.status_code, error_code(response)) == (403, "privacy_level_option_mismatch")
    assert sandbox.publishes() == []


@pytest.mark.parametrize(
    ("title", "accepted"),
    [
        ("a" * 2200, True),
        ("a" * 2201, False),
        ("\N{GRINNING FACE}" * 1100, True),  # an emoji counts 2 UTF-16 units
        ("\N{GRINNING FACE}" * 1100 + "a", False),
    ],
)
def test_caption_limit_counts_utf16_units(api: Api, title: str, accepted: bool) -> None:
    """Captions are ≤ 2200 UTF-16 code units."""
    token = api.token()
    api.creator_info(token)
    response = direct(api, token, title=title)
    assert response.status_code == (200 if accepted else 400)


def test_post_info_types_are_checked(api: Api) -> None:
    """Non-boolean toggles and a negative cover timestamp are invalid_params."""
    token = api.token()
    api.creator_info(token)
    assert direct(api, token, disable_comment="yes").status_code == 400
    assert direct(api, token, video_cover_timestamp_ms=-1).status_code == 400
    assert direct(api, token, brand_content_toggle=False, is_aigc=True).status_code == 200


def test_direct_init_without_creator_info_is_a_violation(api: Api, sandbox: Sandbox) -> None:
    """TikTok's rules require creator_info before posting: skipping it is recorded."""
    assert direct(api, api.token()).status_code == 200
    assert any("without a prior creator_info" in v for v in sandbox.violations())


def test_disabled_interaction_must_stay_disabled(clock: ManualClock) -> None:
    """Posting with comments on for a creator who disabled them is recorded."""
    config = SandboxConfig(users=(SandboxUser("quiet", "Quiet", comment_disabled=True),))
    with Sandbox(config, clock=clock) as sb, requests.Session() as http:
        api = Api(sb, http)
        token = api.token("quiet")
        api.creator_info(token)
        assert direct(api, token, disable_comment=True).status_code == 200
        assert sb.violations() == []
        assert direct(api, token).status_code == 200
        assert any("disable_comment" in v for v in sb.violations())


def test_direct_init_needs_video_publish(api: Api) -> None:
    """A token with only video.upload cannot direct-post."""
    response = direct(api, api.token(scopes=["user.info.basic", "video.upload"]))
    assert (response.status_code, error_code(response)) == (401, "scope_not_authorized")


def test_pull_from_url(api: Api, sandbox: Sandbox) -> None:
    """A verified https URL gives a v_pub_url publish and no upload_url; others are refused."""
    token = api.token()
    api.creator_info(token)

    def init(url: str) -> requests.Response:
        return api.post(
            "video_init",
            token,
            {
                "post_info": {"title": "t", "privacy_level": "SELF_ONLY"},
                "source_info": {"source": "PULL_FROM_URL", "video_url": url},
            },
        )

    ok = init("https://media.example.com/v.mp4")
    assert ok.status_code == 200
    assert ok.json()["data"]["publish_id"].startswith("v_pub_url~")
    assert "upload_url" not in ok.json()["data"]
    record = sandbox.publishes()[0]
    assert (record.source, record.completed, record.video_size) == ("PULL_FROM_URL", True, None)
    unverified = init("https://elsewhere.example.org/v.mp4")
    assert (unverified.status_code, error_code(unverified)) == (403, "url_ownership_unverified")
    plain = init("http://media.example.com/v.mp4")
    assert (plain.status_code, error_code(plain)) == (400, "invalid_params")


def test_inbox_init(api: Api, sandbox: Sandbox) -> None:
    """The inbox init takes source_info only, needs video.upload, gives a v_inbox_file id."""
    response = api.init_video(api.token(), SMALL, SMALL, 1, endpoint="inbox_init")
    assert response.status_code == 200
    assert response.json()["data"]["publish_id"].startswith("v_inbox_file~v2.")
    assert sandbox.publishes()[0].mode == "inbox"
    assert sandbox.violations() == []
    no_scope = api.init_video(
        api.token(scopes=["video.publish"]), SMALL, SMALL, 1, endpoint="inbox_init"
    )
    assert (no_scope.status_code, error_code(no_scope)) == (401, "scope_not_authorized")


def test_bad_bodies_are_invalid_params(api: Api) -> None:
    """Not JSON, not an object, missing source_info, unknown source: 400 invalid_params."""
    token = api.token()
    url = api.url("video_init")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    not_json = api.http.post(url, data=b"{nope", headers=headers, timeout=10)
    array = api.http.post(url, data=b"[]", headers=headers, timeout=10)
    no_source = api.post("video_init", token, {"post_info": {"privacy_level": "SELF_ONLY"}})
    odd = api.post(
        "video_init",
        token,
        {"post_info": {"privacy_level": "SELF_ONLY"}, "source_info": {"source": "FTP"}},
    )
    for response in (not_json, array, no_source, odd):
        assert (response.status_code, error_code(response)) == (400, "invalid_params")


# -- photo ----------------------------------------------------------------------------------


def test_photo_direct_post_goes_to_publish_complete(api: Api, sandbox: Sandbox) -> None:
    """A photo direct post: p_pub_url id, PROCESSING_DOWNLOAD, then PUBLISH_COMPLETE."""
    token = api.token()
    api.creator_info(token)
    response = photo(api, token)
    assert response.status_code == 200, response.text
    publish_id = response.json()["data"]["publish_id"]
    assert publish_id.startswith("p_pub_url~v2.")
    assert poll(api, token, publish_id)["status"] == "PROCESSING_DOWNLOAD"
    assert poll(api, token, publish_id)["status"] == "PUBLISH_COMPLETE"
    assert sandbox.publish(publish_id).mode == "photo"
    assert sandbox.violations() == []


def test_photo_media_upload_goes_to_inbox(api: Api) -> None:
    """MEDIA_UPLOAD photos need video.upload only and end in the inbox."""
    token = api.token(scopes=["video.upload"])
    response = photo(api, token, "MEDIA_UPLOAD", post_info={"title": "t"})
    assert response.status_code == 200, response.text
    publish_id = response.json()["data"]["publish_id"]
    assert publish_id.startswith("p_inbox_url~v2.")
    poll(api, token, publish_id)
    assert poll(api, token, publish_id)["status"] == "SEND_TO_USER_INBOX"


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"post_info__title": "t" * 91}, 400, "invalid_params"),
        ({"post_info__description": "d" * 4001}, 400, "invalid_params"),
        ({"source_info__photo_images": []}, 400, "invalid_params"),
        (
            {"source_info__photo_images": ["https://media.example.com/p.jpg"] * 36},
            400,
            "invalid_params",
        ),
        ({"source_info__photo_cover_index": 2}, 400, "invalid_params"),
        (
            {"source_info__photo_images": ["https://other.example.org/p.jpg"]},
            403,
            "url_ownership_unverified",
        ),
        ({"source_info__photo_images": ["http://media.example.com/p.jpg"]}, 400, "invalid_params"),
        ({"source_info__source": "FILE_UPLOAD"}, 400, "invalid_params"),
        ({"media_type": "VIDEO"}, 400, "invalid_params"),
        ({"post_mode": "LATER"}, 400, "invalid_params"),
        ({"post_info__privacy_level": "FOLLOWER_OF_CREATOR"}, 403, "privacy_level_option_mismatch"),
        ({"post_info__privacy_level": "FRIENDS"}, 403, "privacy_level_option_mismatch"),
        ({"post_info": {"title": "pics"}}, 403, "privacy_level_option_mismatch"),
        # tiktok-api.md §6: the cover index is part of source_info and required, not defaulted.
        ({"source_info__photo_cover_index": None}, 400, "invalid_params"),
        (
            {
                "source_info": {
                    "source": "PULL_FROM_URL",
                    "photo_images": ["https://media.example.com/a.jpg"],
                }
            },
            400,
            "invalid_params",
        ),
    ],
)
def test_photo_rules(api: Api, changes: dict[str, Any], status: int, code: str) -> None:
    """Photo title ≤ 90, description ≤ 4000, 1 to 35 verified https images, a valid cover."""
    token = api.token()
    api.creator_info(token)
    response = photo(api, token, **changes)
    assert (response.status_code, error_code(response)) == (status, code)


def test_a_photo_upload_to_the_inbox_needs_no_privacy_level(api: Api) -> None:
    """MEDIA_UPLOAD (inbox) photo posts carry no privacy_level; the creator picks it in the app."""
    token = api.token()
    api.creator_info(token)
    response = photo(api, token, "MEDIA_UPLOAD", post_info={"title": "pics"})
    assert response.status_code == 200, response.text


def test_photo_limits_are_inclusive(api: Api) -> None:
    """Exactly 90 / 4000 units and 35 images are accepted."""
    token = api.token()
    api.creator_info(token)
    response = photo(
        api,
        token,
        post_info__title="t" * 90,
        post_info__description="d" * 4000,
        source_info__photo_images=["https://media.example.com/p.jpg"] * 35,
    )
    assert response.status_code == 200, response.text


# -- unaudited apps -------------------------------------------------------------------------


@pytest.fixture
def unaudited(clock: ManualClock) -> Iterator[Api]:
    users = (
        SandboxUser("pub", "Public"),
        SandboxUser("priv-a", "Private A", private=True),
        SandboxUser("priv-b", "Private B", private=True),
    )
    with running_api(
        SandboxConfig(users=users, unaudited=True, unaudited_user_cap=1), clock
    ) as api:
        yield api


def test_unaudited_app_only_posts_self_only_to_private_accounts(unaudited: Api) -> None:
    """An unaudited app may post only SELF_ONLY to private accounts (403 otherwise)."""
    api = unaudited
    code = "unaudited_client_can_only_post_to_private_accounts"
    public = direct(api, api.token("pub"))
    assert (public.status_code, error_code(public)) == (403, code)
    token = api.token("priv-a")
    api.creator_info(token)
    followers = direct(api, token, privacy_level="FOLLOWER_OF_CREATOR")
    assert (followers.status_code, error_code(followers)) == (403, code)
    assert direct(api, token, privacy_level="SELF_ONLY").status_code == 200


def test_unaudited_active_user_cap(unaudited: Api) -> None:
    """Past the cap of posting users per 24 h, a new user gets reached_active_user_cap."""
    api = unaudited
    first = api.token("priv-a")
    api.creator_info(first)
    assert direct(api, first).status_code == 200
    second = api.token("priv-b")
    info = api.creator_info(second)
    assert (info.status_code, error_code(info)) == (200, "reached_active_user_cap")
    refused = direct(api, second)
    assert (refused.status_code, error_code(refused)) == (403, "reached_active_user_cap")
    assert direct(api, first).status_code == 200


# -- caps ------------------------------------------------------------------------------------


def test_daily_direct_post_cap(clock: ManualClock) -> None:
    """Past daily_post_cap direct posts in 24 h: 403 spam_risk_too_many_posts, for a day."""
    with running_api(SandboxConfig(daily_post_cap=2, rate_limits=False), clock) as api:
        token = api.token()
        api.creator_info(token)
        assert [direct(api, token).status_code for _ in range(2)] == [200, 200]
        refused = direct(api, token)
        assert (refused.status_code, error_code(refused)) == (403, "spam_risk_too_many_posts")
        info = api.creator_info(token)
        assert (info.status_code, error_code(info)) == (200, "spam_risk_too_many_posts")
        other = api.token("sandbox-user-2")
        api.creator_info(other)
        assert direct(api, other).status_code == 200
        clock.advance(86400)
        fresh = api.token()
        api.creator_info(fresh)
        assert direct(api, fresh).status_code == 200


def test_cap_refusal_is_a_violation_only_once_the_client_was_told(clock: ManualClock) -> None:
    """An init refused for the daily cap after creator_info allowed it is no violation (TikTok
    counts every app's posts); another init after that refusal, or after creator_info said
    the cap was reached, is; a new client process starts untold."""
    with running_api(SandboxConfig(daily_post_cap=1, rate_limits=False), clock) as api:
        token = api.token()
        api.creator_info(token)
        assert direct(api, token).status_code == 200
        assert direct(api, token).status_code == 403  # could not be foreseen
        assert api.sandbox.violations() == []
        assert direct(api, token).status_code == 403  # told, and sent another
        assert api.sandbox.violations() == [
            "video_init: daily post cap (1) reached for sandbox-user-1, and the client had "
            "been told"
        ]
        api.sandbox.new_client()
        assert direct(api, token).status_code == 403  # a rerun cannot know
        assert len(api.sandbox.violations()) == 1
        assert error_code(api.creator_info(token)) == "spam_risk_too_many_posts"
        assert direct(api, token).status_code == 403  # creator_info said so
        assert len(api.sandbox.violations()) == 2


def test_pending_inbox_cap(clock: ManualClock) -> None:
    """Past pending_inbox_cap pending shares: 403 spam_risk_too_many_pending_share."""
    with running_api(SandboxConfig(pending_inbox_cap=2, rate_limits=False), clock) as api:
        token = api.token()
        ids = [
            api.init_video(token, SMALL, SMALL, 1, endpoint="inbox_init").json()["data"][
                "publish_id"
            ]
            for _ in range(2)
        ]
        refused = api.init_video(token, SMALL, SMALL, 1, endpoint="inbox_init")
        assert (refused.status_code, error_code(refused)) == (
            403,
            "spam_risk_too_many_pending_share",
        )
        api.sandbox.post_from_inbox(ids[0])
        assert api.init_video(token, SMALL, SMALL, 1, endpoint="inbox_init").status_code == 200


# -- rate limits ----------------------------------------------------------------------------


def test_init_rate_window_slides(api: Api, clock: ManualClock, sandbox: Sandbox) -> None:
    """6 inits per minute per token; the window slides on the sandbox clock."""
    token = api.token()
    api.creator_info(token)
    assert [direct(api, token).status_code for _ in range(3)] == [200] * 3
    clock.advance(30)
    assert [direct(api, token).status_code for _ in range(3)] == [200] * 3
    limited = direct(api, token)
    assert (limited.status_code, error_code(limited)) == (429, "rate_limit_exceeded")
    clock.advance(30)  # the first three are now a minute old
    assert [direct(api, token).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert any("rate limit" in v for v in sandbox.violations())


def test_window_filled_by_an_earlier_client_is_a_429_but_not_the_new_clients_violation(
    api: Api, clock: ManualClock, sandbox: Sandbox
) -> None:
    """A rerun after a crash (a new client) cannot know the inits its predecessor sent: the
    full window still answers 429, but blame starts only if the new client sends again within
    a minute of that 429, or fills a window by itself."""
    token = api.token()
    api.creator_info(token)
    assert [direct(api, token).status_code for _ in range(6)] == [200] * 6
    sandbox.new_client()
    assert direct(api, token).status_code == 429
    assert sandbox.violations() == []
    clock.advance(30)
    assert direct(api, token).status_code == 429
    assert sandbox.violations() == [
        "video_init: request for sandbox-user-1 within a minute of a 429 (the window was full)"
    ]
    clock.advance(31)
    assert direct(api, token).status_code == 200


def test_a_token_refresh_does_not_empty_the_users_rate_window(api: Api, sandbox: Sandbox) -> None:
    """The windows count per user (open_id), not per access-token string: a client that
    refreshes its token mid-minute still meets the full window, so the sandbox is never laxer
    than TikTok's per-user-token count, however TikTok keys a refreshed token."""
    token = api.token()
    api.creator_info(token)
    assert [direct(api, token).status_code for _ in range(6)] == [200] * 6
    refreshed = api.token()
    assert refreshed != token
    limited = direct(api, refreshed)
    assert (limited.status_code, error_code(limited)) == (429, "rate_limit_exceeded")
    assert any("rate limit exceeded for sandbox-user-1" in v for v in sandbox.violations())


def test_rate_windows_are_per_user_and_endpoint(api: Api) -> None:
    """One user's full init window does not limit another user or another endpoint."""
    token = api.token()
    api.creator_info(token)
    for _ in range(6):
        direct(api, token)
    assert direct(api, token).status_code == 429
    other = api.token("sandbox-user-2")
    api.creator_info(other)
    assert direct(api, other).status_code == 200
    inbox = api.init_video(token, SMALL, SMALL, 1, endpoint="inbox_init")
    assert inbox.status_code == 200


@pytest.mark.parametrize(("endpoint", "limit"), [("creator_info", 20), ("status", 30)])
def test_query_rate_limits(api: Api, endpoint: str, limit: int) -> None:
    """creator_info allows 20 and status 30 requests per minute per token."""
    token = api.token()
    api.creator_info(token)
    publish_id = direct(api, token).json()["data"]["publish_id"]
    body = {"publish_id": publish_id} if endpoint == "status" else {}
    used = 1 if endpoint == "creator_info" else 0
    codes = [api.post(endpoint, token, body).status_code for _ in range(limit - used + 1)]
    assert codes[:-1] == [200] * (limit - used)
    assert codes[-1] == 429


def test_rate_limits_can_be_switched_off(clock: ManualClock) -> None:
    """rate_limits=False never answers 429."""
    with running_api(SandboxConfig(rate_limits=False), clock) as api:
        token = api.token()
        assert {api.creator_info(token).status_code for _ in range(25)} == {200}


# -- status -----------------------------------------------------------------------------------


def test_status_progression_of_a_public_direct_post(clock: ManualClock) -> None:
    """PROCESSING_UPLOAD while bytes arrive and for processing_polls more, then PUBLISH_COMPLETE."""
    with running_api(SandboxConfig(processing_polls=2), clock) as api:
        token = api.token()
        api.creator_info(token)
        size = 2 * MIN_CHUNK
        data = api.init_video(token, size, MIN_CHUNK, 2, privacy="PUBLIC_TO_EVERYONE").json()
        publish_id, url = data["data"]["publish_id"], data["data"]["upload_url"]
        assert poll(api, token, publish_id) == {
            "status": "PROCESSING_UPLOAD",
            "uploaded_bytes": 0,
            "publicaly_available_post_id": [],
        }
        put_chunk(url, 0, MIN_CHUNK - 1, size)
        assert poll(api, token, publish_id)["uploaded_bytes"] == MIN_CHUNK
        put_chunk(url, MIN_CHUNK, size - 1, size)
        assert [poll(api, token, publish_id)["status"] for _ in range(2)] == [
            "PROCESSING_UPLOAD",
            "PROCESSING_UPLOAD",
        ]
        final = poll(api, token, publish_id)
        assert final["status"] == "PUBLISH_COMPLETE"
        assert final["uploaded_bytes"] == size
        [post_id] = final["publicaly_available_post_id"]
        assert isinstance(post_id, int)
        assert poll(api, token, publish_id) == final
        record = api.sandbox.publish(publish_id)
        assert (record.status, record.post_ids) == ("PUBLISH_COMPLETE", [post_id])


def _complete_small(api: Api, token: str, endpoint: str = "video_init") -> str:
    data = api.init_video(token, SMALL, SMALL, 1, endpoint=endpoint).json()["data"]
    assert put_chunk(data["upload_url"], 0, SMALL - 1, SMALL).status == 201
    return str(data["publish_id"])


def test_private_direct_post_has_no_post_id(api: Api) -> None:
    """A SELF_ONLY post completes without a public post id."""
    token = api.token()
    api.creator_info(token)
    publish_id = _complete_small(api, token)
    poll(api, token, publish_id)
    final = poll(api, token, publish_id)
    assert (final["status"], final["publicaly_available_post_id"]) == ("PUBLISH_COMPLETE", [])


def test_inbox_upload_ends_in_inbox(api: Api) -> None:
    """An inbox upload ends SEND_TO_USER_INBOX."""
    token = api.token()
    publish_id = _complete_small(api, token, "inbox_init")
    poll(api, token, publish_id)
    assert poll(api, token, publish_id)["status"] == "SEND_TO_USER_INBOX"


def test_scheduled_failure(api: Api, sandbox: Sandbox) -> None:
    """fail_next_publish makes the user's next publish end FAILED with that reason, once."""
    sandbox.fail_next_publish("sandbox-user-1", fail_reason="duration_check_failed")
    token = api.token()
    api.creator_info(token)
    failing = _complete_small(api, token)
    poll(api, token, failing)
    final = poll(api, token, failing)
    assert (final["status"], final["fail_reason"]) == ("FAILED", "duration_check_failed")
    assert sandbox.publish(failing).fail_reason == "duration_check_failed"
    fine = _complete_small(api, token)
    poll(api, token, fine)
    assert poll(api, token, fine)["status"] == "PUBLISH_COMPLETE"


def test_abandoned_upload_fails_once_its_url_expires(api: Api, clock: ManualClock) -> None:
    """An upload never finished within the URL's hour answers FAILED (nothing was published)."""
    token = api.token()
    api.creator_info(token)
    publish_id = direct(api, token).json()["data"]["publish_id"]
    assert poll(api, token, publish_id)["status"] == "PROCESSING_UPLOAD"
    clock.advance(3600)
    final = poll(api, token, publish_id)
    assert (final["status"], final["fail_reason"]) == ("FAILED", "internal")


def test_status_errors(api: Api, sandbox: Sandbox) -> None:
    """Unknown ids are invalid_publish_id; another user's id is token_not_authorized_…."""
    token = api.token()
    api.creator_info(token)
    publish_id = direct(api, token).json()["data"]["publish_id"]
    unknown = api.status(token, "v_pub_file~v2-1.0")
    other = api.status(api.token("sandbox-user-2"), publish_id)
    assert (unknown.status_code, error_code(unknown)) == (400, "invalid_publish_id")
    assert (other.status_code, error_code(other)) == (
        400,
        "token_not_authorized_for_specified_publish_id",
    )


def test_paths_need_their_trailing_slash(api: Api, sandbox: Sandbox) -> None:
    """/v2/post/publish/status/fetch (no slash) is 404 and a recorded violation."""
    response = api.http.post(
        sandbox.base_url + "/v2/post/publish/status/fetch", json={}, timeout=10
    )
    assert response.status_code == 404
    assert any("trailing slash" in v for v in sandbox.violations())


def test_wrong_method_is_405(api: Api, sandbox: Sandbox) -> None:
    """GET on a POST endpoint is 405 in the posting envelope."""
    response = api.http.get(api.url("video_init"), timeout=10)
    assert response.status_code == 405
    assert response.json()["data"] == {}


def test_unaudited_limits_do_not_apply_to_inbox_drafts(unaudited: Api) -> None:
    """Inbox uploads carry no privacy level: an unaudited app may send them to any account."""
    api = unaudited
    response = api.init_video(api.token("pub"), SMALL, SMALL, 1, endpoint="inbox_init")
    assert response.status_code == 200, response.text
