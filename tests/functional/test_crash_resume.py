"""SIGKILL at every journal transition, then a rerun: every entry is published exactly once.

The real `python -m orchestrator run` runs in a child process against a sandbox served by this
test process. To kill it at a precise point, a one-shot ``delay`` fault holds the answer to the
request that follows that point; once the sandbox shows the request arrived (and, where it
matters, was processed), the child is killed with SIGKILL: no handler runs, nothing is flushed.
The journal is then read as the next run will find it, and the rerun must finish the job with
exactly one completed upload per file (counted by content digest at the sandbox) and no
protocol violation.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.sandbox import Fault, Sandbox
from orchestrator.tiktok.chunks import MIN_CHUNK
from tests.support.run_support import (
    TWO_CHUNKS,
    Served,
    assert_published_once,
    completed_by_digest,
    journal_rows,
    wait_until,
)

USER = "sandbox-user-1"
HOLD = 30.0  # seconds a delayed answer would take: far longer than any test waits


def _run_args(manifest: Path, report: str) -> list[str]:
    return [
        "run",
        str(manifest),
        "--chunk-size",
        str(MIN_CHUNK),
        "--jobs",
        "1",
        "--no-progress",
        "--report",
        report,
    ]


def _first_publish(sandbox: Sandbox) -> Callable[[], bool]:
    return lambda: bool(sandbox.publishes())


@dataclass(frozen=True)
class KillPoint:
    """Where to kill: the fault that holds the child, what shows it got there, and the journal
    row of the first entry the kill must leave behind (``None``: no row yet)."""

    name: str
    fault: Fault
    arrived: Callable[[Sandbox], bool]
    state: str | None
    bytes_confirmed: int = 0


def _bytes_at_server(sandbox: Sandbox, count: int) -> bool:
    records = sandbox.publishes()
    return bool(records) and records[0].bytes_received >= count


KILL_POINTS = [
    # creator_info is the last request before the first init: nothing is journalled yet.
    KillPoint(
        "before-init",
        Fault("creator_info", call=1, kind="delay", seconds=HOLD),
        lambda sb: sb.calls("creator_info") >= 1,
        None,
    ),
    # TikTok accepted the init (a publish exists); its answer never reached the journal.
    KillPoint(
        "after-init",
        Fault("video_init", call=1, kind="delay", seconds=HOLD),
        lambda sb: bool(sb.publishes()),
        "initialising",
    ),
    # The server holds chunk 0; the journal has the init but no chunk.
    KillPoint(
        "mid-chunk",
        Fault("upload", call=1, kind="delay", seconds=HOLD),
        lambda sb: _bytes_at_server(sb, MIN_CHUNK),
        "uploading",
        0,
    ),
    # The server has every byte (it will publish); the journal knows only chunk 0.
    KillPoint(
        "after-last-chunk",
        Fault("upload", call=2, kind="delay", seconds=HOLD),
        lambda sb: bool(sb.publishes()) and sb.publishes()[0].completed,
        "uploading",
        MIN_CHUNK,
    ),
    # Every byte is in and journalled; the child is waiting for a status answer.
    KillPoint(
        "while-polling",
        Fault("status", call=1, kind="delay", seconds=HOLD),
        lambda sb: sb.calls("status") >= 1,
        "uploaded",
        TWO_CHUNKS,
    ),
]


FAST_KILL_POINTS = ("after-init", "mid-chunk")
"""The kill points the fast tier replays (an init TikTok holds, an upload cut mid-chunk); the
others are in the slow tier, beside the campaign's kills at random moments."""


@pytest.mark.parametrize(
    "point",
    [
        p if p.name in FAST_KILL_POINTS else pytest.param(p, marks=pytest.mark.slow)
        for p in KILL_POINTS
    ],
    ids=[p.name for p in KILL_POINTS],
)
def test_sigkill_then_rerun_publishes_every_entry_exactly_once(
    served: Served, point: KillPoint
) -> None:
    """Killed at this transition, the next run resumes or restarts safely: each file is
    published once, byte-exact, with no violation, and the report says so."""
    big, digest_big = served.clip("big.mp4", TWO_CHUNKS)
    small, digest_small = served.clip("small.mp4")
    manifest = served.manifest(
        [
            {"user_id": USER, "video_path": big.name, "description": "big"},
            {"user_id": USER, "video_path": small.name, "description": "small"},
        ]
    )
    served.sandbox.schedule(point.fault)
    child = served.spawn(*_run_args(manifest, "first.json"), name="first")
    wait_until(f"the child to reach {point.name}", lambda: point.arrived(served.sandbox))
    child.kill()
    assert child.process.returncode == -9

    rows = journal_rows(served.home)
    if point.state is None:
        assert rows == []
    else:
        assert [(r["source"], r["state"]) for r in rows] == [("big.mp4", point.state)]
        assert rows[0]["bytes_confirmed"] == point.bytes_confirmed
    assert not (served.folder / "first.json").exists()  # killed: no report, by design

    rerun = served.spawn(*_run_args(manifest, "second.json"), name="second")
    assert rerun.wait() == 0, rerun.stderr
    report = json.loads((served.folder / "second.json").read_text())
    assert [e["status"] for e in report["entries"]] == ["published", "published"]
    assert not report["interrupted"]
    assert_published_once(served.sandbox, [digest_big, digest_small])
    assert {r["state"] for r in journal_rows(served.home)} == {"published"}


URL_SOURCES = {
    "video_url": ({"video_url": "https://media.example.com/launch.mp4"}, "video_init"),
    "photo": (
        {"photo_urls": ["https://media.example.com/1.jpg", "https://media.example.com/2.jpg"]},
        "content_init",
    ),
}


@pytest.mark.parametrize(
    "kind",
    # The photo case takes the same path as the video URL; it is in the slow tier.
    [
        pytest.param(kind, marks=pytest.mark.slow) if kind == "photo" else kind
        for kind in URL_SOURCES
    ],
)
def test_sigkill_after_a_url_init_was_sent_leaves_it_uncertain_never_retried(
    served: Served, kind: str
) -> None:
    """A PULL_FROM_URL (video or photo) init answered only after the kill may have posted:
    each later run reports it uncertain without a request for it; it stays posted once."""
    source, endpoint = URL_SOURCES[kind]
    small, digest_small = served.clip("small.mp4")
    manifest = served.manifest(
        [
            {"user_id": USER, **source},
            {"user_id": USER, "video_path": small.name},
        ]
    )
    served.sandbox.schedule(Fault(endpoint, call=1, kind="delay", seconds=HOLD))
    child = served.spawn(*_run_args(manifest, "first.json"), name="first")
    wait_until("the URL init to reach TikTok", _first_publish(served.sandbox))
    child.kill()
    assert [r["state"] for r in journal_rows(served.home)] == ["initialising"]

    for attempt in ("second", "third"):
        rerun = served.spawn(*_run_args(manifest, f"{attempt}.json"), name=attempt)
        assert rerun.wait() == 1, rerun.stderr  # an uncertain entry is a failure to look at
        report = json.loads((served.folder / f"{attempt}.json").read_text())
        first, second = report["entries"]
        assert first["status"] == "uncertain"
        assert first["error"]["code"] == "uncertain"
        assert "`id`" in first["error"]["hint"]
        assert second["status"] in ("published", "already_done")
    # The init the kill interrupted and the file's init; nothing else was sent.
    assert served.sandbox.calls("video_init") + served.sandbox.calls("content_init") == 2
    assert len(served.sandbox.publishes()) == 2
    url_publishes = [p for p in served.sandbox.publishes() if p.source == "PULL_FROM_URL"]
    assert len(url_publishes) == 1
    assert completed_by_digest(served.sandbox) == Counter([digest_small])
    assert served.sandbox.violations() == []


@pytest.mark.slow
def test_killed_again_and_again_at_random_moments_it_still_posts_each_file_once(
    served: Served,
) -> None:
    """A campaign: a run is SIGKILLed at a random moment, twelve times in a row (sometimes
    before anything, sometimes mid-chunk, sometimes while polling), then one run finishes.
    Whatever the kill points were, each file is published exactly once, byte-exact."""
    rng = random.Random(20261122)
    clips = [served.clip(f"clip-{n}.mp4", TWO_CHUNKS + n) for n in range(3)]
    users = [USER, "sandbox-user-2", USER]
    manifest = served.manifest(
        [{"user_id": u, "video_path": p.name} for u, (p, _) in zip(users, clips, strict=True)]
    )
    pause = threading.Event()
    for attempt in range(12):
        # Slow answers widen the windows between journal writes, so kills land mid-step too.
        endpoint = rng.choice(["upload", "status", "video_init", "creator_info"])
        served.sandbox.schedule(Fault(endpoint, call=None, kind="delay", seconds=0.05))
        child = served.spawn(*_run_args(manifest, f"kill-{attempt}.json"), name=f"kill-{attempt}")
        pause.wait(rng.uniform(0.2, 1.2))
        child.kill()
        served.sandbox.clear_faults()
    final = served.spawn(*_run_args(manifest, "final.json"), name="final")
    assert final.wait() == 0, final.stderr
    report = json.loads((served.folder / "final.json").read_text())
    assert {e["status"] for e in report["entries"]} <= {"published", "already_done"}
    assert_published_once(served.sandbox, [digest for _, digest in clips])
