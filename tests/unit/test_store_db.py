"""The state database: private files, WAL, migrations, damage and version errors, threads."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from orchestrator.errors import (
    StoreCorruptError,
    StoreError,
    StoreMissingError,
    StorePermissionError,
)
from orchestrator.store.db import DB_FILENAME, MIGRATIONS, Database, Migration

posix_only = pytest.mark.skipif(os.name != "posix", reason="mode bits are POSIX")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@posix_only
def test_new_home_and_database_are_private(home: Path) -> None:
    """A new home is created 0700 and state.db 0600, whatever the umask."""
    old = os.umask(0o022)
    try:
        with Database.open(home) as db:
            db.fetch_all("SELECT 1")
    finally:
        os.umask(old)
    assert mode(home) == 0o700
    assert mode(home / DB_FILENAME) == 0o600


@posix_only
def test_wal_companion_files_are_private(home: Path) -> None:
    """The -wal and -shm files SQLite makes next to state.db are 0600 too."""
    with Database.open(home) as db:
        with db.transaction() as connection:
            connection.execute("INSERT INTO store_meta (name, value) VALUES ('x', x'00')")
        companions = [p for p in home.iterdir() if p.name != DB_FILENAME]
        assert companions, "WAL mode keeps a -wal file while connections are open"
        for path in companions:
            assert mode(path) == 0o600, path


@posix_only
def test_home_readable_by_others_is_refused_with_the_fix(home: Path) -> None:
    """A home others can read is refused, and the message gives the chmod that fixes it."""
    home.mkdir(mode=0o700)
    os.chmod(home, 0o755)  # noqa: S103 - the permissive mode is what is under test
    with pytest.raises(StorePermissionError) as caught:
        Database.open(home)
    assert str(home) in str(caught.value)
    assert caught.value.hint == f"chmod 700 {home}"
    assert not (home / DB_FILENAME).exists()


@posix_only
def test_database_file_readable_by_group_is_refused(home: Path) -> None:
    """A state.db the group can read is refused with `chmod 600`."""
    Database.open(home).close()
    os.chmod(home / DB_FILENAME, 0o640)
    with pytest.raises(StorePermissionError) as caught:
        Database.open(home)
    assert caught.value.hint == f"chmod 600 {home / DB_FILENAME}"


def test_wal_mode_and_busy_timeout_are_set(home: Path) -> None:
    """Connections use WAL and wait for other writers instead of failing at once."""
    with Database.open(home, busy_timeout=12.5) as db:
        assert db.fetch_one("PRAGMA journal_mode")[0] == "wal"  # type: ignore[index]
        assert db.fetch_one("PRAGMA busy_timeout")[0] == 12500  # type: ignore[index]


def test_schema_version_counts_migrations(home: Path) -> None:
    """A new database is migrated to the number of known migrations."""
    with Database.open(home) as db:
        assert db.schema_version() == len(MIGRATIONS)
        tables = {row[0] for row in db.fetch_all("SELECT name FROM sqlite_master")}
    assert {"users", "store_meta"} <= tables


def test_appended_migration_runs_once_on_an_existing_database(home: Path) -> None:
    """Appending a migration upgrades an old file and keeps its data; reopening is a no-op."""
    with Database.open(home) as db, db.transaction() as connection:
        connection.execute("INSERT INTO store_meta (name, value) VALUES ('kept', x'01')")
    extra = (*MIGRATIONS, Migration("notes", ("CREATE TABLE notes (body TEXT)",)))
    with Database.open(home, migrations=extra) as db:
        assert db.schema_version() == len(extra)
        assert db.fetch_one("SELECT value FROM store_meta WHERE name = 'kept'") is not None
    with Database.open(home, migrations=extra) as db:
        assert db.schema_version() == len(extra)


def test_failed_migration_leaves_the_old_version(home: Path) -> None:
    """A migration that fails rolls back entirely: version and tables unchanged."""
    Database.open(home).close()
    broken = (
        *MIGRATIONS,
        Migration("half", ("CREATE TABLE half (x)", "THIS IS NOT SQL")),
    )
    with pytest.raises(StoreError):
        Database.open(home, migrations=broken)
    with Database.open(home) as db:
        assert db.schema_version() == len(MIGRATIONS)
        assert db.fetch_one("SELECT name FROM sqlite_master WHERE name = 'half'") is None


def test_newer_schema_is_refused_and_left_untouched(home: Path) -> None:
    """A file from a newer orchestrator gives a clear error and is not modified."""
    Database.open(home).close()
    raw = sqlite3.connect(home / DB_FILENAME)
    raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 3}")
    raw.close()
    before = (home / DB_FILENAME).read_bytes()
    with pytest.raises(StoreCorruptError) as caught:
        Database.open(home)
    assert "newer tiktok-orchestrator" in str(caught.value)
    assert "upgrade" in (caught.value.hint or "")
    assert (home / DB_FILENAME).read_bytes() == before


def test_garbage_file_is_reported_as_damaged_not_reinitialised(home: Path) -> None:
    """A state.db that is not a database names the file and the fix, and is left as it was."""
    home.mkdir(mode=0o700)
    path = home / DB_FILENAME
    path.write_bytes(b"this is not an sqlite database " * 200)
    os.chmod(path, 0o600)
    with pytest.raises(StoreCorruptError) as caught:
        Database.open(home)
    assert str(path) in str(caught.value)
    assert "mv" in (caught.value.hint or "")
    assert path.read_bytes() == b"this is not an sqlite database " * 200


def test_damaged_pages_are_reported_at_open(home: Path) -> None:
    """A database whose pages were overwritten is refused when opened, not mid-run."""
    with Database.open(home) as db, db.transaction() as connection:
        connection.execute("CREATE TABLE filler (x BLOB)")
        for _ in range(50):
            connection.execute("INSERT INTO filler VALUES (randomblob(2000))")
    path = home / DB_FILENAME
    data = bytearray(path.read_bytes())
    page = 4096
    data[page * 2 : page * 6] = b"\xff" * (page * 4)  # keep the header, ruin some pages
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError) as caught:
        Database.open(home)
    assert "damaged" in str(caught.value)


def test_each_thread_gets_its_own_connection(home: Path) -> None:
    """Threads never share a sqlite3 connection, and close() closes all of them."""
    seen: list[sqlite3.Connection] = []
    with Database.open(home) as db:

        def work() -> None:
            connection = db.connection()
            connection.execute("SELECT 1").fetchall()
            seen.append(connection)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seen.append(db.connection())
    assert len({id(c) for c in seen}) == 4
    with pytest.raises(sqlite3.ProgrammingError):
        seen[0].execute("SELECT 1")


def test_transaction_rolls_back_on_error(home: Path) -> None:
    """An exception inside a transaction leaves nothing written."""
    with Database.open(home) as db:

        def failing_write() -> None:
            with db.transaction() as connection:
                connection.execute("INSERT INTO store_meta (name, value) VALUES ('gone', x'00')")
                raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            failing_write()
        assert db.fetch_one("SELECT 1 FROM store_meta WHERE name = 'gone'") is None


def test_transactions_do_not_nest(home: Path) -> None:
    """Opening a transaction inside another on the same thread is a programming error."""
    with (
        Database.open(home) as db,
        db.transaction(),
        pytest.raises(RuntimeError, match="nest"),
        db.transaction(),
    ):
        pass


def test_writer_waiting_past_busy_timeout_gets_a_store_error(home: Path) -> None:
    """A writer locked out longer than busy_timeout gets a StoreError, not a sqlite3 error."""
    with Database.open(home, busy_timeout=0.05) as db:
        blocker = sqlite3.connect(home / DB_FILENAME, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="locked by another process"), db.transaction():
                pass
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()


def test_threads_writing_at_once_all_commit(home: Path) -> None:
    """Many threads writing at once queue for the write lock; every write lands."""
    with Database.open(home) as db:
        with db.transaction() as connection:
            connection.execute("INSERT INTO store_meta (name, value) VALUES ('count', 0)")

        def bump() -> None:
            for _ in range(25):
                with db.transaction() as connection:
                    value = connection.execute(
                        "SELECT value FROM store_meta WHERE name = 'count'"
                    ).fetchone()[0]
                    connection.execute(
                        "UPDATE store_meta SET value = ? WHERE name = 'count'", (value + 1,)
                    )

        threads = [threading.Thread(target=bump) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        row = db.fetch_one("SELECT value FROM store_meta WHERE name = 'count'")
        assert row is not None
        assert row[0] == 16 * 25


def test_writer_waiting_on_another_thread_past_busy_timeout_gets_a_store_error(home: Path) -> None:
    """A thread kept from writing longer than busy_timeout by another thread gets StoreError."""
    with Database.open(home, busy_timeout=0.05) as db:
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with db.transaction():
                holding.set()
                release.wait(timeout=10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert holding.wait(timeout=10)
            with pytest.raises(StoreError, match="locked by another writer"), db.transaction():
                pass
        finally:
            release.set()
            holder.join()
        with db.transaction():  # the lock is free again once the holder is done
            pass


def _synchronous(db: Database) -> int:
    row = db.fetch_one("PRAGMA synchronous")
    assert row is not None
    return int(row[0])


_FULL, _NORMAL = 2, 1


def test_commits_wait_for_the_disk_unless_a_step_opts_out(home: Path) -> None:
    """Every commit is synced (FULL); durable=False skips the sync for that commit only, and
    what it wrote is committed for every other reader."""
    with Database.open(home) as db:
        assert _synchronous(db) == _FULL
        with db.transaction(durable=False) as connection:
            assert int(connection.execute("PRAGMA synchronous").fetchone()[0]) == _NORMAL
            connection.execute("INSERT INTO store_meta (name, value) VALUES ('step', x'01')")
        assert _synchronous(db) == _FULL
        other = sqlite3.connect(home / DB_FILENAME)
        try:
            assert other.execute("SELECT value FROM store_meta WHERE name = 'step'").fetchone()
        finally:
            other.close()


def test_failed_non_durable_transaction_leaves_commits_durable(home: Path) -> None:
    """A durable=False transaction that rolls back or cannot start restores synced commits."""
    with Database.open(home, busy_timeout=0.05) as db:
        with pytest.raises(ValueError, match="boom"), db.transaction(durable=False):
            raise ValueError("boom")
        assert _synchronous(db) == _FULL
        blocker = sqlite3.connect(home / DB_FILENAME, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="locked"), db.transaction(durable=False):
                pass
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert _synchronous(db) == _FULL


def test_home_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """ORCHESTRATOR_HOME pointing at a file is an error, not a crash."""
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(StoreError, match="not a folder"):
        Database.open(target)


@pytest.mark.parametrize("content", [b"", b"\x00"], ids=["0-byte", "1-byte"])
def test_truncated_state_db_is_refused_never_reinitialised(home: Path, content: bytes) -> None:
    """A 0- or 1-byte state.db (truncated) is refused with how to restore it, and left as it
    was: a new empty store would have no journal and post every entry again."""
    home.mkdir(mode=0o700)
    path = home / DB_FILENAME
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(StoreCorruptError) as caught:
        Database.open(home)
    assert str(path) in str(caught.value)
    hint = caught.value.hint or ""
    assert "backup" in hint
    assert ".recover" in hint
    assert path.read_bytes() == content


def test_another_programs_database_is_refused(home: Path) -> None:
    """An SQLite file with tables but none of ours (user_version 0) is not initialised."""
    home.mkdir(mode=0o700)
    path = home / DB_FILENAME
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE notes (body TEXT)")
    connection.commit()
    connection.close()
    os.chmod(path, 0o600)
    with pytest.raises(StoreCorruptError, match="holds no tiktok-orchestrator schema"):
        Database.open(home)
    check = sqlite3.connect(path)
    tables = [row[0] for row in check.execute("SELECT name FROM sqlite_master")]
    check.close()
    assert tables == ["notes"]


def test_a_renamed_column_in_the_schema_text_is_refused(home: Path) -> None:
    """A flipped byte that leaves the schema readable but a column renamed is damage, found at
    open (not as "no such column" halfway through a run)."""
    Database.open(home).close()
    path = home / DB_FILENAME
    raw = bytearray(path.read_bytes())
    at = raw.index(b"needs_login        TEXT")
    raw[at] = ord("m")  # "needs_login" -> "meeds_login"
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreCorruptError, match="users does not match"):
        Database.open(home)


def test_a_missing_store_is_not_created_when_create_is_false(home: Path) -> None:
    """Read-only callers open with create=False: no home, no state.db, a StoreMissingError."""
    with pytest.raises(StoreMissingError, match="no state database"):
        Database.open(home, create=False)
    assert not home.exists()


def test_a_store_created_meanwhile_by_another_opener_wins(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creation is atomic: when another process creates state.db (and writes to it) while this
    one prepares its new file, the other's file is kept and opened, and nothing is left over."""
    real_link = os.link

    def other_process_first(source: str | Path, target: str | Path) -> None:
        monkeypatch.setattr("orchestrator.store.db.os.link", real_link)
        with Database.open(home) as other, other.transaction() as connection:
            connection.execute("INSERT INTO store_meta (name, value) VALUES ('marker', x'01')")
        real_link(source, target)

    home.mkdir(mode=0o700)
    monkeypatch.setattr("orchestrator.store.db.os.link", other_process_first)
    with Database.open(home) as db:
        assert db.fetch_one("SELECT value FROM store_meta WHERE name = 'marker'") is not None
    assert sorted(p.name for p in home.iterdir() if p.name.startswith(".")) == []
