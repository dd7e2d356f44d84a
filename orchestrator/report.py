"""The run report: JSON (with a shipped schema), JUnit XML and Markdown.

Pure rendering of a :class:`RunReport` into bytes, plus :func:`write_reports`, which writes each
requested format atomically (``orchestrator.files``). It must not print, talk to the network, or
see a token: the records it renders carry no secrets by construction.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final

from orchestrator.errors import FileWriteError, ReportsNotWritten
from orchestrator.files import write_atomic
from orchestrator.outcomes import (
    FAILURE_STATUSES,
    SKIPPED_STATUSES,
    STATUSES,
    EntryStatus,
    ErrorInfo,
)

OUTAGE_CODES: Final = frozenset(
    {"unavailable", "retry_budget_spent", "transport", "internal_error", "rate_limit_exceeded"}
)
"""Why a deferred entry was not posted when the cause is TikTok (unreachable, or failing until
its retries or the run's retry budget ran out), not a plan or a cap: SPEC §8 exit 69. A 5xx
answer without a TikTok code (``http_502`` from a gateway, say) counts too."""


def is_outage(error: ErrorInfo | None) -> bool:
    """Whether ``error`` (of a deferred entry) says TikTok could not be reached or kept failing."""
    if error is None:
        return False
    return error.code in OUTAGE_CODES or (
        error.code.startswith("http_5") and error.code[5:].isdigit()
    )


@dataclass(frozen=True)
class EntryResult:
    """What happened to one manifest entry in this run."""

    index: int
    id: str | None
    user_id: str
    source: str
    mode: str
    status: EntryStatus
    publish_id: str | None = None
    post_ids: tuple[str, ...] = ()
    bytes: int = 0
    chunks: int = 0
    attempts: int = 0
    duration_s: float = 0.0
    deferred_until: datetime | None = None
    error: ErrorInfo | None = None

    def __post_init__(self) -> None:
        # Typed EntryStatus so mypy catches a misspelt status; a caller without types (a test, a
        # script through the API) may pass the same string, which is stored as the member.
        try:
            object.__setattr__(self, "status", EntryStatus(self.status))
        except ValueError:
            raise ValueError(f"unknown entry status {self.status!r}") from None


@dataclass(frozen=True)
class Delivery:
    """What became of the run's notification at one target (``orchestrator.notify``). The
    target is redacted: an Apprise URL's credentials are never kept."""

    target: str
    delivered: bool
    error: str | None = None


@dataclass(frozen=True)
class RunReport:
    """One run: when, what manifest, and every entry's result in manifest order."""

    run_id: str
    started_at: datetime
    finished_at: datetime
    manifest: str
    dry_run: bool
    interrupted: bool
    entries: tuple[EntryResult, ...] = field(default_factory=tuple)
    notifications: tuple[Delivery, ...] = ()
    """Where the run's notification went (``--notify``); empty when none was sent."""
    problems: tuple[str, ...] = ()
    """Why the manifest is invalid (then nothing ran and ``entries`` is empty)."""

    @property
    def status(self) -> str:
        """``invalid`` (the manifest: nothing sent), ``interrupted`` or ``completed``."""
        if self.problems:
            return "invalid"
        return "interrupted" if self.interrupted else "completed"

    def summary(self) -> dict[str, int]:
        counts = Counter(entry.status for entry in self.entries)
        return {"total": len(self.entries), **{status: counts[status] for status in STATUSES}}

    @property
    def has_failures(self) -> bool:
        return any(entry.status in FAILURE_STATUSES for entry in self.entries)

    @property
    def has_outage(self) -> bool:
        """An entry was deferred because TikTok could not be reached or kept failing."""
        return any(
            entry.status == EntryStatus.DEFERRED and is_outage(entry.error)
            for entry in self.entries
        )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _entry_json(entry: EntryResult) -> dict[str, Any]:
    return {
        "index": entry.index,
        "id": entry.id,
        "user_id": entry.user_id,
        "source": entry.source,
        "mode": entry.mode,
        "status": entry.status,
        "publish_id": entry.publish_id,
        "post_ids": list(entry.post_ids),
        "bytes": entry.bytes,
        "chunks": entry.chunks,
        "attempts": entry.attempts,
        "duration_s": round(entry.duration_s, 3),
        "deferred_until": _iso(entry.deferred_until) if entry.deferred_until else None,
        "error": None
        if entry.error is None
        else {
            "code": entry.error.code,
            "message": entry.error.message,
            "log_id": entry.error.log_id,
            "retryable": entry.error.retryable,
            "hint": entry.error.hint,
        },
    }


def report_document(report: RunReport) -> dict[str, Any]:
    """The report as the JSON document of SPEC §7."""
    return {
        "run_id": report.run_id,
        "started_at": _iso(report.started_at),
        "finished_at": _iso(report.finished_at),
        "manifest": report.manifest,
        "dry_run": report.dry_run,
        "interrupted": report.interrupted,
        "status": report.status,
        "problems": list(report.problems),
        "summary": report.summary(),
        "entries": [_entry_json(entry) for entry in report.entries],
        "notifications": [
            {"target": sent.target, "delivered": sent.delivered, "error": sent.error}
            for sent in report.notifications
        ],
    }


def render_json(report: RunReport) -> bytes:
    return (json.dumps(report_document(report), indent=2, ensure_ascii=False) + "\n").encode()


def report_schema() -> dict[str, Any]:
    """The shipped JSON Schema of the report."""
    text = resources.files("orchestrator").joinpath("schemas/report.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _case_name(entry: EntryResult) -> str:
    return entry.id or f"entries[{entry.index}]"


def render_junit(report: RunReport) -> bytes:
    """JUnit XML: one testcase per entry; failed/uncertain → failure, deferred etc. → skipped."""
    summary = report.summary()
    suite = ET.Element(
        "testsuite",
        {
            "name": f"tiktok-orchestrator {report.manifest}",
            "tests": str(summary["total"] + bool(report.problems)),
            "failures": str(
                summary[EntryStatus.FAILED] + summary[EntryStatus.UNCERTAIN] + bool(report.problems)
            ),
            "errors": "0",
            "skipped": str(sum(summary[s] for s in SKIPPED_STATUSES)),
            "timestamp": _iso(report.started_at),
            "time": f"{(report.finished_at - report.started_at).total_seconds():.3f}",
        },
    )
    if report.problems:
        # An invalid manifest is one failed test, so CI shows why nothing ran.
        case = ET.SubElement(suite, "testcase", {"classname": "manifest", "name": "valid"})
        text = "\n".join(report.problems)
        failure = ET.SubElement(case, "failure", {"type": "invalid", "message": text})
        failure.text = text
    for entry in report.entries:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"user.{entry.user_id}",
                "name": _case_name(entry),
                "time": f"{entry.duration_s:.3f}",
            },
        )
        detail = _detail(entry)
        if entry.status in FAILURE_STATUSES:
            code = entry.error.code if entry.error else entry.status
            failure = ET.SubElement(case, "failure", {"type": code, "message": detail})
            failure.text = detail
        elif entry.status in SKIPPED_STATUSES:
            ET.SubElement(case, "skipped", {"message": detail})
        else:
            out = ET.SubElement(case, "system-out")
            out.text = detail
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    rendered: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return rendered + b"\n"


def _detail(entry: EntryResult) -> str:
    parts: list[str] = [entry.status]
    if entry.publish_id:
        parts.append(f"publish_id {entry.publish_id}")
    if entry.post_ids:
        parts.append("post " + ", ".join(entry.post_ids))
    if entry.deferred_until:
        parts.append(f"until {_iso(entry.deferred_until)}")
    if entry.error:
        parts.append(f"{entry.error.code}: {entry.error.message}")
        if entry.error.log_id:
            parts.append(f"log_id {entry.error.log_id}")
        if entry.error.hint:
            parts.append(f"fix: {entry.error.hint}")
    return " · ".join(parts)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: RunReport) -> bytes:
    """A Markdown summary (for a CI job summary): counts, then one row per entry."""
    summary = report.summary()
    title = "TikTok upload run" + (" (dry run)" if report.dry_run else "")
    if report.interrupted:
        title += " — interrupted"
    lines = [
        f"## {title}",
        "",
        f"Manifest `{report.manifest}` · run `{report.run_id}` · {_iso(report.started_at)}",
        "",
        "| " + " | ".join(["total", *[s for s in STATUSES if summary[s]]]) + " |",
        "|" + "---|" * (1 + sum(1 for s in STATUSES if summary[s])),
        "| "
        + " | ".join(
            str(v) for v in [summary["total"], *[summary[s] for s in STATUSES if summary[s]]]
        )
        + " |",
        "",
        "| # | entry | user | status | publish_id | detail |",
        "|---|---|---|---|---|---|",
    ]
    for entry in report.entries:
        detail = ""
        if entry.error:
            detail = f"{entry.error.code}: {entry.error.message}"
            if entry.error.hint:
                detail += f" — {entry.error.hint}"
        elif entry.deferred_until:
            detail = f"until {_iso(entry.deferred_until)}"
        elif entry.post_ids:
            detail = "post " + ", ".join(entry.post_ids)
        cells = [
            str(entry.index),
            _case_name(entry),
            entry.user_id,
            entry.status,
            entry.publish_id or "",
            detail,
        ]
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return ("\n".join(lines) + "\n").encode()


def write_reports(
    report: RunReport,
    *,
    json_path: Path | None = None,
    junit_path: Path | None = None,
    markdown_path: Path | None = None,
    step_summary: Path | None = None,
) -> list[Path]:
    """Write each requested format atomically; append Markdown to a CI step summary if given.

    Every format is tried even when an earlier one fails (a full disk may still take a small
    file, another folder may be writable). Returns the paths written; raises
    :class:`ReportsNotWritten` (naming each failure, listing what was written) if any failed.
    """
    written: list[Path] = []
    failures: list[str] = []
    hint: str | None = None
    for path, render, append in (
        (json_path, render_json, False),
        (junit_path, render_junit, False),
        (markdown_path, render_markdown, False),
        (step_summary, render_markdown, True),
    ):
        if path is None:
            continue
        try:
            if append:
                _append(path, render(report))
            else:
                write_atomic(path, render(report))
        except FileWriteError as exc:
            failures.append(str(exc))
            hint = hint or exc.hint
            continue
        written.append(path)
    if failures:
        raise ReportsNotWritten(failures, list(written), hint=hint)
    return written


def _append(path: Path, data: bytes) -> None:
    # GitHub's step summary file is appended to by every step; it is not ours to replace.
    try:
        with open(path, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise FileWriteError(
            f"cannot append the summary to {path}: {exc.strerror or exc}",
            hint="free some disk space or check GITHUB_STEP_SUMMARY",
        ) from exc
