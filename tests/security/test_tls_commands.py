"""A TLS certificate that does not verify stops ``auth refresh`` and ``validate --online`` as it
stops a run: exit 2, naming the host and how to trust a private CA, instead of a per-user error.

The sandbox is served over HTTPS with a certificate from a private CA made here (see
test_tls_proxy.py); nothing but 127.0.0.1 is reached.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner, Result

from orchestrator.cli import cli
from orchestrator.report import report_schema
from tests.security.test_tls_proxy import (
    Pki,
    Project,
    _loopback_only,  # noqa: F401 - the autouse guard applies here too
    _make_pki,
    https_project,
)

USER = "sandbox-user-1"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return _make_pki(tmp_path)


def _invoke(project: Project, *args: str, **env: str | None) -> Result:
    old = Path.cwd()
    os.chdir(project.folder)
    try:
        return CliRunner().invoke(cli, list(args), env={**project.env, **env})
    finally:
        os.chdir(old)


def _assert_stopped_for_the_certificate(result: Result) -> None:
    assert result.exit_code == 2, result.output
    assert "the TLS certificate of 127.0.0.1 does not verify" in result.stderr
    assert "REQUESTS_CA_BUNDLE" in result.stderr
    assert "SSLError" not in result.output


def test_auth_refresh_stops_with_exit_2_on_a_certificate_that_does_not_verify(
    tmp_path: Path, pki: Pki
) -> None:
    """``auth refresh --all`` whose token endpoint's certificate does not verify stops with
    exit 2 and the CA hint, as ``run`` does, not a per-user error and exit 1."""
    with https_project(tmp_path, pki, None) as project:
        result = _invoke(project, "auth", "refresh", "--all")
        assert project.sandbox.calls() == 0
    _assert_stopped_for_the_certificate(result)
    assert f"error: {USER}:" not in result.stderr


def test_auth_refresh_works_with_the_private_ca_trusted(tmp_path: Path, pki: Pki) -> None:
    """The same refresh with REQUESTS_CA_BUNDLE naming the CA refreshes the user."""
    with https_project(tmp_path, pki, None) as project:
        result = _invoke(project, "auth", "refresh", "--all", REQUESTS_CA_BUNDLE=str(pki.ca_pem))
    assert result.exit_code == 0, result.output
    assert f"refreshed {USER}" in result.stdout


def test_validate_online_stops_with_exit_2_on_a_certificate_that_does_not_verify(
    tmp_path: Path, pki: Pki
) -> None:
    """``validate --online`` whose API certificate does not verify stops with exit 2 and the
    CA hint, not a "could not be checked" problem for each user."""
    with https_project(tmp_path, pki, None) as project:
        result = _invoke(project, "validate", "--online", str(project.manifest))
        assert project.sandbox.calls() == 0
    _assert_stopped_for_the_certificate(result)
    assert "could not be checked" not in result.stderr


def test_a_run_stopped_by_a_certificate_writes_its_report_saying_why(
    tmp_path: Path, pki: Pki
) -> None:
    """A run stopped (exit 2) by a certificate that does not verify still writes the report
    asked for and the home's default one: each entry not attempted, with the reason."""
    with https_project(tmp_path, pki, None) as project:
        asked = tmp_path / "out" / "report.json"
        junit = tmp_path / "out" / "junit.xml"
        result = _invoke(
            project,
            "run",
            str(project.manifest),
            "--no-progress",
            "--report",
            str(asked),
            "--junit",
            str(junit),
        )
    _assert_stopped_for_the_certificate(result)
    report = json.loads(asked.read_text(encoding="utf-8"))
    jsonschema.validate(report, report_schema())
    (entry,) = report["entries"]
    assert entry["user_id"] == USER
    assert entry["status"] == "deferred"
    assert entry["error"]["code"] == "unsafe_connection"
    assert "does not verify" in entry["error"]["message"]
    assert "REQUESTS_CA_BUNDLE" in entry["error"]["hint"]
    assert report["summary"]["total"] == 1
    assert "unsafe_connection" in junit.read_text(encoding="utf-8")
    assert f"report: {asked}" in result.output


def test_a_run_stopped_by_a_certificate_writes_the_default_report(tmp_path: Path, pki: Pki) -> None:
    """Without --report the stopped run's report goes to the home's reports/ folder, as for
    any run, so a cron job's reader finds why."""
    with https_project(tmp_path, pki, None) as project:
        result = _invoke(project, "run", str(project.manifest), "--no-progress")
        (written,) = (project.sandbox_home() / "reports").glob("run-*.json")
    _assert_stopped_for_the_certificate(result)
    (entry,) = json.loads(written.read_text(encoding="utf-8"))["entries"]
    assert entry["error"]["code"] == "unsafe_connection"
