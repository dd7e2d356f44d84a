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
  are an ordered tuple: the schema version is the number applied, and adding one is appending a
  :class:`Migration` to :data:`MIGRATIONS`.
- ``sqlite3`` connections must not be shared between threads, so :class:`Database` hands each
  thread its own connection and closes them all in :meth:`Database.close`.
- :meth:`Database.transaction` starts with ``BEGIN IMMEDIATE``: it takes the write lock up front,
  so a read-then-write inside it (the token refresh) is serialised across processes. Threads of
  one process first queue on a lock of their own, handed over as soon as a transaction ends
  (SQLite's busy handler would have them poll with sleeps).
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
import functools
import os
import secrets
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orchestrator.errors import (
    StoreCorruptError,
    StoreError,
    StoreMissingError,
    StorePermissionError,
)
from orchestrator.store import generation
from orchestrator.store.review_schema import REVIEW_V1

DB_FILENAME = "state.db"
DEFAULT_BUSY_TIMEOUT = 90.0
"""Seconds a writer waits for another one. Longer than a token refresh can hold the write lock
(three attempts with bounded timeouts, see ``tokens.py``), so a waiting process gets its turn."""

_SYNC_DURABLE = "PRAGMA synchronous = FULL"
_SYNC_DEFERRED = "PRAGMA synchronous = NORMAL"

_PRIVATE_BITS = stat.S_IRWXG | stat.S_IRWXO
# Extended result codes carry the primary code in their low byte.
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


@dataclass(frozen=True)
class Migration:
    """One schema step: a name for messages and the statements that take the schema there."""

    name: str
    statements: tuple[str, ...]


_TOKEN_STORE_V1 = (
    """
    CREATE TABLE store_meta (
        name  TEXT PRIMARY KEY,
        value BLOB NOT NULL
    )
    """,
    # Token values are AES-GCM blobs (crypto.py); expiries are Unix seconds; `needs_login` is
    # the reason a user must sign in again (NULL when the refresh token still works);
    # `generation` grows on every write so a refresher can tell another one got there first.
    """
    CREATE TABLE users (
        open_id            TEXT PRIMARY KEY,
        display_name       TEXT,
        scopes             TEXT NOT NULL,
        access_token       BLOB NOT NULL,
        access_expires_at  REAL NOT NULL,
        refresh_token      BLOB NOT NULL,
        refresh_expires_at REAL NOT NULL,
        needs_login        TEXT,
        created_at         REAL NOT NULL,
        updated_at         REAL NOT NULL,
        generation         INTEGER NOT NULL DEFAULT 1
    )
    """,
)

_JOURNAL_V1 = (
    # One row per entry identity. `request_digest` fingerprints what would be sent (caption,
    # post settings, media), so a changed entry can retry a permanent failure.
    # `uploaded_at`: when TikTok got the whole media (counts toward the daily caps).
    """
        CREATE TABLE journal (
            identity          TEXT PRIMARY KEY,
            entry_id          TEXT,
            user_id           TEXT NOT NULL,
            mode              TEXT NOT NULL,
            kind              TEXT NOT NULL,
            source            TEXT NOT NULL,
            request_digest    TEXT NOT NULL,
            state             TEXT NOT NULL,
            publish_id        TEXT,
            upload_url        BLOB,
            url_expires_at    REAL,
            video_size        INTEGER,
            chunk_size        INTEGER,
            total_chunk_count INTEGER,
            bytes_confirmed   INTEGER NOT NULL DEFAULT 0,
            last_status       TEXT,
            post_ids          TEXT NOT NULL DEFAULT '[]',
            error_code        TEXT,
            error_message     TEXT,
            error_log_id      TEXT,
            error_retryable   INTEGER,
            error_hint        TEXT,
            deferred_until    REAL,
            attempts          INTEGER NOT NULL DEFAULT 0,
            created_at        REAL NOT NULL,
            updated_at        REAL NOT NULL,
            uploaded_at       REAL,
            finished_at       REAL
        )
        """,
    "CREATE INDEX journal_user_uploaded ON journal (user_id, mode, uploaded_at)",
    """
        CREATE TABLE journal_events (
            id       INTEGER PRIMARY KEY,
            identity TEXT NOT NULL,
            run_id   TEXT,
            at       REAL NOT NULL,
            event    TEXT NOT NULL,
            detail   TEXT NOT NULL DEFAULT '{}'
        )
        """,
    "CREATE INDEX journal_events_identity ON journal_events (identity, id)",
)

_WORK_QUEUE_V1 = (
    # A shared run's entries (store/queue.py): enqueued once per run id and entry identity,
    # claimed by one worker at a time under a lease that expires if the worker dies. Used by
    # the PostgreSQL store; the same schema everywhere keeps the migrations one list.
    """
    CREATE TABLE work_queue (
        run_id      TEXT NOT NULL,
        identity    TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        position    INTEGER NOT NULL,
        state       TEXT NOT NULL DEFAULT 'pending',
        worker      TEXT,
        lease_until REAL,
        claims      INTEGER NOT NULL DEFAULT 0,
        result      TEXT,
        enqueued_at REAL NOT NULL,
        finished_at REAL,
        PRIMARY KEY (run_id, identity)
    )
    """,
    "CREATE INDEX work_queue_pending ON work_queue (run_id, state, user_id, position)",
    # The requests (reservations) of each user's rate windows, shared by every worker
    # (store/shared_pacing.py); `at` is Unix seconds.
    """
    CREATE TABLE rate_stamps (
        user_id TEXT NOT NULL,
        kind    TEXT NOT NULL,
        at      REAL NOT NULL
    )
    """,
    "CREATE INDEX rate_stamps_window ON rate_stamps (user_id, kind, at)",
)

_JOURNAL_V2 = (
    # The media fingerprint an upload was started with: an entry with an explicit id whose file
    # was replaced must not have the new file's bytes appended to the old file's upload.
    "ALTER TABLE journal ADD COLUMN media_fingerprint TEXT",
    # The daily caps count accepted inits per user over 24 hours from the event log.
    "CREATE INDEX journal_events_event_at ON journal_events (event, at)",
)

_CREATOR_HOLDS_V1 = (
    # Which worker of a shared store works on each creator (store/queue.py): a row per user,
    # taken and renewed by the worker's heartbeat under a lease on the database's clock, with a
    # counter that grows with every take (the fencing token a worker's writes are checked
    # against). Rows, not session advisory locks: they survive poolers in transaction mode,
    # idle-session limits and NAT timeouts, and a paused worker's creators come free.
    """
    CREATE TABLE creator_holds (
        user_id     TEXT PRIMARY KEY,
        worker      TEXT,
        lease_until REAL,
        counter     INTEGER NOT NULL DEFAULT 0
    )
    """,
)

_JOURNAL_V3 = (
    # The caps check asks, for every entry, for one user's inits of the last 24 hours: found
    # from the user's journal rows (this index leads with the user) and, per row, its inits
    # (the second), instead of every user's inits through journal_events_event_at, which made
    # each check cost more the more the run had done (issue 14).
    "CREATE INDEX journal_user_mode_identity ON journal (user_id, mode, identity)",
    "CREATE INDEX journal_events_identity_event_at ON journal_events (identity, event, at)",
)

_WEB_V1 = (
    # The `serve` web application (store/web.py). Every secret handed out (an invite token, an
    # API key, an OAuth state) is >= 128 random bits and kept only as its SHA-256 hex digest:
    # random secrets need no slow hash, and a leaked database hands out nothing usable.
    # Times are Unix seconds; `scopes` is comma-separated like users.scopes.
    """
    CREATE TABLE invites (
        id         TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        label      TEXT NOT NULL,
        scopes     TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at    REAL,
        revoked_at REAL,
        open_id    TEXT
    )
    """,
    """
    CREATE TABLE api_keys (
        id           TEXT PRIMARY KEY,
        key_hash     TEXT NOT NULL UNIQUE,
        label        TEXT NOT NULL,
        created_at   REAL NOT NULL,
        last_used_at REAL,
        revoked_at   REAL
    )
    """,
    # A post made through /api/v1: the manifest entry it stands for (JSON), the digest of the
    # request body (the same Idempotency-Key with another body is refused), and where an
    # uploaded video was spooled. The journal holds its progress under the entry's identity.
    """
    CREATE TABLE web_posts (
        id              TEXT PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        body_digest     TEXT NOT NULL,
        entry           TEXT NOT NULL,
        created_at      REAL NOT NULL,
        cancelled_at    REAL,
        upload_path     TEXT
    )
    """,
    "CREATE INDEX web_posts_created ON web_posts (created_at)",
    # One "Continue with TikTok" click: the OAuth state (hashed), the invite it is bound to,
    # the PKCE verifier sealed with the token cipher, and the hash of the browser cookie.
    """
    CREATE TABLE connect_states (
        state_hash      TEXT PRIMARY KEY,
        invite_id       TEXT NOT NULL,
        sealed_verifier BLOB NOT NULL,
        browser_hash    TEXT NOT NULL,
        created_at      REAL NOT NULL,
        used_at         REAL
    )
    """,
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration("token store", _TOKEN_STORE_V1),
    Migration("journal", _JOURNAL_V1),
    Migration("journal fingerprints and cap index", _JOURNAL_V2),
    Migration("work queue and shared rate windows", _WORK_QUEUE_V1),
    Migration("creator holds for shared runs", _CREATOR_HOLDS_V1),
    Migration("journal per-user init index", _JOURNAL_V3),
    Migration("web: invites, API keys, posts, connect states", _WEB_V1),
    Migration("creator review: items and links", REVIEW_V1),
    # Append new migrations here; never edit or reorder one that has shipped.
)


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
        self, *, durable: bool = True
    ) -> contextlib.AbstractContextManager[StoreConnection]: ...

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
        self._writers = threading.Lock()

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
        _check_header(path)
        database = cls(path, busy_timeout=busy_timeout)
        try:
            database._check_integrity()
            database._check_initialised()
            database._migrate(migrations)
            database._check_schema(migrations)
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
        """This thread's connection (made on first use)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the state database {self.path} is closed")
            with self.translate_errors():
                # check_same_thread=False only so close() can close every thread's connection;
                # each connection is used by the thread that made it and no other.
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
        self._local.connection = connection
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
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): commit on success, roll back on error.

        The write lock is taken at the start, so everything read inside is current and no other
        process can write until it ends. Transactions do not nest.

        ``durable=False`` commits without waiting for the disk: the change survives the process
        dying but may be lost, with whatever followed it, to a power cut or an OS crash before
        the next durable commit (see the module docstring). Only for steps a rerun recovers from.
        """
        connection = self.connection()
        if connection.in_transaction:
            raise RuntimeError("a transaction is already open on this thread; they do not nest")
        # This process's writers queue on a lock, handed over the moment a transaction ends;
        # SQLite's own busy handler would have them poll with sleeps of up to 100 ms, which at
        # a few dozen threads (a run with many --jobs) costs more than the writes themselves.
        # Other processes still meet SQLite's busy timeout.
        if not self._writers.acquire(timeout=self.busy_timeout):
            raise StoreError(
                f"{self.path} stayed locked by another writer in this process for more than "
                f"{self.busy_timeout:g} s",
                hint="a token refresh or a journal write is stuck; try again",
            )
        try:
            with self._write_transaction(connection, durable=durable):
                yield connection
        finally:
            self._writers.release()

    @contextlib.contextmanager
    def _write_transaction(
        self, connection: sqlite3.Connection, *, durable: bool
    ) -> Iterator[None]:
        with self.translate_errors():
            if not durable:
                # SQLite refuses to change the safety level inside a transaction.
                connection.execute(_SYNC_DEFERRED)
            try:
                connection.execute("BEGIN IMMEDIATE")
            except BaseException:
                if not durable:
                    connection.execute(_SYNC_DURABLE)
                raise
        try:
            try:
                yield
            except BaseException as exc:
                _rollback_quietly(connection)
                if isinstance(exc, sqlite3.DatabaseError) and _translatable(exc):
                    raise self._translate(exc) from exc
                if isinstance(exc, UnicodeDecodeError):
                    raise self._corrupt("its schema text is not valid UTF-8") from None
                raise
            try:
                with self.translate_errors():
                    connection.execute("COMMIT")
            finally:
                _rollback_quietly(connection)
        finally:
            if not durable:
                with self.translate_errors():
                    connection.execute(_SYNC_DURABLE)

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

    def _check_integrity(self) -> None:
        # quick_check reads every page (fast: milliseconds for a token store and journal) so a
        # damaged file is reported when it is opened, not halfway through a run.
        rows = self.fetch_all("PRAGMA quick_check")
        problems = [str(row[0]) for row in rows if str(row[0]) != "ok"]
        if problems:
            raise self._corrupt("; ".join(problems[:3]))

    def _check_initialised(self) -> None:
        # SQLite reads a 0-byte file as an empty database: an existing file without our schema
        # was truncated or is not ours, and initialising it would post every entry again.
        if self.schema_version() != 0:
            return
        tables = self.fetch_all("SELECT name FROM sqlite_master")
        size = self.path.stat().st_size
        what = (
            f"it is empty ({size} bytes)"
            if not tables
            else "it holds no tiktok-orchestrator schema (another program's database?)"
        )
        raise self._corrupt(what)

    def _check_schema(self, migrations: Sequence[Migration]) -> None:
        """Refuse a file whose tables or indexes differ from what the migrations make (a flipped
        byte in the schema text can leave SQLite reading a table with a renamed column)."""
        expected = _schema_of_migrations(tuple(migrations))
        with self.translate_errors():
            connection = self.connection()
            actual = _schema_of(connection)
        for name, columns in expected.items():
            if actual.get(name) != columns:
                raise self._corrupt(f"its {name} does not match the schema version it claims")

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


def _check_header(path: Path) -> None:
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


def _rollback_quietly(connection: sqlite3.Connection) -> None:
    """End a transaction left open by an error (SQLite may already have rolled it back)."""
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")


def _translatable(exc: BaseException) -> bool:
    """sqlite3 errors about the file or its locking, not programming mistakes in our SQL."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.ProgrammingError | sqlite3.InterfaceError
    )
