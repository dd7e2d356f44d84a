"""The command-line surface: commands registered, exit codes, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from orchestrator.cli import cli


def test_help_lists_every_command() -> None:
    """`--help` shows run, validate, auth, status, history and sandbox."""
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "validate", "auth", "status", "history", "sandbox"):
        assert f"  {command} " in result.output


def test_auth_help_lists_subcommands() -> None:
    """`auth --help` shows login, import, list, refresh, revoke and remove."""
    result = CliRunner().invoke(cli, ["auth", "--help"])
    assert result.exit_code == 0
    for command in ("login", "import", "list", "refresh", "revoke", "remove"):
        assert f"  {command} " in result.output


def test_python_dash_m_runs_the_cli() -> None:
    """`python -m orchestrator --help` works as a real process."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout


def test_unknown_option_is_a_usage_error() -> None:
    """A mistyped option exits 2 with click's message."""
    result = CliRunner().invoke(cli, ["run", "--no-such-option", "m.json"])
    assert result.exit_code == 2
    assert "No such option" in result.output
