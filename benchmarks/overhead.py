"""Overhead per entry: what a run costs beyond sending bytes, over 1,000 small entries.

1,000 distinct small MP4 files (about 5 KB each) spread over 50 sandbox users, posted by the
real run use case (``runner.run_manifest``: validation, the journal in a fresh home, token
decryption, creator_info, caps, init, one chunk PUT, status) against the in-process sandbox
with rate limits off and ``processing_polls=0`` (the first status fetch is terminal), so the
server answers at once: a zero-latency TikTok.

Clock: the run gets a :class:`ManualClock`, so the client-side pacing TikTok requires (6 inits
per user per minute: 20 entries per user would otherwise wait three minutes each) costs no wall
time; poll intervals are irrelevant here (no status fetch answers PROCESSING) but are set small
too (``RunSettings(poll_first=0.01, poll_max=0.05)``). Wall time is ``time.perf_counter``.

Figures:

- **overhead per entry** = (wall time of validate + run - time inside chunk PUTs) / entries,
  measured with ``--jobs 1`` (serial, so the subtraction is exact). Goal: ≤ 20 ms.
- a breakdown: API calls (creator_info, init, status: the sandbox's answer included), journal
  and token-store commits (synced or not; the fsync included), token reads (decryption
  included), and what is left (planning, scheduling, the engine).
- synced commits per entry, and the fsync latency of the home's file system (this VM's virtual
  disk is fast; a laptop SSD takes milliseconds). ``--journal-sync recommended`` measures the
  journal change benchmarks/README.md recommends: sync only the commits exactly-once needs.
- CPU per entry (this process: the in-process sandbox's share included).

    python benchmarks/overhead.py                   # 1,000 entries, 50 users, --jobs 1
    python benchmarks/overhead.py --journal-sync recommended
    python benchmarks/overhead.py --history 1000 100000   # + opening a store with a long journal
    python benchmarks/overhead.py --request-cost          # + one request through the transport
    python benchmarks/overhead.py --jobs 4 --profile

Linux, Python 3.11. Not a test: run it by hand and quote the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness import (
    bench_config,
    machine_line,
    sandbox_users,
    seeded_settings,
    write_manifest,
    write_small_mp4,
)

from orchestrator.clock import ManualClock
from orchestrator.config import Settings
from orchestrator.manifest import load_manifest
from orchestrator.runner import run_manifest
from orchestrator.sandbox import Sandbox
from orchestrator.scheduler import Run, RunOptions
from orchestrator.settings import RunSettings
from orchestrator.store.db import Database
from orchestrator.store.journal import EntryMeta, Journal
from orchestrator.store.tokens import TokenStore
from orchestrator.transport import Body, HttpResponse, HttpTransport, Timeouts
from orchestrator.upload import (
    ChunkConfirmed,
    Processing,
    Published,
    Resynced,
    SentToInbox,
    Uploaded,
    UploadEvent,
)

GOAL_MS = 20.0


class Stopwatch:
    """Seconds and counts per label, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: Counter[str] = Counter()

    def add(self, label: str, seconds: float) -> None:
        with self._lock:
            self.seconds[label] += seconds
            self.counts[label] += 1

    @contextlib.contextmanager
    def timing(self, label: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(label, time.perf_counter() - started)


class TimedTransport(HttpTransport):
    """The real transport, timing each request by what it is (chunk PUT or API endpoint)."""

    def __init__(self, watch: Stopwatch) -> None:
        super().__init__()
        self._watch = watch

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        timeouts: Timeouts | None = None,
    ) -> HttpResponse:
        label = "chunk PUT" if method == "PUT" else "api " + url.split("/v2/", 1)[-1].strip("/")
        with self._watch.timing(label):
            return super().request(method, url, headers=headers, body=body, timeouts=timeouts)


_CHOSEN = threading.local()  # the durability a patched journal method asks for


@contextlib.contextmanager
def instrumented(watch: Stopwatch, *, journal_sync: str) -> Iterator[None]:
    """Time the store's commits (synced or not) and token reads; with ``journal_sync ==
    "recommended"``, make the journal commit durably only where exactly-once needs it (the
    change benchmarks/README.md recommends for ``journal.py``). Class attributes are restored
    afterwards."""
    original_transaction = Database.transaction
    original_credentials = TokenStore.credentials
    original_begin = Journal.begin
    original_record = Journal.record

    @contextlib.contextmanager
    def transaction(self: Database, *, durable: bool = True, alone: bool = False) -> Iterator[Any]:
        chosen = getattr(_CHOSEN, "durable", None)
        durable = durable if chosen is None else chosen
        started = time.perf_counter()
        try:
            with original_transaction(self, durable=durable, alone=alone) as connection:
                yield connection
        finally:
            label = "store commit, synced" if durable else "store commit, not synced"
            watch.add(label, time.perf_counter() - started)

    def credentials(self: TokenStore, open_id: str) -> Any:
        with watch.timing("token read + decrypt"):
            return original_credentials(self, open_id)

    def begin(self: Journal, meta: EntryMeta, **fence: Any) -> None:
        # A lost "initialising" row only matters where the init itself may post (URL, photo).
        _CHOSEN.durable = meta.kind != "file"
        try:
            original_begin(self, meta, **fence)
        finally:
            _CHOSEN.durable = None

    def record(
        self: Journal, identity: str, user_id: str, event: UploadEvent, **fence: Any
    ) -> None:
        _CHOSEN.durable = recommended_durability(self, identity, event)
        try:
            original_record(self, identity, user_id, event, **fence)
        finally:
            _CHOSEN.durable = None

    Database.transaction = transaction  # type: ignore[assignment,method-assign]
    TokenStore.credentials = credentials  # type: ignore[method-assign]
    if journal_sync == "recommended":
        Journal.begin = begin  # type: ignore[method-assign]
        Journal.record = record  # type: ignore[method-assign]
    try:
        yield
    finally:
        Database.transaction = original_transaction  # type: ignore[method-assign]
        TokenStore.credentials = original_credentials  # type: ignore[method-assign]
        Journal.begin = original_begin  # type: ignore[method-assign]
        Journal.record = original_record  # type: ignore[method-assign]


def recommended_durability(journal: Journal, identity: str, event: UploadEvent) -> bool:
    """Whether ``event`` must be on disk before the engine's next step (exactly-once across a
    power cut): the commit that first allows the last chunk to be sent must be, since after it
    a rerun must never init again; progress a rerun re-learns from TikTok need not be."""
    if isinstance(event, ChunkConfirmed | Resynced):
        row = journal.get(identity)
        if row is None or row.plan is None:
            return True
        last_first = row.plan.chunk(row.plan.total_chunk_count - 1).first
        return row.bytes_confirmed < last_first <= event.bytes_confirmed
    return not isinstance(event, Uploaded | Processing | Published | SentToInbox)


def fsync_latency(folder: Path, samples: int = 200) -> float:
    """Median seconds of one 4 KiB write + fsync in ``folder`` (what a synced commit waits)."""
    path = folder / "fsync-probe"
    times = []
    with path.open("wb") as file:
        for _ in range(samples):
            file.write(b"x" * 4096)
            file.flush()
            started = time.perf_counter()
            os.fsync(file.fileno())
            times.append(time.perf_counter() - started)
    path.unlink()
    return statistics.median(times)


@contextlib.contextmanager
def profiled(profiles: list[cProfile.Profile], *, enabled: bool) -> Iterator[None]:
    """Profile the main thread and each user's worker thread (cProfile sees one thread)."""
    if not enabled:
        yield
        return
    original = Run._post_user

    def post_user(self: Run, user_id: str, items: Any) -> Any:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            return original(self, user_id, items)
        finally:
            profiler.disable()
            profiles.append(profiler)

    main = cProfile.Profile()
    Run._post_user = post_user  # type: ignore[method-assign]
    main.enable()
    try:
        yield
    finally:
        main.disable()
        Run._post_user = original  # type: ignore[method-assign]
        profiles.append(main)


def build(folder: Path, entries: int, users: int) -> Path:
    videos = folder / "videos"
    videos.mkdir()
    rows = []
    for index in range(entries):
        write_small_mp4(videos / f"clip-{index:05d}.mp4", tag=index % 200, payload=4096 + index)
        rows.append(
            {
                "id": f"entry-{index:05d}",
                "user_id": f"bench-user-{index % users:02d}",
                "video_path": f"videos/clip-{index:05d}.mp4",
                "description": f"Overhead benchmark clip {index}",
                "tags": ["bench"],
            }
        )
    return write_manifest(folder / "manifest.json", rows)


def measure(args: argparse.Namespace) -> None:
    users = sandbox_users(args.users)
    watch = Stopwatch()
    clock = ManualClock(start=time.time())
    with (
        tempfile.TemporaryDirectory(prefix="orch-overhead-") as scratch,
        Sandbox(bench_config(users)) as sandbox,
    ):
        folder = Path(scratch)
        fsync_ms = fsync_latency(folder) * 1000
        manifest_path = build(folder, args.entries, args.users)
        settings = seeded_settings(
            folder / "home",
            api_base=sandbox.base_url,
            client_key=sandbox.client_key,
            client_secret=sandbox.client_secret,
            token_responses=[sandbox.grant_tokens(user.open_id) for user in users],
            clock=clock,
        )
        options = RunOptions(jobs=args.jobs, daily_direct_cap=1_000_000)
        tunables = RunSettings(poll_first=0.01, poll_max=0.05)
        profiles: list[cProfile.Profile] = []
        cpu_started = time.process_time()
        started = time.perf_counter()
        with (
            instrumented(watch, journal_sync=args.journal_sync),
            profiled(profiles, enabled=args.profile),
        ):
            manifest = load_manifest(manifest_path)
            validated = time.perf_counter()
            report = run_manifest(
                settings,
                manifest_path,
                options,
                tunables=tunables,
                clock=clock,
                manifest=manifest,
                transport_factory=lambda: TimedTransport(watch),
            )
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        published = report.summary()["published"]
        errors = sandbox.server_errors()
        violations = sandbox.violations()
    if published != args.entries or errors or violations:
        raise SystemExit(
            f"expected {args.entries} published, got {report.summary()}; "
            f"sandbox errors {errors[:3]}, violations {violations[:3]}"
        )
    n = args.entries
    transfer = watch.seconds["chunk PUT"]

    def per(seconds: float) -> str:
        return f"{seconds / n * 1000:6.2f} ms/entry"

    print(machine_line())
    print(
        f"{n} entries, {args.users} users, --jobs {args.jobs}, in-process sandbox "
        "(rate limits off, processing_polls=0), ManualClock for pacing, fresh home"
    )
    print(f"wall: {wall:.2f} s   validate {validated - started:.2f} s   CPU {cpu:.2f} s")
    print(f"  validate (load_manifest)          {per(validated - started)}")
    for label in sorted(watch.seconds):
        print(
            f"  {label:33} {per(watch.seconds[label])}   ({watch.counts[label] / n:.1f} per entry)"
        )
    api = sum(s for label, s in watch.seconds.items() if label.startswith("api "))
    commits = sum(s for label, s in watch.seconds.items() if label.startswith("store commit"))
    known = (validated - started) + transfer + api + commits + watch.seconds["token read + decrypt"]
    if args.jobs == 1:
        print(f"  everything else                   {per(wall - known)}")
    print(f"CPU per entry: {cpu / n * 1000:.2f} ms (sandbox included)")
    synced = watch.counts["store commit, synced"] / n
    print(
        f"synced commits per entry: {synced:.1f} (journal durability: {args.journal_sync}); "
        f"an fsync in this home's file system takes {fsync_ms:.2f} ms, so on a disk with 2 ms "
        f"fsyncs they would cost {synced * 2:.1f} ms per entry"
    )
    overhead = (wall - transfer) / n * 1000
    if args.jobs == 1:
        verdict = "met" if overhead <= GOAL_MS else "NOT met"
        print(
            f"overhead per entry (outside chunk PUTs): {overhead:.2f} ms  "
            f"(goal <= {GOAL_MS:.0f} ms: {verdict})"
        )
    else:
        print(
            f"wall per entry with --jobs {args.jobs}: {wall / n * 1000:.2f} ms "
            "(the goal is judged with --jobs 1, where the subtraction is exact)"
        )
    if profiles:
        stats = pstats.Stats(profiles[0])
        for more in profiles[1:]:
            stats.add(more)
        stats.sort_stats(args.sort).print_stats(args.top)


def store_open(history: int) -> None:
    """Seconds to open a store whose journal already holds ``history`` finished entries (five
    events each, as a run leaves them): the integrity check reads every page."""
    with tempfile.TemporaryDirectory(prefix="orch-history-") as scratch:
        home = Path(scratch) / "home"
        settings = Settings(home=home)
        clock = ManualClock(start=time.time())
        TokenStore.open(settings, clock=clock).close()
        with Database.open(home) as database, database.transaction() as connection:
            for index in range(history):
                identity = f"entry-{index:07d}"
                connection.execute(
                    "INSERT INTO journal (identity, entry_id, user_id, mode, kind, source,"
                    " request_digest, state, publish_id, attempts, created_at, updated_at,"
                    " uploaded_at, finished_at) VALUES (?, ?, ?, 'direct', 'file', ?, ?,"
                    " 'published', ?, 1, 0, 0, 0, 0)",
                    (
                        identity,
                        identity,
                        f"bench-user-{index % 50:02d}",
                        f"videos/clip-{index:07d}.mp4",
                        "0" * 64,
                        f"v_pub_file~v2-1.{index}",
                    ),
                )
                for event in ("begin", "Initialised", "ChunkConfirmed", "Uploaded", "Published"):
                    connection.execute(
                        "INSERT INTO journal_events (identity, run_id, at, event, detail)"
                        " VALUES (?, 'abcdef123456', 0, ?, ?)",
                        (identity, event, f'{{"publish_id": "v_pub_file~v2-1.{index}"}}'),
                    )
        size = (home / "state.db").stat().st_size
        times = []
        for _ in range(5):
            started = time.perf_counter()
            TokenStore.open(settings, clock=clock).close()
            times.append(time.perf_counter() - started)
    print(
        f"store open with a journal of {history:,} entries ({size / 1e6:.0f} MB): "
        f"median {statistics.median(times) * 1000:.1f} ms (integrity check, schema, key check)"
    )


_TINY_SERVER = r"""
import socket, threading
def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pending = b""
    body = b'{"data": {}, "error": {"code": "ok"}}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    with conn:
        while True:
            while b"\r\n\r\n" not in pending:
                more = conn.recv(65536)
                if not more:
                    return
                pending += more
            head, _, rest = pending.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(rest) < length:
                rest += conn.recv(65536)
            pending = rest[length:]
            conn.sendall(answer % len(body) + body)
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
while True:
    connection, _ = server.accept()
    threading.Thread(target=serve, args=(connection,), daemon=True).start()
"""


def request_cost(count: int = 3000) -> None:
    """Wall and CPU time of one small POST through ``HttpTransport`` to a minimal server in
    another process, with and without a whole-request deadline (API calls have one)."""
    server = subprocess.Popen([sys.executable, "-c", _TINY_SERVER], stdout=subprocess.PIPE)
    assert server.stdout is not None
    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/v2/post/publish/status/fetch/"
        transport = HttpTransport()
        try:
            for total in (None, 60.0):
                limits = Timeouts(connect=10, read=30, total=total)

                def call(limits: Timeouts = limits) -> None:
                    transport.request("POST", url, body=b"{}", timeouts=limits)

                for _ in range(200):
                    call()
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(count):
                    call()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                shown = "none" if total is None else f"{total:g} s"
                print(
                    f"one small request, deadline {shown:>5}: {wall / count * 1e3:.3f} ms wall, "
                    f"{cpu / count * 1e3:.3f} ms CPU"
                )
        finally:
            transport.close()
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the run")
    parser.add_argument(
        "--journal-sync",
        choices=("as-built", "recommended"),
        default="as-built",
        help="as-built: the journal as it is; recommended: sync only where exactly-once needs it",
    )
    parser.add_argument("--sort", default="tottime", help="profile sort key")
    parser.add_argument("--top", type=int, default=30, help="profile rows")
    parser.add_argument(
        "--history",
        type=int,
        nargs="*",
        default=[],
        help="also time opening a store whose journal holds this many entries",
    )
    parser.add_argument(
        "--request-cost",
        action="store_true",
        help="also time one small request through the transport, with and without a deadline",
    )
    args = parser.parse_args()
    measure(args)
    for history in args.history:
        store_open(history)
    if args.request_cost:
        request_cost()


if __name__ == "__main__":
    main()
