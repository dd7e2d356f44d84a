"""A file edited while it uploads is never published as a splice of two versions (issue 13 §1).

Each test checks what the sandbox *completed*: the SHA-256 of every completed upload must be
the SHA-256 of a whole version of the file (in practice: the version after the edit), or
nothing completes and the entry fails ``file_changed``.
"""

from __future__ import annotations

import json
import os
import struct
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.sandbox import Fault
from orchestrator.tiktok.chunks import MIN_CHUNK
from orchestrator.upload import (
    Initialised,
    SourceChanged,
    UploadState,
    transfer,
)
from tests.functional.test_upload_sandbox import Rig, file_request, make_video, rig
from tests.support.run_support import (
    SAMPLE,
    Served,
    completed_by_digest,
    journal_rows,
    sha256_of,
    wait_until,
)

__all__ = ["rig"]  # test_upload_sandbox's rig, not run_support's

USER = "sandbox-user-1"
HOLD = 30.0
FORTY_MB = 40_000_000
_EDIT_TIMES = iter(range(1, 1_000_000))


def _age(path: Path) -> None:
    """Give ``path`` an old modification time, as a finished video has."""
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))


def _overwrite(path: Path, offset: int, length: int = 4096) -> str:
    """Overwrite ``length`` bytes at ``offset`` in place (as an editor saving over the file
    does, at a later moment than any earlier edit) and return the new SHA-256."""
    with path.open("r+b") as file:
        file.seek(offset)
        file.write(os.urandom(length))
    # Each edit at its own moment: the file system's clock can be coarser than a test's pace.
    moment = 1_700_000_000_000_000_000 + next(_EDIT_TIMES) * 1_000_000_000
    os.utime(path, ns=(moment, moment))
    return sha256_of(path)


def _sparse_clip(folder: Path, name: str, size: int) -> Path:
    """A valid MP4 of ``size`` bytes, mostly a sparse hole (fast to make, nothing to write)."""
    sample = SAMPLE.read_bytes()
    pad = size - len(sample)
    path = folder / name
    with path.open("wb") as file:
        file.write(sample + struct.pack(">I", pad) + b"free")
        file.truncate(size)
    return path


@pytest.mark.slow  # 40 MB, a SIGKILL and a rerun as real processes
def test_file_edited_between_a_kill_and_the_rerun_is_uploaded_afresh(served: Served) -> None:
    """40 MB in 5 MiB chunks, SIGKILL after 3 chunks, 4 KiB overwritten at 6,000,000 and
    30,000,000: the rerun abandons the old upload (never completed) and publishes exactly the
    new file's bytes, never a splice."""
    video = _sparse_clip(served.folder, "long.mp4", FORTY_MB)
    _age(video)
    old_digest = sha256_of(video)
    manifest = served.manifest([{"user_id": USER, "video_path": video.name}])
    served.sandbox.schedule(Fault("upload", call=4, kind="delay", seconds=HOLD))
    args = ["run", str(manifest), "--chunk-size", str(MIN_CHUNK), "--jobs", "1", "--no-progress"]
    child = served.spawn(*args, "--report", "first.json", name="first")
    wait_until("the fourth chunk to be sent", lambda: served.sandbox.calls("upload") >= 4)
    child.kill()
    assert [r["bytes_confirmed"] for r in journal_rows(served.home)] == [3 * MIN_CHUNK]

    _overwrite(video, 6_000_000)
    new_digest = _overwrite(video, 30_000_000)
    assert new_digest != old_digest

    rerun = served.spawn(*args, "--report", "second.json", name="second")
    assert rerun.wait() == 0, rerun.stderr
    report = json.loads((served.folder / "second.json").read_text())
    assert [e["status"] for e in report["entries"]] == ["published"]
    assert completed_by_digest(served.sandbox) == Counter([new_digest])
    assert served.sandbox.calls("video_init") == 2  # the abandoned upload and the fresh one
    assert served.sandbox.violations() == []


def test_file_edited_between_chunks_in_one_process_is_uploaded_afresh(
    rig: Rig, tmp_path: Path
) -> None:
    """An edit between two chunks is seen before the next one: the upload under way is left
    incomplete (it never publishes) and a fresh init sends the edited file whole."""
    path, _ = make_video(tmp_path, 3 * MIN_CHUNK + 99)
    _age(path)
    edited: list[str] = []

    def edit_before_second_chunk(method: str, url: str) -> None:
        if method == "PUT" and rig.sandbox.calls("upload") == 1 and not edited:
            edited.append(_overwrite(path, MIN_CHUNK // 2))

    rig.transport.hook = edit_before_second_chunk
    outcome = rig.upload(file_request(path))
    assert outcome.state is UploadState.PUBLISHED
    completed = [p for p in rig.sandbox.publishes() if p.completed]
    assert [p.sha256 for p in completed] == edited
    assert len(rig.sandbox.publishes()) == 2
    assert sum(isinstance(e, SourceChanged) for e in rig.journal.events) == 1
    assert sum(isinstance(e, Initialised) for e in rig.journal.events) == 2
    assert rig.sandbox.violations() == []


def test_file_edited_while_the_last_chunk_is_read_never_completes_that_upload(
    rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit after the check before the last chunk (while it is being sent) holds its final
    bytes back: that upload never completes, and the edited file is sent afresh."""
    path, original = make_video(tmp_path, 2 * MIN_CHUNK + 99)
    _age(path)
    edited: list[str] = []

    def edit_as_the_last_chunk_goes(method: str, url: str) -> None:
        # The check before the chunk has passed; the body is read after this hook.
        if method == "PUT" and rig.sandbox.calls("upload") == 1 and not edited:
            edited.append(_overwrite(path, 10))

    rig.transport.hook = edit_as_the_last_chunk_goes
    original_check = transfer._file_change
    checks: list[int] = []

    def check_passes_once_then_real(run: object) -> str | None:
        checks.append(1)
        if len(checks) == 2:
            return None  # the check before the last chunk ran before the edit
        return original_check(run)  # type: ignore[arg-type]

    monkeypatch.setattr(transfer, "_file_change", check_passes_once_then_real)
    outcome = rig.upload(file_request(path))
    assert outcome.state is UploadState.PUBLISHED
    digests = [p.sha256 for p in rig.sandbox.publishes() if p.completed]
    assert digests == edited
    assert original not in digests
    assert rig.sandbox.violations() == []


def test_file_that_keeps_changing_fails_file_changed_and_nothing_completes(
    rig: Rig, tmp_path: Path
) -> None:
    """A file rewritten during every attempt: after two fresh starts the entry fails
    ``file_changed`` (retryable, with the fix), and no upload ever completed."""
    path, _ = make_video(tmp_path, 2 * MIN_CHUNK + 99)
    _age(path)

    def edit_on_every_chunk(method: str, url: str) -> None:
        if method == "PUT":
            _overwrite(path, 123)

    rig.transport.hook = edit_on_every_chunk
    outcome = rig.upload(file_request(path))
    assert outcome.state is UploadState.FAILED
    assert outcome.error is not None
    assert outcome.error.code == "file_changed"
    assert outcome.error.retryable
    assert outcome.error.hint is not None
    assert "finish writing it" in outcome.error.hint
    assert outcome.inits == 3
    assert [p for p in rig.sandbox.publishes() if p.completed] == []
    assert rig.sandbox.violations() == []
