"""``serve``'s HTTP API: overhead per post, and memory while receiving a large multipart upload.

Run from the repository root: ``PYTHONPATH=. python benchmarks/serve_api.py [--upload-gb 2]``.
It starts the sandbox and the API under waitress in this process (tests/web/api_rig.py), then:

1. API overhead per post — the median time of ``POST /api/v1/posts`` (one JSON entry, the
   worker held so the figure is the API's own: auth, validation, the UNIQUE insert, the
   answer). Goal: ≤ 20 ms on top of the upload.
2. Memory while receiving a multipart upload of ``--upload-gb`` GB (a sparse file, streamed by a
   generator so the client holds no copy): the process's peak RSS before and after. Goal:
   bounded (the body is spooled to disk, never held). The sparse file is not a video, so the
   answer is a 422 after the whole body was received, sniffed and hashed.

Not measured here (next step): 100 queued posts across 10 creators drained with zero
rate-limit violations.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.web.api_rig import open_api_rig

BOUNDARY = "benchmark-boundary-7f3a"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _multipart(path: Path, entry: dict[str, object]) -> Iterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="entry"\r\n\r\n'
        f"{json.dumps(entry)}\r\n--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="video"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    with path.open("rb") as file:
        while block := file.read(1024 * 1024):
            yield block
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--upload-gb", type=float, default=2.0)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as scratch,
        open_api_rig(Path(scratch), worker_running=False) as rig,
    ):
        user = rig.sandbox.users[0].open_id
        times = []
        for number in range(args.posts):
            entry = {"user_id": user, "video_url": f"https://example.com/{number}.mp4"}
            started = time.perf_counter()
            response = rig.post("/api/v1/posts", json=entry)
            times.append(time.perf_counter() - started)
            assert response.status_code == 202, response.text
        median = statistics.median(times) * 1000
        print(f"API overhead per post: median {median:.2f} ms over {args.posts} (goal ≤ 20 ms)")

        size = int(args.upload_gb * 10**9)
        sparse = Path(scratch) / "sparse.bin"
        with sparse.open("wb") as file:
            file.truncate(size)
        before = _peak_rss_mib()
        started = time.perf_counter()
        response = requests.post(
            rig.url + "/api/v1/posts",
            data=_multipart(sparse, {"user_id": user}),
            headers={
                **rig.headers,
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            },
            timeout=3600,
        )
        elapsed = time.perf_counter() - started
        after = _peak_rss_mib()
        print(
            f"multipart upload of {size / 10**9:.1f} GB: answered {response.status_code} in "
            f"{elapsed:.1f} s; peak RSS {before:.1f} MiB before, {after:.1f} MiB after "
            f"(+{after - before:.1f} MiB; client and server in one process)"
        )


if __name__ == "__main__":
    main()
