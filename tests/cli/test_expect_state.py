"""`run --expect-state`: a CI run whose saved home was lost stops instead of posting again.

Through the real command against the sandbox (issue 16 §6): on a fresh home the run exits 2
naming the missing state database and both fixes, creates nothing (no home, no state.db) and
sends TikTok no request; on a home that holds its state the same command runs.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.store.db import DB_FILENAME
from tests.support.run_support import Served, assert_published_once

USER = "sandbox-user-1"


def test_a_fresh_home_is_refused_and_nothing_is_created_or_sent(
    served: Served, tmp_path: Path
) -> None:
    """With --expect-state and a home that does not exist: exit 2, the message names the
    missing state database, restoring it and dropping the flag; no home folder, no state.db,
    and the sandbox received no request."""
    clip, _digest = served.clip("a.mp4")
    manifest = served.manifest([{"user_id": USER, "video_path": clip.name}])
    fresh = tmp_path / "lost-home"
    served.env["ORCHESTRATOR_HOME"] = str(fresh)
    calls = served.sandbox.calls()

    result = served.invoke("run", str(manifest), "--expect-state")

    assert result.exit_code == 2, result.output
    assert "no state database in" in result.output
    assert "--expect-state" in result.output
    assert "restore the home's state.db" in result.output
    assert "drop --expect-state" in result.output
    assert "Traceback" not in result.output
    assert not fresh.exists()
    assert served.sandbox.calls() == calls


def test_the_environment_variable_guards_an_empty_home_too(served: Served, tmp_path: Path) -> None:
    """ORCHESTRATOR_EXPECT_STATE=1 alone refuses a home folder that exists but holds no
    state.db (a restore that brought back an empty folder): exit 2, still no state.db."""
    clip, _digest = served.clip("a.mp4")
    manifest = served.manifest([{"user_id": USER, "video_path": clip.name}])
    empty = tmp_path / "empty-home"
    empty.mkdir(mode=0o700)
    served.env |= {"ORCHESTRATOR_HOME": str(empty), "ORCHESTRATOR_EXPECT_STATE": "1"}
    calls = served.sandbox.calls()

    result = served.invoke("run", str(manifest))

    assert result.exit_code == 2, result.output
    assert "no state database in" in result.output
    assert list(empty.iterdir()) == []
    assert served.sandbox.calls() == calls


def test_a_home_with_its_state_runs(served: Served) -> None:
    """With --expect-state and ORCHESTRATOR_EXPECT_STATE=1 on the signed-in home: the run
    posts the video once and exits 0."""
    clip, digest = served.clip("a.mp4")
    manifest = served.manifest([{"user_id": USER, "video_path": clip.name}])
    assert (served.home / DB_FILENAME).is_file()
    served.env["ORCHESTRATOR_EXPECT_STATE"] = "1"

    result = served.invoke("run", str(manifest), "--expect-state")

    assert result.exit_code == 0, result.output
    assert_published_once(served.sandbox, [digest])


def test_a_mistyped_value_of_the_variable_is_a_configuration_error(served: Served) -> None:
    """ORCHESTRATOR_EXPECT_STATE=maybe: exit 2 naming the variable and the values it takes."""
    clip, _digest = served.clip("a.mp4")
    manifest = served.manifest([{"user_id": USER, "video_path": clip.name}])
    served.env["ORCHESTRATOR_EXPECT_STATE"] = "maybe"

    result = served.invoke("run", str(manifest))

    assert result.exit_code == 2, result.output
    assert "ORCHESTRATOR_EXPECT_STATE must be 1 or 0" in result.output
