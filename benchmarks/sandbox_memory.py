"""Peak memory and throughput of the sandbox while it takes a large upload.

Runs the sandbox in a child process (so its RSS is measured alone), streams a video through
the sandbox's chunk PUTs with raw ``http.client`` (1 MiB sends of a repeating pattern: the
sender holds no chunk in memory either), and reports the child's RSS before and its peak
(``VmHWM``) after, plus the rate. With ``--curl`` it also times ``curl -T`` uploading the
chunks of a second publish from a sparse file, the way a user would measure loopback speed.

    python benchmarks/sandbox_memory.py                 # 1 GiB in 64,000,000-byte chunks
    python benchmarks/sandbox_memory.py --size 4294967296 --curl

Linux only (reads /proc). Not a test: run it by hand and quote the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
from orchestrator.sandbox import Sandbox, SandboxConfig
with Sandbox(SandboxConfig(rate_limits=False)) as sb:
    token = sb.grant_tokens("sandbox-user-1")["access_token"]
    print(json.dumps({"base_url": sb.base_url, "token": token}), flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
    print(json.dumps({"errors": sb.server_errors(), "publishes": [
        {"sha256": p.sha256, "bytes": p.bytes_received, "completed": p.completed}
        for p in sb.publishes()]}), flush=True)
"""

_PERIOD = 251
_BLOCK = bytes(range(_PERIOD)) * (1024 * 1024 // _PERIOD + 2)
SEND_BLOCK = 1024 * 1024


def proc_status(pid: int, field: str) -> int:
    """A ``/proc/PID/status`` memory field in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def api_call(base_url: str, token: str, path: str, body: dict[str, object]) -> dict[str, object]:
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request(
            "POST",
            path,
            body=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        answer: dict[str, object] = json.loads(conn.getresponse().read())
        return answer
    finally:
        conn.close()


def init_upload(base_url: str, token: str, size: int, chunk: int) -> tuple[int, str]:
    count = size // chunk if size > chunk else 1
    chunk = chunk if count > 1 else size
    answer = api_call(
        base_url,
        token,
        "/v2/post/publish/video/init/",
        {
            "post_info": {"title": "benchmark", "privacy_level": "SELF_ONLY"},
            "source_info": {
                "source": "FILE_UPLOAD",
                "video_size": size,
                "chunk_size": chunk,
                "total_chunk_count": count,
            },
        },
    )
    data = answer["data"]
    assert isinstance(data, dict), answer
    return count, str(data["upload_url"])


def stream_upload(url: str, size: int, chunk: int, count: int) -> str:
    """PUT every chunk over one keep-alive connection; the SHA-256 of what was sent."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    digest = hashlib.sha256()
    view = memoryview(_BLOCK)
    try:
        for index in range(count):
            first = index * chunk
            last = size - 1 if index == count - 1 else first + chunk - 1
            conn.putrequest("PUT", f"{parts.path}?{parts.query}", skip_accept_encoding=True)
            conn.putheader("Content-Type", "video/mp4")
            conn.putheader("Content-Length", str(last - first + 1))
            conn.putheader("Content-Range", f"bytes {first}-{last}/{size}")
            conn.endheaders()
            offset = first
            while offset <= last:
                start = offset % _PERIOD
                piece = view[start : start + min(SEND_BLOCK, last - offset + 1)]
                conn.send(piece)
                digest.update(piece)
                offset += len(piece)
            response = conn.getresponse()
            response.read()
            expected = 201 if index == count - 1 else 206
            if response.status != expected:
                raise SystemExit(f"chunk {index}: HTTP {response.status}, expected {expected}")
    finally:
        conn.close()
    return digest.hexdigest()


def curl_upload(url: str, size: int, chunk: int, count: int, workdir: Path) -> None:
    """Upload every chunk with ``curl -T`` from sparse files (zeros, read from the page cache)."""
    curl = shutil.which("curl")
    if curl is None:
        raise SystemExit("curl not found")
    parts = urlsplit(url)
    for index in range(count):
        first = index * chunk
        last = size - 1 if index == count - 1 else first + chunk - 1
        part = workdir / f"chunk-{last - first + 1}.bin"
        if not part.exists():
            with part.open("wb") as handle:
                handle.truncate(last - first + 1)
        done = subprocess.run(
            [
                curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", str(part),
                "-H", "Content-Type: video/mp4",
                "-H", f"Content-Range: bytes {first}-{last}/{size}",
                # -T appends the file name to a URL whose path ends in "/": send the upload
                # URL's own path and query verbatim instead.
                "--request-target", f"{parts.path}?{parts.query}",
                f"{parts.scheme}://{parts.netloc}/",
            ],
            capture_output=True, text=True, check=True, timeout=600,
        )  # fmt: skip
        if done.stdout.strip() not in ("201", "206"):
            raise SystemExit(f"curl chunk {index}: HTTP {done.stdout.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024**3, help="video bytes (default 1 GiB)")
    parser.add_argument("--chunk", type=int, default=64_000_000, help="chunk bytes")
    parser.add_argument("--curl", action="store_true", help="also time curl -T uploads")
    args = parser.parse_args()

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        hello = json.loads(child.stdout.readline())
        base_url, token = hello["base_url"], hello["token"]
        api_call(base_url, token, "/v2/post/publish/creator_info/query/", {})
        before = proc_status(child.pid, "VmRSS")
        count, url = init_upload(base_url, token, args.size, args.chunk)
        started = time.monotonic()
        sent_sha = stream_upload(url, args.size, args.chunk, count)
        elapsed = time.monotonic() - started
        peak = proc_status(child.pid, "VmHWM")
        mb = args.size / 1e6
        print(f"upload: {args.size:,} bytes in {count} chunks of {args.chunk:,}")
        print(f"python http.client sender: {elapsed:.1f} s, {mb / elapsed:.0f} MB/s")
        print(f"sandbox RSS before upload: {before / 2**20:.1f} MiB")
        print(f"sandbox peak RSS (VmHWM):  {peak / 2**20:.1f} MiB")
        if args.curl:
            count, url = init_upload(base_url, token, args.size, args.chunk)
            with tempfile.TemporaryDirectory() as workdir:
                started = time.monotonic()
                curl_upload(url, args.size, args.chunk, count, Path(workdir))
                elapsed = time.monotonic() - started
            print(f"curl -T sender:            {elapsed:.1f} s, {mb / elapsed:.0f} MB/s")
            print(f"sandbox peak RSS (VmHWM):  {proc_status(child.pid, 'VmHWM') / 2**20:.1f} MiB")
        child.stdin.close()
        report = json.loads(child.stdout.readline())
        first = report["publishes"][0]
        assert first["completed"], first
        assert first["bytes"] == args.size, first
        assert first["sha256"] == sent_sha, "the sandbox hashed different bytes"
        assert report["errors"] == [], report["errors"]
        print("sandbox SHA-256 matches the bytes sent; no sandbox errors")
    finally:
        if child.poll() is None:
            child.stdin.close()
            child.wait(timeout=30)


if __name__ == "__main__":
    main()
