"""Every test leaves the ``orchestrator`` logger as it found it.

The CLI's logging setup points the logger at click's captured stderr (and stops propagation);
without this, one CLI test's handlers would write into the next test's closed streams.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo whatever a test (usually a `run` through the CLI) did to the orchestrator logger."""
    logger = logging.getLogger("orchestrator")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate
