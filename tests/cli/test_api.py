"""The public Python API: its exported names are pinned, and the README's example runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator import api
from orchestrator.config import load_settings
from orchestrator.sandbox import SandboxConfig
from orchestrator.sandbox.demo import sandbox_session

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_api_exports_exactly_these_names() -> None:
    """`orchestrator.api.__all__` is the API's surface: a change to it is deliberate."""
    assert sorted(api.__all__) == [
        "EntryResult",
        "OrchestratorError",
        "PostStatus",
        "Problem",
        "RefreshOutcome",
        "RunReport",
        "Settings",
        "TokenState",
        "UserSummary",
        "list_users",
        "load_settings",
        "post_status",
        "refresh_users",
        "report_document",
        "run",
        "validate",
    ]
    for name in api.__all__:
        exported = getattr(api, name)
        assert exported.__doc__, f"api.{name} has no docstring"


def _python_blocks() -> list[str]:
    return re.findall(r"<!-- runnable -->\n```python\n(.*?)```", README, flags=re.DOTALL)


def test_readme_has_a_runnable_python_api_example() -> None:
    """The "Python API" section holds a Python block marked runnable."""
    section = README.split("## Python API", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"<!-- runnable -->\n```python\n", section)


@pytest.mark.parametrize("block", _python_blocks())
def test_runnable_readme_python_block_succeeds_against_the_sandbox(
    block: str, tmp_path: Path
) -> None:
    """Each Python block marked runnable exits 0 in a fresh interpreter, with the environment
    pointing at a running sandbox whose users are signed in (as a deployment's would be)."""
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    base = load_settings(environ={}, home=tmp_path / "unused-home")
    # No PROCESSING answer before the final one: polling is proven elsewhere
    # (tests/functional/test_upload_sandbox.py with a manual clock); here each would cost 2 s.
    with sandbox_session(base, config=SandboxConfig(processing_polls=0)) as settings:
        secret = settings.client_secret
        assert secret is not None
        assert settings.client_key is not None
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "ORCHESTRATOR_HOME": str(settings.home),
            "ORCHESTRATOR_API_BASE": settings.api_base,
            "ORCHESTRATOR_AUTH_URL": settings.auth_url,
            "TIKTOK_REDIRECT_URI": settings.redirect_uri,
            "TIKTOK_CLIENT_KEY": settings.client_key,
            "TIKTOK_CLIENT_SECRET": secret.reveal(),
        }
        done = subprocess.run(
            [sys.executable, "-c", block],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "studio-tour sandbox-user-1 published" in done.stdout
    assert "PUBLISH_COMPLETE" in done.stdout
    # The list of entries was written next to its media for the run only.
    assert not list((tmp_path / "manifests").glob(".tiktok-orchestrator-entries-*"))


def test_validate_returns_every_problem_with_its_place(tmp_path: Path) -> None:
    """A manifest with two bad entries gives two Problems, each naming its entry and line;
    a valid one gives none."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\n"
        "entries:\n"
        "  - user_id: u1\n"
        "    video_path: missing.mp4\n"
        "  - user_id: u2\n"
        "    video_path: also-missing.mp4\n"
    )
    problems = api.validate(bad)
    assert [problem.location for problem in problems] == [
        "entries[0].video_path",
        "entries[1].video_path",
    ]
    assert [problem.line for problem in problems] == [4, 6]
    assert api.validate(ROOT / "manifests" / "demo.yaml") == []


def test_a_home_nobody_signed_in_on_lists_and_refreshes_no_user(tmp_path: Path) -> None:
    """list_users and refresh_users(all_users=True) on an empty home give [] and create
    nothing."""
    home = tmp_path / "home"
    settings = load_settings(
        environ={"TIKTOK_CLIENT_KEY": "ck", "TIKTOK_CLIENT_SECRET": "cs"}, home=home
    )
    assert api.list_users(settings=settings) == []
    assert api.refresh_users(all_users=True, settings=settings) == []
    assert not (home / "state.db").exists()
