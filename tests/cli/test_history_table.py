"""`history` on a long journal: every row on its own aligned line, wide cells folded to the
width, at a small fixed cost per row (issue 14, item 9: 5,000 rows once took 4.6 s)."""

from __future__ import annotations

import sys
from pathlib import Path

from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.clock import SystemClock
from orchestrator.config import Settings
from orchestrator.store.tokens import TokenStore


def journal_of(home: Path, rows: int, *, detail: str = "") -> None:
    """A journal of ``rows`` published entries over 50 users (written in one transaction)."""
    now = SystemClock().time()
    store = TokenStore.open(Settings(home=home), clock=SystemClock())
    with store, store.database.transaction() as connection:
        for n in range(rows):
            connection.execute(
                "INSERT INTO journal (identity, entry_id, user_id, mode, kind, source,"
                " request_digest, state, publish_id, post_ids, error_code, error_message,"
                " created_at, updated_at) VALUES (?, ?, ?, 'direct', 'file', ?, 'd', ?, ?,"
                " ?, ?, ?, ?, ?)",
                (
                    f"e{n}",
                    f"post-{n:05d}",
                    f"user-{n % 50}",
                    f"videos/clip-{n}.mp4",
                    "failed" if detail else "published",
                    f"v_pub_file~v2-1.{n}",
                    "[]" if detail else f'["74{n:015d}"]',
                    "internal" if detail else None,
                    detail or None,
                    now - n,
                    now - n,
                ),
            )


def history(home: Path, *args: str) -> list[str]:
    result = CliRunner().invoke(cli, ["history", *args], env={"ORCHESTRATOR_HOME": str(home)})
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_history_lists_every_requested_row_aligned_under_its_header(tmp_path: Path) -> None:
    """--limit 3000 of 3,200 entries: header, rule, 3,000 rows newest first, then the note."""
    home = tmp_path / "home"
    journal_of(home, 3200)
    lines = history(home, "--limit", "3000")
    header, rule, *rows, note = lines
    assert header.split() == [
        "when",
        "(UTC)",
        "user",
        "entry",
        "state",
        "publish_id",
        "post",
        "ids",
        "detail",
    ]
    assert set(rule) == {"\u2500"}
    assert len(rows) == 3000
    assert rows[0].split()[2:] == [
        "user-0", "post-00000", "published", "v_pub_file~v2-1.0", "74000000000000000"
    ]  # fmt: skip
    assert rows[-1].split()[3] == "post-02999"
    column = header.index("publish_id")
    assert all(row[column:].startswith("v_pub_file~v2-1.") for row in rows)
    assert note == "(200 older entries not shown; use --limit or --since)"


def test_a_detail_wider_than_the_table_folds_onto_more_lines(tmp_path: Path) -> None:
    """Off a terminal the table is at most 200 columns: a long error folds, nothing is cut."""
    home = tmp_path / "home"
    message = " ".join(f"word{n}" for n in range(80))
    journal_of(home, 2, detail=message)
    lines = history(home)
    assert max(len(line) for line in lines) <= 200
    text = " ".join(lines)
    for n in range(80):
        assert f"word{n}" in text
    assert len(lines) > 2 + 2  # each row took several lines


def python_calls(home: Path, *args: str) -> int:
    calls = 0

    def count(_frame: object, event: str, _arg: object) -> None:
        nonlocal calls
        if event == "call":
            calls += 1

    sys.setprofile(count)
    try:
        history(home, *args)
    finally:
        sys.setprofile(None)
    return calls


def test_each_further_row_costs_a_few_hundred_python_calls_at_most(tmp_path: Path) -> None:
    """The cost of 1,000 more rows, counted in Python calls (not a stopwatch, so the machine's
    load does not matter): reading, decrypting and printing a row stays well under 300 calls;
    laying the table out with rich took thousands."""
    home = tmp_path / "home"
    journal_of(home, 1100)
    small = python_calls(home, "--limit", "100")
    large = python_calls(home, "--limit", "1100")
    assert (large - small) / 1000 < 300, (small, large)
