"""`history` (what the journal knows) and `status` (what TikTok says now) through the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from orchestrator.cli import cli
from tests.support.run_support import Served


def invoke(served: Served, *args: str, env: dict[str, str] | None = None) -> Result:
    old = Path.cwd()
    os.chdir(served.folder)
    try:
        return CliRunner().invoke(cli, list(args), env={**served.env, **(env or {})})
    finally:
        os.chdir(old)


@pytest.fixture
def posted(served: Served) -> dict[str, str]:
    """Two users' posts made by a real run: a public post (with a post id) and a private one."""
    a, _ = served.clip("a.mp4")
    b, _ = served.clip("b.mp4")
    manifest = served.manifest(
        [
            {
                "id": "launch",
                "user_id": "sandbox-user-1",
                "video_path": a.name,
                "privacy_level": "PUBLIC_TO_EVERYONE",
            },
            {"user_id": "sandbox-user-2", "video_path": b.name},
        ]
    )
    result = invoke(served, "run", str(manifest), "--report", "r.json")
    assert result.exit_code == 0, result.output
    entries = json.loads((served.folder / "r.json").read_text())["entries"]
    return {entry["user_id"]: entry["publish_id"] for entry in entries}


def test_history_of_a_home_without_a_journal_says_so_and_creates_nothing(
    served: Served, tmp_path: Path
) -> None:
    """`history` on an empty home: a sentence, exit 0, and no state database made for it."""
    empty = tmp_path / "empty-home"
    result = invoke(served, "history", env={"ORCHESTRATOR_HOME": str(empty)})
    assert result.exit_code == 0
    assert "no entries" in result.stdout
    assert not empty.exists()


def test_history_lists_entry_user_state_publish_id_and_post_ids(
    served: Served, posted: dict[str, str]
) -> None:
    """Each journalled entry shows with its user, state, publish_id and post ids."""
    result = invoke(served, "history")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "launch" in out
    assert "b.mp4" in out
    assert out.count("published") == 2
    for publish_id in posted.values():
        assert publish_id in out
    (record,) = [r for r in _history_json(served) if r["id"] == "launch"]
    assert record["post_ids"]  # a public post has one
    assert record["post_ids"][0] in out


def _history_json(served: Served, *args: str) -> list[dict[str, object]]:
    result = invoke(served, "history", "--json", *args)
    assert result.exit_code == 0, result.output
    records: list[dict[str, object]] = json.loads(result.stdout)
    return records


def test_history_filters_by_user_and_since(served: Served, posted: dict[str, str]) -> None:
    """--user keeps one user's entries; --since keeps recent ones (an age or an ISO time)."""
    mine = _history_json(served, "--user", "sandbox-user-2")
    assert [r["user_id"] for r in mine] == ["sandbox-user-2"]
    assert mine[0]["publish_id"] == posted["sandbox-user-2"]
    assert len(_history_json(served, "--since", "1h")) == 2
    assert _history_json(served, "--since", "2999-01-01") == []
    assert len(_history_json(served, "--since", "2000-01-01T00:00:00Z")) == 2
    assert len(_history_json(served, "--limit", "1")) == 1


def test_history_json_never_carries_an_upload_url(served: Served, posted: dict[str, str]) -> None:
    """The JSON has the report's vocabulary and no upload URL or token."""
    records = _history_json(served)
    assert {r["state"] for r in records} == {"published"}
    text = json.dumps(records)
    assert "upload_url" not in text
    assert "upload_token" not in text


def test_history_with_a_bad_since_is_a_usage_error(served: Served) -> None:
    """--since yesterday-ish: exit 2 with the accepted forms."""
    result = invoke(served, "history", "--since", "last tuesday")
    assert result.exit_code == 2
    assert "24h" in result.output


def test_status_shows_tiktoks_answer_and_the_journal_entry(
    served: Served, posted: dict[str, str]
) -> None:
    """`status PUBLISH_ID --user` prints TikTok's status, the post id, and the journal's view."""
    publish_id = posted["sandbox-user-1"]
    result = invoke(served, "status", publish_id, "--user", "sandbox-user-1")
    assert result.exit_code == 0, result.output
    assert "PUBLISH_COMPLETE" in result.stdout
    assert "journal:    launch is published" in result.stdout
    data = json.loads(
        invoke(served, "status", publish_id, "--user", "sandbox-user-1", "--json").stdout
    )
    assert data["status"] == "PUBLISH_COMPLETE"
    assert data["post_ids"]
    assert data["journal"]["id"] == "launch"


def test_status_of_a_failed_post_explains_the_reason(served: Served) -> None:
    """A FAILED post shows its fail_reason, whether a retry can help, and the fix."""
    a, _ = served.clip("a.mp4")
    manifest = served.manifest([{"user_id": "sandbox-user-3", "video_path": a.name}])
    served.sandbox.fail_next_publish("sandbox-user-3", "frame_rate_check_failed")
    assert invoke(served, "run", str(manifest), "--report", "r.json").exit_code == 1
    (entry,) = json.loads((served.folder / "r.json").read_text())["entries"]
    result = invoke(served, "status", entry["publish_id"], "--user", "sandbox-user-3")
    assert result.exit_code == 0, result.output
    assert "fail reason: frame_rate_check_failed (permanent)" in result.stdout
    assert "hint:" in result.stdout


def test_status_of_an_unknown_publish_id_exits_1_with_tiktoks_code(served: Served) -> None:
    """TikTok's invalid_publish_id comes back as a clear error and exit 1."""
    result = invoke(served, "status", "v_pub_file~v2-1.nope", "--user", "sandbox-user-1")
    assert result.exit_code == 1
    assert "invalid_publish_id" in result.stderr


def test_status_for_a_user_without_tokens_says_to_log_in(served: Served) -> None:
    """A user not in the token store: exit 1 with the `auth login` hint; no request sent."""
    result = invoke(served, "status", "v_pub_file~v2-1.1", "--user", "someone-else")
    assert result.exit_code == 1
    assert "auth login" in result.stderr
    assert served.sandbox.calls("status") == 0
