"""The restore guard: tell the latest ``state.db`` from an older copy put back in its place.

A backup of ``state.db`` restored over the live file lacks the journal of every post made since
the backup; a run on it would post those entries again. SQLite cannot tell an old file from the
latest one, so the home keeps a witness beside it. This module keeps it; it must not print,
read the environment, or touch anything but the counter row and the witness file.

Theory of operation:

- The database holds a generation counter (``store_meta`` row ``generation``; a database from
  before the guard reads as 0) and the home holds the highest value it has seen committed, in
  ``state.generation`` (a number, 0600, written atomically by ``files.write_atomic``).
- Every open that may create or post (``create=True``: ``run``, ``auth login``, ``auth import``)
  raises the counter by one inside a write transaction, commits, and only then writes the new
  value to the file (unless the file already holds as much: another process got there first).
  Other opens only compare. A witness that cannot be written (a full disk) is a warning, not a
  stop: the database is ahead of it, which the rule accepts.
- The rule, checked on every open: the database's counter must be at least the file's.
  Because the file is written after the commit, never before, the file can never get ahead of
  the live database on its own: a crash between the commit and the file write leaves the file one
  behind, which passes, and the next open writes it. So the only way to have the database
  behind the file is to put an older ``state.db`` in its place (a backup, a copy, a deleted file
  made again): refused with :class:`StoreRestoredError` (exit 1), nothing changed or sent.
- A database ahead of the file (the file lost, or the home copied without it) passes: it knows
  at least as much as the file says; the next raising open writes the file again. No file at
  all is a home that predates the guard: it passes and starts being tracked.
- ``store accept-restore`` is the way past a deliberate restore: it raises the counter above
  both and writes the file, so the restored database becomes the latest one.

Limits: a copy taken while a command was writing (after its open raised the counter) carries
that counter, so a restore of it before the next ``run``/``auth`` open is not told apart from the
live file. PostgreSQL shared stores are not guarded here: they are not restored by copying a
file, and the server's own backups and point-in-time recovery are the operator's business.
"""

from __future__ import annotations

import logging
import sqlite3
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.errors import FileWriteError, StoreCorruptError, StoreRestoredError
from orchestrator.files import write_atomic

if TYPE_CHECKING:
    from orchestrator.store.db import Database

log = logging.getLogger(__name__)

GENERATION_FILENAME = "state.generation"
_META_NAME = "generation"
ACCEPT_RESTORE_COMMAND = "tiktok-orchestrator store accept-restore"


class Standing(StrEnum):
    """How a database's counter stands against the home's witness file."""

    UNTRACKED = "untracked"  # no witness file yet: the home predates the guard
    CURRENT = "current"  # the database's counter is at least the file's
    RESTORED = "restored"  # the database is behind: an older copy than the home last used


def standing(db_generation: int, file_generation: int | None) -> Standing:
    """The rule: a database behind the file is an older copy; anything else may be used."""
    if file_generation is None:
        return Standing.UNTRACKED
    if db_generation < file_generation:
        return Standing.RESTORED
    return Standing.CURRENT


def read_file_generation(home: Path) -> int | None:
    """The counter in ``home/state.generation``, or None when there is no such file."""
    path = home / GENERATION_FILENAME
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad_file(path, getattr(exc, "strerror", None) or "not a number") from None
    value = text.strip()
    if not value.isdigit():
        raise _bad_file(path, "not a number")
    return int(value)


def check_generation(database: Database, home: Path) -> int:
    """Refuse an older copy (``StoreRestoredError``); return the database's counter. Writes
    nothing (for commands that must not create or change anything)."""
    row = database.fetch_one("SELECT value FROM store_meta WHERE name = ?", (_META_NAME,))
    db_generation = _counter(database, row)
    _refuse_if_restored(database, db_generation, read_file_generation(home))
    return db_generation


def raise_generation(database: Database, home: Path) -> int:
    """Check, then raise the counter by one (committed), then write it to the witness file."""
    with database.transaction() as connection:
        db_generation = _counter(database, _select(connection))
        _refuse_if_restored(database, db_generation, read_file_generation(home))
        raised = db_generation + 1
        _store(connection, raised)
    _write_file(home, raised)
    return raised


def accept_restore(database: Database, home: Path) -> tuple[int, int | None]:
    """Make this database the home's latest: its counter goes above the file's. Returns the
    counters found (database, file) before the change."""
    with database.transaction() as connection:
        db_generation = _counter(database, _select(connection))
        file_generation = read_file_generation(home)
        raised = max(db_generation, file_generation or 0) + 1
        _store(connection, raised)
    _write_file(home, raised, force=True)
    return db_generation, file_generation


def _select(connection: sqlite3.Connection) -> sqlite3.Row | None:
    row: sqlite3.Row | None = connection.execute(
        "SELECT value FROM store_meta WHERE name = ?", (_META_NAME,)
    ).fetchone()
    return row


def _store(connection: sqlite3.Connection, value: int) -> None:
    connection.execute(
        "INSERT INTO store_meta (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (_META_NAME, value),
    )


def _counter(database: Database, row: sqlite3.Row | None) -> int:
    if row is None:
        return 0
    value = row[0]
    if isinstance(value, int) and value >= 0:
        return value
    from orchestrator.store.integrity import damaged_store_error

    raise damaged_store_error(database.path, "its generation counter is not a number")


def _refuse_if_restored(
    database: Database, db_generation: int, file_generation: int | None
) -> None:
    if standing(db_generation, file_generation) is not Standing.RESTORED:
        return
    path = database.path
    raise StoreRestoredError(
        f"{path} is older than the last state database used in this home (generation "
        f"{db_generation}, the home has seen {file_generation}): it was restored from a backup, "
        "copied, or made again; its journal may lack posts made since, so a run would post "
        "those entries again. Nothing was changed or sent",
        hint=(
            f"put the latest {path.name} back if you have it; if the restore is deliberate, check "
            "the creators' profiles, take the entries posted since the backup out of the "
            f"manifest, then run `{ACCEPT_RESTORE_COMMAND}` (with the same --home)"
        ),
    )


def _write_file(home: Path, value: int, *, force: bool = False) -> None:
    # Another process may have raised the counter further meanwhile: never lower the file.
    if not force and (read_file_generation(home) or 0) >= value:
        return
    path = home / GENERATION_FILENAME
    try:
        write_atomic(path, f"{value}\n".encode("ascii"), mode=0o600)
    except FileWriteError as exc:
        # The database is already ahead of the file, which the rule accepts: a full disk here
        # must not stop the command, it only leaves the guard one step behind until next time.
        log.warning("%s; the restore guard is behind until the next run writes it", exc)


def _bad_file(path: Path, detail: str) -> StoreCorruptError:
    return StoreCorruptError(
        f"{path} (the state database's restore guard) cannot be read ({detail}); nothing was "
        "changed or sent",
        hint=f"if the state.db beside it is the latest one, run `{ACCEPT_RESTORE_COMMAND}`",
    )
