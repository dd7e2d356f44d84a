"""A post one ``serve`` instance sets aside on a PostgreSQL store is set aside for all of them.

Two workers (``ApiDrain``) with homes of their own share one PostgreSQL store, as two
``serve`` instances on two machines would: the post whose video went away is set aside by the
first one's pass, and the second one never claims it, while it publishes the other post.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from orchestrator.clock import SystemClock
from orchestrator.config import load_settings
from orchestrator.errors import ManifestError
from orchestrator.settings import RunSettings
from orchestrator.store.tokens import TokenStore
from orchestrator.store.web import PostState, WebPostStore
from orchestrator.tiktok.chunks import MIN_CHUNK
from orchestrator.web.worker import ApiDrain
from tests.support.run_support import USERS, Served, assert_published_once


def _drain(served: Served, url: str, home: Path, stack: list[TokenStore]) -> ApiDrain:
    """A worker of its own (own home, own name) on the shared store at ``url``."""
    home.mkdir(mode=0o700)
    settings = load_settings(
        environ={
            name: served.env[name]
            for name in ("ORCHESTRATOR_TOKEN_KEY", "TIKTOK_CLIENT_KEY", "TIKTOK_CLIENT_SECRET")
        },
        home=home,
        store=url,
        api_base=served.sandbox.base_url,
        auth_url=served.sandbox.auth_url,
    )
    store = TokenStore.open(settings, clock=SystemClock())
    stack.append(store)
    return ApiDrain(
        settings, store, clock=SystemClock(), tunables=RunSettings(chunk_size=MIN_CHUNK)
    )


def _add(posts: WebPostStore, key: str, user: str, clip: Path) -> str:
    entry = {"user_id": user, "video_path": str(clip), "privacy_level": "SELF_ONLY"}
    post, _ = posts.add(key, body_digest=key, entry=json.dumps(entry))
    return post.id


def test_a_post_set_aside_by_one_instance_is_skipped_by_the_other(
    shared: tuple[Served, str], tmp_path: Path
) -> None:
    """The first worker's pass sets aside the post whose video went away (nothing sent); the
    second worker neither lists nor claims it — not even from a list read before — and
    publishes the other post once."""
    served, url = shared
    stores: list[TokenStore] = []
    try:
        first = _drain(served, url, tmp_path / "home-1", stores)
        second = _drain(served, url, tmp_path / "home-2", stores)
        posts = WebPostStore(stores[0].database, clock=SystemClock())
        gone, _ = served.clip("gone.mp4")
        kept, digest = served.clip("kept.mp4")
        gone_id = _add(posts, "key-gone", USERS[0], gone)
        kept_id = _add(posts, "key-kept", USERS[1], kept)
        gone.unlink()
        stale, _ = second.pending()  # read before the first one's pass
        assert [post.id for post in stale] == [gone_id, kept_id]

        with pytest.raises(ManifestError):
            first(threading.Event())

        found = posts.get(gone_id)
        assert found is not None
        assert found.state is PostState.REJECTED
        assert any("gone.mp4" in problem for problem in found.rejection)
        assert second.claim([post for post in stale if post.id == gone_id]) == []
        due, queued = second.pending()
        assert ([post.id for post in due], queued) == ([kept_id], 1)
        outcome = second(threading.Event())
        assert outcome.ran
        assert outcome.queued == 0
        assert posts.get(gone_id).state is PostState.REJECTED  # type: ignore[union-attr]
        assert_published_once(served.sandbox, [digest])
    finally:
        for store in stores:
            store.close()
