"""Init pacing per creator: how many 429s a long run draws (issue 13 §6). Goal: zero.

A run of many small direct posts for a few users, against the in-process sandbox with its rate
windows ON (6 inits per minute per user, counted per open_id, so a token refresh does not empty
them) on a :class:`ManualClock`, so the minutes of pacing cost no wall time. To look like the
real network, every API request arrives a random 0..``--jitter`` seconds after it is sent (the
transport moves the manual clock before the sandbox sees it); access tokens live 400 s, so each
user's token is refreshed several times; and the entries are split over ``--runs`` runs back to
back (each a new process's worth of pacing, seeded from the journal).

Printed: posts, inits sent, 429 answers (per endpoint), token refreshes, and the busiest sliding
minute of inits per user as the sandbox received them (must be ≤ 6).

    python benchmarks/pacing.py                      # 2 users x 30 posts, 2 runs, jitter 2 s
    python benchmarks/pacing.py --users 4 --posts 40 --runs 5 --jitter 5

Not a test: run it by hand and quote the figures (tests/functional/test_pacing_per_creator.py is
the test).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path

from harness import (
    bench_config,
    machine_line,
    sandbox_users,
    seeded_settings,
    write_manifest,
    write_small_mp4,
)

from orchestrator.clock import ManualClock
from orchestrator.runner import run_manifest
from orchestrator.sandbox import Sandbox
from orchestrator.scheduler import RunOptions
from orchestrator.settings import RunSettings
from orchestrator.transport import Body, HttpResponse, HttpTransport, Timeouts

INIT_LIMIT = 6
WINDOW = 60.0


class CountingTransport(HttpTransport):
    """The real transport, counting each answer by endpoint and status."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.answers: Counter[tuple[str, int]] = Counter()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        timeouts: Timeouts | None = None,
    ) -> HttpResponse:
        endpoint = "chunk PUT" if method == "PUT" else url.split("/v2/", 1)[-1].strip("/")
        self._before(method)
        response = super().request(method, url, headers=headers, body=body, timeouts=timeouts)
        with self._lock:
            self.answers[(endpoint, response.status)] += 1
        return response

    def _before(self, method: str) -> None:
        """Called before each request is sent (a subclass delays it)."""


class JitteredTransport(CountingTransport):
    """The counting transport; each API request arrives a random while after it is sent."""

    def __init__(self, clock: ManualClock, jitter: float, rng: random.Random) -> None:
        super().__init__()
        self._clock = clock
        self._jitter = jitter
        self._rng = rng

    def _before(self, method: str) -> None:
        if method != "PUT":
            with self._lock:
                delay = self._rng.uniform(0, self._jitter)
            self._clock.advance(delay)


def busiest_minute(times: list[float]) -> int:
    times = sorted(times)
    return max(
        (sum(1 for later in times[i:] if later < start + WINDOW) for i, start in enumerate(times)),
        default=0,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=2)
    parser.add_argument("--posts", type=int, default=30, help="direct posts per user")
    parser.add_argument("--runs", type=int, default=2, help="runs (processes) back to back")
    parser.add_argument("--jitter", type=float, default=2.0, help="max arrival delay, seconds")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    users = sandbox_users(args.users)
    clock = ManualClock(start=time.time())
    rng = random.Random(args.seed)
    config = bench_config(users, rate_limits=True, access_token_ttl=400)
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="orch-pacing-") as scratch,
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
        entries = []
        for number in range(args.posts):
            for user in users:
                name = f"{user.open_id}-{number}.mp4"
                write_small_mp4(folder / name, tag=len(entries))
                entries.append({"user_id": user.open_id, "video_path": name})
        transport = JitteredTransport(clock, args.jitter, rng)
        transport_close = transport.close
        transport.close = lambda: None  # type: ignore[method-assign]  # shared by the runs
        options = RunOptions(jobs=args.users, daily_direct_cap=1_000_000)
        tunables = RunSettings(poll_first=0.01, poll_max=0.05)
        statuses: Counter[str] = Counter()
        share = -(-len(entries) // args.runs)
        for run in range(args.runs):
            part = entries[run * share : (run + 1) * share]
            if not part:
                break
            manifest = write_manifest(folder / f"manifest-{run}.json", part)
            sandbox.new_client()
            report = run_manifest(
                settings,
                manifest,
                options,
                tunables=tunables,
                clock=clock,
                transport_factory=lambda: transport,
            )
            statuses.update(entry.status for entry in report.entries)
        transport_close()
        arrivals: dict[str, list[float]] = defaultdict(list)
        for record in sandbox.publishes():
            arrivals[record.open_id].append(record.created_at)
        refreshes = sandbox.calls("token")
        violations = sandbox.violations()
    wall = time.perf_counter() - started

    inits = sum(n for (endpoint, _), n in transport.answers.items() if endpoint.endswith("init"))
    limited = {endpoint: n for (endpoint, status), n in transport.answers.items() if status == 429}
    busiest = {user: busiest_minute(times) for user, times in sorted(arrivals.items())}
    print(machine_line())
    print(
        f"{args.users} users x {args.posts} posts, {args.runs} runs, arrival jitter "
        f"0..{args.jitter} s, access tokens of 400 s; {wall:.1f} s wall"
    )
    print(f"entries: {dict(statuses)}")
    print(f"inits sent: {inits} for {statuses['published']} posts")
    print(f"token refreshes: {refreshes}")
    print(f"busiest minute of inits per user (≤ {INIT_LIMIT}): {busiest}")
    print(f"429 answers: {sum(limited.values())} {limited or ''}  (goal: 0)")
    if violations:
        print(f"sandbox violations: {violations}")
    ok = not limited and all(n <= INIT_LIMIT for n in busiest.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
