"""Bounded reading for the built-in container readers (isobmff.py, webm.py): positional reads
counted against a byte budget and a box count, so a 4 GB file costs a few kilobytes and a
hostile one cannot make a reader loop.

What this module must not do: interpret what it reads.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import BinaryIO

from orchestrator.errors import MediaError
from orchestrator.media.model import Measurement

# Bounds for the built-in readers: a real moov needs a few KB of these; more means a broken or
# hostile file, and we stop with what we have rather than keep reading.
STRUCTURE_READ_BUDGET = 4 * 1024 * 1024
MAX_BOXES = 100_000


class OverBudget(Exception):
    """The file needs more reading than the budget allows; stop with what we have."""


class BoundedReader:
    """Positional reads from a file, counting bytes and boxes against fixed budgets."""

    def __init__(self, file: BinaryIO, size: int, *, budget: int = STRUCTURE_READ_BUDGET) -> None:
        self.file = file
        self.size = size
        self.budget = budget
        self.spent = 0
        self.boxes = 0

    def read_at(self, offset: int, count: int) -> bytes:
        count = max(0, min(count, self.size - offset))
        if self.spent + count > self.budget:
            raise OverBudget
        self.file.seek(offset)
        data = self.file.read(count)
        self.spent += len(data)
        if len(data) < count:
            # The file shrank under us, or its stat size lied.
            raise MediaError("is cut short: it ends before its stated size")
        return data

    def count_box(self) -> None:
        self.boxes += 1
        if self.boxes > MAX_BOXES:
            raise OverBudget


def cut_short(what: str, offset: int, end: int, file_size: int) -> MediaError:
    return MediaError(
        f"is cut short: its {what} at byte {offset} runs to byte {end}, "
        f"but the file ends at byte {file_size}",
        hint="the copy or export did not finish; copy or export the video again",
    )


def measure_within_budget(
    read: Callable[[BoundedReader], Measurement], file: BinaryIO, size: int, budget: int
) -> Measurement:
    """Run a container reader over ``file`` within ``budget`` bytes.

    A header field cut short is damage (MediaError); a file that needs more reading than the
    budget allows leaves every quantity unknown rather than being read further.
    """
    reader = BoundedReader(file, size, budget=budget)
    try:
        return read(reader)
    except struct.error:
        raise MediaError("is damaged: a header field is cut short") from None
    except OverBudget:
        return Measurement(
            gaps=tuple(
                (what, "the file's structure is too large to inspect cheaply")
                for what in ("duration", "size", "frame rate")
            )
        )
