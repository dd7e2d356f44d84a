"""Packaging: pyproject.toml holds the project's metadata, setup.cfg setuptools' declarative
sections, and no value is written in both."""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_setup_cfg_and_pyproject_hold_no_value_twice() -> None:
    """The console script, packages and package data are declared once, in setup.cfg; the
    metadata (version included) once, in pyproject; scripts are `dynamic` as setuptools needs."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setup_cfg = configparser.ConfigParser()
    setup_cfg.read(ROOT / "setup.cfg")
    project = pyproject["project"]
    assert "scripts" not in project
    assert project["dynamic"] == ["scripts"]
    assert "setuptools" not in pyproject.get("tool", {})
    assert not setup_cfg.has_section("metadata")
    scripts = setup_cfg["options.entry_points"]["console_scripts"].split()
    assert scripts == ["tiktok-orchestrator", "=", "orchestrator.cli:main"]
    assert "schemas/*.json" in setup_cfg["options.package_data"]["orchestrator"]
    urllib3 = [dep for dep in project["dependencies"] if dep.startswith("urllib3")]
    assert urllib3 == ["urllib3>=2.0,<3"]
