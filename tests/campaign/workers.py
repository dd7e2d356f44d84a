"""Play a :class:`~tests.campaign.schedule.WorkersSchedule`: two workers, one PostgreSQL store,
one of them paused past its lease; then check that every entry was posted once.

For one seed: a sandbox on the real clock and a fresh PostgreSQL database with the users signed
in (tests/postgres's ``shared_store``), the schedule's videos and manifest, its faults scheduled.
Worker A (the real CLI, ``python -m tests.campaign.child run … --lease 2``) starts; worker B
starts with it, or only once A is stopped. At the pause's trigger A is stopped (SIGSTOP) for
longer than its lease, perhaps with every session on the database terminated meanwhile
(``pg_terminate_backend``: what an idle-session limit or a pooler does to a paused client), so B
may take A's creators and entries over; then A resumes (SIGCONT) or is killed while stopped.
When both have ended, a third worker joins the same shared run until it reports everything
settled (bounded): after a SIGKILL it takes over what A left.

A schedule written by hand can order the pause instead of timing it
(:attr:`~tests.campaign.schedule.WorkerPause.held`, ``resume_after``): the sandbox holds the
answer to A's paused request (a ``hold`` fault on a gate) until A is stopped — and stopped
outside any database transaction, so B's takeover never waits on A's row locks — and A stays
stopped until the sandbox has seen B reach a given request. Every wait is bounded
(``RUN_TIMEOUT``) and a bound reached is a violation naming the step that never came.

Invariants (each breach one line of :attr:`WorkersResult.violations`):

- **safety, at the sandbox**: per entry at most one completed upload that is not FAILED, each
  completed upload byte-exact (the SHA-256 of one of the manifest's files); no protocol
  violation, no sandbox error — but one: a chunk PUT the paused worker had in flight when it
  was stopped, finished after it resumed, overlaps the PUT of the worker that took the upload
  over (a frozen process cannot be stopped from outside, and the takeover resumes the same
  upload URL so that at most one upload can complete). The sandbox answers the later of the two
  416 (nothing is kept twice, the bytes are the same file's); these are counted
  (:attr:`WorkersResult.overlaps`), not excused anywhere else.
- **each worker's own report** (every worker not killed): exit 0, 1 or 69 without a traceback;
  every manifest entry listed once; an entry it reports done names the one live post of it.
- **liveness**: the faults are all retryable, so the last report has every entry done, and the
  shared run's queue every row ``done``.
- **secrets**: no token or upload-URL token the sandbox issued in any output or file.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.runner import shared_run_id
from orchestrator.sandbox import Fault, Sandbox
from orchestrator.secret import Secret
from orchestrator.store.postgres import PostgresDatabase
from orchestrator.store.queue import read_items
from tests.campaign.child import UNFENCED
from tests.campaign.harness import (
    DONE,
    POLL_TIMEOUT,
    RUN_TIMEOUT,
    _entry_document,
    _reached,
    _settled,
    find_secrets,
    report_entry,
    write_clip,
)
from tests.campaign.schedule import WorkersSchedule
from tests.functional.run_support import Child, Served, write_manifest
from tests.postgres.conftest import shared_store

_OVERLAP = "overlapped (chunks go one at a time)"
MAX_JOINERS = 3
"""Workers that join the shared run after A and B before it is called unsettled."""
_WATCH = 0.005
_PAUSE_GATE = "worker-a-paused"
"""The sandbox gate a held pause's request waits at (:attr:`WorkerPause.held`)."""
_STOP_ATTEMPTS = 50
"""Stops tried before A is called stuck inside a database transaction."""
_SETTLE = 0.02
"""Seconds after a SIGSTOP before A's sessions are looked at."""


@dataclass
class WorkersResult:
    """One paused-worker seed's outcome and figures."""

    seed: int
    description: str
    violations: list[str] = field(default_factory=list)
    workers: int = 0
    stopped: bool = False
    killed: bool = False
    terminated_sessions: int = 0
    fenced: int = 0  # claims and creator holds a worker found taken over (then sent nothing)
    overlaps: int = 0  # the paused worker's in-flight chunk PUT overlapping the new holder's
    seconds: float = 0.0

    def summary(self) -> str:
        text = (
            f"workers seed {self.seed}: {self.workers} workers, "
            + ("A stopped" if self.stopped else "A not stopped (ended first)")
            + (", killed while stopped" if self.killed else "")
            + f", {self.terminated_sessions} sessions terminated, {self.fenced} fenced, "
            f"{self.overlaps} overlapping PUTs, "
            f"{self.seconds:.1f} s"
        )
        if not self.violations:
            return text
        return "\n".join([text, self.description, *(f"  ✗ {v}" for v in self.violations)])


class _WorkersPlayer:
    def __init__(
        self, schedule: WorkersSchedule, served: Served, url: str, *, unfenced: bool
    ) -> None:
        self.schedule = schedule
        self.served = served
        self.env = {**served.env, UNFENCED: "1"} if unfenced else served.env
        self.sandbox: Sandbox = served.sandbox
        self.url = url
        self.folder = served.folder
        self.result = WorkersResult(schedule.seed, schedule.describe())
        self.digests: dict[int, str] = {}
        self.reports: dict[str, dict[str, Any]] = {}

    @property
    def violations(self) -> list[str]:
        return self.result.violations

    def prepare(self) -> None:
        rng = random.Random(f"workers-media-{self.schedule.seed}")
        for entry in self.schedule.entries:
            self.digests[entry.index] = write_clip(self.folder / entry.name, entry.size, rng)
        self.manifest = write_manifest(
            self.folder, [_entry_document(e, self.schedule.seed) for e in self.schedule.entries]
        )
        for fault in self.schedule.faults:
            self.sandbox.schedule(
                Fault(
                    fault.endpoint,
                    call=fault.call or None,  # 0: every call
                    kind=fault.kind,
                    status=fault.status,
                    seconds=fault.seconds,
                )
            )
        pause = self.schedule.pause
        if pause.held:
            self.sandbox.schedule(
                Fault(
                    pause.when.endpoint,
                    call=pause.when.calls,
                    kind="hold",
                    gate=_PAUSE_GATE,
                    seconds=RUN_TIMEOUT,
                )
            )

    def _spawn(self, name: str) -> Child:
        args = [
            "run",
            str(self.manifest),
            "--report",
            f"report-{name}.json",
            "--no-progress",
            "-v",
            "--jobs",
            "2",
            "--poll-timeout",
            POLL_TIMEOUT,
            "--lease",
            f"{self.schedule.lease:g}",
        ]
        if self.schedule.chunk_size is not None:
            args += ["--chunk-size", str(self.schedule.chunk_size)]
        out, err = self.folder / f"{name}.out", self.folder / f"{name}.err"
        with out.open("w") as out_file, err.open("w") as err_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.campaign.child", *args],
                cwd=self.folder,
                env=self.env,
                stdout=out_file,
                stderr=err_file,
                stdin=subprocess.DEVNULL,
            )
        self.result.workers += 1
        return Child(process, out, err)

    def _terminate_sessions(self) -> int:
        """End every other session on the workers' database (a server's or pooler's doing)."""
        with PostgresDatabase.open(Secret(self.url)) as database:
            rows = database.fetch_all(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        return len(rows)

    def _wait_until(self, reached: Callable[[], bool], child: Child) -> bool:
        """Watch until ``reached()`` (True) or ``child`` ends or RUN_TIMEOUT passes (False)."""
        wait = threading.Event()
        started = time.monotonic()
        while not reached():
            if child.process.poll() is not None or time.monotonic() - started > RUN_TIMEOUT:
                return reached()
            wait.wait(_WATCH)
        return True

    def _sessions_busy(self) -> bool:
        """Whether a session on the workers' database is running a statement or inside a
        transaction (a stopped worker there would hold row locks the other one waits for).
        Before a staggered B starts, these are all A's."""
        with PostgresDatabase.open(Secret(self.url)) as database:
            rows = database.fetch_all(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
        return bool(rows)

    def _stop_outside_transactions(self, a: Child) -> None:
        """SIGSTOP ``a`` at a moment none of its sessions is inside a transaction (its held
        request keeps its main thread where the pause wants it meanwhile; only its heartbeat
        moves), so B's takeover cannot wait on A's row locks until A resumes."""
        wait = threading.Event()
        for _ in range(_STOP_ATTEMPTS):
            a.process.send_signal(signal.SIGSTOP)
            wait.wait(_SETTLE)  # a statement A sent just before the stop finishes meanwhile
            if not self._sessions_busy():
                return
            a.process.send_signal(signal.SIGCONT)
            wait.wait(_WATCH)
        self.violations.append(
            f"worker a was inside a database transaction at each of {_STOP_ATTEMPTS} stops"
        )

    def play(self) -> None:
        pause = self.schedule.pause
        wait = threading.Event()
        a = self._spawn("a")
        b = None if pause.staggered else self._spawn("b")
        if pause.held:
            if not self._wait_until(lambda: self.sandbox.held(_PAUSE_GATE, 0), a):
                self.violations.append(
                    f"worker a never sent {pause.when.endpoint} call {pause.when.calls} "
                    "(its answer was to be held)"
                )
        else:
            counts = self.sandbox.call_counts
            self._wait_until(lambda: _reached(pause.when, counts(), {}), a)
        wait.wait(pause.when.after)
        if a.process.poll() is None:
            if pause.held:
                self._stop_outside_transactions(a)
            else:
                a.process.send_signal(signal.SIGSTOP)
            self.result.stopped = True
            stopped_at = time.monotonic()
            # Stopped: A's held answer may go to its socket now (it reads it once resumed).
            self.sandbox.release(_PAUSE_GATE)
            if pause.terminate:
                # Staggered, these are all A's sessions; otherwise B's too (it must reconnect).
                self.result.terminated_sessions = self._terminate_sessions()
            if b is None:
                b = self._spawn("b")
            wait.wait(max(0.0, pause.seconds - (time.monotonic() - stopped_at)))
            after = pause.resume_after
            if after is not None and not self._wait_until(
                lambda: _reached(after, self.sandbox.call_counts(), {}), b
            ):
                self.violations.append(
                    f"worker b never reached {after.endpoint}+{after.calls} while A was stopped"
                )
            if pause.kill:
                a.kill()
                self.result.killed = True
            else:
                a.process.send_signal(signal.SIGCONT)
        self.sandbox.release(_PAUSE_GATE)
        if b is None:
            b = self._spawn("b")
        self._finish("b", b)
        if not self.result.killed:
            self._finish("a", a)
        for number in range(1, MAX_JOINERS + 1):
            name = f"joiner-{number}"
            report = self._finish(name, self._spawn(name))
            if report is not None and _settled(report):
                return
        self.violations.append(f"nothing settled after {MAX_JOINERS} workers joined")

    def _finish(self, name: str, child: Child) -> dict[str, Any] | None:
        try:
            code = child.wait(RUN_TIMEOUT)
        except AssertionError:
            self.violations.append(f"worker {name} hung for {RUN_TIMEOUT:.0f} s")
            return None
        stderr = child.stderr
        self.result.fenced += stderr.count("no longer holds") + stderr.count("taken over")
        if code not in (0, 1, 69):
            self.violations.append(f"worker {name} exited {code}")
        if "Traceback" in stderr:
            self.violations.append(f"worker {name} showed a traceback")
        path = self.folder / f"report-{name}.json"
        if not path.exists():
            self.violations.append(f"worker {name} wrote no report")
            return None
        report: dict[str, Any] = json.loads(path.read_text())
        self.reports[name] = report
        return report

    # -- invariants --

    def check(self) -> None:
        for violation in self.sandbox.violations():
            if self.result.stopped and not self.result.killed and _OVERLAP in violation:
                self.result.overlaps += 1  # the paused worker's PUT in flight (see above)
                continue
            self.violations.append(f"protocol violation: {violation}")
        for error in self.sandbox.server_errors():
            self.violations.append(f"sandbox error: {error}")
        publishes = self.sandbox.publishes()
        known = set(self.digests.values())
        live: dict[int, list[Any]] = {}
        for publish in publishes:
            if publish.completed and publish.sha256 not in known:
                self.violations.append(
                    f"{publish.publish_id} completed with bytes that are no manifest file"
                )
        completed = Counter(p.sha256 for p in publishes if p.completed and p.status != "FAILED")
        for entry in self.schedule.entries:
            digest = self.digests[entry.index]
            live[entry.index] = [
                p for p in publishes if p.completed and p.sha256 == digest and p.status != "FAILED"
            ]
            if completed[digest] > 1:
                self.violations.append(
                    f"entry {entry.index} was posted {completed[digest]} times: "
                    + ", ".join(p.publish_id for p in live[entry.index])
                )
        for name, report in self.reports.items():
            self._check_report(name, report, live)
        last = list(self.reports.values())[-1] if self.reports else None
        if last is not None:
            for entry in self.schedule.entries:
                reported = report_entry(last, entry.index)
                if reported is not None and reported["status"] not in DONE:
                    self.violations.append(
                        f"entry {entry.index} ends {reported['status']} "
                        f"({(reported.get('error') or {}).get('code')}) with only retryable faults"
                    )
        with PostgresDatabase.open(Secret(self.url)) as database:
            items = read_items(database, shared_run_id(self.manifest))
        states = Counter(item.state for item in items)
        if states != Counter({"done": len(self.schedule.entries)}):
            self.violations.append(f"the shared run's queue ends {dict(states)}")
        self.violations.extend(find_secrets(self.folder, self.sandbox.issued_secrets()))

    def _check_report(self, name: str, report: dict[str, Any], live: dict[int, list[Any]]) -> None:
        indexes = sorted(entry["index"] for entry in report["entries"])
        expected = [entry.index for entry in self.schedule.entries]
        if indexes != expected:
            self.violations.append(f"worker {name}'s report lists entries {indexes}")
        for entry in self.schedule.entries:
            reported = report_entry(report, entry.index)
            if reported is None or reported["status"] not in DONE:
                continue
            posts = live[entry.index]
            if len(posts) != 1:
                self.violations.append(
                    f"worker {name} reports entry {entry.index} {reported['status']}, "
                    f"TikTok has {len(posts)} live posts of it"
                )
            elif posts[0].publish_id != reported["publish_id"]:
                self.violations.append(
                    f"worker {name} reports entry {entry.index} as {reported['publish_id']}, "
                    f"TikTok posted {posts[0].publish_id}"
                )


def play_workers(
    schedule: WorkersSchedule, folder: Path, url: str, *, unfenced: bool = False
) -> WorkersResult:
    """Play ``schedule`` in ``folder`` (empty) against the PostgreSQL database at ``url``
    (``unfenced``: the workers without their fence, see ``tests.campaign.child.UNFENCED``)."""
    started = time.monotonic()
    with shared_store(folder, url) as (served, store_url):
        player = _WorkersPlayer(schedule, served, store_url, unfenced=unfenced)
        player.prepare()
        player.play()
        player.check()
        result = player.result
    result.seconds = time.monotonic() - started
    return result
