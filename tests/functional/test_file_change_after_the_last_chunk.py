"""A file edited after its last chunk may have gone out, then caught while that chunk is sent
again (issue 13 §1; found by the fault campaign, seed 143).

The last chunk went out whole and TikTok answered 5xx (it may have kept it), or an earlier
process may have sent it; the file is then edited, and the resend's guard holds the final bytes
back. The upload cannot be abandoned for a fresh init (it may publish): TikTok's status decides.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.sandbox import Fault
from orchestrator.tiktok.chunks import MIN_CHUNK
from orchestrator.upload import SourceChanged, UploadState
from tests.functional.test_file_changes import _age, _overwrite
from tests.functional.test_upload_sandbox import Rig, file_request, make_video, rig

__all__ = ["rig"]


def test_file_edited_before_the_last_chunk_is_resent_after_a_5xx_is_settled_by_status(
    rig: Rig, tmp_path: Path
) -> None:
    """Two chunks; the last one's first PUT is answered 503 after its whole body; the file is
    edited before the retry, whose guard holds the final bytes back: TikTok's status (it holds
    one chunk) ends the entry ``file_changed`` (retryable) — no crash on an illegal transition,
    no fresh init, nothing completed."""
    path, _ = make_video(tmp_path, 2 * MIN_CHUNK + 99)
    _age(path)
    rig.sandbox.schedule(Fault("upload", call=2, kind="status", status=503))
    edited: list[str] = []

    def edit_before_the_resend(method: str, url: str) -> None:
        if method == "PUT" and rig.sandbox.calls("upload") == 2 and not edited:
            edited.append(_overwrite(path, 10))

    rig.transport.hook = edit_before_the_resend
    outcome = rig.upload(file_request(path))
    assert edited
    assert outcome.state is UploadState.FAILED
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.retryable) == ("file_changed", True)
    assert not any(isinstance(event, SourceChanged) for event in rig.journal.events)
    assert rig.sandbox.calls("video_init") == 1
    assert [p for p in rig.sandbox.publishes() if p.completed] == []
    assert rig.sandbox.violations() == []
