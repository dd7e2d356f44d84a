"""Fixtures the unit tests share: a manual clock, and a token store and journal on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.clock import ManualClock
from orchestrator.config import Settings
from orchestrator.store.journal import Journal
from orchestrator.store.tokens import TokenStore


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(home: Path, clock: ManualClock) -> Iterator[TokenStore]:
    """A token store in the sealed home, on the manual clock."""
    with TokenStore.open(Settings(home=home), clock=clock) as opened:
        yield opened


@pytest.fixture
def journal(tmp_path: Path, clock: ManualClock) -> Iterator[Journal]:
    """A journal (run ``run-1``) in a fresh store, on the manual clock."""
    with TokenStore.open(Settings(home=tmp_path / "home"), clock=clock) as store:
        yield Journal(store.database, store.cipher, clock=clock, run_id="run-1")
