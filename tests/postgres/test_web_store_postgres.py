"""The web tables on PostgreSQL: the same rules as on SQLite, under concurrent callers."""

from __future__ import annotations

import threading

from orchestrator.clock import ManualClock
from orchestrator.secret import Secret
from orchestrator.store.postgres import PostgresDatabase
from orchestrator.store.web import ApiKeyStore, InviteStore, WebPostStore


def test_one_idempotency_key_makes_one_post_across_connections(pg_url: str) -> None:
    """20 threads (each its own connection) adding one key at once: one post, the same id
    for all; invites and API keys work as on SQLite."""
    clock = ManualClock()
    database = PostgresDatabase.open(Secret(pg_url))
    try:
        posts = WebPostStore(database, clock=clock)
        ids: list[str] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        barrier = threading.Barrier(20)

        def add() -> None:
            try:
                barrier.wait(30)
                post, _made = posts.add("same-key", body_digest="d", entry="{}")
                with lock:
                    ids.append(post.id)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=add) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        assert len(ids) == 20
        assert len(set(ids)) == 1
        assert len(posts.recent()) == 1

        invites = InviteStore(database, clock=clock)
        made = invites.create("Client", ["video.upload"])
        assert invites.find_by_token(made.token) is not None
        assert invites.mark_used(made.invite.id, "creator")
        assert not invites.mark_used(made.invite.id, "creator")
        keys = ApiKeyStore(database, clock=clock)
        key = keys.create("n8n")
        assert keys.authenticate(key.value) is not None
        assert keys.revoke(key.key.id)
        assert keys.authenticate(key.value) is None
    finally:
        database.close()
