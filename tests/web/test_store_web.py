"""The web tables (store/web.py): invites, API keys, posts made over HTTP, connect states."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.clock import ManualClock
from orchestrator.errors import UsageError
from orchestrator.store.db import MIGRATIONS, Database
from orchestrator.store.tokens import TokenStore
from orchestrator.store.web import (
    API_KEY_PREFIX,
    ApiKeyStore,
    AttemptFor,
    ConnectStateStore,
    IdempotencyConflict,
    InviteState,
    InviteStore,
    PostState,
    WebPostStore,
)


@pytest.fixture
def invites(token_store: TokenStore, clock: ManualClock) -> InviteStore:
    return InviteStore(token_store.database, clock=clock)


def test_an_invite_opens_once_and_expires(invites: InviteStore, clock: ManualClock) -> None:
    """An invite is found by its token, used once, and counts as expired after its lifetime."""
    made = invites.create("Client X", ["video.upload"], lifetime=3600)
    assert len(made.token) >= 43  # 32 random bytes, base64url
    found = invites.find_by_token(made.token)
    assert found is not None
    assert found.state(clock.time()) is InviteState.OPEN
    assert invites.find_by_token(made.token + "x") is None
    assert invites.mark_used(made.invite.id, "creator-1")
    assert not invites.mark_used(made.invite.id, "creator-2")
    used = invites.get(made.invite.id)
    assert used is not None
    assert used.state(clock.time()) is InviteState.USED
    assert used.open_id == "creator-1"
    late = invites.create("Late", ["video.upload"], lifetime=60)
    clock.advance(61)
    assert invites.find_by_token(late.token).state(clock.time()) is InviteState.EXPIRED  # type: ignore[union-attr]
    assert not invites.mark_used(late.invite.id, "creator-3")


def test_a_revoked_invite_cannot_be_used(invites: InviteStore, clock: ManualClock) -> None:
    """Revoking an open invite makes it unusable; revoking twice is a no-op."""
    made = invites.create("Client", ["video.upload"])
    assert invites.revoke(made.invite.id)
    assert not invites.revoke(made.invite.id)
    assert invites.get(made.invite.id).state(clock.time()) is InviteState.REVOKED  # type: ignore[union-attr]
    assert not invites.mark_used(made.invite.id, "creator-1")


def test_an_invite_needs_a_label_and_a_lifetime(invites: InviteStore) -> None:
    """An empty label or a non-positive lifetime is refused with a hint."""
    with pytest.raises(UsageError, match="needs a label"):
        invites.create(" ", ["video.upload"])
    with pytest.raises(UsageError, match="lifetime"):
        invites.create("x", ["video.upload"], lifetime=0)


def test_api_keys_authenticate_until_revoked(token_store: TokenStore, clock: ManualClock) -> None:
    """A key authenticates (and its last use is stamped) until it is revoked."""
    keys = ApiKeyStore(token_store.database, clock=clock)
    made = keys.create("n8n")
    assert made.value.startswith(API_KEY_PREFIX)
    clock.advance(5)
    found = keys.authenticate(made.value)
    assert found is not None
    assert found.id == made.key.id
    assert keys.list()[0].last_used_at == clock.time()
    assert keys.authenticate(made.value[:-1]) is None
    assert keys.authenticate("not-a-key") is None
    assert keys.revoke(made.key.id)
    assert keys.authenticate(made.value) is None


@pytest.fixture
def posts(token_store: TokenStore, clock: ManualClock) -> Iterator[WebPostStore]:
    return WebPostStore(token_store.database, clock=clock)


def test_an_idempotency_key_makes_one_post(posts: WebPostStore) -> None:
    """The same key and body return the same post; another body is a conflict."""
    first, made = posts.add("key-1", body_digest="d1", entry='{"user_id": "a"}')
    again, made_again = posts.add("key-1", body_digest="d1", entry='{"user_id": "a"}')
    assert made
    assert not made_again
    assert again.id == first.id
    with pytest.raises(IdempotencyConflict):
        posts.add("key-1", body_digest="d2", entry='{"user_id": "b"}')
    assert [post.id for post in posts.recent()] == [first.id]
    assert posts.cancel(first.id)
    assert posts.cancel(first.id)  # a DELETE repeated: still cancelled


def test_a_claim_and_a_cancel_exclude_each_other(posts: WebPostStore, clock: ManualClock) -> None:
    """A claimed post cannot be cancelled and a cancelled one cannot be claimed; a claim whose
    lease ran out is taken over, and a released post the journal lacks is cancellable again."""
    taken, _ = posts.add("key-1", body_digest="d", entry='{"user_id": "a"}')
    dropped, _ = posts.add("key-2", body_digest="d", entry='{"user_id": "a"}')
    assert posts.claim(taken.id, "w1", lease=60)
    assert not posts.cancel(taken.id)
    assert not posts.claim(taken.id, "w2", lease=60)
    assert posts.cancel(dropped.id)
    assert not posts.claim(dropped.id, "w1", lease=60)
    assert [post.id for post in posts.open_posts()] == [taken.id]
    clock.advance(61)
    assert posts.claim(taken.id, "w2", lease=60)
    assert posts.renew([taken.id], "w1", lease=60) == 0
    posts.release(taken.id, "w2", started=False)
    assert posts.cancel(taken.id)


def test_only_the_claimant_sets_a_post_aside_and_no_worker_takes_it_again(
    posts: WebPostStore, clock: ManualClock
) -> None:
    """``reject`` works for the worker holding the post only; the set-aside post keeps its
    problems, leaves the queue, is never claimed again, and a DELETE can still cancel it."""
    post, _ = posts.add("key-1", body_digest="d", entry='{"user_id": "a"}')
    assert not posts.reject(post.id, "w1", ["not claimed yet"])
    assert posts.claim(post.id, "w1", lease=60)
    assert not posts.reject(post.id, "w2", ["another worker's claim"])
    clock.advance(5)
    assert posts.reject(post.id, "w1", ["video.mp4: no such file"])
    rejected = posts.get(post.id)
    assert rejected is not None
    assert rejected.state is PostState.REJECTED
    assert rejected.rejection == ("video.mp4: no such file",)
    assert rejected.rejected_at == clock.time()
    assert rejected.claimed_by is None
    assert posts.open_posts() == []
    assert [found.id for found in posts.rejected()] == [post.id]
    posts.release(post.id, "w1", started=False)  # the pass's own release changes nothing
    clock.advance(3600)  # long past any lease
    assert not posts.claim(post.id, "w2", lease=60)
    assert posts.get(post.id).state is PostState.REJECTED  # type: ignore[union-attr]
    assert posts.cancel(post.id)
    assert posts.get(post.id).state is PostState.CANCELLED  # type: ignore[union-attr]
    assert posts.rejected() == []


def test_a_store_from_before_set_aside_posts_keeps_its_queue(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Upgrading a store made before the set-aside migration keeps its queued posts queued
    (nothing set aside), and the upgraded store can set one aside."""
    home = tmp_path / "home"
    with Database.open(home, migrations=MIGRATIONS[:-1]) as old, old.transaction() as connection:
        connection.execute(
            "INSERT INTO web_posts (id, idempotency_key, body_digest, entry, created_at) "
            "VALUES ('p1', 'key-1', 'd', '{\"user_id\": \"a\"}', 1.0)"
        )
    with Database.open(home) as database:
        assert database.schema_version() == len(MIGRATIONS)
        posts = WebPostStore(database, clock=clock)
        [post] = posts.open_posts()
        assert (post.id, post.state, post.rejected_at, post.rejection) == (
            "p1",
            PostState.QUEUED,
            None,
            (),
        )
        assert posts.claim("p1", "w1", lease=60)
        assert posts.reject("p1", "w1", ["gone"])
        assert posts.open_posts() == []


def test_concurrent_posts_with_one_key_make_one_post(posts: WebPostStore) -> None:
    """20 threads adding the same key at once: one post, every caller gets it."""
    results: list[str] = []
    lock = threading.Lock()

    def add() -> None:
        post, _made = posts.add("same", body_digest="d", entry="{}")
        with lock:
            results.append(post.id)

    threads = [threading.Thread(target=add) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 20
    assert len(set(results)) == 1
    assert len(posts.recent()) == 1


def test_a_connect_state_is_used_once_by_its_browser(
    token_store: TokenStore, clock: ManualClock
) -> None:
    """A state is consumed once, only with the cookie it was bound to, and only while fresh."""
    states = ConnectStateStore(token_store.database, clock=clock)
    states.add(
        "state-1", purpose=AttemptFor.invite("inv"), sealed_verifier=b"sealed", browser="cookie-a"
    )
    assert states.consume("state-1", browser="cookie-b", max_age=600) is None
    assert states.consume("state-1", browser="cookie-a", max_age=600) is None  # burnt above
    states.add(
        "state-2", purpose=AttemptFor.invite("inv"), sealed_verifier=b"sealed", browser="cookie-a"
    )
    found = states.consume("state-2", browser="cookie-a", max_age=600)
    assert found is not None
    assert found.purpose == AttemptFor.invite("inv")
    assert found.sealed_verifier == b"sealed"
    assert states.consume("state-2", browser="cookie-a", max_age=600) is None
    states.add(
        "state-3", purpose=AttemptFor.invite("inv"), sealed_verifier=b"s", browser="cookie-a"
    )
    clock.advance(601)
    assert states.consume("state-3", browser="cookie-a", max_age=600) is None


@pytest.mark.parametrize("link_id", ["link-1", None])
def test_a_review_sign_in_state_says_so_and_names_its_link(
    token_store: TokenStore, clock: ManualClock, link_id: str | None
) -> None:
    """A review sign-in is kept as one (not as an invite), with the link it started from."""
    states = ConnectStateStore(token_store.database, clock=clock)
    states.add(
        "state-r",
        purpose=AttemptFor.review_sign_in(link_id),
        sealed_verifier=b"s",
        browser="cookie-a",
    )
    found = states.consume("state-r", browser="cookie-a", max_age=600)
    assert found is not None
    assert found.purpose.review
    assert found.purpose.invite_id is None
    assert found.purpose.review_link_id == link_id
