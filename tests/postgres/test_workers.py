"""Four workers on one manifest against a real PostgreSQL store, SIGKILLed and restarted at
random moments: every entry is published exactly once, none is lost, TikTok sees no violation.

The workers are real ``python -m orchestrator --store postgresql://… run`` processes against a
sandbox served by this test process, with TikTok's per-token rate windows enforced (a request
over the limit is a violation): the windows are counted in the database, so a worker taking a
user over knows what the killed one sent. Each user posts five videos directly and shares five
to the inbox, so each init window (six a minute) has room for a re-init after a kill and the
test needs no minute-long wait. Status and creator_info answers are slowed a little so kills
land between journal steps.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from orchestrator.runner import shared_run_id
from orchestrator.sandbox import Fault
from orchestrator.secret import Secret
from orchestrator.store.postgres import PostgresDatabase
from orchestrator.store.queue import QueueItem, read_items
from orchestrator.tiktok.chunks import MIN_CHUNK
from tests.support.run_support import (
    TWO_CHUNKS,
    USERS,
    Child,
    Served,
    completed_by_digest,
)

WORKERS = 4
VIDEOS_PER_USER = 10
KILLS = 6
LEASE = "2"


def _pid(worker: str | None) -> int:
    """The process id in a worker's queue name (``host:pid:tag``)."""
    return int(str(worker).split(":")[1])


def _claimed(item: QueueItem) -> bool:
    return item.state == "pending" and item.worker is not None


def _worker_args(manifest: Path, report: str) -> list[str]:
    # --store comes from ORCHESTRATOR_STORE (a URL with a password would show in `ps`).
    return [
        "run",
        str(manifest),
        "--chunk-size",
        str(MIN_CHUNK),
        "--jobs",
        "2",
        "--lease",
        LEASE,
        "--daily-cap",
        "100",
        "--inbox-cap",
        "100",
        "--no-progress",
        "--report",
        report,
    ]


@pytest.mark.slow
def test_four_workers_killed_at_random_publish_each_entry_exactly_once(
    shared: tuple[Served, str],
) -> None:
    """3 users x 10 videos, 4 workers, 6 random SIGKILLs each followed by a restart: every
    video is uploaded and posted exactly once (byte-exact), none lost, no protocol violation
    (rate windows included), and the combined report shows the whole run."""
    served, pg_url = shared
    rng = random.Random(20261122)
    clips = []
    entries = []
    for user in USERS:
        for n in range(VIDEOS_PER_USER):
            # Every third video has two chunks, so some kills land between chunks.
            size = TWO_CHUNKS + n if n % 3 == 0 else None
            path, digest = served.clip(f"{user}-{n}.mp4", size)
            clips.append(digest)
            mode = "direct" if n % 2 == 0 else "inbox"
            entries.append(
                {"id": f"{user}-{n}", "user_id": user, "video_path": path.name, "mode": mode}
            )
    manifest = served.manifest(entries)
    # Slow answers widen the windows between journal steps, so kills land mid-step. Not the
    # inits (a kill there means a re-init, and two in one user's window mean a minute's wait),
    # nor the uploads: the sandbox decides a 416 before the delay, so a worker killed while the
    # answer is held never sees it, and the sandbox would count the next worker's first resend
    # as a resend "after a 416 without resyncing".
    for endpoint in ("status", "creator_info"):
        served.sandbox.schedule(Fault(endpoint, call=None, kind="delay", seconds=0.03))

    run_id = shared_run_id(manifest)
    started = time.monotonic()
    spawned = 0

    def spawn() -> Child:
        nonlocal spawned
        spawned += 1
        return served.spawn(
            *_worker_args(manifest, f"worker-{spawned}.json"), name=f"worker-{spawned}"
        )

    workers = [spawn() for _ in range(WORKERS)]
    pause = threading.Event()
    kills = 0
    mid_entry = 0
    with PostgresDatabase.open(Secret(pg_url)) as database:
        while kills < KILLS:
            pause.wait(rng.uniform(0.2, 0.8))
            alive = [w for w in workers if w.process.poll() is None]
            if not alive:
                break
            # Prefer a worker in the middle of an entry (its pid is in its queue name), so
            # most kills leave a claim for another worker to take over: look for one a while.
            candidates: list[Child] = []
            deadline = time.monotonic() + 1.0
            while not candidates and time.monotonic() < deadline:
                items = read_items(database, run_id)
                busy = {_pid(item.worker) for item in items if _claimed(item)}
                candidates = [w for w in alive if w.pid in busy and w.process.poll() is None]
                if not candidates:
                    pause.wait(0.01)
            victim = rng.choice(candidates or alive)
            mid_entry += victim in candidates
            victim.kill()
            kills += 1
            workers[workers.index(victim)] = spawn()
    served.sandbox.clear_faults()
    # A re-init beyond a window's six may wait up to a minute for it (rare: see above).
    codes = [w.wait(timeout=150) for w in workers]
    wall = time.monotonic() - started

    assert codes == [0] * WORKERS, [w.stderr[-2000:] for w in workers]
    completed = completed_by_digest(served.sandbox)
    duplicates = sum(count - 1 for count in completed.values() if count > 1)
    lost = len(set(clips) - set(completed))
    with PostgresDatabase.open(Secret(pg_url)) as database:
        items = read_items(database, run_id)
    takeovers = sum(item.claims - 1 for item in items)
    abandoned = len(served.sandbox.publishes()) - sum(completed.values())
    print(
        f"\n{len(clips)} entries, {WORKERS} workers, {kills} kills ({mid_entry} mid-entry), "
        f"{spawned} processes: "
        f"duplicates {duplicates}, lost {lost}, entries taken over {takeovers}, "
        f"uploads abandoned by a killed worker {abandoned}, {wall:.1f} s"
    )
    assert completed == Counter(clips)
    assert served.sandbox.violations() == [], served.sandbox.violations()
    assert served.sandbox.server_errors() == []

    # The queue is drained, and every surviving worker's report is the whole run's.
    assert len(items) == len(clips)
    assert {item.state for item in items} == {"done"}
    last = json.loads((served.folder / f"worker-{spawned}.json").read_text())
    assert len(last["entries"]) == len(clips)
    assert {e["status"] for e in last["entries"]} <= {"published", "sent_to_inbox", "already_done"}

    # The combined report from the shared journal, as an operator would ask for it.
    report = served.spawn("report", "--run-id", run_id, "--json", name="report")
    assert report.wait() == 0, report.stderr
    rows = json.loads(report.stdout)
    assert [row["state"] for row in rows] == ["published", "sent_to_inbox"] * (len(clips) // 2)
