"""With ``--log-format json`` a usage error (unknown option, missing argument, bad choice) is
one JSON line with the fields of every other error event, and still exits 2."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orchestrator.cli import cli


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _only_event(result: Result) -> dict[str, Any]:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    event: dict[str, Any] = json.loads(lines[0])
    return event


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["run", "m.json", "--log-format", "json", "--no-such-option"], "--no-such-option"),
        (["run", "--log-format=json"], "MANIFEST"),
        (["run", "m.json", "--log-format", "json", "--notify-on", "sometimes"], "sometimes"),
    ],
    ids=["unknown option", "missing argument", "bad choice"],
)
def test_a_usage_error_is_one_json_error_event(args: list[str], said: str) -> None:
    """The usage error is a JSON error event naming the command, the problem and where to
    look for the fix; exit 2; stdout stays empty."""
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    event = _only_event(result)
    assert event["level"] == "error"
    assert event["event"] == "error"
    assert event["error"] == "UsageError"
    assert event["exit_code"] == 2
    assert event["problems"] == []
    assert said in event["message"]
    assert event["message"].startswith("cli run: ")  # CliRunner's program name, then the command
    assert "`cli run --help`" in event["hint"]
    assert result.stdout == ""


def test_the_same_usage_error_without_json_stays_plain_text() -> None:
    """Without --log-format json click's usage text is shown as before."""
    result = _invoke("run", "m.json", "--no-such-option")
    assert result.exit_code == 2
    assert "No such option '--no-such-option'" in result.stderr
    assert not result.stderr.lstrip().startswith("{")
