"""`run` through the real command line: exit codes 0/1/2/75/130, reports, signals, the lock.

In-process through click's CliRunner where that is enough, and as real subprocesses where a
process must hold a lock, receive a signal or be measured from the outside.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from orchestrator.cli import cli
from orchestrator.clock import SystemClock
from orchestrator.report import report_schema
from orchestrator.sandbox import Fault, SandboxConfig
from orchestrator.store.lock import RunLock
from orchestrator.store.tokens import TokenStore
from orchestrator.tiktok.chunks import MIN_CHUNK
from tests.support.run_support import (
    REPO,
    TWO_CHUNKS,
    Served,
    assert_published_once,
    journal_rows,
    serve,
    wait_until,
)

USER = "sandbox-user-1"


def invoke(served: Served, *args: str, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner()
    old = Path.cwd()
    os.chdir(served.folder)
    try:
        return runner.invoke(cli, list(args), env={**served.env, **(env or {})})
    finally:
        os.chdir(old)


def one_clip_manifest(served: Served, **entry: Any) -> tuple[Path, str]:
    path, digest = served.clip("a.mp4")
    return served.manifest([{"user_id": USER, "video_path": path.name, **entry}]), digest


def test_exit_0_writes_every_report_and_the_json_validates(served: Served) -> None:
    """A clean run exits 0; JSON (schema-valid), JUnit, Markdown and the CI summary land."""
    manifest, digest = one_clip_manifest(served)
    summary = served.folder / "step-summary.md"
    result = invoke(
        served,
        "run",
        str(manifest),
        "--report",
        "out/report.json",
        "--junit",
        "out/junit.xml",
        "--markdown",
        "out/summary.md",
        "--no-progress",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.exit_code == 0, result.output
    assert "1 entry: 1 published" in result.stdout
    assert "report: out/report.json" in result.stdout
    report = json.loads((served.folder / "out" / "report.json").read_text())
    jsonschema.validate(report, report_schema())
    assert report["summary"]["published"] == 1
    assert 'failures="0"' in (served.folder / "out" / "junit.xml").read_text()
    assert "| published |" in (served.folder / "out" / "summary.md").read_text()
    assert summary.read_text().startswith("## TikTok upload run")
    assert_published_once(served.sandbox, [digest])


def test_default_report_goes_to_the_homes_reports_folder(served: Served) -> None:
    """Without --report the JSON report is written under HOME/reports/."""
    manifest, _ = one_clip_manifest(served)
    result = invoke(served, "run", str(manifest))
    assert result.exit_code == 0, result.output
    (written,) = (served.home / "reports").glob("run-*.json")
    assert f"report: {written}" in result.stdout


def test_exit_1_when_an_entry_fails_with_code_log_id_and_hint_in_the_report(
    served: Served,
) -> None:
    """TikTok fails the post (a bad file): exit 1; the report explains it and how to fix it."""
    manifest, _ = one_clip_manifest(served)
    served.sandbox.fail_next_publish(USER, "file_format_check_failed")
    result = invoke(served, "run", str(manifest), "--report", "r.json")
    assert result.exit_code == 1, result.output
    (entry,) = json.loads((served.folder / "r.json").read_text())["entries"]
    assert entry["status"] == "failed"
    assert entry["error"]["code"] == "file_format_check_failed"
    assert entry["error"]["retryable"] is False
    assert entry["error"]["hint"]
    jsonschema.validate(json.loads((served.folder / "r.json").read_text()), report_schema())


def test_exit_2_for_an_invalid_manifest_sends_nothing(served: Served) -> None:
    """A manifest problem exits 2 with every problem listed; no request, no journal."""
    manifest = served.manifest([{"user_id": USER, "video_path": "missing.mp4"}])
    result = invoke(served, "run", str(manifest))
    assert result.exit_code == 2
    assert "missing.mp4" in result.stderr
    assert served.sandbox.calls() == 0
    assert journal_rows(served.home) == []


def test_exit_2_without_app_credentials(served: Served) -> None:
    """A real run without TIKTOK_CLIENT_SECRET is a configuration error: exit 2, nothing sent."""
    manifest, _ = one_clip_manifest(served)
    result = invoke(served, "run", str(manifest), env={"TIKTOK_CLIENT_SECRET": ""})
    assert result.exit_code == 2
    assert "TIKTOK_CLIENT_SECRET" in result.stderr
    assert served.sandbox.calls() == 0


def test_exit_75_while_another_run_holds_the_lock(served: Served) -> None:
    """With the home locked, `run` exits 75 naming the holder and sends nothing."""
    manifest, _ = one_clip_manifest(served)
    with RunLock(served.home):
        result = invoke(served, "run", str(manifest))
    assert result.exit_code == 75
    assert f"pid {os.getpid()}" in result.stderr
    assert served.sandbox.calls() == 0


def test_dry_run_prints_the_plan_and_exits_0_without_an_init(served: Served) -> None:
    """`run --dry-run` shows what would be posted (with the chunk plan) and sends no init."""
    path, _ = served.clip("big.mp4", TWO_CHUNKS)
    manifest = served.manifest([{"user_id": USER, "video_path": path.name}])
    result = invoke(
        served, "run", str(manifest), "--dry-run", "--chunk-size", str(MIN_CHUNK), "--report", "r"
    )
    assert result.exit_code == 0, result.output
    assert "dry run: the plan" in result.stdout
    assert "would post" in result.stdout
    assert served.sandbox.calls("video_init") == 0
    assert served.sandbox.calls("upload") == 0
    assert journal_rows(served.home) == []
    assert json.loads((served.folder / "r").read_text())["dry_run"] is True
    # Without --report a dry run keeps its plan on the terminal: nothing lands in the home.
    assert invoke(served, "run", str(manifest), "--dry-run").exit_code == 0
    assert not (served.home / "reports").exists()


def test_a_full_disk_at_report_time_is_reported_and_the_journal_stays_intact(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while writing the report: a clear error, exit 1, the summary still shown, the
    journal intact (the next run finds the entry done)."""
    manifest, digest = one_clip_manifest(served)

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("orchestrator.files.os.fsync", full)
    result = invoke(served, "run", str(manifest), "--report", "r.json")
    assert result.exit_code == 1
    assert "report not written" in result.stderr
    assert "No space left on device" in result.stderr
    assert "journal is intact" in result.stderr
    assert "1 entry: 1 published" in result.stdout
    assert not (served.folder / "r.json").exists()
    assert not list(served.folder.glob(".r.json.*"))  # no temp file left behind
    monkeypatch.undo()
    assert [r["state"] for r in journal_rows(served.home)] == ["published"]
    again = invoke(served, "run", str(manifest), "--report", "r.json")
    assert again.exit_code == 0
    assert json.loads((served.folder / "r.json").read_text())["summary"]["already_done"] == 1
    assert_published_once(served.sandbox, [digest])


def test_unwritable_report_path_in_a_real_process_keeps_the_failure_exit_code(
    served: Served,
) -> None:
    """A report path under a regular file, and a failed entry: exit 1, both reported."""
    manifest, _ = one_clip_manifest(served)
    served.sandbox.fail_next_publish(USER, "duration_check_failed")
    (served.folder / "blocker").write_text("not a folder")
    child = served.spawn("run", str(manifest), "--report", "blocker/r.json", "--no-progress")
    assert child.wait() == 1
    assert "report not written" in child.stderr
    assert "blocker" in child.stderr
    assert "failed" in child.stdout
    assert [r["state"] for r in journal_rows(served.home)] == ["failed"]


@pytest.mark.parametrize(
    "signum",
    # One handler serves both; the fast tier sends systemd's SIGTERM, the slow tier Ctrl-C too.
    [pytest.param(signal.SIGINT, marks=pytest.mark.slow), signal.SIGTERM],
    ids=["SIGINT", "SIGTERM"],
)
def test_interrupt_exits_130_with_an_interrupted_report_and_the_rerun_finishes(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """Ctrl-C (SIGINT) or systemd's SIGTERM while an upload is being polled: exit 130 at once
    (no poll interval sat out), `interrupted: true` in the report, the journal intact; the next
    run polls and finishes without a second post."""
    with serve(tmp_path, SandboxConfig(processing_polls=1)) as custom:
        big, digest_big = custom.clip("big.mp4", TWO_CHUNKS)
        manifest = custom.manifest([{"user_id": USER, "video_path": big.name}])
        args = ["run", str(manifest), "--chunk-size", str(MIN_CHUNK), "--report", "r.json"]
        child = custom.spawn(*args)
        wait_until("the first status fetch", lambda: custom.sandbox.calls("status") >= 1)
        child.process.send_signal(signum)
        assert child.wait() == 130, child.stderr
        # The 2 s poll interval was not sat out: a sleep that ignored the signal would have
        # fetched the status again when it ended (and found the post published). No wall clock.
        assert custom.sandbox.calls("status") == 1
        assert "interrupted" in child.stderr
        report = json.loads((custom.folder / "r.json").read_text())
        jsonschema.validate(report, report_schema())
        assert report["interrupted"] is True
        (entry,) = report["entries"]
        assert entry["status"] == "processing"
        assert entry["error"]["code"] == "interrupted"
        assert [r["state"] for r in journal_rows(custom.home)] == ["processing"]
        rerun = custom.spawn(*args, name="rerun")
        assert rerun.wait() == 0, rerun.stderr
        rerun_report = json.loads((custom.folder / "r.json").read_text())
        assert [e["status"] for e in rerun_report["entries"]] == ["published"]
        assert custom.sandbox.calls("video_init") == 1  # polled, never initialised again
        assert_published_once(custom.sandbox, [digest_big])


def test_interrupt_during_a_request_lets_that_step_finish_and_journal(served: Served) -> None:
    """SIGTERM while a status answer is on its way: the step completes and is journalled
    (published), the next entry is not started, and the exit code is still 130."""
    a, digest_a = served.clip("a.mp4")
    b, _ = served.clip("b.mp4")
    manifest = served.manifest(
        [{"user_id": USER, "video_path": a.name}, {"user_id": USER, "video_path": b.name}]
    )
    served.sandbox.schedule(Fault("status", call=1, kind="delay", seconds=0.5))
    child = served.spawn("run", str(manifest), "--report", "r.json")
    wait_until("the first status fetch", lambda: served.sandbox.calls("status") >= 1)
    child.process.send_signal(signal.SIGTERM)
    assert child.wait() == 130, child.stderr
    report = json.loads((served.folder / "r.json").read_text())
    assert [e["status"] for e in report["entries"]] == ["published", "deferred"]
    assert [r["state"] for r in journal_rows(served.home)] == ["published"]
    assert served.sandbox.calls("video_init") == 1
    assert_published_once(served.sandbox, [digest_a])


def test_two_runs_started_together_the_second_exits_75_at_once_sending_nothing(
    served: Served,
) -> None:
    """While one run works, a second exits 75 naming the first's pid and sends no request: it
    gives up at once, not after the first lets go (the first is still inside the same held
    request when the second has exited); after the first is killed, a third run takes the lock
    and finishes."""
    manifest, digest = one_clip_manifest(served)
    # The first run's first status fetch is held until the test ends (or the sandbox stops):
    # from then on it provably holds the lock, whatever the machine's speed.
    served.sandbox.schedule(Fault("status", call=1, kind="delay", seconds=3600.0))
    first = served.spawn("run", str(manifest), name="first")
    wait_until("the first run to poll", lambda: served.sandbox.calls("status") >= 1)
    calls = served.sandbox.call_counts()
    second = served.spawn("run", str(manifest), name="second")
    assert second.wait() == 75, second.stderr
    # The first is still alive and still waiting on that one held answer: the second did not
    # wait for the lock to be released, and sent nothing of its own.
    assert first.process.poll() is None
    assert served.sandbox.call_counts() == calls
    assert f"pid {first.pid}" in second.stderr
    assert "nothing was sent" in second.stderr
    first.kill()
    third = served.spawn("run", str(manifest), name="third")
    assert third.wait() == 0, third.stderr
    assert_published_once(served.sandbox, [digest])


def test_json_logs_and_reports_never_show_a_token_or_an_upload_url(served: Served) -> None:
    """`-v --log-format json`: one JSON object per line with the run's events, and no access
    token, refresh token or upload-URL token in the log, the summary or the report."""
    big, _ = served.clip("big.mp4", TWO_CHUNKS)
    manifest = served.manifest([{"user_id": USER, "video_path": big.name}])
    served.sandbox.schedule(Fault("upload", call=2, kind="status", status=503))  # a retry logged
    child = served.spawn(
        "run",
        str(manifest),
        "-v",
        "--log-format",
        "json",
        "--chunk-size",
        str(MIN_CHUNK),
        "--report",
        "r.json",
    )
    assert child.wait() == 0, child.stderr
    lines = [json.loads(line) for line in child.stderr.splitlines() if line.strip()]
    events = [line.get("event") for line in lines]
    assert "started" in events
    assert "finished" in events
    finished = next(line for line in lines if line.get("event") == "finished")
    assert finished["status"] == "published"
    everything = child.stderr + child.stdout + (served.folder / "r.json").read_text()
    with TokenStore.open(served.settings, clock=SystemClock()) as store:
        credentials = store.credentials(USER)
    assert credentials is not None
    assert credentials.access_token.reveal() not in everything
    assert credentials.refresh_token.reveal() not in everything
    assert "upload_token=" not in everything.replace("upload_token=<", "")
    assert "Bearer act." not in everything


@pytest.mark.slow  # the same pipeline as tests/cli/test_readme.py's demo, which is fast-tier
def test_run_sandbox_demo_publishes_the_example_manifest(tmp_path: Path) -> None:
    """`run --sandbox videos_to_upload.example.json`: the whole pipeline, nothing to set up."""
    example = REPO / "videos_to_upload.example.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "--sandbox", str(example), "--no-progress"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "2 entries: 2 published" in done.stdout
    (report,) = (tmp_path / "reports").glob("sandbox-run-*.json")
    jsonschema.validate(json.loads(report.read_text()), report_schema())


class _FastClock:
    """The real clock whose sleeps only move it forward: retry backoff passes at once."""

    def __init__(self) -> None:
        self._real = SystemClock()
        self._ahead = 0.0

    def time(self) -> float:
        return self._real.time() + self._ahead

    def monotonic(self) -> float:
        return self._real.monotonic() + self._ahead

    def sleep(self, seconds: float) -> None:
        self._ahead += max(seconds, 0.0)


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's clock skips its waits, so an outage's retries take no wall-clock time."""
    monkeypatch.setattr("orchestrator.runner.SystemClock", _FastClock)


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _report_entries(served: Served, name: str = "r.json") -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((served.folder / name).read_text())["entries"]
    return entries


@pytest.mark.usefixtures("fast_backoff")
def test_exit_69_when_the_api_address_is_a_closed_port(served: Served) -> None:
    """TikTok cannot be reached: every entry is deferred `unavailable` and the run exits 69,
    so cron and systemd see that nothing was posted."""
    manifest, _ = one_clip_manifest(served)
    api = f"http://127.0.0.1:{_closed_port()}"
    result = invoke(
        served, "run", str(manifest), "--report", "r.json", env={"ORCHESTRATOR_API_BASE": api}
    )
    assert result.exit_code == 69, result.output
    (entry,) = _report_entries(served)
    assert entry["status"] == "deferred"
    assert entry["error"]["code"] == "unavailable"
    assert "could not be reached" in result.stderr


@pytest.mark.usefixtures("fast_backoff")
def test_exit_69_when_tiktok_answers_503_to_everything(served: Served) -> None:
    """Every endpoint answers 503: nothing failed, everything was deferred → exit 69."""
    manifest, _ = one_clip_manifest(served)
    for endpoint in ("creator_info", "video_init", "upload", "status", "token"):
        served.sandbox.schedule(Fault(endpoint, call=None, status=503))
    result = invoke(served, "run", str(manifest), "--report", "r.json")
    assert result.exit_code == 69, result.output
    (entry,) = _report_entries(served)
    assert (entry["status"], entry["error"]["code"]) == ("deferred", "internal_error")
    assert served.sandbox.calls("video_init") == 0


def test_a_deferral_by_schedule_only_exits_0(served: Served) -> None:
    """An entry whose publish_at is in the future is deferred by plan, not by an outage: 0."""
    manifest, _ = one_clip_manifest(served, publish_at="2999-01-01T00:00:00Z")
    result = invoke(served, "run", str(manifest), "--report", "r.json")
    assert result.exit_code == 0, result.output
    (entry,) = _report_entries(served)
    assert (entry["status"], entry["error"]["code"]) == ("deferred", "scheduled")


@pytest.mark.usefixtures("fast_backoff")
def test_a_failure_and_an_outage_together_exit_1(served: Served) -> None:
    """One user's entry fails, another user's TikTok is unreachable: failure wins, exit 1."""
    path, _ = served.clip("a.mp4")
    manifest = served.manifest(
        [
            {"user_id": USER, "video_path": path.name},
            {"user_id": "sandbox-user-2", "video_path": path.name},
        ]
    )
    served.sandbox.fail_next_publish(USER, "file_format_check_failed")
    # --jobs 1 serves the users in manifest order: the second user's creator_info calls
    # (the first try and its four retries) find no TikTok.
    for call in range(2, 7):
        served.sandbox.schedule(Fault("creator_info", call=call, kind="reset"))
    result = invoke(served, "run", str(manifest), "--report", "r.json", "--jobs", "1")
    assert result.exit_code == 1, result.output
    statuses = sorted(entry["status"] for entry in _report_entries(served))
    assert statuses == ["deferred", "failed"], result.output


def test_only_user_not_in_the_manifest_exits_2_naming_the_manifests_users(
    served: Served,
) -> None:
    """`--only-user ghost` is a typo, not "0 entries": exit 2 listing who the manifest has."""
    manifest, _ = one_clip_manifest(served)
    result = invoke(served, "run", str(manifest), "--only-user", "ghost")
    assert result.exit_code == 2, result.output
    assert "ghost" in result.stderr
    assert USER in result.stderr
    assert served.sandbox.calls() == 0
    assert journal_rows(served.home) == []


def test_dry_run_goes_ahead_while_a_run_holds_the_lock(served: Served) -> None:
    """A dry run only reads: it plans while a real run holds the home, instead of exiting 75."""
    manifest, _ = one_clip_manifest(served)
    with RunLock(served.home):
        result = invoke(served, "run", str(manifest), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would post" in result.stdout
    assert served.sandbox.calls("video_init") == 0


def test_dry_run_never_takes_the_run_lock(served: Served) -> None:
    """A dry run leaves no lock behind and holds none a real run could trip over."""
    manifest, _ = one_clip_manifest(served)
    lock = served.home / "run.lock"
    lock.unlink(missing_ok=True)
    result = invoke(served, "run", str(manifest), "--dry-run")
    assert result.exit_code == 0, result.output
    assert not lock.exists()
