"""`report --run-id`: one run's entries from the journal (here a run of one machine, SQLite)."""

from __future__ import annotations

import json

from tests.support.run_support import Served


def test_report_of_a_run_lists_the_entries_it_touched(served: Served) -> None:
    """After a run, `report --run-id` shows its entries as published; an unknown id is exit 2."""
    a, _ = served.clip("a.mp4")
    b, _ = served.clip("b.mp4")
    manifest = served.manifest(
        [
            {"id": "first", "user_id": "sandbox-user-1", "video_path": a.name},
            {"id": "second", "user_id": "sandbox-user-2", "video_path": b.name},
        ]
    )
    result = served.invoke("run", str(manifest), "--report", "r.json")
    assert result.exit_code == 0, result.output
    run_id = json.loads((served.folder / "r.json").read_text())["run_id"]

    shown = served.invoke("report", "--run-id", run_id, "--json")
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.stdout)
    # In the order the run started them (users go in parallel).
    assert sorted((row["entry"], row["state"]) for row in rows) == [
        ("first", "published"),
        ("second", "published"),
    ]
    table = served.invoke("report", "--run-id", run_id)
    assert f"run {run_id}: 2 entries: 2 published" in table.stdout

    unknown = served.invoke("report", "--run-id", "nope")
    assert unknown.exit_code == 2
    assert "no run nope" in unknown.output
