"""Which state database a command uses: the home's SQLite file, or a shared PostgreSQL server.

The one place that chooses between :class:`~orchestrator.store.db.Database` and
:class:`~orchestrator.store.postgres.PostgresDatabase`, from ``Settings.store_url`` (``--store``
or ``ORCHESTRATOR_STORE``). It must not read the environment or print.
"""

from __future__ import annotations

from orchestrator.config import Settings
from orchestrator.store.db import DEFAULT_BUSY_TIMEOUT, Database, StoreDatabase


def is_shared(settings: Settings) -> bool:
    """Whether the settings name a shared (PostgreSQL) store rather than the home's file."""
    return settings.store_url is not None


def open_database(
    settings: Settings, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT
) -> StoreDatabase:
    """Open (creating and migrating if needed) the store the settings name."""
    if settings.store_url is None:
        return Database.open(settings.home, busy_timeout=busy_timeout)
    from orchestrator.store.postgres import PostgresDatabase

    return PostgresDatabase.open(settings.store_url)
