"""Seal the test suite from the machine: no real home, no real credentials, no real API.

Shared fixtures and the test tiers live in ``tests/support/`` (loaded below as plugins).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.support.tiers",
    "tests.support.logs",
    "tests.support.sandbox_api",
    "tests.support.run_support",
    "pytester",  # tests/unit/test_tiers.py runs throw-away suites
]

_SEALED_VARS = (
    "TIKTOK_CLIENT_KEY",
    "TIKTOK_CLIENT_SECRET",
    "TIKTOK_REDIRECT_URI",
    "ORCHESTRATOR_HOME",
    "ORCHESTRATOR_TOKEN_KEY",
    "ORCHESTRATOR_API_BASE",
    "ORCHESTRATOR_AUTH_URL",
    "ORCHESTRATOR_STORE",
    "ORCHESTRATOR_PUBLIC_URL",
    "ORCHESTRATOR_ADMIN_PASSWORD",
    "ORCHESTRATOR_ADMIN_PASSWORD_HASH",
    "ORCHESTRATOR_TRUSTED_PROXIES",
    "ORCHESTRATOR_UPLOAD_ROOTS",
    "ORCHESTRATOR_WEB_PKCE",
    "GITHUB_STEP_SUMMARY",
    "BROWSER",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--campaign-seeds",
        type=int,
        default=None,
        help="fault campaign: play seeds 1..N (default 25, or CAMPAIGN_SEEDS; over 25 is the "
        "full campaign, with files over 128 MB)",
    )


@pytest.fixture(autouse=True)
def _sealed_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(fake_home))
    monkeypatch.setenv("XDG_STATE_HOME", str(fake_home / ".local" / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(fake_home / ".config"))
    for name in _SEALED_VARS:
        monkeypatch.delenv(name, raising=False)
    # Point the API at a closed loopback port so a test that forgets to configure it fails fast
    # instead of reaching TikTok.
    monkeypatch.setenv("ORCHESTRATOR_API_BASE", "http://127.0.0.1:9")
    monkeypatch.setenv("ORCHESTRATOR_AUTH_URL", "http://127.0.0.1:9/v2/auth/authorize/")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh ORCHESTRATOR_HOME for one test."""
    path = tmp_path / "orchestrator-home"
    return path
