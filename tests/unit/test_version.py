"""One version string: the package metadata, shown by `--version` and sent as the User-Agent."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

from click.testing import CliRunner

import orchestrator
from orchestrator.cli import cli
from orchestrator.transport import USER_AGENT

ROOT = Path(__file__).resolve().parents[2]


def test_version_option_prints_the_package_metadata_version() -> None:
    """`tiktok-orchestrator --version` prints the installed distribution's version."""
    done = CliRunner().invoke(cli, ["--version"], prog_name="tiktok-orchestrator")
    assert done.exit_code == 0
    assert done.output == f"tiktok-orchestrator, version {version('tiktok-orchestrator')}\n"


def test_package_version_is_the_one_in_pyproject() -> None:
    """orchestrator.__version__ is pyproject's version, and the User-Agent carries it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert orchestrator.__version__ == project["version"] == version("tiktok-orchestrator")
    assert f"tiktok-orchestrator/{project['version']}" == USER_AGENT
