"""Time the canned reports on synthetic recordings of 10M and 100M events (DESIGN.md target:
the latency report over 100M events in under 10 s on 2 cores, cost linear in events).

    python bench/analyzer_bench.py [--dir /tmp/sockopt-bench] [--sizes 10M,100M] [--repeats 5]

Recordings are written once under --dir (one file per 10M events, row groups of 256Ki rows as
the recorder writes them) and reused by later runs. Each timing is one library call as the CLI
makes it: open and validate the files, register the views, run the report, fetch every row;
Python start-up (~0.3 s for the CLI) is not included. Runs are interleaved (every report and size
once per round) so that drift in the machine affects all alike; the median is reported. The
page cache is warm (the files were just written or read).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from sockopt_trace.analyzer.load import load  # noqa: E402
from sockopt_trace.analyzer.reports import run_report  # noqa: E402
from tests.synth import write_recording  # noqa: E402

PER_FILE = 10_000_000
ROW_GROUP = 1 << 18


def parse_count(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1:], 1)
    return int(float(text.rstrip("KMG")) * scale)


def recording(base: Path, events: int, seed: int = 1) -> Path:
    """The recording of `events` synthetic events under `base`, written if not there yet
    (another `seed`: the same workload, other rows; bench/diff_bench.py diffs the two)."""
    directory = base / (f"events-{events}" if seed == 1 else f"events-{events}-seed-{seed}")
    marker = directory / "complete.json"
    spec = {"events": events, "per_file": PER_FILE, "row_group": ROW_GROUP, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.parquet"):
        old.unlink()
    started = time.perf_counter()
    files = max(1, round(events / PER_FILE))
    write_recording(directory, events, files=files, seed=seed, row_group_rows=ROW_GROUP)
    marker.write_text(json.dumps(spec))
    print(f"wrote {events:,} events in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return directory


def time_report(directory: Path, name: str) -> float:
    started = time.perf_counter()
    loaded = load([directory])
    result = run_report(loaded.con, name)
    rows = list(result.rows)
    elapsed = time.perf_counter() - started
    assert rows, name
    loaded.con.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/sockopt-bench"))
    parser.add_argument("--sizes", default="10M,100M")
    parser.add_argument("--reports", default="latency,callsites")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    sizes = [parse_count(s) for s in args.sizes.split(",")]
    reports = args.reports.split(",")
    dirs = {n: recording(args.dir, n) for n in sizes}
    for directory in dirs.values():  # warm the page cache and DuckDB's first-use costs
        time_report(directory, reports[0])
    times: dict[tuple[int, str], list[float]] = {(n, r): [] for n in sizes for r in reports}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for n in sizes:
            for name in reports:
                times[(n, name)].append(time_report(dirs[n], name))

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
        f"median of {args.repeats} interleaved runs, warm page cache, "
        f"load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after\n"
    )
    print("| events | report | median s | min s | max s | M events/s | on disk | bytes/event |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        size = sum(p.stat().st_size for p in dirs[n].glob("*.parquet"))
        for name in reports:
            t = times[(n, name)]
            median = statistics.median(t)
            print(
                f"| {n:,} | {name} | {median:.2f} | {min(t):.2f} | {max(t):.2f} | "
                f"{n / median / 1e6:.0f} | {size / 2**20:,.0f} MiB | {size / n:.2f} |"
            )
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        for name in reports:
            ratio = statistics.median(times[(large, name)]) / statistics.median(
                times[(small, name)]
            )
            print(f"\n{name}: {large // small}x the events took {ratio:.1f}x the time", end="")
        print()


if __name__ == "__main__":
    main()
