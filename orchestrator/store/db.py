"""The state database: one SQLite file, ``state.db``, in the orchestrator's home.

(:class:`StoreDatabase` is the seam the token store, the journal and the queue use; the
PostgreSQL backend in ``postgres.py`` implements it too, with these same migrations.)

This module opens it safely and keeps its schema current; it knows nothing about tokens or the
journal beyond their tables. It must not hold secrets in plaintext, print, or re-create a damaged
file: a damaged or too-new database is an error naming the file and the fix, never a silent
re-init that would lose tokens and the journal (and with it, the guarantee never to post twice).

Theory of operation:

- Only a missing ``state.db`` is created, and atomically: the schema is written to a private
  temporary file that is then linked into place (``os.link`` fails if the name exists, so of two
  processes creating a home at once one wins and the other opens the winner's file). A file that
  exists is never initialised: SQLite opens a 0-byte file as an empty database, so an existing
  file with no schema (``user_version`` 0: truncated, or another program's database) or whose
  tables do not match the migrations is refused as damaged, with how to restore it. Read-only
  commands open with ``create=False`` and create nothing (no home, no file, no key).

- An older copy of ``state.db`` put in place of the latest one (a restored backup) is refused:
  the database and the home each keep a generation counter (``generation.py``).

- The home folder is private (0700) and every file in it 0600; a home or file that group or
  others can access is refused with the ``chmod`` that fixes it (tokens are encrypted, but the
  journal and the key file are not meant for other users either).
- WAL journal mode lets readers go on while one writer writes; ``busy_timeout`` makes a writer
  wait for another process's write transaction instead of failing at once.
- The schema version is SQLite's ``PRAGMA user_version`` (it lives in the file header and changes
  inside the migrating transaction, so a crash mid-migration leaves the old version). Migrations
  are an ordered tuple (``migrations.py``): the schema version is the number applied, and adding
  one is appending a :class:`Migration` to :data:`MIGRATIONS`.
- What makes a file damaged (its header, ``quick_check``, no schema, a schema that differs from
  the migrations') is told apart in ``integrity.py``.
- ``sqlite3`` connections must not be used by two threads at once, so :class:`Database` hands
  each thread its own connection for reads and closes them all in :meth:`Database.close`.
- :meth:`Database.transaction` starts with ``BEGIN IMMEDIATE``: it takes the write lock up front,
  so a read-then-write inside it (the token refresh) is serialised across processes. Threads of
  one process write on one connection, taking turns (``group_commit.py``): the writers queued
  for the turn share one transaction and one commit, each in a savepoint of its own, and each
  returns only once that commit is done (SQLite's busy handler would have them poll with sleeps,
  and one fsync per write capped a run's writes, benchmarks/README.md §6).
- Durability: every commit waits for the disk (``synchronous = FULL``: the WAL is fsynced), so a
  committed step survives a power cut. A caller may ask for ``transaction(durable=False)`` for
  a step whose loss a rerun recovers from: it is committed (a killed process keeps it: it is in
  the operating system's cache) but not waited for; after a power cut or an OS crash the
  database holds every commit up to some point (WAL commits are ordered and checksummed), and
  the next durable commit makes every earlier one durable too. An fsync took 0.2 ms on the
  benchmark VM's disk; on many disks it takes milliseconds (benchmarks/README.md).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from orchestrator.errors import (
    StoreCorruptError,
    StoreError,
    StoreMissingError,
    StorePermissionError,
)
from orchestrator.store import generation
from orchestrator.store.group_commit import GroupCommit
from orchestrator.store.integrity import (
    check_header,
    check_initialised,
    check_integrity,
    check_schema,
    damaged_store_error,
)
from orchestrator.store.migrations import MIGRATIONS, Migration

__all__ = [
    "DB_FILENAME",
    "DEFAULT_BUSY_TIMEOUT",
    "MIGRATIONS",
    "Database",
    "Migration",
    "StoreConnection",
    "StoreDatabase",
    "create_private_file",
    "damaged_store_error",
    "ensure_private_home",
    "require_private",
]

DB_FILENAME = "state.db"
DEFAULT_BUSY_TIMEOUT = 90.0
"""Seconds a writer waits for another one. Longer than a token refresh can hold the write lock
(three attempts with bounded timeouts, see ``tokens.py``), so a waiting process gets its turn."""

_SYNC_DURABLE = "PRAGMA synchronous = FULL"

_PRIVATE_BITS = stat.S_IRWXG | stat.S_IRWXO
# Extended result codes carry the primary code in their low byte.
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


class StoreConnection(Protocol):
    """What the store modules do with a connection: run a statement with ``?`` placeholders."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...


class StoreDatabase(Protocol):
    """The backend seam: what the token store, the journal and the queue need of a database.

    :class:`Database` (SQLite, the default) and ``postgres.PostgresDatabase`` implement it.
    """

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        ...

    @property
    def lock_suffix(self) -> str:
        """Appended to a SELECT inside a transaction to lock the rows read (SQLite: nothing,
        its write transactions lock the whole file)."""
        ...

    @property
    def location(self) -> str:
        """The database for messages (a path, or a server; never a password)."""
        ...

    def transaction(
        self, *, durable: bool = True, alone: bool = False
    ) -> contextlib.AbstractContextManager[StoreConnection]:
        """``alone``: the body waits on something slow (a token refresh asks TikTok inside its
        transaction), so it must not share a commit with other writes (SQLite's group commit:
        those would wait for it)."""
        ...

    def fetch_all(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]: ...

    def fetch_one(self, sql: str, parameters: Sequence[Any] = ()) -> Any: ...

    def close(self) -> None: ...


def ensure_private_home(home: Path) -> None:
    """Create ``home`` (0700) if missing; refuse it if group or others can access it."""
    if not home.exists():
        try:
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir's mode is filtered by the umask; set it exactly.
            os.chmod(home, 0o700)
        except OSError as exc:
            raise StoreError(
                f"cannot create the orchestrator home {home}: {exc.strerror}",
                hint="set ORCHESTRATOR_HOME (or --home) to a folder you can write",
            ) from exc
    if not home.is_dir():
        raise StoreError(
            f"the orchestrator home {home} is not a folder",
            hint="set ORCHESTRATOR_HOME (or --home) to a folder",
        )
    require_private(home, fix="chmod 700")


def require_private(path: Path, *, fix: str = "chmod 600") -> None:
    """Refuse ``path`` if its mode lets group or others read, write or enter it (POSIX only)."""
    if os.name != "posix":
        return  # Windows has ACLs, not mode bits; the home under the user's profile is private.
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from exc
    if mode & _PRIVATE_BITS:
        raise StorePermissionError(
            f"{path} can be accessed by group or others (mode {stat.S_IMODE(mode):04o}); "
            "it holds the token store and must be private",
            hint=f"{fix} {path}",
        )


def create_private_file(path: Path) -> None:
    """Create an empty 0600 file at ``path`` unless it exists (SQLite would use the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create {path}: {exc.strerror}") from exc
    os.close(fd)


class Database:
    """The open state database: one connection per thread, schema current, errors translated.

    Open it with :meth:`open`; close it with :meth:`close` (or use it as a context manager).
    """

    dialect = "sqlite"
    lock_suffix = ""

    def __init__(self, path: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self._writer = GroupCommit(
            self._connect,
            self.translate_errors,
            location=str(path),
            timeout=busy_timeout,
        )

    @classmethod
    def open(
        cls,
        home: Path,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        migrations: Sequence[Migration] = MIGRATIONS,
        create: bool = True,
        accept_restore: bool = False,
    ) -> Database:
        """Open ``home/state.db``: private, WAL, checked, migrated, not an older copy.

        A missing file is created (with ``create``; without it, ``StoreMissingError`` and
        nothing is made, not even the home). A file that exists is never initialised again: one
        without our schema is refused as damaged. One older than the last used in this home is
        refused (``generation.py``); ``create`` raises the home's generation, ``accept_restore``
        (``store accept-restore``) makes this file the latest one instead of refusing it.
        """
        path = home / DB_FILENAME
        if not create and not path.exists():
            raise StoreMissingError(
                f"there is no state database at {path} yet (no user has signed in on this "
                "home); nothing was created",
                hint="check --home / ORCHESTRATOR_HOME; sign a user in with `auth login` or "
                "`auth import FILE`",
            )
        ensure_private_home(home)
        if path.exists() and not path.is_file():
            raise StoreError(f"{path} is not a regular file", hint=f"move {path} aside")
        if not path.exists():
            _create_database(path, migrations)
        for companion in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            if companion.exists():
                require_private(companion)
        check_header(path)
        database = cls(path, busy_timeout=busy_timeout)
        try:
            check_integrity(database)
            check_initialised(database)
            database._migrate(migrations)
            check_schema(database, migrations)
            if accept_restore:
                generation.accept_restore(database, home)
            elif create:
                generation.raise_generation(database, home)
            else:
                generation.check_generation(database, home)
        except BaseException:
            database.close()
            raise
        return database

    @property
    def location(self) -> str:
        return str(self.path)

    # -- connections ------------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (made on first use), for reads; writes go through
        :meth:`transaction`, on the one connection the process writes with."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
        return connection

    def _connect(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the state database {self.path} is closed")
            with self.translate_errors():
                # check_same_thread=False so close() can close every thread's connection, and
                # the writing connection can pass from thread to thread with the writer's turn
                # (group_commit.py); a connection is never used by two threads at once.
                connection = sqlite3.connect(
                    self.path,
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
                try:
                    connection.row_factory = sqlite3.Row
                    connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
                    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                    if str(mode).lower() != "wal":
                        raise StoreError(
                            f"{self.path}: SQLite would not switch to WAL mode (got {mode})",
                            hint="keep ORCHESTRATOR_HOME on a local file system",
                        )
                    # Said explicitly: a build's default may be NORMAL, which in WAL mode does
                    # not sync at commit.
                    connection.execute(_SYNC_DURABLE)
                    connection.execute("PRAGMA foreign_keys = ON")
                except BaseException:
                    connection.close()
                    raise
            self._connections.append(connection)
        return connection

    def close(self) -> None:
        """Close every thread's connection. The database cannot be used afterwards."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- transactions and queries -----------------------------------------------------------

    @contextlib.contextmanager
    def transaction(
        self, *, durable: bool = True, alone: bool = False
    ) -> Iterator[sqlite3.Connection]:
        """A write transaction: returns once committed (on disk, if ``durable``); rolled back
        on error.

        The write lock is taken at the start (``BEGIN IMMEDIATE``), so everything read inside
        is current and no other process can write until it ends. Transactions do not nest.
        Writers of this process that queue for it share one transaction and one commit, each
        inside a savepoint of its own (``group_commit.py``): a write whose body raises is
        rolled back alone; a failed commit is reported to every write it held.

        ``durable=False`` commits without waiting for the disk: the change survives the process
        dying but may be lost, with whatever followed it, to a power cut or an OS crash before
        the next durable commit (see the module docstring). Only for steps a rerun recovers from.

        ``alone=True`` for a body that waits on something slow (a call to TikTok): the writes
        already in a shared transaction are committed first, and none joins this one.
        """
        if getattr(self._local, "writing", False):
            raise RuntimeError("a transaction is already open on this thread; they do not nest")
        self._local.writing = True
        try:
            with self._writer.write(durable=durable, alone=alone) as connection:
                try:
                    yield connection
                except sqlite3.DatabaseError as exc:
                    if _translatable(exc):
                        raise self._translate(exc) from exc
                    raise
                except UnicodeDecodeError:
                    raise self._corrupt("its schema text is not valid UTF-8") from None
        finally:
            self._local.writing = False

    def fetch_all(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read query on this thread's connection (outside any explicit transaction)."""
        with self.translate_errors():
            return list(self.connection().execute(sql, parameters).fetchall())

    def fetch_one(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Row | None:
        """The first row of a read query, or ``None``."""
        rows = self.fetch_all(sql, parameters)
        return rows[0] if rows else None

    @contextlib.contextmanager
    def translate_errors(self) -> Iterator[None]:
        """Turn ``sqlite3`` errors raised inside into :class:`StoreError` types."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if not _translatable(exc):
                raise
            raise self._translate(exc) from exc
        except UnicodeDecodeError:
            # sqlite3 decodes SQLite's messages as UTF-8; one quoting damaged schema text is not.
            raise self._corrupt("its schema text is not valid UTF-8") from None

    def _translate(self, exc: sqlite3.DatabaseError) -> StoreError:
        code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
        if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            return self._corrupt(str(exc))
        if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return StoreError(
                f"{self.path} stayed locked by another process for more than "
                f"{self.busy_timeout:g} s",
                hint="another orchestrator is writing to this home; try again when it is done",
            )
        return StoreError(f"{self.path}: {exc}")

    def _corrupt(self, detail: str) -> StoreCorruptError:
        return damaged_store_error(self.path, detail)

    # -- opening ----------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The number of migrations applied to the file."""
        row = self.fetch_one("PRAGMA user_version")
        assert row is not None
        return int(row[0])

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        known = len(migrations)
        if self.schema_version() == known:
            return
        with self.transaction() as connection:
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            if version > known:
                raise StoreCorruptError(
                    f"{self.path} has schema version {version}, written by a newer "
                    f"tiktok-orchestrator; this one knows up to version {known}",
                    hint="upgrade tiktok-orchestrator (the file was left untouched)",
                )
            for migration in migrations[version:]:
                for statement in migration.statements:
                    connection.execute(statement)
            # PRAGMA takes no parameters; `known` is an int we computed.
            connection.execute(f"PRAGMA user_version = {known}")


def _create_database(path: Path, migrations: Sequence[Migration]) -> None:
    """Create ``path`` with the full schema, atomically: written to a private temporary file,
    then linked into place only if ``path`` still does not exist (another process may have
    created it meanwhile: then its file is the one, and ours is dropped)."""
    temporary = path.with_name(f".{path.name}.new-{os.getpid()}-{secrets.token_hex(4)}")
    create_private_file(temporary)
    try:
        connection = sqlite3.connect(temporary, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            for migration in migrations:
                for statement in migration.statements:
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {len(migrations)}")
            connection.execute("COMMIT")
        finally:
            connection.close()
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot create the state database {path}: {exc}") from None
    except OSError as exc:
        raise StoreError(
            f"cannot create the state database {path}: {exc.strerror or exc}",
            hint="free some disk space, or set ORCHESTRATOR_HOME (or --home) to a folder you "
            "can write",
        ) from None
    finally:
        for leftover in (temporary, Path(f"{temporary}-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _translatable(exc: BaseException) -> bool:
    """sqlite3 errors about the file or its locking, not programming mistakes in our SQL."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.ProgrammingError | sqlite3.InterfaceError
    )
