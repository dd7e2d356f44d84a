"""`run --dry-run` on a home that does not exist yet reads only: it creates nothing.

Through the real command against the sandbox: a missing state database means nobody signed in
on that home, which the plan says for each entry, as for a user not signed in.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.run_support import Served

USER = "sandbox-user-1"
OTHER = "sandbox-user-2"


def test_a_dry_run_on_a_fresh_home_creates_nothing_and_says_nobody_signed_in(
    served: Served, tmp_path: Path
) -> None:
    """No home folder, no state.db, no token key after the dry run; each entry's plan says its
    user is not signed in on this home, and TikTok received no request."""
    first, _ = served.clip("a.mp4")
    second, _ = served.clip("b.mp4")
    manifest = served.manifest(
        [
            {"user_id": USER, "video_path": first.name},
            {"user_id": OTHER, "video_path": second.name},
        ]
    )
    fresh = tmp_path / "fresh-home"
    served.env["ORCHESTRATOR_HOME"] = str(fresh)
    calls = served.sandbox.calls()
    report = tmp_path / "plan.json"

    result = served.invoke("run", str(manifest), "--dry-run", "--report", str(report))

    assert not fresh.exists(), sorted(str(path) for path in fresh.rglob("*"))
    assert served.sandbox.calls() == calls
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output  # needs_login fails an entry, as in a real run
    entries = json.loads(report.read_text(encoding="utf-8"))["entries"]
    assert [entry["user_id"] for entry in entries] == [USER, OTHER]
    for entry in entries:
        assert entry["error"]["code"] == "needs_login"
        assert f"no state database in {fresh}" in entry["error"]["message"]
        assert f"auth login` for {entry['user_id']}" in entry["error"]["hint"]
    assert "needs_login" in result.stdout
