"""`doctor` through the real command line: exit 0 when ready, 1 with a problem, --json."""

from __future__ import annotations

import json

from tests.cli.test_run_cli import invoke
from tests.support.run_support import Served


def test_a_ready_setup_exits_0_and_lists_every_check(served: Served) -> None:
    """The sandbox app with signed-in users: exit 0, one line per check."""
    result = invoke(served, "doctor")
    assert result.exit_code == 0, result.output
    assert "[  ok] app credentials: TikTok recognised the app's key and secret" in result.output
    assert "[  ok] store: SQLite: integrity ok" in result.output
    assert "[  ok] user sandbox-user-3:" in result.output
    assert "clock:" in result.output
    assert "ffprobe" in result.output


def test_a_wrong_secret_exits_1_naming_the_variable_not_the_value(served: Served) -> None:
    """invalid_client → exit 1, the fix names TIKTOK_CLIENT_SECRET; the value is not shown."""
    result = invoke(served, "doctor", env={"TIKTOK_CLIENT_SECRET": "s3cr3t-wrong-value"})
    assert result.exit_code == 1
    assert "[FAIL] app credentials" in result.output
    assert (
        "fix: check TIKTOK_CLIENT_KEY (or --client-key) and TIKTOK_CLIENT_SECRET" in result.output
    )
    assert "s3cr3t-wrong-value" not in result.output
    assert served.sandbox.client_secret not in result.output


def test_json_output_for_scripts(served: Served) -> None:
    """--json: one document with ok and each check's name, status, detail and fix."""
    result = invoke(served, "doctor", "--json", env={"TIKTOK_CLIENT_KEY": "unknown-app"})
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["ok"] is False
    first = document["checks"][0]
    assert first["name"] == "app credentials"
    assert first["status"] == "problem"
    assert set(first) == {"name", "status", "detail", "fix"}


def test_a_bad_configuration_is_a_problem_not_a_crash(served: Served) -> None:
    """A redirect URI that is no loopback address: reported as a problem with its fix, exit 1."""
    result = invoke(
        served, "doctor", env={"TIKTOK_REDIRECT_URI": "https://connect.example.com/callback/"}
    )
    assert result.exit_code == 1
    assert "[FAIL] configuration: TIKTOK_REDIRECT_URI must be a loopback URL" in result.output
    assert "fix: TikTok desktop apps redirect to http://127.0.0.1:PORT/callback/" in result.output


def test_a_web_app_checks_its_https_redirect(served: Served) -> None:
    """--app-type web with a redirect carrying a query: a problem saying it must be static."""
    result = invoke(
        served,
        "doctor",
        "--app-type",
        "web",
        "--web-redirect-uri",
        "https://connect.example.com/cb?x=1",
    )
    assert result.exit_code == 1
    assert "no query and no fragment" in result.output
