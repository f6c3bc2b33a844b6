"""Time to first call: from starting `sockopt-trace record -- loop 1 1` to the moment of the
first call it records (that call's timestamp in the file), with and without the compiled-program
cache (recorder/programcache.py), interleaved, as whole processes.

- cold, auto: an empty cache; auto mode tries fentry first (refused on this project's
  machines), then compiles again for the tracepoints: what the very first recording costs.
- cold, tracepoint: an empty cache and --probe tracepoint: one compile.
- cached, auto: the cache holds the program, and remembers that fentry failed on this boot.
- import only: `python -c "import sockopt_trace.recorder.session"`, the floor of any start.

usage: flock -x /work/locks/cpu.lock python bench/first_call_bench.py [--reps 5]
Needs root, a C compiler and the recorder (bash scripts/setup.sh --system --dev).
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recorder_bench import VENV_PYTHON, build

CONFIGS = ("cold, auto", "cold, tracepoint", "cached, auto", "import only")


def first_call(loop: Path, out: Path, cache: Path, probe: str) -> float:
    """Seconds from spawning the recorder to the first recorded call."""
    env = {**os.environ, "SOCKOPT_TRACE_CACHE": str(cache)}
    args = ["record", "-q", "-o", str(out), "--probe", probe, "--", str(loop), "1", "1"]
    started = time.time_ns()
    subprocess.run(
        [str(VENV_PYTHON), "-m", "sockopt_trace", *args],
        env=env,
        check=True,
        capture_output=True,
    )
    code = (
        "import glob, sys, pyarrow.parquet as pq; "
        "print(min(pq.read_table(f)['ts_ns'][0].as_py() for f in glob.glob(sys.argv[1])))"
    )
    read = subprocess.run(
        [str(VENV_PYTHON), "-c", code, str(out / "*.parquet")],
        capture_output=True,
        text=True,
        check=True,
    )
    return (int(read.stdout) - started) / 1e9


def import_only() -> float:
    started = time.monotonic()
    subprocess.run([str(VENV_PYTHON), "-c", "import sockopt_trace.recorder.session"], check=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {c: [] for c in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="first-call-") as tmp:
        work = Path(tmp)
        loop = build(work)
        warm = work / "warm-cache"
        first_call(loop, work / "warm-up", warm, "auto")
        for rep in range(args.reps):
            for config in CONFIGS:
                out = work / f"rec-{rep}-{config.replace(', ', '-')}"
                if config == "import only":
                    took = import_only()
                elif config.startswith("cold"):
                    cold = work / f"cache-{rep}-{config.replace(', ', '-')}"
                    took = first_call(loop, out, cold, config.split(", ")[1])
                else:
                    took = first_call(loop, out, warm, "auto")
                times[config].append(took)
                print(f"# {config} rep {rep}: {took:.2f} s", file=sys.stderr, flush=True)
        entries = len(glob.glob(str(warm / "programs" / "*.json")))
    print(
        f"Command: `{' '.join(sys.argv)}` on {platform.node()}, kernel {platform.release()}, "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}; {args.reps} runs each, "
        f"interleaved; the warm cache held {entries} program(s).\n"
    )
    print("| start | median s | min s | max s |")
    print("|---|---:|---:|---:|")
    for config, values in times.items():
        print(
            f"| {config} | {statistics.median(values):.2f} | {min(values):.2f} "
            f"| {max(values):.2f} |"
        )


if __name__ == "__main__":
    main()
