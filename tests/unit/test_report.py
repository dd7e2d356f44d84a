"""Reports: JSON valid against the shipped schema, JUnit for CI dashboards, Markdown summaries."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from orchestrator.errors import FileWriteError
from orchestrator.outcomes import ErrorInfo
from orchestrator.report import (
    EntryResult,
    RunReport,
    render_junit,
    render_markdown,
    report_document,
    report_schema,
    write_reports,
)

START = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


def _report(*, interrupted: bool = False) -> RunReport:
    return RunReport(
        run_id="run-1",
        started_at=START,
        finished_at=START + timedelta(seconds=42),
        manifest="manifests/demo.yaml",
        dry_run=False,
        interrupted=interrupted,
        entries=(
            EntryResult(
                0,
                "teaser",
                "user-a",
                "videos/a.mp4",
                "direct",
                "published",
                publish_id="v_pub_file~v2-1.1",
                post_ids=("7301",),
                bytes=12_000_000,
                chunks=2,
                attempts=1,
                duration_s=3.5,
            ),
            EntryResult(
                1,
                None,
                "user-a",
                "videos/b.mp4",
                "inbox",
                "failed",
                error=ErrorInfo(
                    "privacy_level_option_mismatch",
                    "PUBLIC_TO_EVERYONE | not offered",
                    log_id="log-9",
                    retryable=False,
                    hint="use SELF_ONLY",
                ),
            ),
            EntryResult(
                2,
                "later",
                "user-b",
                "https://media.example.com/x.mp4",
                "direct",
                "deferred",
                deferred_until=START + timedelta(days=1),
            ),
            EntryResult(3, "again", "user-b", "videos/c.mp4", "direct", "already_done"),
        ),
    )


def test_json_report_validates_against_the_shipped_schema() -> None:
    """A real report document is valid against report.schema.json, and counts add up."""
    document = report_document(_report())
    jsonschema.Draft202012Validator(report_schema()).validate(document)
    assert document["summary"]["total"] == 4
    assert document["summary"]["published"] == 1
    assert document["summary"]["failed"] == 1
    assert document["summary"]["deferred"] == 1
    assert document["entries"][1]["error"]["log_id"] == "log-9"
    assert document["entries"][2]["deferred_until"] == "2026-11-22T03:00:00Z"


def test_schema_rejects_an_unknown_status() -> None:
    """The schema is strict: a status outside the documented set is invalid."""
    document = report_document(_report())
    document["entries"][0]["status"] = "done-ish"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(report_schema()).validate(document)


def test_junit_maps_statuses_to_failure_and_skipped() -> None:
    """failed → <failure>, deferred → <skipped>, published → plain testcase."""
    root = ET.fromstring(render_junit(_report()))  # noqa: S314 - our own output
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "4"
    assert suite.get("failures") == "1"
    assert suite.get("skipped") == "1"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases["entries[1]"].find("failure") is not None
    failure = cases["entries[1]"].find("failure")
    assert failure is not None
    assert failure.get("type") == "privacy_level_option_mismatch"
    assert cases["later"].find("skipped") is not None
    assert cases["teaser"].find("failure") is None


def test_markdown_has_counts_and_a_row_per_entry() -> None:
    """The Markdown summary lists the counts and escapes pipes inside cells."""
    text = render_markdown(_report(interrupted=True)).decode()
    assert "interrupted" in text.splitlines()[0]
    assert text.count("\n| ") >= 6
    assert "PUBLIC_TO_EVERYONE \\| not offered" in text


def test_write_reports_is_atomic_and_appends_step_summary(tmp_path: Path) -> None:
    """Each format lands in place; the CI step summary is appended to, not replaced."""
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    written = write_reports(
        _report(),
        json_path=tmp_path / "out" / "report.json",
        junit_path=tmp_path / "junit.xml",
        markdown_path=tmp_path / "summary.md",
        step_summary=summary,
    )
    assert len(written) == 4
    assert json.loads((tmp_path / "out" / "report.json").read_text())["run_id"] == "run-1"
    assert summary.read_text().startswith("earlier step\n## TikTok upload run")
    assert not list(tmp_path.glob("**/*.tmp"))


def test_write_into_a_file_path_gives_a_clear_error(tmp_path: Path) -> None:
    """A report path under a regular file fails with FileWriteError naming the path."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(FileWriteError, match="blocker"):
        write_reports(_report(), json_path=blocker / "report.json")


def test_report_over_a_symlink_replaces_the_link_not_its_target(tmp_path: Path) -> None:
    """Writing over a symlink replaces the link; the file it pointed at is untouched."""
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious")
    link = tmp_path / "report.json"
    link.symlink_to(target)
    write_reports(_report(), json_path=link)
    assert target.read_text() == "precious"
    assert not link.is_symlink()
    assert json.loads(link.read_text())["run_id"] == "run-1"
