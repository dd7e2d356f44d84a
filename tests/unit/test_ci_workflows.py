"""The GitHub Actions examples in contrib/ci/ are workflows GitHub accepts, and durable ones.

`actionlint` is not available here, so this checks the structure GitHub requires (``on``,
``jobs``, each job's ``runs-on`` and ``steps``, each step exactly one of ``uses``/``run``, action
references pinned, ``${{ }}`` expressions closed, ``needs`` naming real jobs), then what issue 16
§6 asks of these examples: no secret on a command line, state never in the evictable Actions
cache, the package installed from a pinned tag (it is not on PyPI), and a run without a database
guarded by --expect-state. The git-state workflow's own shell steps are run for real, against a
local bare repository standing in for GitHub: saved state comes back byte for byte.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "contrib" / "ci"
WORKFLOWS = sorted(CI.glob("*.yml"))
POSTGRES = CI / "github-actions.yml"
GIT_STATE = CI / "github-actions-git-state.yml"

TOP_KEYS = {"name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs"}
JOB_KEYS = {
    "name", "needs", "if", "runs-on", "environment", "concurrency", "outputs", "env",
    "defaults", "steps", "timeout-minutes", "strategy", "continue-on-error", "container",
    "services", "permissions",
}  # fmt: skip
STEP_KEYS = {
    "id", "if", "name", "uses", "run", "shell", "with", "env", "continue-on-error",
    "timeout-minutes", "working-directory",
}  # fmt: skip
EVENTS = {"pull_request", "push", "schedule", "workflow_dispatch", "workflow_call", "release"}
ACTION = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[A-Za-z0-9_./-]+)?@[A-Za-z0-9_.-]+$")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def load(path: Path) -> dict[Any, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path.name}: not a mapping"
    # PyYAML reads the bare key `on` as YAML 1.1's boolean; GitHub reads it as "on".
    if True in document:
        document["on"] = document.pop(True)
    return document


def steps_of(document: dict[Any, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in document["jobs"].items() for step in job["steps"]]


def scripts_of(document: dict[Any, Any]) -> list[str]:
    return [str(step["run"]) for _name, step in steps_of(document) if "run" in step]


def test_both_examples_are_here() -> None:
    """contrib/ci holds the PostgreSQL workflow and the no-database one, and nothing else."""
    assert [path.name for path in WORKFLOWS] == [
        "github-actions-git-state.yml",
        "github-actions.yml",
    ]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_the_workflow_has_the_structure_github_requires(path: Path) -> None:
    """Top-level `on` and `jobs`; known keys only; each job runs on a runner with steps; each
    step is exactly one of `uses` (an owner/repo@ref action) or `run`; `needs` names a job;
    every ${{ }} is closed; the cron has five fields."""
    document = load(path)
    assert set(document) <= TOP_KEYS, set(document) - TOP_KEYS
    assert {"on", "jobs"} <= set(document)
    assert set(document["on"]) <= EVENTS
    for schedule in document["on"].get("schedule", []):
        assert len(schedule["cron"].split()) == 5
    jobs = document["jobs"]
    assert jobs, "no jobs"
    for name, job in jobs.items():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name), name
        assert set(job) <= JOB_KEYS, (name, set(job) - JOB_KEYS)
        assert job.get("runs-on"), name
        assert job.get("steps"), name
        needs = job.get("needs", [])
        for needed in [needs] if isinstance(needs, str) else needs:
            assert needed in jobs, (name, needed)
        for step in job["steps"]:
            assert set(step) <= STEP_KEYS, (name, set(step) - STEP_KEYS)
            assert ("uses" in step) != ("run" in step), (name, step)
            if "uses" in step:
                assert ACTION.match(step["uses"]), step["uses"]
            else:
                assert "with" not in step, step
            assert all(
                not isinstance(value, dict | list) for value in step.get("with", {}).values()
            )
    text = path.read_text()
    assert text.count("${{") == text.count("}}") == len(EXPRESSION.findall(text))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_no_secret_is_put_on_a_command_line(path: Path) -> None:
    """Secrets reach a step only through `env:` (arguments show in `ps` and in logs): no
    `run:` script or `with:` value names `secrets.`, and no script passes --store."""
    document = load(path)
    for script in scripts_of(document):
        assert "secrets." not in script, script
        assert "--store" not in script, script
    for _name, step in steps_of(document):
        for value in step.get("with", {}).values():
            assert "secrets." not in str(value)
    secret_vars = {
        key
        for env in [
            document.get("env", {}),
            *(job.get("env", {}) for job in document["jobs"].values()),
        ]
        for key, value in env.items()
        if "secrets." in str(value)
    }
    assert "TIKTOK_CLIENT_SECRET" in secret_vars
    assert "ORCHESTRATOR_TOKEN_KEY" in secret_vars


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_the_package_comes_from_a_pinned_tag_not_pypi(path: Path) -> None:
    """tiktok-orchestrator is not on PyPI: every install names the repository at a vX.Y.Z tag."""
    document = load(path)
    package = document["env"]["ORCHESTRATOR_PACKAGE"]
    assert re.search(r"git\+https://github\.com/[^/@\s]+/[^/@\s]+@v\d+\.\d+\.\d+$", package)
    installs = [script for script in scripts_of(document) if "pip install" in script]
    assert installs
    assert all(script.strip() == 'pip install "$ORCHESTRATOR_PACKAGE"' for script in installs)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_state_is_never_kept_in_the_actions_cache(path: Path) -> None:
    """No actions/cache step: a cache is evicted after a week unused or under size pressure."""
    uses = [step.get("uses", "") for _name, step in steps_of(load(path))]
    assert not [action for action in uses if action.startswith("actions/cache")]


def test_the_recommended_workflow_uses_the_shared_store_from_a_secret() -> None:
    """The upload job's store is the ORCHESTRATOR_STORE secret and it installs the postgres
    extra; each workflow run is its own shared run (--run-id), so deferred entries are retried."""
    document = load(POSTGRES)
    upload = document["jobs"]["upload"]
    assert upload["env"]["ORCHESTRATOR_STORE"] == "${{ secrets.ORCHESTRATOR_STORE }}"
    assert "[postgres]" in document["env"]["ORCHESTRATOR_PACKAGE"]
    (run,) = [script for script in scripts_of(document) if "tiktok-orchestrator run" in script]
    assert "--run-id" in run
    assert "GITHUB_RUN_ID" in run


def test_the_no_database_workflow_expects_its_state_unless_told_it_is_the_first_run() -> None:
    """ORCHESTRATOR_EXPECT_STATE is 1 for every run except a dispatch with first_run checked;
    the state is saved even when the run failed, and the job may push it."""
    document = load(GIT_STATE)
    upload = document["jobs"]["upload"]
    assert upload["env"]["ORCHESTRATOR_EXPECT_STATE"] == "${{ inputs.first_run && '0' || '1' }}"
    assert document["on"]["workflow_dispatch"]["inputs"]["first_run"]["default"] is False
    assert upload["permissions"] == {"contents": "write"}
    save = next(step for step in upload["steps"] if step.get("name") == "save the state")
    assert save["if"] == "always()"


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def _step(name: str) -> str:
    upload = load(GIT_STATE)["jobs"]["upload"]
    return str(next(step for step in upload["steps"] if step.get("name") == name)["run"])


def _bash(script: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ORCHESTRATOR_HOME": str(home),
        "GITHUB_RUN_ID": "4242",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_git_state_steps_save_and_restore_the_state_database(tmp_path: Path) -> None:
    """The workflow's `save the state` step commits a copy of state.db (with what a killed
    run left in its WAL) and state.generation to the state branch; on the next run the
    `restore the state` step puts both back into a fresh home, private (0700/0600)."""
    origin = tmp_path / "origin.git"
    _git("init", "-q", "--bare", "-b", "orchestrator-state", str(origin), cwd=tmp_path)
    seed = tmp_path / "seed"
    _git("clone", "-q", str(origin), str(seed), cwd=tmp_path)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
         "-m", "empty", cwd=seed)  # fmt: skip
    _git("push", "-q", "origin", "HEAD:orchestrator-state", cwd=seed)

    night1 = tmp_path / "night1"
    _git("clone", "-q", "-b", "orchestrator-state", str(origin), "night1/state", cwd=tmp_path)
    home = night1 / ".orchestrator"
    assert _bash(_step("restore the state"), night1, home).returncode == 0
    assert list(home.iterdir()) == []
    live = sqlite3.connect(home / "state.db")
    live.execute("PRAGMA journal_mode=WAL")
    live.execute("PRAGMA wal_autocheckpoint=0")
    live.execute("CREATE TABLE journal (entry TEXT)")
    live.execute("INSERT INTO journal VALUES ('posted-a')")
    live.commit()  # left open: the row is in the WAL only, as after a killed run
    (home / "state.generation").write_text("3")
    saved = _bash(_step("save the state"), night1, home)
    live.close()
    assert saved.returncode == 0, saved.stderr
    assert "state after run 4242" in _git("log", "--format=%s", "orchestrator-state", cwd=origin)

    night2 = tmp_path / "night2"
    _git("clone", "-q", "-b", "orchestrator-state", str(origin), "night2/state", cwd=tmp_path)
    fresh = night2 / ".orchestrator"
    restored = _bash(_step("restore the state"), night2, fresh)
    assert restored.returncode == 0, restored.stderr
    assert (fresh / "state.generation").read_text() == "3"
    back = sqlite3.connect(fresh / "state.db")
    try:
        assert back.execute("SELECT entry FROM journal").fetchall() == [("posted-a",)]
    finally:
        back.close()
    assert fresh.stat().st_mode & 0o777 == 0o700
    assert {path.stat().st_mode & 0o777 for path in fresh.iterdir()} == {0o600}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_saving_without_a_state_database_pushes_nothing(tmp_path: Path) -> None:
    """A run refused by --expect-state creates no state.db: the save step says so and leaves
    the state branch as it was (an empty home never overwrites the saved state)."""
    work = tmp_path / "work"
    (work / "state").mkdir(parents=True)
    done = _bash(_step("save the state"), work, work / ".orchestrator")
    assert done.returncode == 0, done.stderr
    assert "nothing to save" in done.stdout
    assert list((work / "state").iterdir()) == []
