"""Restoring an old copy of state.db cannot make a run post again (issue 13 §2).

Through the real command against the sandbox: a backup taken after the first run, a second run
that posts more, the backup put back → every command refuses (exit 1), nothing reaches TikTok;
`store accept-restore` → runs go on, with the journal the backup holds.
"""

from __future__ import annotations

from tests.support.run_support import Served, assert_published_once, backup_store, restore_store

USER = "sandbox-user-1"


def test_an_old_copy_of_the_store_is_refused_until_accepted(served: Served) -> None:
    """Run (a), back up, run (a, b), restore the backup: `run` and `history` exit 1 naming the
    restore and `store accept-restore`, and TikTok gets no request; after accept-restore a run
    of the entries the backup knows (a) and a new one (c) posts only c: one post per video."""
    (a, digest_a), (b, digest_b), (c, digest_c) = (served.clip(f"{n}.mp4") for n in "abc")
    first = served.manifest([{"user_id": USER, "video_path": a.name}], name="first.json")
    both = served.manifest(
        [{"user_id": USER, "video_path": p.name} for p in (a, b)], name="both.json"
    )
    assert served.invoke("run", str(first)).exit_code == 0
    copy = served.folder / "state-backup.db"
    backup_store(served.home, copy)
    assert served.invoke("run", str(both)).exit_code == 0
    assert_published_once(served.sandbox, [digest_a, digest_b])

    restore_store(served.home, copy)
    calls = served.sandbox.calls()
    for args in (("run", str(both)), ("history",), ("auth", "list")):
        result = served.invoke(*args)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert "older than the last state database used in this home" in result.output
        assert "store accept-restore" in result.output
    assert served.sandbox.calls() == calls
    assert_published_once(served.sandbox, [digest_a, digest_b])

    accepted = served.invoke("store", "accept-restore")
    assert accepted.exit_code == 0, accepted.output
    assert "latest state database" in accepted.output
    later = served.manifest(
        [{"user_id": USER, "video_path": p.name} for p in (a, c)], name="later.json"
    )
    result = served.invoke("run", str(later))
    assert result.exit_code == 0, result.output
    assert_published_once(served.sandbox, [digest_a, digest_b, digest_c])


def test_accept_restore_refuses_a_postgres_store(served: Served) -> None:
    """The guard is for the home's file: with --store naming a server, exit 2, nothing done."""
    result = served.invoke("--store", "postgresql://u@127.0.0.1:1/db", "store", "accept-restore")
    assert result.exit_code == 2, result.output
    assert "PostgreSQL store is not restored from a file copy" in result.output
