"""What the `run` tests share: real MP4 files of any size, manifests, and a sandbox rig.

A test clip is one of the sample videos followed by a ``free`` box of random bytes: a valid MP4
(the built-in reader and ffprobe measure the sample's duration and size) whose size and content
the test chooses, so every file is a different video and multi-chunk uploads are cheap to make.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orchestrator.clock import Clock, ManualClock, SystemClock
from orchestrator.config import Settings
from orchestrator.manifest import Entry
from orchestrator.report import EntryResult, RunReport
from orchestrator.runner import run_manifest
from orchestrator.sandbox import Sandbox, SandboxConfig
from orchestrator.scheduler import RunObserver, RunOptions
from orchestrator.secret import Secret
from orchestrator.settings import RunSettings
from orchestrator.store.db import DB_FILENAME
from orchestrator.store.tokens import TokenStore
from orchestrator.tiktok.chunks import MIN_CHUNK
from orchestrator.tiktok.oauth import TokenGrant

SAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "samples" / "clip-a.mp4"
TWO_CHUNKS = 2 * MIN_CHUNK + 12_345
"""Just over two minimum chunks: chunk 0 and a longer last chunk, so 'mid-upload' exists."""
USERS = ("sandbox-user-1", "sandbox-user-2", "sandbox-user-3")

_SEEDS = iter(range(1, 1_000_000))


def unique_bytes(seed: int, size: int) -> bytes:
    """``size`` bytes that never repeat within the file and differ for every ``seed`` (SHAKE-128's
    output: twice as fast as ``random.Random(seed).randbytes``, which costs ~50 ms per 10 MB)."""
    return hashlib.shake_128(seed.to_bytes(8, "big")).digest(size)


def make_clip(folder: Path, name: str, size: int | None = None) -> tuple[Path, str]:
    """A valid MP4 of ``size`` bytes (at least the sample's plus 8) with unique content, and
    the SHA-256 of its bytes."""
    sample = SAMPLE.read_bytes()
    pad = max(64, (size or 0) - len(sample))
    filler = unique_bytes(next(_SEEDS), pad - 8)
    data = sample + struct.pack(">I", pad) + b"free" + filler
    path = folder / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(
    folder: Path,
    entries: Sequence[Mapping[str, Any]],
    *,
    defaults: Mapping[str, Any] | None = None,
    name: str = "manifest.json",
) -> Path:
    """A version-1 manifest in ``folder`` (paths in entries are relative to it)."""
    document: dict[str, Any] = {"version": 1, "entries": list(entries)}
    if defaults:
        document["defaults"] = dict(defaults)
    path = folder / name
    path.write_text(json.dumps(document, indent=2))
    return path


def token_grant(sandbox: Sandbox, open_id: str, now: float) -> TokenGrant:
    """A stored-token grant for ``open_id``, as `auth login` would have saved it at ``now``."""
    response = sandbox.grant_tokens(open_id)
    return TokenGrant(
        open_id=open_id,
        access_token=Secret(response["access_token"]),
        access_expires_at=now + float(response["expires_in"]),
        refresh_token=Secret(response["refresh_token"]),
        refresh_expires_at=now + float(response["refresh_expires_in"]),
        scopes=frozenset(str(response["scope"]).split(",")),
    )


def sign_in(settings: Settings, sandbox: Sandbox, clock: Clock, users: Sequence[str]) -> None:
    """Store tokens for ``users`` in the home of ``settings``."""
    with TokenStore.open(settings, clock=clock) as store:
        store.save_grants([(token_grant(sandbox, user, clock.time()), None) for user in users])


def journal_rows(home: Path) -> list[dict[str, Any]]:
    """The journal table as plain dicts (read with sqlite directly, as an outsider would)."""
    connection = sqlite3.connect(home / DB_FILENAME)
    try:
        connection.row_factory = sqlite3.Row
        rows = connection.execute("SELECT * FROM journal ORDER BY created_at").fetchall()
        return [dict(row) for row in rows]
    finally:
        connection.close()


def backup_store(home: Path, to: Path) -> None:
    """A consistent copy of state.db, as `sqlite3 state.db ".backup copy.db"` makes."""
    source, target = sqlite3.connect(home / DB_FILENAME), sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def restore_store(home: Path, copy: Path) -> None:
    """Put an old copy of state.db back in place, as an operator restoring a backup would."""
    for leftover in ("-wal", "-shm"):
        (home / f"{DB_FILENAME}{leftover}").unlink(missing_ok=True)
    (home / DB_FILENAME).write_bytes(copy.read_bytes())
    (home / DB_FILENAME).chmod(0o600)


def completed_by_digest(sandbox: Sandbox) -> Counter[str]:
    """How many completed uploads the sandbox holds per SHA-256 of the bytes received."""
    return Counter(p.sha256 for p in sandbox.publishes() if p.completed and p.sha256)


def assert_published_once(sandbox: Sandbox, digests: Sequence[str]) -> None:
    """Exactly one completed upload per file, byte-exact, nothing else, no violation."""
    completed = completed_by_digest(sandbox)
    assert completed == Counter(digests), completed
    assert sandbox.violations() == [], sandbox.violations()
    assert sandbox.server_errors() == []


@dataclass
class RunRig:
    """A sandbox on a manual clock, a home with signed-in users, and a folder of media."""

    sandbox: Sandbox
    clock: ManualClock
    settings: Settings
    folder: Path
    tunables: RunSettings = field(default_factory=lambda: RunSettings(chunk_size=MIN_CHUNK))

    @property
    def home(self) -> Path:
        return self.settings.home

    def clip(self, name: str, size: int | None = None) -> tuple[Path, str]:
        return make_clip(self.folder, name, size)

    def manifest(
        self, entries: Sequence[Mapping[str, Any]], *, defaults: Mapping[str, Any] | None = None
    ) -> Path:
        return write_manifest(self.folder, entries, defaults=defaults)

    def run(
        self,
        manifest: Path,
        options: RunOptions | None = None,
        *,
        tunables: RunSettings | None = None,
        observer: RunObserver | None = None,
        stop: threading.Event | None = None,
    ) -> RunReport:
        return run_manifest(
            self.settings,
            manifest,
            options or RunOptions(),
            tunables=tunables or self.tunables,
            clock=self.clock,
            observer=observer,
            stop=stop,
        )

    def statuses(self, report: RunReport) -> list[str]:
        return [entry.status for entry in report.entries]


class Hooks:
    """An observer that lets a test act at a point of the run (after an entry, mid-chunk)."""

    def __init__(self) -> None:
        self.finished: list[str] = []
        self.on_finished: Callable[[Entry, EntryResult], None] = lambda entry, result: None
        self.on_progress: Callable[[Entry, int], None] = lambda entry, sent: None
        self._sent: dict[int, int] = {}

    def run_started(self, total_entries: int) -> None:
        return None

    def entry_started(self, entry: Entry, total_bytes: int, *, polling: bool = False) -> None:
        self._sent[entry.index] = 0

    def entry_progress(self, entry: Entry, bytes_delta: int) -> None:
        self._sent[entry.index] = self._sent.get(entry.index, 0) + bytes_delta
        self.on_progress(entry, self._sent[entry.index])

    def entry_finished(self, entry: Entry, result: EntryResult) -> None:
        self.finished.append(result.status)
        self.on_finished(entry, result)


def sandbox_settings(sandbox: Sandbox, home: Path) -> Settings:
    return Settings(
        home=home,
        api_base=sandbox.base_url,
        auth_url=sandbox.auth_url,
        client_key=sandbox.client_key,
        client_secret=Secret(sandbox.client_secret),
    )


@contextlib.contextmanager
def open_rig(
    tmp_path: Path, config: SandboxConfig | None = None, *, clock: ManualClock | None = None
) -> Iterator[RunRig]:
    """A run rig on a sandbox with ``config`` (and ``clock``), every configured user signed in."""
    clock = clock or ManualClock()
    with Sandbox(config or SandboxConfig(), clock=clock) as sandbox:
        settings = sandbox_settings(sandbox, tmp_path / "home")
        sign_in(settings, sandbox, clock, [user.open_id for user in sandbox.users])
        media = tmp_path / "media"
        media.mkdir()
        yield RunRig(sandbox, clock, settings, media)
        assert sandbox.server_errors() == []


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[RunRig]:
    """A run rig on the default sandbox (three users, rate limits and caps on)."""
    with open_rig(tmp_path) as opened:
        yield opened


# -- a sandbox served to other processes (the CLI, real subprocesses) ------------------------------

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    """A sandbox on the real clock, a home with signed-in users, and the environment that
    points a `python -m orchestrator` (or a CliRunner) at both."""

    sandbox: Sandbox
    settings: Settings
    folder: Path
    env: dict[str, str]

    @property
    def home(self) -> Path:
        return self.settings.home

    def clip(self, name: str, size: int | None = None) -> tuple[Path, str]:
        return make_clip(self.folder, name, size)

    def manifest(
        self, entries: Sequence[Mapping[str, Any]], *, name: str = "manifest.json"
    ) -> Path:
        return write_manifest(self.folder, entries, name=name)

    def invoke(self, *args: str) -> Result:
        """The command line in-process (click's CliRunner), from the media folder."""
        from orchestrator.cli import cli

        old = Path.cwd()
        os.chdir(self.folder)
        try:
            return CliRunner().invoke(cli, list(args), env=self.env)
        finally:
            os.chdir(old)

    def spawn(self, *args: str, name: str = "run") -> Child:
        """``python -m orchestrator ARGS`` in the media folder, output to files."""
        out = (self.folder / f"{name}.out").open("w")
        err = (self.folder / f"{name}.err").open("w")
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", *args],
                cwd=self.folder,
                env=self.env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        finally:
            out.close()
            err.close()
        return Child(process, self.folder / f"{name}.out", self.folder / f"{name}.err")


@dataclass
class Child:
    """A running `python -m orchestrator`; its output lands in files."""

    process: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"the child did not exit within {timeout} s:\n{self.stderr}"
            ) from None

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed, the kernel drops its locks."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) for another process to reach a point; fail naming it otherwise."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        pause.wait(0.005)


@contextlib.contextmanager
def serve(
    tmp_path: Path, config: SandboxConfig | None = None, users: Sequence[str] = USERS
) -> Iterator[Served]:
    """A sandbox (no processing delay: the first status fetch is final) and a home."""
    clock = SystemClock()
    with Sandbox(config or SandboxConfig(processing_polls=0), clock=clock) as sandbox:
        settings = sandbox_settings(sandbox, tmp_path / "home")
        sign_in(settings, sandbox, clock, users)
        media = tmp_path / "media"
        media.mkdir()
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "ORCHESTRATOR_HOME": str(settings.home),
            "ORCHESTRATOR_API_BASE": sandbox.base_url,
            "ORCHESTRATOR_AUTH_URL": sandbox.auth_url,
            "TIKTOK_CLIENT_KEY": sandbox.client_key,
            "TIKTOK_CLIENT_SECRET": sandbox.client_secret,
        }
        yield Served(sandbox, settings, media, env)
        assert sandbox.server_errors() == []


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A sandbox for the CLI and subprocesses (real clock, three signed-in users)."""
    with serve(tmp_path) as opened:
        yield opened
