"""Upload throughput: our engine against ``curl`` sending the same chunks to the sandbox.

The sandbox runs in a child process (so its CPU work does not share our interpreter), with rate
limits off. The video is a file of random bytes on tmpfs (``--dir``, default /dev/shm), so the
disk is out of the picture. Each run uploads the whole file twice, interleaved, alternating who
goes first:

- **ours**: ``Uploader.upload`` (init, chunk PUTs streamed from the file through
  ``HttpTransport``, one status fetch). Timed from the journal's ``Initialised`` to its
  ``Uploaded``: the chunk transfer alone, every per-chunk round trip included.
- **curl**: one ``curl`` process PUTting the same chunks with the same ``Content-Type`` and
  ``Content-Range`` headers over one keep-alive connection (``--next`` between chunks), each
  chunk read by ``-T`` from its own file on tmpfs (cut once, before timing: curl cannot send a
  byte range of a file). ``Expect: 100-continue`` is turned off (our client does not send it).
  Timed as the sum of curl's ``time_total`` per chunk.

With ``--sink``, our transport alone (the chunk PUTs, no API) and curl also upload to a bare
HTTP sink that drains bodies without hashing them, so the *client* is the bottleneck: this is
where urllib3's 16 KiB default send block shows, and where SEND_BLOCK was chosen.

The figure is the median MB/s of ``--runs`` runs (MB = 10^6 bytes), after one warm-up run of
each. ``--sweep`` also times our engine alone across chunk sizes and socket send blocks,
round-robin within each run (how DEFAULT_CHUNK and SEND_BLOCK were chosen); ``--rtt SECONDS``
makes the sandbox hold every chunk answer that long, standing in for a network round trip,
which loopback lacks. Every upload is checked afterwards: the sandbox must hold each one
complete, with the file's SHA-256.

    python benchmarks/throughput.py                          # 1 GiB, 5 runs
    python benchmarks/throughput.py --sink
    python benchmarks/throughput.py --sweep --no-curl --rtt 0.05

Linux, Python 3.11, curl on PATH. Not a test: run it by hand and quote the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.clock import SystemClock  # noqa: E402
from orchestrator.retry import PaceLimit, Retrier, SlidingWindowPacer  # noqa: E402
from orchestrator.secret import Secret  # noqa: E402
from orchestrator.tiktok.chunks import DEFAULT_CHUNK, ChunkPlan, plan_chunks  # noqa: E402
from orchestrator.tiktok.client import PostInfo, PostMode, TikTokClient  # noqa: E402
from orchestrator.transport import SEND_BLOCK, FileWindow, HttpTransport  # noqa: E402
from orchestrator.upload import (  # noqa: E402
    FileSource,
    Initialised,
    UploadConfig,
    Uploaded,
    Uploader,
    UploadEvent,
    UploadRequest,
)

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


class Engine:
    """Our uploader pointed at the sandbox, one transport per send block."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.token = token
        self.publish_ids: list[str] = []

    def upload(self, path: Path, chunk: int, send_block: int) -> float:
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
                config=UploadConfig(chunk_size=chunk, poll_timeout=0),
                clock=clock,
            )
            request = UploadRequest(
                USER,
                PostMode.DIRECT,
                FileSource(path, path.stat().st_size, "video/mp4"),
                PostInfo(privacy_level="SELF_ONLY", title="benchmark"),
            )
            journal = TimingJournal()
            outcome = uploader.upload(request, journal)
            if outcome.publish_id is None or outcome.error is not None:
                raise SystemExit(f"our upload failed: {outcome}")
            self.publish_ids.append(outcome.publish_id)
            return journal.seconds
        finally:
            transport.close()

    def init(self, plan: ChunkPlan) -> tuple[str, str]:
        """An init for curl's upload: (publish_id, upload_url)."""
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
            times.setdefault("curl -T", []).append(curl_upload(url, plan, parts))
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
    """The plan's chunks as separate files (for curl -T), cut once before timing."""
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


def curl_upload(upload_url: str, plan: ChunkPlan, parts: list[Path]) -> float:
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
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=3600)
    lines = done.stdout.split()
    codes, times = lines[0::2], lines[1::2]
    expected = ["206"] * (plan.total_chunk_count - 1) + ["201"]
    if codes != expected:
        raise SystemExit(f"curl got {codes}, expected {expected}")
    return sum(float(t) for t in times)


def make_video(folder: Path, size: int) -> tuple[Path, str]:
    path = folder / "throughput-video.mp4"
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 16 << 20))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return path, digest.hexdigest()


def cpu_model() -> str:
    """The CPU's model name (Linux), or the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def mbps(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024**3, help="video bytes (default 1 GiB)")
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
        env={"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    assert child.stdin is not None
    assert child.stdout is not None
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="orch-bench-") as scratch:
        folder = Path(scratch)
        try:
            hello = json.loads(child.stdout.readline())
            engine = Engine(hello["base_url"], hello["token"])
            path, digest = make_video(folder, args.size)
            plan = plan_chunks(args.size, DEFAULT_CHUNK)
            parts = cut_chunks(path, plan, folder)
            ours: list[float] = []
            theirs: list[float] = []
            # Warm-up (not counted): page cache, connection setup, the sandbox's first publish.
            engine.upload(path, DEFAULT_CHUNK, SEND_BLOCK)
            if not args.no_curl:
                curl_upload(engine.init(plan)[1], plan, parts)
            for run in range(args.runs):
                order = ("ours", "curl") if run % 2 == 0 else ("curl", "ours")
                for who in order:
                    if who == "ours":
                        ours.append(engine.upload(path, DEFAULT_CHUNK, SEND_BLOCK))
                    elif not args.no_curl:
                        theirs.append(curl_upload(engine.init(plan)[1], plan, parts))
                line = f"run {run + 1}: ours {mbps(args.size, ours[-1]):7.1f} MB/s"
                if theirs:
                    line += f"   curl {mbps(args.size, theirs[-1]):7.1f} MB/s"
                print(line, flush=True)
            if args.sink:
                sink_comparison(path, plan, parts, args.runs)
            for part in parts:
                part.unlink()
            sweep: dict[tuple[int, int], list[float]] = {}
            if args.sweep:
                matrix = [
                    (chunk, block)
                    for chunk in (5_242_880, 16_000_000, 32_000_000, 64_000_000)
                    for block in (16 * 1024, 1024 * 1024)
                ]
                for _ in range(args.runs):
                    for chunk, block in matrix:
                        sweep.setdefault((chunk, block), []).append(
                            engine.upload(path, chunk, block)
                        )
        finally:
            child.stdin.close()
            report = json.loads(child.stdout.readline() or "{}")
            child.wait(timeout=60)

    completed = {p["id"]: p for p in report.get("publishes", []) if p["completed"]}
    wrong = [i for i in engine.publish_ids if completed.get(i, {}).get("sha256") != digest]
    if wrong or report.get("errors"):
        raise SystemExit(f"uploads not byte-exact: {wrong}; sandbox errors: {report.get('errors')}")

    print()
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"video: {args.size:,} bytes, {plan.total_chunk_count} chunks of {plan.chunk_size:,}")
    print(f"added round trip per chunk answer: {args.rtt * 1000:.0f} ms")
    ours_median = statistics.median(ours)
    print(f"ours: median {mbps(args.size, ours_median):.1f} MB/s over {args.runs} runs")
    if theirs:
        curl_median = statistics.median(theirs)
        print(f"curl: median {mbps(args.size, curl_median):.1f} MB/s over {args.runs} runs")
        print(f"ours / curl: {curl_median / ours_median:.2f}x (goal >= 0.9x)")
    for (chunk, block), times in sweep.items():
        print(
            f"sweep: chunk {chunk:>11,}  send block {block:>9,}: "
            f"median {mbps(args.size, statistics.median(times)):7.1f} MB/s"
        )
    print(f"all {len(engine.publish_ids)} uploads complete and byte-exact (SHA-256 checked)")


if __name__ == "__main__":
    main()
