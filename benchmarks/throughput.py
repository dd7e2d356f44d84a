"""Upload throughput: our engine vs ``curl`` vs a raw socket sender, to the same sandbox.

The sandbox runs in a child process (so its CPU work does not share our interpreter), with rate
limits off. The video is a file of random bytes on tmpfs (``--dir``, default /dev/shm), so the
disk is out of the picture. For each size (default 1 GiB and 4,000,000,000 bytes, the largest
video TikTok takes under the stricter reading of "4 GB") every run uploads the whole file once
per sender, interleaved, the order rotating from run to run:

- **ours**: ``Uploader.upload`` (init, chunk PUTs streamed from the file through
  ``HttpTransport``, one status fetch). Timed from the journal's ``Initialised`` to its
  ``Uploaded``: the chunk transfer alone, every per-chunk round trip included.
- **curl**: one ``curl`` process PUTting the same chunks with the same ``Content-Type`` and
  ``Content-Range`` headers over one keep-alive connection (``--next`` between chunks), each
  chunk read by ``-T`` from a file on tmpfs (cut before timing: curl cannot send a byte range
  of a file). ``Expect: 100-continue`` is turned off (our client does not send it). Timed as the
  sum of curl's ``time_total`` per chunk.
- **raw**: the sandbox's ceiling: hand-written request heads and bodies sent from memory in
  1 MiB ``sendall`` calls over one connection, reading each answer: no file read and no HTTP
  library (``socket.sendfile`` from tmpfs measured slower here). Timed from the first chunk to
  the last answer. No client can feed this server faster, so
  ``ours / raw`` says how much of the server's capacity we use, and ``ours / curl`` is only
  meaningful while both stay below it.

The video's bytes are random with the chunk size as their period, so the raw sender can send
any chunk from one period held in memory; curl's part files and our file hold the same bytes.
Both the video and curl's part files live on tmpfs (8 GB for the 4 GB video: mind the RAM).

CPU: our process's CPU time during ``Uploader.upload`` and the raw sender's, and curl's from
``getrusage(RUSAGE_CHILDREN)``, each per GB sent (GB = 10^9 bytes).

The figures are the median MB/s of ``--runs`` runs (MB = 10^6 bytes), after one warm-up run
of each, and for the goal the median of the per-run ratios ours / curl: each run's two uploads
are seconds apart, so a load that drifts during the benchmark (this VM is shared) affects both
sides of a ratio alike, not one median more than the other.

``--sink`` compares our transport per socket send block with curl against a bare HTTP sink (the
client as the bottleneck); ``--sweep`` times our engine across chunk sizes and send blocks
(``--rtt SECONDS`` makes the sandbox hold every chunk answer that long, standing in for a
network round trip). Every upload is checked afterwards: the sandbox must hold each one
complete, with the file's SHA-256.

    python benchmarks/throughput.py                          # 1 GiB and 4 GB, 5 runs each
    python benchmarks/throughput.py --sizes 1073741824 --sink
    python benchmarks/throughput.py --sizes 536870912 --sweep --no-curl --rtt 0.05

Goal (issue 9): ours >= 1.0x curl. Linux, Python 3.11, curl on PATH. Not a test: run it by hand
and quote the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from harness import REPO, child_env, cpu_model, machine_line

from orchestrator.clock import SystemClock
from orchestrator.retry import PaceLimit, Retrier, SlidingWindowPacer
from orchestrator.secret import Secret
from orchestrator.settings import RunSettings
from orchestrator.tiktok.chunks import DEFAULT_CHUNK, ChunkPlan, plan_chunks
from orchestrator.tiktok.client import PostInfo, PostMode, TikTokClient
from orchestrator.transport import SEND_BLOCK, FileWindow, HttpTransport
from orchestrator.upload import (
    FileSource,
    Initialised,
    Uploaded,
    Uploader,
    UploadEvent,
    UploadRequest,
)

__all__ = ["CHILD", "REPO", "Engine", "cpu_model"]

GOAL = 1.0  # ours / curl
SIZES = (1024**3, 4_000_000_000)
RAW_BLOCK = 1024 * 1024

CHILD = """
import json, sys
from orchestrator.sandbox import Fault, Sandbox, SandboxConfig
config = SandboxConfig(rate_limits=False, daily_post_cap=10_000, processing_polls=0)
with Sandbox(config) as sb:
    rtt = float(sys.argv[1])
    if rtt:  # every chunk answer waits: a network round trip, as far as the client can tell
        sb.schedule(Fault(endpoint="upload", call=None, kind="delay", seconds=rtt))
    token = sb.grant_tokens("sandbox-user-1")["access_token"]
    print(json.dumps({"base_url": sb.base_url, "token": token}), flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
    print(json.dumps({"errors": sb.server_errors(), "publishes": [
        {"id": p.publish_id, "sha256": p.sha256, "completed": p.completed}
        for p in sb.publishes()]}), flush=True)
"""
USER = "sandbox-user-1"

# A minimal HTTP sink: drains each PUT's body into a reused buffer and answers 206 (201 for the
# last range). No hashing, no bookkeeping: against it, the client is the bottleneck.
SINK = r"""
import re, socket, threading
def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    view = memoryview(bytearray(4 << 20))
    pending = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in pending:
                more = conn.recv(65536)
                if not more:
                    return
                pending += more
            head, _, rest = pending.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            span = re.search(rb"(?i)content-range:\s*bytes (\d+)-(\d+)/(\d+)", head)
            pending, left = rest[length:], max(0, length - len(rest))
            while left:
                count = conn.recv_into(view[: min(left, len(view))])
                if not count:
                    return
                left -= count
            done = span is None or int(span.group(2)) + 1 == int(span.group(3))
            status = b"201 Created" if done else b"206 Partial Content"
            conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
while True:
    connection, _ = server.accept()
    threading.Thread(target=serve, args=(connection,), daemon=True).start()
"""
SINK_BLOCKS = (16 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024)


class StaticTokens:
    """The one sandbox token (refresh is never needed in a benchmark)."""

    def __init__(self, token: str) -> None:
        self._token = Secret(token)

    def access_token(self, open_id: str) -> Secret:
        return self._token

    def refresh_after_rejection(self, open_id: str, rejected: Secret) -> Secret:
        raise SystemExit("the sandbox refused the benchmark's token")


@dataclass
class TimingJournal:
    """Keeps when the upload URL arrived and when the last byte was confirmed."""

    clock: Callable[[], float] = time.perf_counter
    started: float | None = None
    finished: float | None = None
    events: list[str] = field(default_factory=list)

    def record(self, event: UploadEvent) -> None:
        self.events.append(type(event).__name__)
        if isinstance(event, Initialised):
            self.started = self.clock()
        elif isinstance(event, Uploaded):
            self.finished = self.clock()

    @property
    def seconds(self) -> float:
        if self.started is None or self.finished is None:
            raise SystemExit(f"upload did not finish: {self.events}")
        return self.finished - self.started


@dataclass(frozen=True)
class Timing:
    """One upload: seconds of transfer and CPU seconds the sender spent on it."""

    seconds: float
    cpu: float


class Engine:
    """Our uploader pointed at the sandbox, one transport per send block."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token
        self.publish_ids: list[str] = []

    def upload(self, path: Path, chunk: int, send_block: int) -> float:
        return self.timed_upload(path, chunk, send_block).seconds

    def timed_upload(self, path: Path, chunk: int, send_block: int) -> Timing:
        clock = SystemClock()
        transport = HttpTransport(send_block=send_block)
        try:
            client = TikTokClient(
                self.base_url,
                transport,
                StaticTokens(self.token),
                pacer=SlidingWindowPacer({}, clock=clock),
                retry=Retrier(clock=clock),
                clock=clock,
            )
            uploader = Uploader(
                client,
                transport,
                retry=Retrier(clock=clock),
                config=RunSettings(chunk_size=chunk, poll_timeout=0),
                clock=clock,
            )
            request = UploadRequest(
                USER,
                PostMode.DIRECT,
                FileSource(path, path.stat().st_size, "video/mp4"),
                PostInfo(privacy_level="SELF_ONLY", title="benchmark"),
            )
            journal = TimingJournal()
            cpu = time.process_time()
            outcome = uploader.upload(request, journal)
            cpu = time.process_time() - cpu
            if outcome.publish_id is None or outcome.error is not None:
                raise SystemExit(f"our upload failed: {outcome}")
            self.publish_ids.append(outcome.publish_id)
            return Timing(journal.seconds, cpu)
        finally:
            transport.close()

    def init(self, plan: ChunkPlan) -> tuple[str, str]:
        """An init for another sender's upload: (publish_id, upload_url)."""
        clock = SystemClock()
        transport = HttpTransport()
        try:
            client = TikTokClient(
                self.base_url,
                transport,
                StaticTokens(self.token),
                pacer=SlidingWindowPacer({"video_init": PaceLimit(10_000)}, clock=clock),
                retry=Retrier(clock=clock),
                clock=clock,
            )
            result = client.init_direct_video(
                USER, plan, PostInfo(privacy_level="SELF_ONLY", title="benchmark")
            )
            assert result.upload_url is not None
            self.publish_ids.append(result.publish_id)
            return result.publish_id, result.upload_url.reveal()
        finally:
            transport.close()


def raw_upload(upload_url: str, pattern: bytes, plan: ChunkPlan) -> Timing:
    """The sandbox's ceiling: request heads by hand, bodies sent from memory in 1 MiB
    ``sendall`` calls (no file read, no HTTP library), one connection, each answer read.

    ``pattern`` is the video's repeating period (the chunk size), so a chunk starting at a
    multiple of it is ``pattern`` repeated and cut to the chunk's length.
    """
    url = urlsplit(upload_url)
    assert url.hostname is not None
    assert url.port is not None
    target = f"{url.path}?{url.query}"
    period = len(pattern)
    longest = max(chunk.length for chunk in plan.chunks())
    body = memoryview(pattern * (-(-longest // period)))
    with socket.create_connection((url.hostname, url.port), timeout=120) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        cpu = time.process_time()
        started = time.perf_counter()
        for chunk in plan.chunks():
            assert chunk.first % period == 0, "chunks start on the video's period"
            head = (
                f"PUT {target} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: video/mp4\r\n"
                f"Content-Length: {chunk.length}\r\n"
                f"Content-Range: {plan.content_range(chunk)}\r\n\r\n"
            )
            sock.sendall(head.encode("ascii"))
            for offset in range(0, chunk.length, RAW_BLOCK):
                sock.sendall(body[offset : min(chunk.length, offset + RAW_BLOCK)])
            status = int(reader.readline().split()[1])
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            reader.read(length)
            expected = 201 if chunk.index == plan.total_chunk_count - 1 else 206
            if status != expected:
                raise SystemExit(f"raw sender: chunk {chunk.index} got {status}")
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        reader.close()
    body.release()
    return Timing(seconds, cpu)


def transport_upload(url: str, path: Path, plan: ChunkPlan, send_block: int) -> float:
    """Our transport alone PUTting every chunk (what ``Uploader`` does, minus the API)."""
    transport = HttpTransport(send_block=send_block)
    try:
        with path.open("rb") as file:
            started = time.perf_counter()
            for chunk in plan.chunks():
                response = transport.request(
                    "PUT",
                    url,
                    headers={
                        "Content-Type": "video/mp4",
                        "Content-Range": plan.content_range(chunk),
                    },
                    body=FileWindow(file, chunk.first, chunk.length),
                )
                if response.status not in (201, 206):
                    raise SystemExit(f"sink answered {response.status}")
            return time.perf_counter() - started
    finally:
        transport.close()


def sink_comparison(path: Path, plan: ChunkPlan, parts: list[Path], runs: int) -> None:
    """Our transport per send block vs curl, against the sink, interleaved; medians printed."""
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    try:
        url = f"http://127.0.0.1:{int(sink.stdout.readline())}/upload/?upload_id=1&upload_token=t"
        transport_upload(url, path, plan, SEND_BLOCK)  # warm-up
        times: dict[str, list[float]] = {}
        for _ in range(runs):
            for block in SINK_BLOCKS:
                times.setdefault(f"ours, send block {block // 1024:>5} KiB", []).append(
                    transport_upload(url, path, plan, block)
                )
            times.setdefault("curl -T", []).append(curl_upload(url, plan, parts).seconds)
    finally:
        sink.kill()
        sink.wait()
    size = plan.video_size
    curl_median = statistics.median(times["curl -T"])
    print(f"against the sink ({runs} runs, medians):")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"  {name:28} {mbps(size, median):7.1f} MB/s  "
            f"({curl_median / median:.2f}x curl; min {mbps(size, max(values)):.0f}, "
            f"max {mbps(size, min(values)):.0f})"
        )


def cut_chunks(path: Path, plan: ChunkPlan, folder: Path) -> list[Path]:
    """The plan's chunks as separate files for curl -T, cut before timing (each its own file,
    so curl reads as much distinct memory as we do)."""
    parts = []
    with path.open("rb") as source:
        for chunk in plan.chunks():
            part = folder / f"chunk-{plan.chunk_size}-{chunk.index:04d}.bin"
            with part.open("wb") as out:
                left = chunk.length
                while left:
                    block = source.read(min(left, 8 << 20))
                    out.write(block)
                    left -= len(block)
            parts.append(part)
    return parts


def curl_upload(upload_url: str, plan: ChunkPlan, parts: list[Path]) -> Timing:
    """One curl process, one keep-alive connection, every chunk: the summed time_total."""
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl not found on PATH")
    url = urlsplit(upload_url)
    command = [curl]
    for chunk, part in zip(plan.chunks(), parts, strict=True):
        if chunk.index:
            command.append("--next")
        command += [
            "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}\\n",
            "-T", str(part),
            "-H", "Content-Type: video/mp4",
            "-H", f"Content-Range: {plan.content_range(chunk)}",
            "-H", "Expect:",
            # -T appends the file name to a URL ending in "/": send the path verbatim instead.
            "--request-target", f"{url.path}?{url.query}",
            f"{url.scheme}://{url.netloc}/",
        ]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=3600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = done.stdout.split()
    codes, times = lines[0::2], lines[1::2]
    expected = ["206"] * (plan.total_chunk_count - 1) + ["201"]
    if codes != expected:
        raise SystemExit(f"curl got {codes}, expected {expected}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(sum(float(t) for t in times), cpu)


def make_video(folder: Path, size: int, pattern: bytes) -> tuple[Path, str]:
    """``size`` bytes of ``pattern`` repeated; returns (path, SHA-256)."""
    path = folder / f"throughput-video-{size}.mp4"
    period = len(pattern)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = pattern[: min(left, period)]
            digest.update(block)
            out.write(block)
            left -= len(block)
    return path, digest.hexdigest()


def mbps(size: int, seconds: float) -> float:
    return size / seconds / 1e6


@dataclass
class Results:
    """Every timing of one size, per sender."""

    size: int
    plan: ChunkPlan
    timings: dict[str, list[Timing]] = field(default_factory=dict)

    def add(self, who: str, timing: Timing) -> None:
        self.timings.setdefault(who, []).append(timing)

    def median_seconds(self, who: str) -> float:
        return statistics.median(t.seconds for t in self.timings[who])

    def paired_ratio(self, faster: str, slower: str) -> float:
        """The median over runs of ``slower``'s time / ``faster``'s time in the same run."""
        pairs = zip(self.timings[faster], self.timings[slower], strict=True)
        return statistics.median(b.seconds / a.seconds for a, b in pairs)

    def cpu_per_gb(self, who: str) -> float:
        return statistics.median(t.cpu for t in self.timings[who]) / (self.size / 1e9)


def measure_size(
    engine: Engine, folder: Path, size: int, args: argparse.Namespace
) -> tuple[Results, Path, str]:
    pattern = os.urandom(DEFAULT_CHUNK)
    path, digest = make_video(folder, size, pattern)
    plan = plan_chunks(size, DEFAULT_CHUNK)
    parts = cut_chunks(path, plan, folder) if args.sink or not args.no_curl else []
    senders: dict[str, Callable[[], Timing]] = {
        "ours": lambda: engine.timed_upload(path, DEFAULT_CHUNK, SEND_BLOCK),
        "raw": lambda: raw_upload(engine.init(plan)[1], pattern, plan),
    }
    if not args.no_curl:
        senders["curl"] = lambda: curl_upload(engine.init(plan)[1], plan, parts)
    names = list(senders)
    for name in names:  # warm-up (not counted): page cache, connections, first publish
        senders[name]()
    results = Results(size, plan)
    print(f"{size:,} bytes, {plan.total_chunk_count} chunks of {plan.chunk_size:,}:", flush=True)
    for run in range(args.runs):
        order = names[run % len(names) :] + names[: run % len(names)]
        for name in order:
            results.add(name, senders[name]())
        print(
            f"  run {run + 1}: "
            + "   ".join(
                f"{name} {mbps(size, results.timings[name][-1].seconds):7.1f} MB/s"
                for name in names
            ),
            flush=True,
        )
    if args.sink:
        sink_comparison(path, plan, parts, args.runs)
    for part in parts:
        part.unlink()
    return results, path, digest


def sweep(engine: Engine, path: Path, runs: int) -> None:
    matrix = [
        (chunk, block)
        for chunk in (5_242_880, 16_000_000, 32_000_000, 64_000_000)
        for block in (16 * 1024, 1024 * 1024)
    ]
    times: dict[tuple[int, int], list[float]] = {}
    for _ in range(runs):
        for chunk, block in matrix:
            times.setdefault((chunk, block), []).append(engine.upload(path, chunk, block))
    size = path.stat().st_size
    for (chunk, block), values in times.items():
        print(
            f"sweep: chunk {chunk:>11,}  send block {block:>9,}: "
            f"median {mbps(size, statistics.median(values)):7.1f} MB/s"
        )


def report(results: Results, runs: int) -> None:
    size = results.size
    ours = results.median_seconds("ours")
    raw = results.median_seconds("raw")
    print(f"{size:,} bytes: medians of {runs} interleaved runs")
    print(
        f"  raw socket (sandbox ceiling):   {mbps(size, raw):7.1f} MB/s   "
        f"CPU {results.cpu_per_gb('raw'):.2f} s/GB"
    )
    if "curl" in results.timings:
        curl = results.median_seconds("curl")
        print(
            f"  curl -T:                        {mbps(size, curl):7.1f} MB/s   "
            f"CPU {results.cpu_per_gb('curl'):.2f} s/GB"
        )
    print(
        f"  ours:                           {mbps(size, ours):7.1f} MB/s   "
        f"CPU {results.cpu_per_gb('ours'):.2f} s/GB"
    )
    print(f"  ours / raw ceiling: {raw / ours:.2f}x (the server is the bottleneck near 1.0x)")
    if "curl" in results.timings:
        ratio = results.paired_ratio("ours", "curl")
        verdict = "met" if ratio >= GOAL else "NOT met"
        print(
            f"  ours / curl: {ratio:.2f}x, median of per-run ratios "
            f"(ratio of the medians {results.median_seconds('curl') / ours:.2f}x)  "
            f"(goal >= {GOAL:.1f}x: {verdict})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=list(SIZES),
        help="video bytes (default: 1 GiB and 4,000,000,000)",
    )
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs (median taken)")
    parser.add_argument("--rtt", type=float, default=0.0, help="seconds added to chunk answers")
    parser.add_argument("--no-curl", action="store_true", help="skip the curl comparison")
    parser.add_argument(
        "--sink",
        action="store_true",
        help="also compare our transport (per send block) with curl against a bare HTTP sink",
    )
    parser.add_argument("--dir", default="/dev/shm", help="where the video lives (tmpfs)")
    parser.add_argument(
        "--sweep", action="store_true", help="also time chunk sizes and socket send blocks"
    )
    args = parser.parse_args()

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(args.rtt)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=child_env(),
    )
    assert child.stdin is not None
    assert child.stdout is not None
    all_results: list[Results] = []
    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="orch-bench-") as scratch:
        folder = Path(scratch)
        try:
            hello = json.loads(child.stdout.readline())
            engine = Engine(hello["base_url"], hello["token"])
            for size in args.sizes:
                first = len(engine.publish_ids)
                results, path, digest = measure_size(engine, folder, size, args)
                if args.sweep:
                    sweep(engine, path, args.runs)
                for publish_id in engine.publish_ids[first:]:
                    digests[publish_id] = digest
                path.unlink()
                all_results.append(results)
        finally:
            child.stdin.close()
            sandbox = json.loads(child.stdout.readline() or "{}")
            child.wait(timeout=60)

    completed = {p["id"]: p for p in sandbox.get("publishes", []) if p["completed"]}
    wrong = [i for i, d in digests.items() if completed.get(i, {}).get("sha256") != d]
    if wrong or sandbox.get("errors"):
        errors = sandbox.get("errors")
        raise SystemExit(f"uploads not byte-exact: {wrong}; sandbox errors: {errors}")

    print()
    print(machine_line())
    print(f"added round trip per chunk answer: {args.rtt * 1000:.0f} ms")
    for results in all_results:
        report(results, args.runs)
    print(f"all {len(digests)} uploads complete and byte-exact (SHA-256 checked)")


if __name__ == "__main__":
    main()
