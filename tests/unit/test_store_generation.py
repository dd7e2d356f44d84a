"""The restore guard (store/generation.py): an older copy of state.db is refused, a crash
between the database's commit and the witness file never locks the user out."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from orchestrator.errors import FileWriteError, StoreCorruptError, StoreRestoredError
from orchestrator.store import generation
from orchestrator.store.db import DB_FILENAME, Database
from orchestrator.store.generation import GENERATION_FILENAME, Standing, standing
from tests.support.run_support import backup_store, restore_store


@pytest.mark.parametrize(
    ("db", "file", "expected"),
    [
        (0, None, Standing.UNTRACKED),  # a new home, or one from before the guard
        (7, None, Standing.UNTRACKED),  # the witness file was lost: nothing to compare
        (5, 5, Standing.CURRENT),
        (6, 5, Standing.CURRENT),  # crash after the commit, before the file write
        (9, 5, Standing.CURRENT),  # the home copied without its file: the database knows more
        (4, 5, Standing.RESTORED),  # an older copy
        (0, 5, Standing.RESTORED),  # state.db made again (or from before the guard) in a used home
    ],
)
def test_rule_table(db: int, file: int | None, expected: Standing) -> None:
    """A database behind the home's witness is an older copy; anything else may be used."""
    assert standing(db, file) is expected


def test_each_writing_open_raises_the_generation_in_the_database_and_the_file(
    tmp_path: Path,
) -> None:
    """Creating the store writes generation 1; each later writing open one more; the file is
    private; a read-only open changes neither."""
    home = tmp_path / "home"
    Database.open(home).close()
    witness = home / GENERATION_FILENAME
    assert witness.read_text() == "1\n"
    assert stat.S_IMODE(witness.stat().st_mode) == 0o600
    Database.open(home).close()
    assert witness.read_text() == "2\n"
    with Database.open(home, create=False) as database:
        assert generation.check_generation(database, home) == 2
    assert witness.read_text() == "2\n"


def test_an_older_copy_is_refused_by_every_open_and_nothing_is_changed(tmp_path: Path) -> None:
    """A backup restored after a later writing open: refused (read-only opens too), with the
    accept-restore command in the hint; the file and the witness are left as they were."""
    home = tmp_path / "home"
    Database.open(home).close()
    backup_store(home, tmp_path / "copy.db")
    Database.open(home).close()
    restore_store(home, tmp_path / "copy.db")
    before = (home / DB_FILENAME).read_bytes()
    for create in (True, False):
        with pytest.raises(StoreRestoredError) as caught:
            Database.open(home, create=create)
        assert "older than the last state database used in this home" in str(caught.value)
        assert "store accept-restore" in (caught.value.hint or "")
    assert (home / DB_FILENAME).read_bytes() == before
    assert (home / GENERATION_FILENAME).read_text() == "2\n"


def test_accept_restore_makes_the_copy_the_latest(tmp_path: Path) -> None:
    """After accept_restore the restored file opens, and a copy older than it is refused."""
    home = tmp_path / "home"
    Database.open(home).close()
    backup_store(home, tmp_path / "copy.db")
    Database.open(home).close()
    restore_store(home, tmp_path / "copy.db")
    Database.open(home, create=False, accept_restore=True).close()
    assert (home / GENERATION_FILENAME).read_text() == "3\n"
    Database.open(home).close()
    assert (home / GENERATION_FILENAME).read_text() == "4\n"


class _Crash(BaseException):
    """The process dying right there (nothing catches it)."""


def test_a_crash_between_the_commit_and_the_file_write_does_not_lock_the_user_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database commits generation 2, then the process dies before the file is written:
    the file says 1, the database 2, and the next open goes on and writes 3."""
    home = tmp_path / "home"
    Database.open(home).close()

    def crash(path: Path, data: bytes, *, mode: int = 0o644) -> None:
        raise _Crash()

    monkeypatch.setattr(generation, "write_atomic", crash)
    with pytest.raises(_Crash):
        Database.open(home)
    monkeypatch.undo()
    assert (home / GENERATION_FILENAME).read_text() == "1\n"
    Database.open(home).close()
    assert (home / GENERATION_FILENAME).read_text() == "3\n"


def test_a_full_disk_at_the_file_write_is_a_warning_not_a_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The witness cannot be written (ENOSPC): the open goes on, saying so in the log."""
    home = tmp_path / "home"
    Database.open(home).close()

    def full(path: Path, data: bytes, *, mode: int = 0o644) -> None:
        raise FileWriteError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(generation, "write_atomic", full)
    with caplog.at_level("WARNING", logger="orchestrator.store.generation"):
        Database.open(home).close()
    assert "No space left on device" in caplog.text
    assert (home / GENERATION_FILENAME).read_text() == "1\n"


def test_a_lost_witness_file_is_written_again_and_a_deleted_store_is_refused(
    tmp_path: Path,
) -> None:
    """No witness file (a home from before the guard): the open passes and writes one. A
    state.db made again in a home that had one is behind the witness: refused."""
    home = tmp_path / "home"
    Database.open(home).close()
    Database.open(home).close()
    (home / GENERATION_FILENAME).unlink()
    Database.open(home).close()
    assert (home / GENERATION_FILENAME).read_text() == "3\n"
    (home / DB_FILENAME).unlink()
    with pytest.raises(StoreRestoredError):
        Database.open(home)


def test_a_garbled_witness_file_is_a_clear_error(tmp_path: Path) -> None:
    """A witness that is not a number: refused, naming the file and the way out."""
    home = tmp_path / "home"
    Database.open(home).close()
    (home / GENERATION_FILENAME).write_text("x7\n")
    with pytest.raises(StoreCorruptError) as caught:
        Database.open(home)
    assert GENERATION_FILENAME in str(caught.value)
    assert "accept-restore" in (caught.value.hint or "")
