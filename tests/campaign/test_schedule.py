"""The schedule generator: seeds replay the schedule of their version; version 4 edits files
in place and adds ids (what the campaign's integrity and adoption invariants exercise), version 6
pauses the process (SIGSTOP, TikTok's clock moving on meanwhile)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.campaign.schedule import EDIT_MARGIN, Trigger, WorkerPause, generate


def test_older_versions_keep_their_schedules() -> None:
    """Version 3's schedules have no edits and no added ids; version 4 draws the same entries,
    faults and kills for the same seed, and adds only its own steps."""
    for seed in range(1, 60):
        old, new = generate(seed, version=3), generate(seed, version=4)
        assert all(not run.edits and not run.add_ids for run in old.runs)
        assert old.entries == new.entries
        assert [(r.faults, r.kill) for r in old.runs] == [
            (r.faults, r.kill) for r in new.runs[: len(old.runs)]
        ]


def test_version_4_edits_files_clear_of_their_fingerprint_and_adds_ids() -> None:
    """Over the default seeds there are edits before and during runs, and id additions; every
    edit stays out of the file's first and last MiB."""
    schedules = [generate(seed) for seed in range(1, 26)]
    edits = [
        (schedule.entries[edit.entry], edit)
        for schedule in schedules
        for run in schedule.runs
        for edit in run.edits
    ]
    assert any(edit.when is None for _, edit in edits)
    assert any(edit.when is not None for _, edit in edits)
    assert any(run.add_ids for schedule in schedules for run in schedule.runs)
    for entry, edit in edits:
        assert entry.kind == "file"
        assert EDIT_MARGIN <= edit.offset <= entry.size - EDIT_MARGIN


def test_version_6_pauses_the_process_and_leaves_the_rest_of_version_5() -> None:
    """Version 6 draws the same entries, faults, kills, edits and damaged stores as version 5
    for the same seed and adds only pauses: inside inits, mid-chunk and while polling, some
    moving TikTok's clock past an upload URL's hour or a token's lifetime, some never resumed."""
    pauses = []
    for seed in range(1, 60):
        old, new = generate(seed, version=5), generate(seed, version=6)
        assert all(run.pause is None for run in old.runs)
        assert old.entries == new.entries
        assert [replace(run, pause=None) for run in new.runs] == list(old.runs)
        pauses += [run.pause for run in new.runs if run.pause is not None]
    assert {pause.when.endpoint for pause in pauses} >= {"video_init", "upload", "status"}
    assert any(pause.kill for pause in pauses)
    assert any(not pause.kill for pause in pauses)
    assert any(pause.jump > 3600 for pause in pauses)  # past the URL's hour
    assert any(pause.jump > 7200 for pause in pauses)  # past the access token's lifetime


def test_a_held_pause_needs_a_staggered_second_worker() -> None:
    """A held pause whose B starts with A is refused: the harness could not tell A's open
    transactions from B's when it stops A."""
    with pytest.raises(ValueError, match="staggered"):
        WorkerPause(
            Trigger("video_init", 1), 3.0, terminate=False, kill=False, staggered=False, held=True
        )
