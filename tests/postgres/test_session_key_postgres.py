"""``serve``'s session key on PostgreSQL: instances starting at once agree on one key."""

from __future__ import annotations

import secrets
import threading

from orchestrator.secret import Secret
from orchestrator.store.crypto import KeySource, TokenCipher
from orchestrator.store.postgres import PostgresDatabase
from orchestrator.store.web import SESSION_KEY_NAME, session_signing_key


def test_instances_starting_at_once_share_one_session_key(pg_url: str) -> None:
    """8 connections asking for the key at the same moment all get the same one, kept in one
    sealed store_meta row; a later start reads that key again."""
    cipher = TokenCipher(secrets.token_bytes(32), KeySource("test key", from_environment=True))
    keys: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)
    lock = threading.Lock()

    def start() -> None:
        database = PostgresDatabase.open(Secret(pg_url))
        try:
            barrier.wait(30)
            key = session_signing_key(database, cipher).reveal()
            with lock:
                keys.append(key)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(keys) == 8
    assert len(set(keys)) == 1
    database = PostgresDatabase.open(Secret(pg_url))
    try:
        assert session_signing_key(database, cipher).reveal() == keys[0]
        rows = database.fetch_all(
            "SELECT value FROM store_meta WHERE name = ?", (SESSION_KEY_NAME,)
        )
        assert len(rows) == 1
        assert keys[0].encode() not in bytes(rows[0]["value"])
    finally:
        database.close()
