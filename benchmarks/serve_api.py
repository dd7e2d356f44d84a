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

3. Drain with the rate windows on — ``--drain-posts`` (100) posts queued across
   ``--drain-creators`` (10) creators in the store (as ``POST /api/v1/posts`` leaves them),
   then drained by ``serve``'s worker (``ApiDrain`` with ``serve``'s default run options)
   against a sandbox enforcing TikTok's per-user windows (6 inits a minute). Sandbox, worker and
   pacing share a :class:`ManualClock`, so the minutes of pacing cost no wall time. Printed:
   posts published, the 429 answers the worker received (per endpoint), the sandbox's protocol
   violations, and the busiest sliding minute of inits per creator. Goal: 0 and 0.

``--only drain`` (or ``api``) runs one part.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import bench_config, machine_line, sandbox_users, seeded_settings, write_small_mp4
from pacing import CountingTransport, busiest_minute

from orchestrator.clock import ManualClock
from orchestrator.sandbox import Sandbox
from orchestrator.store.tokens import TokenStore
from orchestrator.store.web import WebPostStore
from orchestrator.web.worker import ApiDrain
from tests.web.api_rig import open_api_rig

INIT_LIMIT = 6
WINDOW = 60.0
MAX_PASSES = 50

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


def drain(posts: int, creators: int) -> bool:
    """Queue ``posts`` across ``creators`` and let serve's worker drain them; whether the run
    drew no 429 and no violation."""
    users = sandbox_users(creators)
    clock = ManualClock(start=time.time())
    begin = clock.time()
    config = bench_config(users, rate_limits=True, processing_polls=1)
    transports: list[CountingTransport] = []

    def transport() -> CountingTransport:
        made = CountingTransport()
        transports.append(made)
        return made

    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="orch-serve-drain-") as scratch,
        Sandbox(config, clock=clock) as sandbox,
    ):
        folder = Path(scratch)
        settings = seeded_settings(
            folder / "home",
            api_base=sandbox.base_url,
            client_key=sandbox.client_key,
            client_secret=sandbox.client_secret,
            token_responses=[sandbox.grant_tokens(user.open_id) for user in users],
            clock=clock,
        )
        with TokenStore.open(settings, clock=clock) as store:
            queue = WebPostStore(store.database, clock=clock)
            for number in range(posts):
                user = users[number % creators].open_id
                video = write_small_mp4(folder / f"post-{number}.mp4", tag=number)
                entry = {"user_id": user, "video_path": str(video), "privacy_level": "SELF_ONLY"}
                queue.add(f"key-{number}", body_digest=str(number), entry=json.dumps(entry))
            worker = ApiDrain(settings, store, clock=clock, transport_factory=transport)
            stop = threading.Event()
            passes = 0
            outcome = worker(stop)
            passes += 1
            while outcome.queued and passes < MAX_PASSES:
                clock.advance(WINDOW)  # the poll interval: deferred posts fall due
                outcome = worker(stop)
                passes += 1
        arrivals: dict[str, list[float]] = defaultdict(list)
        for record in sandbox.publishes():
            arrivals[record.open_id].append(record.created_at)
        published = len(sandbox.publishes())
        violations = sandbox.violations()
    wall = time.perf_counter() - started
    simulated = clock.time() - begin
    answers: Counter[tuple[str, int]] = Counter()
    for made in transports:
        answers.update(made.answers)
    limited = {endpoint: n for (endpoint, status), n in answers.items() if status == 429}
    busiest = max((busiest_minute(times) for times in arrivals.values()), default=0)
    print(
        f"drain: {posts} queued posts across {creators} creators, rate windows on: "
        f"{published} published in {passes} worker passes; {simulated / 60:.1f} min on the "
        f"manual clock, {wall:.1f} s wall"
    )
    print(f"429 answers: {sum(limited.values())} {limited or ''}  (goal: 0)")
    print(f"sandbox violations: {len(violations)} {violations or ''}  (goal: 0)")
    print(f"busiest minute of inits for one creator: {busiest} (limit {INIT_LIMIT})")
    return not limited and not violations and published == posts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--upload-gb", type=float, default=2.0)
    parser.add_argument("--drain-posts", type=int, default=100)
    parser.add_argument("--drain-creators", type=int, default=10)
    parser.add_argument("--only", choices=("api", "drain"))
    args = parser.parse_args()
    print(machine_line())
    ok = True
    if args.only != "api":
        ok = drain(args.drain_posts, args.drain_creators)
    if args.only != "drain":
        api(args)
    return 0 if ok else 1


def api(args: argparse.Namespace) -> None:
    """Parts 1 and 2: the API's overhead per post, and memory during a large upload."""
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
    sys.exit(main())
