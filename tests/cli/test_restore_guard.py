"""Restoring an old copy of state.db cannot make a run post again (issue 13 §2).

Through the real command against the sandbox: a backup taken after the first run, a second run
that posts more, the backup put back → every command refuses (exit 1), nothing reaches TikTok;
`store accept-restore` → runs go on, with the journal the backup holds.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from click.testing import CliRunner, Result

from orchestrator.cli import cli
from orchestrator.store.db import DB_FILENAME
from tests.support.run_support import Served, assert_published_once

USER = "sandbox-user-1"


def invoke(served: Served, *args: str) -> Result:
    old = Path.cwd()
    os.chdir(served.folder)
    try:
        return CliRunner().invoke(cli, list(args), env=served.env)
    finally:
        os.chdir(old)


def backup(home: Path, to: Path) -> None:
    source, target = sqlite3.connect(home / DB_FILENAME), sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def restore(home: Path, copy: Path) -> None:
    for leftover in ("-wal", "-shm"):
        (home / f"{DB_FILENAME}{leftover}").unlink(missing_ok=True)
    (home / DB_FILENAME).write_bytes(copy.read_bytes())
    (home / DB_FILENAME).chmod(0o600)


def test_an_old_copy_of_the_store_is_refused_until_accepted(served: Served) -> None:
    """Run (a), back up, run (a, b), restore the backup: `run` and `history` exit 1 naming the
    restore and `store accept-restore`, and TikTok gets no request; after accept-restore a run
    of the entries the backup knows (a) and a new one (c) posts only c: one post per video."""
    (a, digest_a), (b, digest_b), (c, digest_c) = (served.clip(f"{n}.mp4") for n in "abc")
    first = served.manifest([{"user_id": USER, "video_path": a.name}], name="first.json")
    both = served.manifest(
        [{"user_id": USER, "video_path": p.name} for p in (a, b)], name="both.json"
    )
    assert invoke(served, "run", str(first)).exit_code == 0
    copy = served.folder / "state-backup.db"
    backup(served.home, copy)
    assert invoke(served, "run", str(both)).exit_code == 0
    assert_published_once(served.sandbox, [digest_a, digest_b])

    restore(served.home, copy)
    calls = served.sandbox.calls()
    for args in (("run", str(both)), ("history",), ("auth", "list")):
        result = invoke(served, *args)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        assert "older than the last state database used in this home" in result.output
        assert "store accept-restore" in result.output
    assert served.sandbox.calls() == calls
    assert_published_once(served.sandbox, [digest_a, digest_b])

    accepted = invoke(served, "store", "accept-restore")
    assert accepted.exit_code == 0, accepted.output
    assert "latest state database" in accepted.output
    later = served.manifest(
        [{"user_id": USER, "video_path": p.name} for p in (a, c)], name="later.json"
    )
    result = invoke(served, "run", str(later))
    assert result.exit_code == 0, result.output
    assert_published_once(served.sandbox, [digest_a, digest_b, digest_c])


def test_accept_restore_refuses_a_postgres_store(served: Served) -> None:
    """The guard is for the home's file: with --store naming a server, exit 2, nothing done."""
    result = invoke(served, "--store", "postgresql://u@127.0.0.1:1/db", "store", "accept-restore")
    assert result.exit_code == 2, result.output
    assert "PostgreSQL store is not restored from a file copy" in result.output
