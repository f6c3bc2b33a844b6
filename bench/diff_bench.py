"""Time `diff` of two synthetic recordings of the same workload (the issue's target: two
10M-event recordings in seconds).

    python bench/diff_bench.py [--dir /tmp/sockopt-bench] [--events 10M] [--repeats 5]

The recordings are analyzer_bench.py's (written once under --dir, seeds 1 and 2: the same
distribution, other rows). Each timing is one `diff()` library call as the CLI makes it: open
and validate both recordings, register their views on one connection, run the diff queries
(groups, latency bins, and new/vanished call sites unless grouped by call site), run every test,
build the result; Python start-up (~0.3 s for the CLI) and printing are not included. Groupings
are interleaved, one run each per round; the page cache is warm.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import duckdb
from analyzer_bench import parse_count, recording

from sockopt_trace.analyzer.diff import diff

GROUPINGS = ("comm,level,optname", "callsite", "comm,callsite", "comm,fd")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/sockopt-bench"))
    parser.add_argument("--events", default="10M", help="events in each recording")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    events = parse_count(args.events)
    base, new = recording(args.dir, events, seed=1), recording(args.dir, events, seed=2)
    diff([base], [new])  # warm the page cache and DuckDB's first-use costs
    times: dict[str, list[float]] = {by: [] for by in GROUPINGS}
    tests: dict[str, tuple[int, int, int]] = {}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):
        for by in GROUPINGS:
            started = time.perf_counter()
            result = diff([base], [new], by=by)
            times[by].append(time.perf_counter() - started)
            flagged = sum(1 for g in result.groups if g.significant)
            tests[by] = (len(result.groups), result.tests, flagged)

    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}; {events:,} events in each recording; median of "
        f"{args.repeats} interleaved runs, warm page cache; load average {load:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after\n"
    )
    print("| --by | median s | min s | max s | M events/s | groups | tests | flagged |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for by, t in times.items():
        median = statistics.median(t)
        groups, n_tests, flagged = tests[by]
        print(
            f"| {by} | {median:.2f} | {min(t):.2f} | {max(t):.2f} | "
            f"{2 * events / median / 1e6:.0f} | {groups} | {n_tests} | {flagged} |"
        )


if __name__ == "__main__":
    main()
