"""Planning's question "which earlier record did this entry id adopt?": the same answer as
ever, at a cost that does not grow with the journal's history (issue 14, item 9)."""

from __future__ import annotations

from orchestrator.clock import ManualClock
from orchestrator.store.journal import EntryMeta, Journal
from orchestrator.upload import Published


def entry(identity: str, entry_id: str | None, user: str) -> EntryMeta:
    return EntryMeta(identity, entry_id, user, "direct", "file", "a.mp4", "d", "f")


def reference(journal: Journal, entry_id: str) -> str | None:
    """The question asked plainly: the most recently changed row that ``entry_id`` adopted
    under another key."""
    for record in journal.history():  # most recently changed first
        if record.entry_id == entry_id and record.identity != entry_id:
            return record.identity
    return None


def test_by_entry_id_agrees_with_the_journal_for_every_id(
    journal: Journal, clock: ManualClock
) -> None:
    """Several users and ids, records kept under content keys and under their own ids, an id
    that adopted two records over time: each id finds its latest adopted record, or none."""
    for step in range(40):
        user = f"user-{step % 3}"
        entry_id = f"id-{step % 7}" if step % 5 else None
        identity = f"content-{step}" if step % 4 else (entry_id or f"content-{step}")
        journal.begin(entry(identity, entry_id, user))
        if step % 2:
            journal.record(identity, user, Published(("post",)))
        clock.advance(10)
    for entry_id in [*(f"id-{n}" for n in range(7)), "unknown"]:
        found = journal.by_entry_id(entry_id)
        assert (None if found is None else found.identity) == reference(journal, entry_id)
    assert journal.by_entry_id("id-1") is not None


def vm_steps(journal: Journal, entry_id: str) -> int:
    """SQLite virtual-machine instructions one ``by_entry_id`` call runs (machine-independent)."""
    connection = journal._database.connection()  # type: ignore[attr-defined]
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    connection.set_progress_handler(count, 1)
    try:
        journal.by_entry_id(entry_id)
    finally:
        connection.set_progress_handler(None, 1)
    return steps


def test_an_entry_id_lookup_costs_the_same_however_long_the_history(
    journal: Journal, clock: ManualClock
) -> None:
    """Planning asks this for each new entry with an id: ten times the journal's rows leave
    its cost where it was (it once read every row, each time)."""
    journal.begin(entry("content-mine", "mine", "me"))
    for n in range(30):
        journal.begin(entry(f"row-{n}", f"id-{n}", f"user-{n % 5}"))
    short = vm_steps(journal, "mine")
    for n in range(30, 300):
        journal.begin(entry(f"row-{n}", f"id-{n}", f"user-{n % 5}"))
    long = vm_steps(journal, "mine")
    assert journal.by_entry_id("mine") is not None
    assert long <= short * 1.2, (short, long)
