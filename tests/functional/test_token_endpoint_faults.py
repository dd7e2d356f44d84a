"""A token endpoint that fails once is an outage, not a lost login (issue 13 §2).

Only TikTok refusing the refresh token (``invalid_grant``) means ``needs_login``. A 5xx or a
reset from the token endpoint — before an upload or in the middle of one — defers the entry as
``unavailable`` (a later run retries it), leaves the user's other entries to be attempted, and
leaves the stored grant as it was, so ``auth list`` and the report agree.
"""

from __future__ import annotations

import pytest

from orchestrator.auth import list_users
from orchestrator.sandbox import Fault
from orchestrator.scheduler import RunOptions
from orchestrator.store.tokens import REFRESH_ATTEMPTS, TokenState, TokenStore
from tests.support.run_support import (
    Hooks,
    RunRig,
    assert_published_once,
)

USER = "sandbox-user-1"


def _fail_next_refresh(rig: RunRig, kind: str) -> None:
    """Every attempt of the next refresh fails (503 or a reset); the one after works."""
    first = rig.sandbox.calls("token") + 1
    for call in range(first, first + REFRESH_ATTEMPTS):
        rig.sandbox.schedule(Fault(endpoint="token", call=call, kind=kind, status=503))


def _auth_list_state(rig: RunRig) -> TokenState:
    with TokenStore.open(rig.settings, clock=rig.clock) as store:
        rows = list_users(store, clock=rig.clock, margin=300)
    (state,) = [row.state for row in rows if row.user.open_id == USER]
    return state


@pytest.mark.parametrize("kind", ["status", "reset"])
def test_token_endpoint_failing_at_init_defers_that_entry_and_the_next_one_posts(
    rig: RunRig, kind: str
) -> None:
    """TikTok refuses the access token at the second init (401) and the refresh then fails
    (503 / reset, every attempt): that entry is deferred `unavailable`, not `needs_login`; the
    user's third entry is still attempted and posts; auth list agrees; the rerun posts the
    deferred one, once."""
    clips = [rig.clip(f"{n}.mp4") for n in "abc"]
    manifest = rig.manifest([{"user_id": USER, "video_path": p.name} for p, _ in clips])
    hooks = Hooks()

    def after_first(entry: object, result: object) -> None:
        if len(hooks.finished) == 1:
            rig.sandbox.expire_access_tokens(USER)
            _fail_next_refresh(rig, kind)

    hooks.on_finished = after_first
    report = rig.run(manifest, RunOptions(jobs=1), observer=hooks)
    assert rig.statuses(report) == ["published", "deferred", "published"]
    error = report.entries[1].error
    assert error is not None
    assert error.code == "unavailable"
    assert error.retryable
    assert _auth_list_state(rig) is TokenState.FRESH

    again = rig.run(manifest, RunOptions(jobs=1))
    assert rig.statuses(again) == ["already_done", "published", "already_done"]
    assert_published_once(rig.sandbox, [digest for _, digest in clips])


def test_token_endpoint_failing_while_polling_keeps_the_upload_and_the_user(
    rig: RunRig,
) -> None:
    """The access token is refused while the first video is being polled and the refresh
    fails: that entry stays `processing` (TikTok has it; a later run polls), its error says
    `unavailable`, the user's next entry posts, and auth list says fresh."""
    (a, digest_a), (b, digest_b) = rig.clip("a.mp4"), rig.clip("b.mp4")
    manifest = rig.manifest(
        [{"user_id": USER, "video_path": a.name}, {"user_id": USER, "video_path": b.name}]
    )
    size = a.stat().st_size
    hooks = Hooks()

    def at_last_byte(entry: object, sent: int) -> None:
        if sent == size and not hooks.finished:
            rig.sandbox.expire_access_tokens(USER)
            _fail_next_refresh(rig, "status")

    hooks.on_progress = at_last_byte
    report = rig.run(manifest, RunOptions(jobs=1), observer=hooks)
    assert rig.statuses(report) == ["processing", "published"]
    error = report.entries[0].error
    assert error is not None
    assert error.code == "unavailable"
    assert _auth_list_state(rig) is TokenState.FRESH

    again = rig.run(manifest, RunOptions(jobs=1))
    assert rig.statuses(again) == ["published", "already_done"]
    assert_published_once(rig.sandbox, [digest_a, digest_b])


def test_token_endpoint_failing_before_any_upload_defers_as_unavailable(rig: RunRig) -> None:
    """The same fault before any upload (the access token has expired, the refresh fails):
    the same label, `unavailable`, deferred; nothing was marked as needing a login."""
    rig.clock.advance(7300)  # past the access token's two hours, long before the refresh's
    (a, _), (b, _) = rig.clip("a.mp4"), rig.clip("b.mp4")
    manifest = rig.manifest(
        [{"user_id": USER, "video_path": a.name}, {"user_id": USER, "video_path": b.name}]
    )
    _fail_next_refresh(rig, "reset")
    report = rig.run(manifest, RunOptions(jobs=1))
    assert rig.statuses(report) == ["deferred", "deferred"]
    for entry in report.entries:
        assert entry.error is not None
        assert entry.error.code == "unavailable"
    assert rig.sandbox.calls("video_init") == 0
    assert _auth_list_state(rig) is TokenState.EXPIRED  # not needs_login: a refresh will work
