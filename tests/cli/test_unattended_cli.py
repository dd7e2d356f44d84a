"""What an unattended run (cron, CI: no terminal) says, through the real `run` command."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from orchestrator.cli import cli
from tests.support.run_support import TWO_CHUNKS, Served

USER = "sandbox-user-1"


def invoke(served: Served, *args: str) -> Result:
    runner = CliRunner()
    old = Path.cwd()
    os.chdir(served.folder)
    try:
        return runner.invoke(cli, list(args), env=served.env)
    finally:
        os.chdir(old)


def clips_manifest(served: Served, count: int, **entry: Any) -> Path:
    entries = []
    for number in range(count):
        path, _digest = served.clip(f"c{number}.mp4")
        entries.append({"user_id": USER, "video_path": path.name, **entry})
    return served.manifest(entries)


def report_of(served: Served, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((served.folder / name).read_text())
    return document


def test_a_second_run_with_limit_moves_on_to_the_next_due_entries(served: Served) -> None:
    """`run --limit 2` twice over three entries: the second run posts the third one."""
    manifest = clips_manifest(served, 3)
    first = invoke(served, "run", str(manifest), "--limit", "2", "--report", "r1.json")
    assert first.exit_code == 0, first.output
    assert [e["index"] for e in report_of(served, "r1.json")["entries"]] == [0, 1]
    second = invoke(served, "run", str(manifest), "--limit", "2", "--report", "r2.json")
    assert second.exit_code == 0, second.output
    entries = report_of(served, "r2.json")["entries"]
    assert [(e["index"], e["status"]) for e in entries] == [(2, "published")]


def test_off_a_terminal_an_upload_logs_its_progress_with_rate_and_eta(served: Served) -> None:
    """Without a terminal a multi-chunk upload logs bytes sent/total, rate and ETA as it goes."""
    path, _digest = served.clip("big.mp4", TWO_CHUNKS)
    manifest = served.manifest([{"user_id": USER, "video_path": path.name}])
    result = invoke(served, "run", str(manifest), "--report", "r.json")
    assert result.exit_code == 0, result.output
    sent = [line for line in result.stderr.splitlines() if " sent (" in line]
    assert sent, result.stderr
    assert all(re.search(r"MiB of 10\.0 MiB sent \(\d+%\), [\d.]+ MiB/s, ", s) for s in sent)
    assert "of 10.0 MiB sent (100%)" in sent[-1]
