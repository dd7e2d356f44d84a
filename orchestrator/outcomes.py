"""What became of an entry, as the report, the journal's readers and the engine all name it.

A leaf: the value types every layer shares (the upload engine fills :class:`ErrorInfo`, the
scheduler picks an :class:`EntryStatus`, the report renders both). It imports nothing from the
package, so any layer may import it without pulling in the network stack.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = [
    "FAILURE_STATUSES",
    "SKIPPED_STATUSES",
    "STATUSES",
    "SUCCESS_STATUSES",
    "EntryStatus",
    "ErrorInfo",
]


class EntryStatus(enum.StrEnum):
    """An entry's status in the run report (``schemas/report.schema.json``), in report order.

    A ``StrEnum``: each member *is* its string, so JSON, JUnit and Markdown output are the same
    as with bare strings, and mypy catches a misspelt status.
    """

    PUBLISHED = "published"
    SENT_TO_INBOX = "sent_to_inbox"
    ALREADY_DONE = "already_done"
    PROCESSING = "processing"
    DEFERRED = "deferred"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    PLANNED = "planned"
    AWAITING_REVIEW = "awaiting_review"
    DECLINED = "declined"


STATUSES: Final = tuple(EntryStatus)
"""Every entry status, in the order the report's summary lists them."""
SUCCESS_STATUSES: Final = frozenset(
    {EntryStatus.PUBLISHED, EntryStatus.SENT_TO_INBOX, EntryStatus.ALREADY_DONE}
)
FAILURE_STATUSES: Final = frozenset({EntryStatus.FAILED, EntryStatus.UNCERTAIN})
"""Statuses that fail a run (SPEC §8): the entry did not post, or may have and must be checked."""
SKIPPED_STATUSES: Final = frozenset(
    {
        EntryStatus.PROCESSING,
        EntryStatus.DEFERRED,
        EntryStatus.PLANNED,
        EntryStatus.AWAITING_REVIEW,
        EntryStatus.DECLINED,
    }
)


@dataclass(frozen=True)
class ErrorInfo:
    """Why an entry failed, was deferred or is uncertain, as TikTok and we explain it."""

    code: str
    message: str
    log_id: str | None = None
    retryable: bool = False
    hint: str | None = None
