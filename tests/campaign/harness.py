"""Play a :class:`~tests.campaign.schedule.Schedule` against a sandbox and check the invariants.

For one seed: a sandbox on the real clock (the child processes live in real time), a home with
the schedule's users signed in (some with an access token already stale, so the first request
refreshes it), the schedule's videos and manifest. Then the runs: before each, its faults are
scheduled at the sandbox (call numbers made absolute), its planned FAILED statuses queued, and
the sandbox told a new client is starting (it cannot know the last one's rate windows);
the real process (``python -m tests.campaign.child run …``, i.e. the real CLI) is started and
watched: token events fire at their trigger, a pause stops the process at its trigger (SIGSTOP;
TikTok's clock may move on meanwhile, see :class:`SkewedClock`; then SIGCONT, or SIGKILL while
stopped), and a SIGKILL lands at the kill trigger. After the faulty runs come clean runs until
a run reports nothing left to do (bounded).

Then every invariant is checked and each breach becomes one line of :attr:`SeedResult.violations`:

- **safety, at the sandbox**: per entry at most one completed upload that is not FAILED; an entry
  reported done has exactly one, and it is the publish the report and journal name, byte-exact
  (SHA-256 of a version of the file), in the right mode, for the right user; every completed
  upload is a whole version of one of the manifest's files — one that existed, before or after
  any of the schedule's in-place edits, never a splice of two (no corrupted upload completed);
  zero protocol violations and sandbox errors.
- **the report**: the final run's report lists every manifest entry exactly once, each with a
  terminal status, and validates against the shipped schema; every run that was not killed
  exited 0 or 1 without a traceback.
- **the journal and token store**: readable with the key (every sealed value opens), one row
  per entry, its state agreeing with the report.
- **liveness**: an entry ends other than done only where the schedule could have spoiled it.
- **a damaged store is refused**: a damaged-store step (``RunSpec.store_damage``: ``state.db``
  cut to 0 or 1 byte, a flipped byte, the copy from before the first run put back) plays one
  extra run that must exit 1 or 2 without a traceback and without a request reaching the
  sandbox; then the good files are put back and the schedule goes on (and must still settle with
  no double post).
- **secrets**: no access token, refresh token, authorization code, upload-URL token or client
  secret the sandbox issued appears in any output, report or file of the home (``state.db``
  and its WAL included: values there must be encrypted) or the working folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema

from orchestrator.clock import SystemClock
from orchestrator.report import report_schema
from orchestrator.sandbox import Fault, Sandbox, SandboxConfig, SandboxUser
from orchestrator.sandbox.config import default_users
from orchestrator.store.db import DB_FILENAME
from orchestrator.store.generation import GENERATION_FILENAME
from orchestrator.store.journal import Journal
from orchestrator.store.tokens import TokenStore
from tests.campaign.schedule import (
    EDIT_LENGTH,
    MAX_CLEAN_RUNS,
    EditSpec,
    EntrySpec,
    RunSpec,
    Schedule,
    Trigger,
)
from tests.support.run_support import (
    REPO,
    SAMPLE,
    Child,
    sandbox_settings,
    token_grant,
    write_manifest,
)

RUN_TIMEOUT = 90.0
"""Seconds a run may take before it is called hung (and killed)."""
POLL_TIMEOUT = "5"
"""--poll-timeout of every run: the sandbox answers a final status at once."""

DONE = frozenset({"published", "sent_to_inbox", "already_done"})
TERMINAL = DONE | {"failed", "uncertain"}
NEEDS_A_PERSON = frozenset({"needs_login", "auth_error"})
"""Failures a rerun cannot fix: someone has to sign the user in again. An upload TikTok has
whose user must log in again stays ``processing`` with one of these codes: that is final too."""

_WATCH = 0.005  # seconds between two looks at a running child


class SkewedClock:
    """The real clock, plus seconds it was told to jump: TikTok's time, which moves on while a
    stopped process's does not (a pause longer than the campaign can wait). ``sleep`` is real
    (the sandbox's held and dripped answers take real time)."""

    def __init__(self) -> None:
        self._real = SystemClock()
        self._offset = 0.0
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._real.time() + self._offset

    def monotonic(self) -> float:
        with self._lock:
            return self._real.monotonic() + self._offset

    def sleep(self, seconds: float) -> None:
        self._real.sleep(seconds)

    def jump(self, seconds: float) -> None:
        """Move on ``seconds`` at once."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._offset += seconds


def campaign_users() -> tuple[SandboxUser, ...]:
    """The sandbox's three users and a fourth public account."""
    return (*default_users(), SandboxUser(open_id="sandbox-user-4", display_name="Sandbox Four"))


@dataclass
class RunRecord:
    """What one run of the child did."""

    number: int
    exit_code: int
    killed: bool
    report: dict[str, Any] | None
    stderr: str
    seconds: float
    faults_fired: list[str] = field(default_factory=list)
    stopped: bool = False  # SIGSTOPped during the run (then SIGCONT, or killed while stopped)
    killed_while_stopped: bool = False
    clock_jump: float = 0.0  # seconds TikTok's clock moved on while it was stopped


@dataclass
class SeedResult:
    """One seed's outcome: every invariant breach (none, we hope) and some figures."""

    seed: int
    description: str
    violations: list[str] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    seconds: float = 0.0
    bytes_sent: int = 0
    damaged_runs: int = 0

    @property
    def kills(self) -> int:
        return sum(1 for run in self.runs if run.killed)

    @property
    def stops(self) -> int:
        return sum(1 for run in self.runs if run.stopped)

    @property
    def killed_while_stopped(self) -> int:
        return sum(1 for run in self.runs if run.killed_while_stopped)

    @property
    def clock_jumps(self) -> int:
        return sum(1 for run in self.runs if run.stopped and run.clock_jump > 0)

    @property
    def faults_fired(self) -> list[str]:
        return [name for run in self.runs for name in run.faults_fired]

    def summary(self) -> str:
        codes = ", ".join(
            ("stop+" if r.stopped else "") + ("kill" if r.killed else str(r.exit_code))
            for r in self.runs
        )
        text = f"seed {self.seed}: {len(self.runs)} runs ({codes}) in {self.seconds:.1f} s"
        if not self.violations:
            return text
        lines = [text, self.description, *(f"  ✗ {v}" for v in self.violations)]
        if self.runs:
            lines.append("last run's stderr (tail):")
            lines.extend("    " + line for line in self.runs[-1].stderr.splitlines()[-25:])
        return "\n".join(lines)


# -- media -----------------------------------------------------------------------------------------

_BLOCK = 1024 * 1024


def write_clip(path: Path, size: int, rng: random.Random) -> str:
    """A valid MP4 of ``size`` bytes (the sample, then a ``free`` box) whose first and last
    bytes are unique to it (so its fingerprint is), cheap to write at any size; its SHA-256."""
    sample = SAMPLE.read_bytes()
    pad = size - len(sample)
    if pad < 4096:
        raise ValueError(f"a clip has at least {len(sample) + 4096} bytes")
    unique = rng.randbytes(32)
    pattern = rng.randbytes(_BLOCK)
    digest = hashlib.sha256()
    with path.open("wb") as out:

        def put(data: bytes) -> None:
            digest.update(data)
            out.write(data)

        put(sample + struct.pack(">I", pad) + b"free" + unique)
        left = pad - 8 - len(unique) - len(unique)
        while left > 0:
            piece = pattern[: min(_BLOCK, left)]
            put(piece)
            left -= len(piece)
        put(unique[::-1])
    return digest.hexdigest()


def _entry_document(entry: EntrySpec, seed: int) -> dict[str, Any]:
    document: dict[str, Any] = {
        "user_id": entry.user_id,
        "description": entry.description,
        "mode": entry.mode,
        "privacy_level": entry.privacy_level,
    }
    if entry.entry_id:
        document["id"] = entry.entry_id
    if entry.kind == "file":
        document["video_path"] = entry.name
    elif entry.kind == "video_url":
        document["video_url"] = video_url(entry, seed)
    else:
        document["photo_urls"] = photo_urls(entry, seed)
        document["title"] = f"photos {entry.index}"
    return document


def video_url(entry: EntrySpec, seed: int) -> str:
    return f"https://media.example.com/s{seed}/v{entry.index}.mp4"


def photo_urls(entry: EntrySpec, seed: int) -> list[str]:
    return [f"https://media.example.com/s{seed}/p{entry.index}-{n}.jpg" for n in range(2)]


def source_of(entry: EntrySpec, seed: int) -> str:
    """How the journal and report name the entry's media (relative to the working folder)."""
    if entry.kind == "file":
        return entry.name
    if entry.kind == "video_url":
        return video_url(entry, seed)
    return " ".join(photo_urls(entry, seed))


# -- playing a schedule ----------------------------------------------------------------------------


class _Player:
    def __init__(
        self, schedule: Schedule, folder: Path, sandbox: Sandbox, clock: SkewedClock
    ) -> None:
        self.schedule = schedule
        self.sandbox = sandbox
        self.clock = clock
        self.folder = folder
        self.home = folder / "home"
        self.media = folder / "media"
        self.settings = sandbox_settings(sandbox, self.home)
        self.result = SeedResult(schedule.seed, schedule.describe())
        self.digests: dict[int, str] = {}
        # Every in-place edit made so far, per entry: (offset, bytes before, bytes after).
        self.edits: dict[int, list[tuple[int, bytes, bytes]]] = {}
        self.versions: dict[int, set[str]] = {}
        self.entries = list(schedule.entries)
        self.edit_rng = random.Random(f"edit-bytes-{schedule.seed}")
        self.manifest = self.media / "manifest.json"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(folder / "user-home"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(REPO),
            "ORCHESTRATOR_HOME": str(self.home),
            "ORCHESTRATOR_API_BASE": sandbox.base_url,
            "ORCHESTRATOR_AUTH_URL": sandbox.auth_url,
            "TIKTOK_CLIENT_KEY": sandbox.client_key,
            "TIKTOK_CLIENT_SECRET": sandbox.client_secret,
        }

    @property
    def violations(self) -> list[str]:
        return self.result.violations

    # -- setting up --

    def prepare(self) -> None:
        clock = SystemClock()
        now = clock.time()
        grants = []
        for user in self.schedule.users:
            grant = token_grant(self.sandbox, user, now)
            if user in self.schedule.stale_users:
                # Expired an hour ago: the first request of a run refreshes it.
                grant = replace(grant, access_expires_at=now - 3600)
            grants.append((grant, None))
        with TokenStore.open(self.settings, clock=clock) as store:
            store.save_grants(grants)
        self.older_copy = self.folder / "state-before-run-1.db"
        _backup_store(self.home, self.older_copy)
        self.media.mkdir()
        (self.folder / "user-home").mkdir()
        rng = random.Random(f"media-{self.schedule.seed}")
        for entry in self.schedule.entries:
            if entry.kind == "file":
                self.digests[entry.index] = write_clip(self.media / entry.name, entry.size, rng)
        self._write_manifest()

    def _write_manifest(self) -> None:
        write_manifest(self.media, [_entry_document(e, self.schedule.seed) for e in self.entries])

    def _add_ids(self) -> None:
        """The same entries, each given an id if it had none: they must adopt their records."""
        self.entries = [
            e if e.entry_id else replace(e, entry_id=f"s{self.schedule.seed}-a{e.index}")
            for e in self.entries
        ]
        self._write_manifest()

    def _edit(self, edit: EditSpec) -> None:
        """Overwrite ``EDIT_LENGTH`` bytes in place, as an editor saving over the file does."""
        path = self.media / self.schedule.entries[edit.entry].name
        new = self.edit_rng.randbytes(EDIT_LENGTH)
        with path.open("r+b") as file:
            file.seek(edit.offset)
            old = file.read(EDIT_LENGTH)
            file.seek(edit.offset)
            file.write(new)
        self.edits.setdefault(edit.entry, []).append((edit.offset, old, new))

    def _all_versions(self) -> dict[int, set[str]]:
        """Every version each file had: the one now, then undoing its edits one by one."""
        versions = {index: {digest} for index, digest in self.digests.items()}
        for index, edits in self.edits.items():
            data = bytearray((self.media / self.schedule.entries[index].name).read_bytes())
            versions[index].add(hashlib.sha256(data).hexdigest())
            for offset, old, _ in reversed(edits):
                data[offset : offset + len(old)] = old
                versions[index].add(hashlib.sha256(data).hexdigest())
        return versions

    # -- runs --

    def play(self) -> None:
        faulty = list(self.schedule.runs)
        clean = [RunSpec(jobs=2) for _ in range(MAX_CLEAN_RUNS)]
        for number, spec in enumerate([*faulty, *clean], 1):
            record = self._run(number, spec)
            self.result.runs.append(record)
            if record.killed:
                continue
            if record.exit_code not in (0, 1, 69):  # 69: faults left entries deferred
                self.violations.append(f"run {number} exited {record.exit_code}")
            if "Traceback" in record.stderr:
                self.violations.append(f"run {number} showed a traceback")
            if record.report is None:
                self.violations.append(f"run {number} wrote no report")
                continue
            if number >= len(faulty) and _settled(record.report):
                return
        self.violations.append(
            f"nothing settled after {len(faulty)} faulty and {MAX_CLEAN_RUNS} clean runs"
        )

    def _args(self, number: int, spec: RunSpec) -> list[str]:
        args = [
            "run",
            str(self.manifest),
            "--report",
            f"report-{number}.json",
            "--no-progress",
            "-v",
            "--jobs",
            str(spec.jobs),
            "--poll-timeout",
            POLL_TIMEOUT,
        ]
        if spec.chunk_size is not None:
            args += ["--chunk-size", str(spec.chunk_size)]
        if self.schedule.json_logs:
            args += ["--log-format", "json"]
        return args

    def _run(self, number: int, spec: RunSpec) -> RunRecord:
        if spec.store_damage is not None:
            self._damaged_run(number, spec.store_damage)
        sandbox = self.sandbox
        sandbox.clear_faults()
        scheduled = [
            Fault(
                fault.endpoint,
                call=sandbox.calls(fault.endpoint) + fault.call,
                kind=fault.kind,
                status=fault.status,
                error_code=fault.error_code,
                after_bytes=fault.after_bytes,
                seconds=fault.seconds,
            )
            for fault in spec.faults
        ]
        for fault in scheduled:
            sandbox.schedule(fault)
        for user, reason in spec.fail_publishes:
            sandbox.fail_next_publish(user, reason)
        if spec.add_ids:
            self._add_ids()
        for edit in spec.edits:
            if edit.when is None:
                self._edit(edit)  # between the last run (maybe killed mid-upload) and this one
        edits = [edit for edit in spec.edits if edit.when is not None]
        base = sandbox.call_counts()
        # A new process knows nothing of the requests the last one sent (its rate windows).
        sandbox.new_client()
        child = self._spawn(number, spec)
        started = time.monotonic()
        pending = list(spec.token_events)
        killed = stopped = killed_while_stopped = False
        pause = threading.Event()
        while child.process.poll() is None:
            counts = sandbox.call_counts()
            for edit in list(edits):
                assert edit.when is not None
                if _reached(edit.when, counts, base):
                    edits.remove(edit)
                    pause.wait(edit.when.after)
                    self._edit(edit)
            for event in list(pending):
                if _reached(event.when, counts, base):
                    pending.remove(event)
                    if event.action == "expire":
                        sandbox.expire_access_tokens(event.user_id)
                    else:
                        sandbox.revoke_user_tokens(event.user_id)
            if spec.pause is not None and not stopped and _reached(spec.pause.when, counts, base):
                pause.wait(spec.pause.when.after)
                stopped = self._stop(child, spec.pause.seconds, spec.pause.jump)
                if stopped and spec.pause.kill:
                    child.kill()  # a VM that never comes back
                    killed = killed_while_stopped = True
                    break
                if stopped:
                    child.process.send_signal(signal.SIGCONT)
                continue
            if spec.kill is not None and _reached(spec.kill, counts, base):
                pause.wait(spec.kill.after)
                child.kill()
                killed = True
                break
            if time.monotonic() - started > RUN_TIMEOUT:
                child.kill()
                self.violations.append(f"run {number} hung for {RUN_TIMEOUT:.0f} s")
                killed = True
                break
            pause.wait(_WATCH)
        exit_code = child.process.wait()
        unfired = sandbox.pending_faults()
        fired = [_fault_name(f) for f in scheduled if f not in unfired]
        report_path = self.media / f"report-{number}.json"
        report = None
        if report_path.exists():
            report = json.loads(report_path.read_text())
        return RunRecord(
            number=number,
            exit_code=exit_code,
            killed=killed,
            report=report,
            stderr=child.stderr,
            seconds=time.monotonic() - started,
            faults_fired=fired,
            stopped=stopped,
            killed_while_stopped=killed_while_stopped,
            clock_jump=spec.pause.jump if stopped and spec.pause else 0.0,
        )

    def _stop(self, child: Child, seconds: float, jump: float) -> bool:
        """SIGSTOP ``child`` for ``seconds`` while TikTok's clock moves ``jump`` seconds on;
        whether it was still running to be stopped. The caller resumes or kills it."""
        if child.process.poll() is not None:
            return False
        child.process.send_signal(signal.SIGSTOP)
        self.clock.jump(jump)
        threading.Event().wait(seconds)
        return True

    def _damaged_run(self, number: int, damage: str) -> None:
        """One run on a store spoilt by ``damage``: it must be refused (exit 1 or 2, nothing
        sent, no traceback); then the good files are put back."""
        self.result.damaged_runs += 1
        good = _save_store(self.home)
        _spoil_store(self.home, damage, self.older_copy, random.Random(f"{damage}-{number}"))
        before = self.sandbox.call_counts()
        child = self._spawn(number, RunSpec(jobs=2), name=f"{number}-damaged")
        try:
            exit_code = child.wait(RUN_TIMEOUT)
        except AssertionError:
            exit_code = -1
        label = f"the run on a damaged store ({damage}) before run {number}"
        if exit_code not in (1, 2):
            self.violations.append(f"{label} exited {exit_code}, not 1 or 2")
        if "Traceback" in child.stderr:
            self.violations.append(f"{label} showed a traceback")
        sent = {
            endpoint: count - before.get(endpoint, 0)
            for endpoint, count in self.sandbox.call_counts().items()
            if count != before.get(endpoint, 0)
        }
        if sent:
            self.violations.append(f"{label} sent requests: {sent}")
        _put_back_store(self.home, good)

    def _spawn(self, number: int, spec: RunSpec, *, name: str | None = None) -> Child:
        label = name or str(number)
        out_path = self.media / f"run-{label}.out"
        err_path = self.media / f"run-{label}.err"
        args = self._args(number, spec)
        if name is not None:
            args[args.index("--report") + 1] = f"report-{name}.json"
        with out_path.open("w") as out, err_path.open("w") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.campaign.child", *args],
                cwd=self.media,
                env=self.env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        return Child(process, out_path, err_path)

    # -- invariants --

    def check(self) -> None:
        final = next(
            (run.report for run in reversed(self.result.runs) if run.report is not None), None
        )
        if final is None:
            self.violations.append("no run wrote a report")
            return
        statuses = self._check_report(final)
        records = self._check_journal(final)
        self._check_sandbox(final, records)
        self._check_liveness(statuses, records)
        self._check_secrets()
        self.result.bytes_sent = sum(
            p.bytes_received for p in self.sandbox.publishes() if p.bytes_received
        )

    def _check_report(self, report: dict[str, Any]) -> dict[int, dict[str, Any]]:
        try:
            jsonschema.validate(report, report_schema())
        except jsonschema.ValidationError as exc:
            self.violations.append(f"the final report does not match its schema: {exc.message}")
        indexes = [entry["index"] for entry in report["entries"]]
        expected = [entry.index for entry in self.schedule.entries]
        if sorted(indexes) != expected:
            self.violations.append(f"the final report lists entries {indexes}, not {expected}")
        by_index: dict[int, dict[str, Any]] = {}
        for entry in report["entries"]:
            by_index[entry["index"]] = entry
            if entry["status"] not in TERMINAL and not _blocked_on_a_person(entry):
                self.violations.append(
                    f"entry {entry['index']} ends {entry['status']} (not terminal)"
                )
        return by_index

    def _check_journal(self, report: dict[str, Any]) -> dict[int, Any]:
        """The journal opens with the key, one row per entry, agreeing with the report."""
        records: dict[int, Any] = {}
        try:
            with TokenStore.open(self.settings, clock=SystemClock()) as store:
                for user in self.schedule.users:
                    stored = store.get_user(user)
                    if stored is None:
                        self.violations.append(f"the token store lost {user}")
                    elif stored.state(time.time()) != "needs_login":
                        store.credentials(user)  # every sealed value opens
                journal = Journal(store.database, store.cipher, clock=SystemClock(), run_id="audit")
                rows = journal.history()
        except Exception as exc:  # the invariant is exactly "this does not raise"
            self.violations.append(f"the journal or token store cannot be read: {exc!r}")
            return records
        by_source: dict[str, list[Any]] = {}
        for row in rows:
            by_source.setdefault(row.source, []).append(row)
        for entry in self.schedule.entries:
            found = by_source.get(source_of(entry, self.schedule.seed), [])
            if len(found) != 1:
                self.violations.append(f"entry {entry.index} has {len(found)} journal rows")
                continue
            row = found[0]
            records[entry.index] = row
            reported = report_entry(report, entry.index)
            if reported is None:
                continue
            expected = _journal_state_for(reported, entry.mode)
            if expected is not None and row.state.value not in expected:
                self.violations.append(
                    f"entry {entry.index}: the report says {reported['status']}, "
                    f"the journal {row.state.value}"
                )
            if reported["status"] in DONE and reported["publish_id"] != row.publish_id:
                self.violations.append(
                    f"entry {entry.index}: the report names {reported['publish_id']}, "
                    f"the journal {row.publish_id}"
                )
        return records

    def _check_sandbox(self, report: dict[str, Any], records: dict[int, Any]) -> None:
        sandbox = self.sandbox
        publishes = sandbox.publishes()
        for violation in sandbox.violations():
            self.violations.append(f"protocol violation: {violation}")
        for error in sandbox.server_errors():
            self.violations.append(f"sandbox error: {error}")
        versions = self._all_versions()
        known = set().union(*versions.values()) if versions else set()
        for publish in publishes:
            if (
                publish.source == "FILE_UPLOAD"
                and publish.completed
                and publish.sha256 not in known
            ):
                self.violations.append(
                    f"{publish.publish_id} completed with bytes that are no version of a "
                    "manifest file (a splice of two versions, or corrupted)"
                )
        seed = self.schedule.seed
        for entry in self.schedule.entries:
            if entry.kind == "file":
                mine = [p for p in publishes if p.completed and p.sha256 in versions[entry.index]]
            elif entry.kind == "video_url":
                url = video_url(entry, seed)
                mine = [p for p in publishes if p.source_info.get("video_url") == url]
            else:
                urls = photo_urls(entry, seed)
                mine = [p for p in publishes if p.source_info.get("photo_images") == urls]
            live = [p for p in mine if p.status != "FAILED"]
            if len(live) > 1:
                self.violations.append(
                    f"entry {entry.index} was posted {len(live)} times: "
                    + ", ".join(p.publish_id for p in live)
                )
            reported = report_entry(report, entry.index)
            if reported is None or reported["status"] not in DONE:
                continue
            if len(live) != 1:
                self.violations.append(
                    f"entry {entry.index} is reported {reported['status']} but TikTok has "
                    f"{len(live)} live posts of it"
                )
                continue
            post = live[0]
            wanted = "PUBLISH_COMPLETE" if entry.mode == "direct" else "SEND_TO_USER_INBOX"
            problems = []
            if post.publish_id != reported["publish_id"]:
                problems.append(f"report names {reported['publish_id']}, TikTok {post.publish_id}")
            if post.status != wanted:
                problems.append(f"TikTok status {post.status}, not {wanted}")
            if post.open_id != entry.user_id:
                problems.append(f"posted for {post.open_id}, not {entry.user_id}")
            if entry.kind == "file" and post.bytes_received != entry_size(self.media, entry):
                problems.append(f"{post.bytes_received} bytes received")
            for problem in problems:
                self.violations.append(f"entry {entry.index}: {problem}")

    def _check_liveness(self, statuses: dict[int, dict[str, Any]], records: dict[int, Any]) -> None:
        spoilers = self.schedule.spoilers
        # A refresh whose answer was lost, or whose run was killed before storing it, leaves
        # the user unable to refresh (rotation): that user must log in again, legitimately.
        stranded = spoilers.users | set(self.sandbox.unclaimed_rotations())
        # A URL or photo init begun by a run that was then killed may have posted: uncertain
        # is the honest verdict. Killed runs are the ones that wrote no report.
        finished_runs = {run.report["run_id"] for run in self.result.runs if run.report}
        unexcused = [
            entry
            for entry in self.schedule.entries
            if entry.index in statuses
            and statuses[entry.index]["status"] not in DONE
            and entry.user_id not in stranded
            and not (
                statuses[entry.index]["status"] == "uncertain"
                and entry.index in records
                and self._begun_by(records[entry.index].identity) not in finished_runs
            )
        ]
        if len(unexcused) > spoilers.entries:
            lost = ", ".join(
                f"{e.index} {statuses[e.index]['status']} "
                f"({(statuses[e.index].get('error') or {}).get('code')})"
                for e in unexcused
            )
            self.violations.append(
                f"entries not done without a fault to blame ({spoilers.entries} allowed): {lost}"
            )

    def _begun_by(self, identity: str) -> str | None:
        """The run that began the entry's last attempt (from the journal's event log)."""
        with contextlib.closing(sqlite3.connect(self.home / DB_FILENAME)) as connection:
            row = connection.execute(
                "SELECT run_id FROM journal_events WHERE identity = ? AND event = 'begin'"
                " ORDER BY id DESC LIMIT 1",
                (identity,),
            ).fetchone()
        return None if row is None else str(row[0])

    def _check_secrets(self) -> None:
        self.violations.extend(find_secrets(self.folder, self.sandbox.issued_secrets()))


# -- the damaged-store step ------------------------------------------------------------------------

_STORE_FILES = (DB_FILENAME, f"{DB_FILENAME}-wal", f"{DB_FILENAME}-shm", GENERATION_FILENAME)


def _backup_store(home: Path, to: Path) -> None:
    """A consistent copy of ``state.db`` (what ``sqlite3 state.db ".backup copy"`` makes)."""
    with (
        contextlib.closing(sqlite3.connect(home / DB_FILENAME)) as source,
        contextlib.closing(sqlite3.connect(to)) as target,
    ):
        source.backup(target)


def _save_store(home: Path) -> dict[str, bytes]:
    """The store's files as they are (no process is running: the last one's WAL is folded in
    first, so a spoilt main file is the whole story)."""
    with contextlib.closing(sqlite3.connect(home / DB_FILENAME)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {name: (home / name).read_bytes() for name in _STORE_FILES if (home / name).exists()}


def _put_back_store(home: Path, saved: dict[str, bytes]) -> None:
    for name in _STORE_FILES:
        (home / name).unlink(missing_ok=True)
    for name, data in saved.items():
        (home / name).write_bytes(data)
        (home / name).chmod(0o600)


def _spoil_store(home: Path, damage: str, older_copy: Path, rng: random.Random) -> None:
    """Spoil ``home/state.db`` as ``damage`` says (see ``schedule.STORE_DAMAGE``)."""
    path = home / DB_FILENAME
    for companion in (f"{DB_FILENAME}-wal", f"{DB_FILENAME}-shm"):
        (home / companion).unlink(missing_ok=True)
    data = bytearray(path.read_bytes())
    if damage == "empty":
        data = bytearray()
    elif damage == "one_byte":
        data = data[:1]
    elif damage == "header_flip":
        data[rng.randrange(16)] ^= 1 << rng.randrange(8)  # "SQLite format 3\0"
    elif damage == "schema_flip":
        if rng.random() < 0.5:
            data[data.index(b"CREATE TABLE users") + 5] = 0xFF  # not UTF-8 any more
        else:
            data[data.index(b"needs_login        TEXT")] = ord("m")  # a column renamed
    elif damage == "older_copy":
        data = bytearray(older_copy.read_bytes())
    else:
        raise ValueError(f"no store damage {damage!r}")
    path.write_bytes(bytes(data))


def report_entry(report: dict[str, Any], index: int) -> dict[str, Any] | None:
    for entry in report["entries"]:
        if entry["index"] == index:
            return dict(entry)
    return None


def entry_size(media: Path, entry: EntrySpec) -> int:
    return (media / entry.name).stat().st_size


def _journal_state_for(reported: dict[str, Any], mode: str) -> set[str] | None:
    """The journal states that agree with a final report's entry."""
    status = reported["status"]
    if status in DONE:
        return {"published"} if mode == "direct" else {"sent_to_inbox"}
    if status == "failed":
        # A user who must log in again: a transfer that was under way keeps its progress.
        return {"failed", "uploading"} if _blocked_on_a_person(reported) else {"failed"}
    if status == "uncertain":
        return {"uncertain"}
    if status == "processing":
        return {"uploaded", "processing"}
    return None


def _blocked_on_a_person(entry: dict[str, Any]) -> bool:
    return (entry.get("error") or {}).get("code") in NEEDS_A_PERSON


def _fault_name(fault: Fault) -> str:
    """``endpoint kind`` (with the status for a status fault), for the campaign's figures."""
    detail = f" {fault.status}" if fault.kind == "status" else ""
    return f"{fault.endpoint} {fault.kind}{detail}"


def _reached(trigger: Trigger, counts: dict[str, int], base: dict[str, int]) -> bool:
    return counts.get(trigger.endpoint, 0) - base.get(trigger.endpoint, 0) >= trigger.calls


def _settled(report: dict[str, Any]) -> bool:
    """Whether a rerun has nothing left to do: every entry done, uncertain, or failed in a way
    only a person can fix (a permanent failure, a user who must sign in again)."""
    for entry in report["entries"]:
        status = entry["status"]
        if status in DONE or status == "uncertain" or _blocked_on_a_person(entry):
            continue
        if status == "failed" and not (entry.get("error") or {}).get("retryable"):
            continue
        return False
    return True


def find_secrets(folder: Path, secrets: Sequence[str]) -> list[str]:
    """Where any of ``secrets`` appears, byte for byte, in a file under ``folder``: outputs,
    reports, and every file of the home (``state.db`` and its WAL included, where the values
    must be encrypted). The campaign's videos are skipped (pattern bytes)."""
    needles = [secret.encode() for secret in secrets if secret]
    found = []
    for path in _files(folder):
        data = path.read_bytes()
        for needle in needles:
            if needle in data:
                kind = needle[:4].decode(errors="replace")
                found.append(f"a secret ({kind}…) is in {path.relative_to(folder)}")
    return found


def _files(folder: Path) -> Iterator[Path]:
    """Every file under ``folder`` but the videos (megabytes of pattern, no secrets)."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not (path.suffix == ".mp4" and path.name.startswith("clip-")):
            yield path


def play(schedule: Schedule, folder: Path) -> SeedResult:
    """Play ``schedule`` in ``folder`` (which must exist and be empty); the result."""
    started = time.monotonic()
    config = SandboxConfig(users=campaign_users(), processing_polls=0)
    clock = SkewedClock()
    with Sandbox(config, clock=clock) as sandbox:
        player = _Player(schedule, folder, sandbox, clock)
        player.prepare()
        player.play()
        player.check()
        result = player.result
    result.seconds = time.monotonic() - started
    return result


def play_seeds(
    seeds: Sequence[int], root: Path, *, full: bool, workers: int = 2
) -> list[SeedResult]:
    """Play many seeds, ``workers`` at a time (each in its own folder under ``root``)."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.campaign.schedule import generate

    def one(seed: int) -> SeedResult:
        folder = root / f"seed-{seed}"
        folder.mkdir(parents=True)
        return play(generate(seed, full=full), folder)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seed") as pool:
        return list(pool.map(one, seeds))
