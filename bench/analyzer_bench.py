"""Time the canned reports on synthetic recordings of 10M to 1G events (targets, issue 17: the
latency report over 100M events in under 2 s and over 1,000,000,000 in under 30 s with peak RSS
under 2 GB, on 2 cores; cost linear in events).

    flock -x /work/locks/cpu.lock python bench/analyzer_bench.py [--dir /tmp/sockopt-bench]
        [--sizes 10M,100M,1G] [--repeats 5] [--peer-sizes 10M,100M]

The peer, "plain-duckdb": the latency report as one writes it in DuckDB by hand, `quantile_cont`
over `read_parquet` grouped by comm, level, optname (DuckDB keeps every latency of a group in
memory for it: ~8 bytes per event), run beside the reports at the sizes in --peer-sizes.

Recordings are written once under --dir (one file per 10M events, row groups of 256Ki rows as
the recorder writes them) and reused by later runs. Each timing is one library call as the CLI
makes it: open and validate the files, register the views, run the report, fetch every row;
Python start-up (~0.3 s for the CLI) is not included. Each timing runs in a child process of
its own, so that its peak RSS (VmHWM, read by the child itself) is the report's alone. Runs
are interleaved (every report and size once per round) so that drift in the machine affects
all alike; the median is reported. The page cache is warm (the files were just written or read).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
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
DISTINCT = 100_000_000  # the most events written row by row; larger recordings are copies
ROW_GROUP = 1 << 18


def parse_count(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1:], 1)
    return int(float(text.rstrip("KMG")) * scale)


def recording(base: Path, events: int, seed: int = 1) -> Path:
    """The recording of `events` synthetic events under `base`, written if not there yet
    (another `seed`: the same workload, other rows; bench/diff_bench.py diffs the two).
    Beyond DISTINCT events, the recording is copies of the DISTINCT-event one's files (real
    copies, so the page cache holds every byte): writing 1G rows one by one takes hours here."""
    directory = base / (f"events-{events}" if seed == 1 else f"events-{events}-seed-{seed}")
    marker = directory / "complete.json"
    spec = {"events": events, "per_file": PER_FILE, "row_group": ROW_GROUP, "seed": seed}
    if events > DISTINCT:
        spec["copies_of"] = DISTINCT
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.parquet"):
        old.unlink()
    started = time.perf_counter()
    if events > DISTINCT:
        if events % DISTINCT:
            raise SystemExit(f"{events:,} events: give a multiple of {DISTINCT:,} beyond it")
        source = recording(base, DISTINCT, seed)
        for copy in range(events // DISTINCT):
            for path in sorted(source.glob("*.parquet")):
                shutil.copyfile(path, directory / f"copy{copy:03d}-{path.name}")
    else:
        files = max(1, round(events / PER_FILE))
        write_recording(directory, events, files=files, seed=seed, row_group_rows=ROW_GROUP)
    marker.write_text(json.dumps(spec))
    print(f"wrote {events:,} events in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return directory


PLAIN = "plain-duckdb"
PLAIN_SQL = """
SELECT comm, level, optname, count(*) AS calls, avg(latency_ns) AS mean_ns,
    quantile_cont(latency_ns, [0.5, 0.9, 0.99, 0.999]) AS percentiles, max(latency_ns) AS max_ns
FROM read_parquet('{glob}')
GROUP BY comm, level, optname
ORDER BY calls DESC, comm, level, optname
LIMIT 20
"""


def time_plain(directory: Path) -> float:
    """The peer: the latency report in plain DuckDB SQL (quantile_cont), rows fetched."""
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    rows = con.execute(PLAIN_SQL.format(glob=directory / "*.parquet")).fetchall()
    elapsed = time.perf_counter() - started
    assert rows
    con.close()
    return elapsed


def time_report(directory: Path, name: str) -> float:
    if name == PLAIN:
        return time_plain(directory)
    started = time.perf_counter()
    loaded = load([directory])
    result = run_report(loaded.con, name)
    rows = list(result.rows)
    elapsed = time.perf_counter() - started
    assert rows, name
    loaded.con.close()
    return elapsed


def peak_rss() -> int:
    """This process's own peak RSS in bytes: VmHWM belongs to the address space exec made, unlike
    wait4's ru_maxrss, which keeps the larger peak of the parent's memory the child was forked
    with (a bench that had just generated 100M events read 7.9 GB for every report)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no VmHWM in /proc/self/status")


def time_in_child(directory: Path, name: str) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of one `time_report` in a process of its own."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", str(directory), name],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    seconds, peak = child.stdout.read().split()
    if child.wait() != 0:
        raise SystemExit(f"{name} on {directory} failed with status {child.returncode}")
    return float(seconds), int(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/sockopt-bench"))
    parser.add_argument("--sizes", default="10M,100M")
    parser.add_argument("--reports", default="latency,callsites")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--peer-sizes", default="10M,100M", help="sizes at which plain DuckDB runs too ('' none)"
    )
    parser.add_argument("--child", nargs=2, metavar=("DIR", "REPORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        seconds = time_report(Path(args.child[0]), args.child[1])
        print(seconds, peak_rss())
        return

    sizes = [parse_count(s) for s in args.sizes.split(",")]
    reports = args.reports.split(",")
    peer_sizes = {parse_count(s) for s in args.peer_sizes.split(",") if s.strip()}
    plan = {n: reports + [PLAIN] * (n in peer_sizes) for n in sizes}
    dirs = {n: recording(args.dir, n) for n in sizes}
    for directory in dirs.values():  # warm the page cache and DuckDB's first-use costs
        time_report(directory, reports[0])
    times: dict[tuple[int, str], list[float]] = {(n, r): [] for n in sizes for r in plan[n]}
    peaks: dict[tuple[int, str], int] = dict.fromkeys(times, 0)
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for n in sizes:
            for name in plan[n]:
                seconds, peak = time_in_child(dirs[n], name)
                times[(n, name)].append(seconds)
                peaks[(n, name)] = max(peaks[(n, name)], peak)

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
        f"median of {args.repeats} interleaved runs, warm page cache, "
        f"load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after\n"
    )
    print(
        "| events | report | median s | min s | max s | M events/s | peak RSS | on disk "
        "| bytes/event |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        size = sum(p.stat().st_size for p in dirs[n].glob("*.parquet"))
        for name in plan[n]:
            t = times[(n, name)]
            median = statistics.median(t)
            print(
                f"| {n:,} | {name} | {median:.2f} | {min(t):.2f} | {max(t):.2f} | "
                f"{n / median / 1e6:.0f} | {peaks[(n, name)] / 2**20:,.0f} MiB | "
                f"{size / 2**20:,.0f} MiB | {size / n:.2f} |"
            )
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        for name in reports:
            ratio = statistics.median(times[(large, name)]) / statistics.median(
                times[(small, name)]
            )
            print(f"\n{name}: {large // small}x the events took {ratio:.1f}x the time", end="")
        print()
    for n in sizes:
        if PLAIN in plan[n] and "latency" in plan[n]:
            ratio = statistics.median(times[(n, PLAIN)]) / statistics.median(times[(n, "latency")])
            peak = peaks[(n, PLAIN)] / peaks[(n, "latency")]
            print(f"{n:,} events: plain DuckDB took {ratio:.2f}x latency's time, {peak:.2f}x RSS")


if __name__ == "__main__":
    main()
