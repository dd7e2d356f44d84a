"""What an unattended run (cron, CI: no terminal) says, through the real `run` command."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
from click.testing import CliRunner, Result

from orchestrator.cli import cli
from orchestrator.report import report_schema
from orchestrator.sandbox import Fault, SandboxConfig
from tests.support.run_support import TWO_CHUNKS, Served, serve

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


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed as JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_json_logs_every_line_with_initialised_finished_and_a_summary(served: Served) -> None:
    """--log-format json: only JSON lines; `initialised` has publish_id and the chunk plan,
    `finished` the entry id and error code, and a final `summary` event closes the run."""
    path, _digest = served.clip("ok.mp4")
    manifest = served.manifest(
        [
            {"id": "first", "user_id": USER, "video_path": path.name},
            {"id": "second", "user_id": "nobody-signed-in", "video_path": path.name},
        ]
    )
    result = invoke(
        served, "run", str(manifest), "--log-format", "json", "--report", "r.json", "-v"
    )
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    events = json_lines(result.stderr)
    initialised = next(e for e in events if e.get("event") == "initialised")
    assert initialised["publish_id"]
    assert initialised["chunks"] == 1
    assert initialised["total_bytes"] > 0
    assert "upload_url" not in json.dumps(initialised).lower()
    finished = {e["id"]: e for e in events if e.get("event") == "finished"}
    assert finished["first"]["status"] == "published"
    assert finished["first"]["code"] is None
    assert finished["second"]["status"] == "failed"
    assert finished["second"]["code"]
    summary = events[-1]
    assert summary["event"] == "summary"
    assert summary["exit_code"] == 1
    assert summary["counts"]["published"] == 1
    assert summary["reports"] == ["r.json"]


def test_json_logs_an_invalid_manifest_as_json_and_still_writes_the_reports(
    served: Served,
) -> None:
    """An invalid manifest under --log-format json: one JSON error line with every problem,
    exit 2, and the JSON and JUnit reports say `invalid` so CI keeps an artifact."""
    manifest = served.manifest(
        [{"user_id": USER, "video_path": "gone.mp4"}, {"user_id": USER, "privacy_level": 7}]
    )
    result = invoke(
        served,
        "run",
        str(manifest),
        "--log-format",
        "json",
        "--report",
        "out/r.json",
        "--junit",
        "out/junit.xml",
    )
    assert result.exit_code == 2, result.output
    (error,) = json_lines(result.stderr)
    assert error["event"] == "error"
    assert error["exit_code"] == 2
    assert len(error["problems"]) >= 2
    report = report_of(served, "out/r.json")
    jsonschema.validate(report, report_schema())
    assert report["status"] == "invalid"
    assert report["problems"] == error["problems"]
    assert report["entries"] == []
    junit = (served.folder / "out" / "junit.xml").read_text()
    assert 'failures="1"' in junit
    assert "gone.mp4" in junit


def test_json_logs_a_configuration_error_as_json(served: Served) -> None:
    """A configuration error (no app credentials) is a JSON line too, with its hint."""
    manifest = clips_manifest(served, 1)
    runner = CliRunner()
    env = {**served.env, "TIKTOK_CLIENT_KEY": "", "TIKTOK_CLIENT_SECRET": ""}
    result = runner.invoke(cli, ["run", str(manifest), "--log-format", "json"], env=env)
    assert result.exit_code == 2, result.output
    (error,) = json_lines(result.stderr)
    assert error["level"] == "error"
    assert error["hint"]


def test_quiet_prints_no_table(served: Served) -> None:
    """-q: no table of entries, only the report's path."""
    manifest = clips_manifest(served, 1)
    result = invoke(served, "run", str(manifest), "-q", "--report", "r.json")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "report: r.json"


def test_verbose_chunk_events_name_the_chunk_and_its_bytes(served: Served) -> None:
    """-v: each confirmed chunk says which chunk it was and how many bytes TikTok holds."""
    path, _digest = served.clip("big.mp4", TWO_CHUNKS)
    manifest = served.manifest([{"user_id": USER, "video_path": path.name}])
    result = invoke(
        served, "run", str(manifest), "-v", "--chunk-size", "5242880", "--report", "r.json"
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"ChunkConfirmed \(chunk 1, 5242880 bytes held\) -> uploading", result.stderr)
    assert re.search(r"ChunkConfirmed \(chunk 2, \d+ bytes held\) -> ", result.stderr)
    assert "initialised" in result.stderr
    assert "(2 chunks of " in result.stderr


def test_a_lost_last_chunk_answer_is_logged_once(served: Served) -> None:
    """Every answer to the last chunk lost (resent, lost again): one line at the default level
    says so, not one per resend."""
    manifest = clips_manifest(served, 1)
    served.sandbox.schedule(Fault("upload", call=None, kind="reset"))
    result = invoke(served, "run", str(manifest), "--poll-timeout", "0", "--report", "r.json")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("answer was lost") == 1, result.stderr


def test_the_reports_source_is_as_the_manifest_wrote_it(served: Served) -> None:
    """A manifest in a sub-folder, run from its parent: `source` is relative to the manifest."""
    folder = served.folder / "week"
    folder.mkdir()
    served.clip("week/a.mp4")
    manifest = folder / "manifest.json"
    manifest.write_text(
        json.dumps({"version": 1, "entries": [{"user_id": USER, "video_path": "a.mp4"}]})
    )
    result = invoke(served, "run", "week/manifest.json", "--report", "r.json")
    assert result.exit_code == 0, result.output
    (entry,) = report_of(served, "r.json")["entries"]
    assert entry["source"] == "a.mp4"


def test_wording_of_validation_problems(served: Served) -> None:
    """A duplicate id names the other line once; a null says null once; a tab is a tab."""
    served.clip("a.mp4")
    served.clip("b.mp4")
    manifest = served.folder / "m.yaml"
    manifest.write_text(
        "version: 1\nentries:\n  - id: x\n    user_id: u1\n    video_path: a.mp4\n"
        "  - id: x\n    user_id: u1\n    video_path: b.mp4\n    description: null\n"
    )
    result = invoke(served, "validate", "m.yaml")
    assert result.exit_code == 2
    assert "already used by entries[0] on line 3 (line 6)" in result.stderr, result.stderr
    assert "got nothing (null) (line 9)" in result.stderr
    tabbed = served.folder / "t.yaml"
    tabbed.write_text("version: 1\nentries:\n  - id: x\n    user_id: u1\n\tvideo_path: a.mp4\n")
    result = invoke(served, "validate", "t.yaml")
    assert result.exit_code == 2
    assert "YAML does not allow tabs for indentation (line 5, column 1)" in result.stderr
    assert "indent with spaces" in result.stderr


def test_a_rerun_that_only_polls_says_polling(tmp_path: Path) -> None:
    """An upload whose bytes all went before (processing) is polled by the rerun: the log says
    polling, not uploading with a size."""
    # One PROCESSING answer: the first run's only fetch gets it; the rerun's first is final, so
    # the rerun sleeps no poll interval.
    with serve(tmp_path, SandboxConfig(processing_polls=1)) as served:
        _rerun_polls(served)


def _rerun_polls(served: Served) -> None:
    manifest = clips_manifest(served, 1)
    first = invoke(served, "run", str(manifest), "--poll-timeout", "0", "--report", "r1.json")
    assert first.exit_code == 0, first.output
    assert report_of(served, "r1.json")["entries"][0]["status"] == "processing"
    second = invoke(served, "run", str(manifest), "--report", "r2.json")
    assert second.exit_code == 0, second.output
    assert "entries[0]: polling for sandbox-user-1" in second.stderr, second.stderr
    assert "uploading" not in second.stderr


def test_a_dry_run_with_a_refused_token_never_says_it_refreshes(served: Served) -> None:
    """A dry run whose token TikTok refuses says it does not refresh, and nothing else."""
    manifest = clips_manifest(served, 1)
    served.sandbox.schedule(Fault("creator_info", call=None, status=401))
    result = invoke(served, "run", str(manifest), "--dry-run")
    assert "refreshing" not in result.stderr
    assert "refreshed" not in result.stderr
    assert "does not refresh" in result.output


def test_an_invalid_manifest_writes_the_asked_reports_in_text_mode_too(served: Served) -> None:
    """Plain logs: an invalid manifest still leaves the JSON report (status invalid) for CI."""
    manifest = served.manifest([{"user_id": USER, "video_path": "gone.mp4"}])
    result = invoke(served, "run", str(manifest), "--report", "r.json")
    assert result.exit_code == 2, result.output
    assert "gone.mp4" in result.stderr
    report = report_of(served, "r.json")
    assert report["status"] == "invalid"
    assert any("gone.mp4" in problem for problem in report["problems"])
