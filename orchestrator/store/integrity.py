"""Telling a damaged state database apart, before anything reads or writes it.

A damaged or foreign ``state.db`` is never initialised again and never "fixed" by starting
over: a new, empty store has no journal, and the next run would post every entry again. Each
check here raises :class:`StoreCorruptError` naming the file, what is wrong and how to restore
it (:func:`damaged_store_error`):

- the header: a file that does not start as an SQLite database (SQLite would take a short
  file for a new database and write a header into it);
- ``PRAGMA quick_check``: every page readable;
- initialised: ``user_version`` 0 on an existing file means truncated, or another program's;
- the schema: every table and index as the migrations make them (a flipped byte in the
  schema text can leave SQLite reading a table with a renamed column).

It must not change the file.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import StoreCorruptError, StoreError
from orchestrator.store.migrations import Migration

if TYPE_CHECKING:
    from orchestrator.store.db import Database

__all__ = [
    "check_header",
    "check_initialised",
    "check_integrity",
    "check_schema",
    "damaged_store_error",
]


def damaged_store_error(path: Path, detail: str) -> StoreCorruptError:
    """The error for a damaged ``state.db``: what is wrong, where, and how to restore it.

    Never "delete it": a new, empty store has no journal, and the next run would post every
    entry again.
    """
    return StoreCorruptError(
        f"the state database {path} is damaged ({detail}); nothing was changed or sent",
        hint=(
            f"restore {path} from a backup (with its token.key), or recover what SQLite can "
            f"still read: `sqlite3 {path} .recover | sqlite3 {path}.recovered`, then "
            f"`mv {path} {path}.damaged && mv {path}.recovered {path}`; do not start over with "
            "an empty store: without the journal every entry would be posted again"
        ),
    )


_SQLITE_HEADER = b"SQLite format 3\x00"


def check_header(path: Path) -> None:
    """Refuse a file that does not start as an SQLite database, before SQLite opens it: SQLite
    takes a 0-byte (or short) file for a new database and would write a header into it."""
    try:
        with open(path, "rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from None
    if header == _SQLITE_HEADER:
        return
    if len(header) < len(_SQLITE_HEADER):
        size = path.stat().st_size
        raise damaged_store_error(path, f"it is cut short: {size} byte{'s' * (size != 1)}")
    raise damaged_store_error(path, "it is not an SQLite database")


def check_integrity(database: Database) -> None:
    """Refuse a file SQLite's ``quick_check`` finds damaged."""
    # quick_check reads every page (fast: milliseconds for a token store and journal) so a
    # damaged file is reported when it is opened, not halfway through a run.
    rows = database.fetch_all("PRAGMA quick_check")
    problems = [str(row[0]) for row in rows if str(row[0]) != "ok"]
    if problems:
        raise damaged_store_error(database.path, "; ".join(problems[:3]))


def check_initialised(database: Database) -> None:
    """Refuse an existing file without our schema (never initialise it)."""
    # SQLite reads a 0-byte file as an empty database: an existing file without our schema
    # was truncated or is not ours, and initialising it would post every entry again.
    if database.schema_version() != 0:
        return
    tables = database.fetch_all("SELECT name FROM sqlite_master")
    size = database.path.stat().st_size
    what = (
        f"it is empty ({size} bytes)"
        if not tables
        else "it holds no tiktok-orchestrator schema (another program's database?)"
    )
    raise damaged_store_error(database.path, what)


def check_schema(database: Database, migrations: Sequence[Migration]) -> None:
    """Refuse a file whose tables or indexes differ from what the migrations make (a flipped
    byte in the schema text can leave SQLite reading a table with a renamed column)."""
    expected = _schema_of_migrations(tuple(migrations))
    with database.translate_errors():
        connection = database.connection()
        actual = _schema_of(connection)
    for name, columns in expected.items():
        if actual.get(name) != columns:
            raise damaged_store_error(
                database.path, f"its {name} does not match the schema version it claims"
            )


_Schema = dict[str, tuple[tuple[Any, ...], ...]]


def _schema_of(connection: sqlite3.Connection) -> _Schema:
    """Each table's columns (name, type, not null, default, key) and each index's columns."""
    schema: _Schema = {}
    for kind, name in connection.execute(
        "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index') "
        "AND name NOT LIKE 'sqlite_%'"
    ).fetchall():
        pragma = "table_info" if kind == "table" else "index_info"
        rows = connection.execute(f'PRAGMA {pragma}("{name}")').fetchall()
        schema[f"{kind} {name}"] = tuple(tuple(row) for row in rows)
    return schema


@functools.cache
def _schema_of_migrations(migrations: tuple[Migration, ...]) -> _Schema:
    """What applying ``migrations`` to an empty database makes (built once, in memory)."""
    connection = sqlite3.connect(":memory:")
    try:
        for migration in migrations:
            for statement in migration.statements:
                connection.execute(statement)
        return _schema_of(connection)
    finally:
        connection.close()
