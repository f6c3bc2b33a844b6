"""Whole-process timings of the command line against its floors (issue 15's start-up targets).

    python bench/startup_bench.py [--repeats 15] [--big DIR]

Each row is one process, started and reaped as a user's shell would, wall-clock time from fork
to exit. Rows are interleaved (every command once per round) so that drift in the machine hits
all alike; medians and minima are reported, with ratios to the floors:

- `python -c pass` and `python -c "import duckdb, pyarrow"`: the interpreter and the libraries
  any DuckDB tool must load;
- `sockopt-trace --help` (target: under 0.25 s);
- `sockopt-trace report sample_traces/curl latency` (200 events; target: under 0.4 s), beside a
  hand-written DuckDB script that runs the same SQL over the same file;
- with `--big DIR` (e.g. a recording written by bench/analyzer_bench.py), the latency report
  over DIR beside the same hand-written query: the report may cost no more than the query plus
  the start-up above. Twice: as a user runs it again (the footer index, analyzer/footerindex.py,
  knows the files), and as the first report over a fresh copy (an empty index every time).

Children get a cache directory of the bench's own (XDG_CACHE_HOME), never the user's.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
CLI = [PY, "-m", "sockopt_trace"]

# The latency report's SQL for its default grouping, written by hand as a DuckDB user would.
HAND_SQL = (
    "SELECT comm, level, optname, count(*) AS calls, avg(latency_ns) AS mean_ns, "
    "quantile_cont(latency_ns, [0.5, 0.9, 0.99, 0.999]) AS q, max(latency_ns) AS max_ns "
    "FROM read_parquet({files!r}) GROUP BY ALL ORDER BY calls DESC LIMIT 20"
)


def hand_written(directory: Path) -> list[str]:
    files = sorted(str(p) for p in directory.rglob("*.parquet"))
    code = f"import duckdb; print(duckdb.sql({HAND_SQL.format(files=files)!r}).fetchall())"
    return [PY, "-c", code]


# As installed from a wheel: modules compiled once to bytecode. With PYTHONDONTWRITEBYTECODE set
# (as in some sandboxes) every start compiles every module from source, 0.5 s more here.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CACHE = tempfile.mkdtemp(prefix="startup-bench-cache-")
FIRST_RUN = "(first run)"  # a command whose name ends so gets an empty cache every time


def run_once(name: str, argv: list[str]) -> float:
    with tempfile.TemporaryDirectory(prefix="startup-bench-empty-") as empty:
        cache = empty if name.endswith(FIRST_RUN) else CACHE
        started = time.perf_counter()
        done = subprocess.run(
            argv,
            cwd=ROOT,
            env={**ENV, "XDG_CACHE_HOME": cache},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)[:120]} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--big", type=Path, help="a large recording for the last two rows")
    args = parser.parse_args()

    sample = ROOT / "sample_traces" / "curl"
    commands: dict[str, list[str]] = {
        "python -c pass": [PY, "-c", "pass"],
        "python -c 'import duckdb, pyarrow'": [PY, "-c", "import duckdb, pyarrow"],
        "sockopt-trace --help": [*CLI, "--help"],
        "sockopt-trace report sample_traces/curl latency": [
            *CLI,
            "report",
            str(sample),
            "latency",
        ],
        "hand-written DuckDB, same SQL, sample_traces/curl": hand_written(sample),
    }
    big = f"sockopt-trace report {args.big} latency -f csv"
    if args.big:
        report = [*CLI, "report", str(args.big), "latency", "-f", "csv"]
        commands[big] = report
        commands[f"{big} {FIRST_RUN}"] = report
        commands[f"hand-written DuckDB, same SQL, {args.big}"] = hand_written(args.big)

    times: dict[str, list[float]] = {name: [] for name in commands}
    for name, argv in commands.items():  # warm the page cache and the bytecode caches
        run_once(name, argv)
    for _ in range(args.repeats):
        for name, argv in commands.items():
            times[name].append(run_once(name, argv))

    floor = statistics.median(times["python -c pass"])
    print(
        f"# {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f} at the end, "
        f"{args.repeats} rounds"
    )
    print("| command | median s | min s | median / python -c pass |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"| `{name}` | {med:.3f} | {min(values):.3f} | {med / floor:.1f}x |")
    if args.big:
        small = statistics.median(times["sockopt-trace report sample_traces/curl latency"])
        bound = statistics.median(times[f"hand-written DuckDB, same SQL, {args.big}"]) + small
        for name in (big, f"{big} {FIRST_RUN}"):
            ratio = statistics.median(times[name]) / bound
            print(f"{name}: {ratio:.2f}x the bound (hand-written query + small report)")
    shutil.rmtree(CACHE, ignore_errors=True)


if __name__ == "__main__":
    main()
