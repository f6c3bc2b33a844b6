"""One multi-host recording, three ways to read it: DuckDB on local files, DuckDB over a local
S3-compatible server (moto in server mode on 127.0.0.1), Spark local[2]; latency, callsites
and diff, time and peak memory of each (issue 17).

    flock -x /work/locks/cpu.lock python bench/fleet_bench.py [--events 100M] [--repeats 3]
        [--dir /tmp/sockopt-bench] [--engines duckdb,duckdb-s3,spark]

The recording is written once under --dir as fleet-N/host=host-X/date=2023-11-14/ (four
hosts, a quarter of the events each, tests/synth.py rows) and uploaded to the server on each
run (moto keeps objects in memory). Each timing is one whole command as a user runs it
(`sockopt-trace report ...`, `sockopt-trace diff ...`) in a process of its own, Python and,
for Spark, JVM start-up included; peak RSS is the command's own VmHWM, polled every 50 ms
from /proc (the kernel keeps the high-water mark); the S3 server's own memory is not counted.
Runs are interleaved, medians reported.
diff compares host-a with host-b. For Spark, "JVM peak RSS" is the largest peak RSS (VmHWM) of
one process the command started, polled from /proc: the JVM, which wait4 never sees.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.synth import write_recording  # noqa: E402

HOSTS = ("host-a", "host-b", "host-c", "host-d")
PER_FILE = 5_000_000
BUCKET = "fleet-bench"


def parse_count(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1:], 1)
    return int(float(text.rstrip("KMG")) * scale)


def fleet(base: Path, events: int) -> Path:
    root = base / f"fleet-{events}"
    marker = root / "complete.json"
    spec = {"events": events, "hosts": list(HOSTS), "per_file": PER_FILE}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return root
    for i, host in enumerate(HOSTS):
        n = events // len(HOSTS)
        directory = root / f"host={host}" / "date=2023-11-14"
        for old in directory.glob("*.parquet"):
            old.unlink()
        write_recording(
            directory,
            n,
            files=max(1, n // PER_FILE),
            seed=100 + i,
            host=host,
            row_group_rows=1 << 18,
        )
    marker.write_text(json.dumps(spec))
    return root


def start_s3(root: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
    }
    for _ in range(600):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    for path in sorted(root.rglob("*.parquet")):
        client.upload_file(str(path), BUCKET, f"fleet/{path.relative_to(root)}")
    return server, env


def commands(root: Path, engine: str) -> dict[str, list[str]]:
    where = f"s3://{BUCKET}/fleet" if engine == "duckdb-s3" else str(root)
    extra = ["--engine", "spark", "--spark-master", "local[2]"] if engine == "spark" else []
    cmds = {
        "latency": ["report", f"{where}/", "latency", "-f", "csv", *extra],
        "callsites": ["report", f"{where}/", "callsites", "-f", "csv", *extra],
    }
    cmds["diff"] = ["diff", f"{where}/host=host-a/", f"{where}/host=host-b/", "-f", "csv", *extra]
    return cmds


class Failed(Exception):
    """A command that exited with an error: its status and the last line it wrote."""


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, theirs, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def high_water(pid: int) -> int:
    """The process's peak RSS so far (VmHWM), in bytes; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class ChildPeaks(threading.Thread):
    """Polls the command's descendants every 50 ms for their peak RSS (VmHWM, kept by the
    kernel, so polling cannot miss a peak, only a process that lives under 50 ms): PySpark's
    JVM is started by the command but never reaped by it, so wait4 does not see it."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peaks, self.done = pid, dict[int, int](), threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            for pid in (self.pid, *descendants(self.pid)):
                self.peaks[pid] = max(self.peaks.get(pid, 0), high_water(pid))

    def stop(self) -> tuple[int, int]:
        """(the command's own peak RSS, the largest of one descendant: the JVM, for Spark), in
        bytes. The command's own is its VmHWM, not wait4's ru_maxrss: that one keeps the peak
        of the bench's memory the command was forked from (4 GB after an upload to the S3
        server, for every duckdb-s3 command of the 40M run)."""
        self.done.set()
        self.join()
        own = self.peaks.pop(self.pid, 0)
        return own, max(self.peaks.values(), default=0)


def run(argv: list[str], env: dict[str, str]) -> tuple[float, int, int, str]:
    """(seconds, the command's peak RSS, its descendants' largest peak RSS, stdout)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "sockopt_trace", *argv],
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, **env},
            text=True,
        )
        assert child.stdout is not None
        peaks = ChildPeaks(child.pid)
        peaks.start()
        out = child.stdout.read()
        peak, child_peak = peaks.stop()  # before the wait: the JVM is gone soon after
        _, status, _ = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):  # diff exits 1 when it finds a significant change
            err.seek(0)
            last = (err.read().strip().splitlines() or [""])[-1]
            raise Failed(f"status {code}: {last}")
    return elapsed, peak, child_peak, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/sockopt-bench"))
    parser.add_argument("--events", default="100M")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engines", default="duckdb,duckdb-s3,spark")
    args = parser.parse_args()
    events = parse_count(args.events)
    root = fleet(args.dir, events)
    engines = args.engines.split(",")
    server, s3_env = start_s3(root) if "duckdb-s3" in engines else (None, {})
    try:
        plan = {(e, name): argv for e in engines for name, argv in commands(root, e).items()}
        answers: dict[str, set[str]] = {}
        times: dict[tuple[str, str], list[float]] = {k: [] for k in plan}
        peaks = dict.fromkeys(plan, 0)
        jvm_peaks = dict.fromkeys(plan, 0)
        failed: dict[tuple[str, str], str] = {}
        load_before = os.getloadavg()[0]
        for _ in range(args.repeats):
            for key, argv in plan.items():
                if key in failed:
                    continue
                try:
                    seconds, peak, child_peak, out = run(
                        argv, s3_env if key[0] == "duckdb-s3" else {}
                    )
                except Failed as err:  # said in the table, not timed again
                    failed[key] = str(err)
                    continue
                times[key].append(seconds)
                peaks[key] = max(peaks[key], peak)
                jvm_peaks[key] = max(jvm_peaks[key], child_peak)
                answers.setdefault(key[1], set()).add(out)
    finally:
        if server is not None:
            server.terminate()
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{events:,} events on {len(HOSTS)} hosts, median of {args.repeats} interleaved runs, "
        f"load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after\n"
    )
    print("| engine | command | median s | min s | max s | peak RSS | JVM peak RSS |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (engine, name), t in times.items():
        if (engine, name) in failed:
            print(f"| {engine} | {name} | failed ({failed[(engine, name)]}) | | | | |")
            continue
        jvm = f"{jvm_peaks[(engine, name)] / 2**20:,.0f} MiB" if engine == "spark" else ""
        print(
            f"| {engine} | {name} | {statistics.median(t):.1f} | {min(t):.1f} | {max(t):.1f} | "
            f"{peaks[(engine, name)] / 2**20:,.0f} MiB | {jvm} |"
        )
    same = {name: len(outs) == 1 for name, outs in answers.items()}
    print(f"\nthe same output from every engine and run: {same}")


if __name__ == "__main__":
    main()
