"""The fault campaign in full: many seeded schedules, their figures, every invariant checked.

Each seed is a fault schedule played against the sandbox by the real CLI, with SIGKILLs,
SIGSTOPs, damaged stores and reruns (see ``tests/campaign``). This prints one line per seed
that broke an invariant (with its schedule and what broke), then the figures: schedules, runs,
SIGKILLs, SIGSTOPs, damaged-store runs, faults fired by kind, bytes TikTok received, wall time.
Exit status 1 if any invariant broke.

    python benchmarks/campaign.py --seeds 200            # seeds 1..200, the full campaign
    python benchmarks/campaign.py --first 201 --seeds 100 --workers 3
    python benchmarks/campaign.py --seeds 25 --reduced   # what CI plays

The same seeds under pytest: ``python -m pytest tests/campaign --campaign-seeds=200``, which
also plays the paused-worker schedules on a shared PostgreSQL store (a tenth as many seeds;
they need a PostgreSQL server, which that session starts).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.campaign.harness import play_seeds  # noqa: E402
from tests.campaign.schedule import REDUCED_SEEDS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=200, help="how many seeds (default 200)")
    parser.add_argument("--first", type=int, default=1, help="the first seed (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="seeds played at once")
    parser.add_argument(
        "--reduced",
        action="store_true",
        help=f"no files over 128 MB (what the default pytest run of {REDUCED_SEEDS} seeds does)",
    )
    args = parser.parse_args()
    seeds = range(args.first, args.first + args.seeds)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="campaign-") as folder:
        results = play_seeds(seeds, Path(folder), full=not args.reduced, workers=args.workers)
    wall = time.monotonic() - started
    broken = [result for result in results if result.violations]
    for result in broken:
        print(result.summary(), end="\n\n")
    fired = Counter(name for result in results for name in result.faults_fired)
    print(
        f"{len(results)} schedules (seeds {seeds.start}..{seeds.stop - 1}, "
        f"{'reduced' if args.reduced else 'full'}): "
        f"{sum(len(r.runs) for r in results)} runs, {sum(r.kills for r in results)} SIGKILLs, "
        f"{sum(r.stops for r in results)} SIGSTOPs "
        f"({sum(r.killed_while_stopped for r in results)} killed while stopped, "
        f"{sum(r.clock_jumps for r in results)} with TikTok's clock moved on), "
        f"{sum(r.damaged_runs for r in results)} damaged-store runs, "
        f"{sum(fired.values())} faults fired, "
        f"{sum(r.bytes_sent for r in results) / 1e6:,.0f} MB received by TikTok, "
        f"{wall:.0f} s wall"
    )
    print("faults fired: " + ", ".join(f"{name} x{count}" for name, count in sorted(fired.items())))
    violations = sum(len(r.violations) for r in broken)
    print(f"invariant violations: {violations} in {len(broken)} schedules")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
