"""Which state database a command uses: the home's SQLite file, or a shared PostgreSQL server.

The one place that chooses between :class:`~orchestrator.store.db.Database` and
:class:`~orchestrator.store.postgres.PostgresDatabase`, from ``Settings.store_url`` (``--store``
or ``ORCHESTRATOR_STORE``). It must not read the environment or print.
"""

from __future__ import annotations

from orchestrator.config import Settings
from orchestrator.errors import ConfigError
from orchestrator.store.db import DB_FILENAME, DEFAULT_BUSY_TIMEOUT, Database, StoreDatabase

POSTGRES_EXTRA_INSTALL = "pip install 'tiktok-orchestrator[postgres]'"


def is_shared(settings: Settings) -> bool:
    """Whether the settings name a shared (PostgreSQL) store rather than the home's file."""
    return settings.store_url is not None


def has_state(settings: Settings) -> bool:
    """Whether the home's store may hold a journal: a shared store always may; the SQLite
    store only once its ``state.db`` exists (reading commands never create it)."""
    return is_shared(settings) or (settings.home / DB_FILENAME).exists()


def open_database(
    settings: Settings, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, create: bool = True
) -> StoreDatabase:
    """Open (migrating, and creating if needed and ``create``) the store the settings name."""
    if settings.store_url is None:
        return Database.open(settings.home, busy_timeout=busy_timeout, create=create)
    try:
        import psycopg  # noqa: F401  (the postgres extra: checked here to say how to get it)
    except ImportError:
        raise ConfigError(
            "--store / ORCHESTRATOR_STORE names a PostgreSQL server, but the PostgreSQL driver "
            "(psycopg) is not installed",
            hint=f"install the postgres extra: {POSTGRES_EXTRA_INSTALL}",
        ) from None
    from orchestrator.store.postgres import PostgresDatabase

    return PostgresDatabase.open(settings.store_url)
