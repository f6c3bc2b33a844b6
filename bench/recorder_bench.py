"""Recorder benchmark: `sockopt-trace record` side by side with bpftrace and perf, same workload.

Compiles bench/loop.c, then runs every configuration round-robin (one run of each per
repetition, so drift on a shared machine hits them all alike) and prints a markdown report:
median ns per call, overhead vs bare and vs bpftrace, calls recorded vs made, lost events,
bytes per call on disk, the tracer's own CPU time and peak RSS, and the bystander tax (a getppid
loop while a tracer is attached system-wide).

How the tracer's own CPU is measured: each traced run is started by this harness and reaped with
wait4(), whose rusage covers the tracer and the workload it started and reaped; the workload
reports its own CPU time (getrusage in loop.c), which is subtracted. Peak RSS is the maximum over
that process tree (the workload's is ~2 MB; the recorder's throwaway compiler child counts); the
main process's own peak (VmHWM) is sampled once a second.

usage: python bench/recorder_bench.py [--quick] [--reps N] [--calls N] [--threads 1,2]
Needs root, a C compiler, bpftrace, perf, and the recorder (bash scripts/setup.sh --system --dev).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
BPFTRACE_SCRIPT = (
    "tracepoint:syscalls:sys_enter_getsockopt { @s[tid] = nsecs; } "
    "tracepoint:syscalls:sys_exit_getsockopt /@s[tid]/ "
    "{ @h = hist(nsecs - @s[tid]); delete(@s[tid]); }"
)
# The floor of any BPF tool on these tracepoints: two programs that do nothing.
EMPTY_SCRIPT = (
    "tracepoint:syscalls:sys_enter_getsockopt {} tracepoint:syscalls:sys_exit_getsockopt {}"
)
PERF_EVENTS = ["-e", "syscalls:sys_enter_getsockopt", "-e", "syscalls:sys_exit_getsockopt"]
# Configurations on the getsockopt workload, in round-robin order; "bare" is the baseline.
TRACED = [
    "bare",
    "record",
    "record --context",  # issue 16's cgroup, socket and value columns
    "record --no-callsites",
    "bpftrace",
    "perf record",
    "empty BPF probes",
]
# Bystander tax: a getppid loop while a tracer is attached system-wide (no filter).
BYSTANDER = ["bare", "record (system-wide)", "bpftrace (system-wide)"]


def build(workdir: Path) -> Path:
    """Compile the workload; return the binary's path."""
    binary = workdir / "loop"
    cc = os.environ.get("CC", "cc")
    subprocess.run(
        [cc, "-O2", "-Wall", "-pthread", "-o", str(binary), str(ROOT / "bench" / "loop.c")],
        check=True,
    )
    return binary


def snapshot(rev: str, workdir: Path) -> Path:
    """The recorder as committed at rev, laid out as an importable package tree; return its path.

    Others commit to (and edit) the working tree while this runs: benchmark a fixed commit."""
    src, site = workdir / "src", workdir / "site"
    src.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    config = tomllib.loads((src / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package, directory in config["package-dir"].items():
        shutil.copytree(src / directory, site / package.replace(".", "/"), dirs_exist_ok=True)
    return site


def _wait(proc: subprocess.Popen) -> tuple[int, float, int]:
    """Reap proc; return its exit code, CPU seconds (its own plus reaped children's), max RSS KB."""
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def _loop_result(text: str) -> dict:
    for line in text.splitlines():
        if line.startswith("{") and "ns_per_call" in line:
            return json.loads(line)
    raise RuntimeError(f"no result line from the workload in:\n{text[-2000:]}")


def _wait_attached(proc: subprocess.Popen, err: Path, timeout: float = 120) -> None:
    """Until the tracer (or a child of it) has programs on both getsockopt tracepoints."""
    deadline = time.monotonic() + timeout
    while {"sys_enter_getsockopt", "sys_exit_getsockopt"} - {
        point for pid, point in syscall_tracers() if _ours(pid)
    }:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"tracer did not attach: {err.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


def _recording_stats(directory: Path) -> dict:
    """Rows, events, lost and bytes of a recording, from each file's Parquet footer."""
    import pyarrow.parquet as pq

    from sockopt_trace import schema

    rows = events = lost = size = 0
    for path in glob.glob(str(directory / "*.parquet")):
        meta = schema.read_file_metadata(path)
        rows += pq.read_metadata(path).num_rows
        events += meta.events
        lost += sum(meta.lost.values())
        size += os.path.getsize(path)
    partial = glob.glob(str(directory / "*.partial"))
    note = "" if rows == events and not partial else f"rows {rows} != events {events} {partial}"
    return {"recorded": rows, "lost": lost, "bytes": size, "note": note}


def _bpftrace_stats(stdout: str) -> dict:
    """Calls recorded = the histogram's total count."""
    counts = re.findall(r"^\[[^\]\n]*[)\]] +(\d+) +\|", stdout, re.MULTILINE)
    return {"recorded": sum(int(c) for c in counts), "lost": None, "bytes": None, "note": ""}


def _perf_stats(data: Path) -> dict:
    """Samples and LOST_SAMPLES per tracepoint from `perf report --stats`."""
    out = subprocess.run(
        ["perf", "report", "-i", str(data), "--stats"], capture_output=True, text=True
    ).stdout
    per_event: dict[str, dict[str, int]] = {}
    current = None
    for line in out.splitlines():
        if m := re.match(r"(syscalls:\S+) stats:", line.strip()):
            current = per_event.setdefault(m.group(1), {})
        elif current is not None and (m := re.match(r"\s*(\w+) events:\s+(\d+)", line)):
            current[m.group(1)] = int(m.group(2))
    enter = per_event.get("syscalls:sys_enter_getsockopt", {})
    exit_ = per_event.get("syscalls:sys_exit_getsockopt", {})
    # A call is recorded when both its samples are: at most min(enter, exit) calls.
    recorded = min(enter.get("SAMPLE", 0), exit_.get("SAMPLE", 0))
    lost = max(enter.get("LOST_SAMPLES", 0), exit_.get("LOST_SAMPLES", 0))
    return {"recorded": recorded, "lost": lost, "bytes": data.stat().st_size, "note": ""}


class Watch(threading.Thread):
    """Polls once a second during a run: other processes' BPF programs on syscall tracepoints
    (they slow every syscall and, returning 0, hide samples from perf), and the tracer's peak
    RSS."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.tracer: int | None = None
        self.foreign: set[int] = set()
        self.hwm_kb: int | None = None  # the tracer's own peak RSS (VmHWM), not its children's
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            self.foreign |= foreign_tracers()
            with contextlib.suppress(OSError, AttributeError, ValueError):
                status = Path(f"/proc/{self.tracer}/status").read_text()
                self.hwm_kb = int(re.search(r"VmHWM:\s*(\d+)", status).group(1))
            if self.done.wait(1.0):
                return


def syscall_tracers() -> list[tuple[int, str]]:
    """(pid, tracepoint) for every BPF program attached to a syscall tracepoint."""
    try:
        out = subprocess.run(["bpftool", "-j", "perf", "list"], capture_output=True, text=True)
        entries = json.loads(out.stdout or "[]")
    except (OSError, ValueError):
        return []
    return [
        (e["pid"], e["tracepoint"]) for e in entries if e.get("tracepoint", "").startswith("sys_")
    ]


def _ours(pid: int) -> bool:
    """Is pid this harness or one of its descendants (a tracer, the recorder's loader child)?"""
    while pid > 1:
        if pid == os.getpid():
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return False


def foreign_tracers() -> set[int]:
    """Other processes with BPF programs on syscall tracepoints."""
    return {pid for pid, _ in syscall_tracers() if not _ours(pid)}


def _cpu_times() -> tuple[float, float]:
    """(CPU seconds all processes have used, CPU seconds this harness and its children have)."""
    busy = sum(
        int(x) for i, x in enumerate(Path("/proc/stat").read_text().split()[1:9]) if i not in (3, 4)
    )  # all but idle and iowait
    own = sum(
        ru.ru_utime + ru.ru_stime
        for ru in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )
    return busy / os.sysconf("SC_CLK_TCK"), own


def run_config(name: str, loop: list[str], rec: list[str], tmp: Path) -> dict:
    """One run of one configuration; loop is the workload's argv."""
    out, err, data = tmp / "stdout", tmp / "stderr", tmp / "data"
    record = [*rec, "record", "-q", "-o", str(data)]
    background = {
        "record (system-wide)": record,
        "bpftrace (system-wide)": ["bpftrace", "-e", BPFTRACE_SCRIPT],
    }
    foreground = {
        "bare": loop,
        "record": [*record, "--", *loop],
        "record --no-callsites": [*record, "--no-callsites", "--", *loop],
        "record --context": [*record, "--context", "--", *loop],
        "bpftrace": ["bpftrace", "-e", BPFTRACE_SCRIPT, "-c", shlex.join(loop)],
        "perf record": ["perf", "record", *PERF_EVENTS, "-o", str(data), "--", *loop],
        "empty BPF probes": ["bpftrace", "-e", EMPTY_SCRIPT, "-c", shlex.join(loop)],
    }
    watch = Watch()
    busy0, own0, t0 = *_cpu_times(), time.monotonic()
    with open(out, "w") as o, open(err, "w") as e:
        argv = background[name] if name in background else foreground[name]
        tracer = subprocess.Popen(argv, stdout=o, stderr=e)
        watch.tracer = tracer.pid
        watch.start()
        if name in background:  # the workload runs beside the tracer, not under it
            try:
                _wait_attached(tracer, err)
                time.sleep(0.5)
                run = subprocess.run(loop, capture_output=True, text=True, check=True)
                result = _loop_result(run.stdout)
            finally:
                tracer.send_signal(signal.SIGINT)
                code, cpu, rss = _wait(tracer)
            workload_cpu = 0.0
        else:
            code, cpu, rss = _wait(tracer)
            result = _loop_result(out.read_text(errors="replace")) if code == 0 else {}
            workload_cpu = result.get("cpu_s", 0.0)
    watch.done.set()
    watch.join()
    busy1, own1, t1 = *_cpu_times(), time.monotonic()
    if code != 0:
        raise RuntimeError(f"{name} exited {code}: {err.read_text(errors='replace')[-2000:]}")
    run = {
        "ns": result["ns_per_call"],
        "calls": result["calls"],
        "foreign": watch.foreign,
        "others_cpu": max(0.0, (busy1 - busy0) - (own1 - own0)) / ((t1 - t0) * os.cpu_count()),
    }
    if name != "bare":
        run |= {"cpu_s": cpu - workload_cpu, "rss_kb": rss, "hwm_kb": watch.hwm_kb}
        if name.startswith("record"):
            run |= _recording_stats(data)
        elif name.startswith("bpftrace"):
            run |= _bpftrace_stats(out.read_text(errors="replace"))
        elif name.startswith("perf"):
            run |= _perf_stats(data)
        else:
            run |= {"recorded": None, "lost": None, "bytes": None}
    if data.is_dir():
        shutil.rmtree(data)
    elif data.exists():
        data.unlink()
    return run


def _others_cpu(seconds: float = 1.0) -> float:
    """Share of the machine's CPUs that other processes used over the next few seconds."""
    busy0, own0 = _cpu_times()
    time.sleep(seconds)
    busy1, own1 = _cpu_times()
    return max(0.0, (busy1 - busy0) - (own1 - own0)) / (seconds * os.cpu_count())


def measure(args: argparse.Namespace, loop: Path, tmp: Path) -> dict:
    """Round-robin over every (scenario, configuration); return the runs of each.

    Peers share this machine. A run is repeated (up to --retries times) when another process had
    BPF programs on syscall tracepoints meanwhile (they slow every syscall, and hide perf's
    samples), or when other processes used more than --max-others of the CPUs; before each run we
    wait (up to --max-wait s) until neither is the case. The last attempt is kept, and counted."""
    calls, bystander = str(args.calls), str(args.bystander_calls)
    plan = [
        (f"getsockopt, {t} thread{'s' if t > 1 else ''}", name, [str(loop), calls, str(t)])
        for t in args.threads
        for name in TRACED
        if not args.only or name in args.only
    ]
    plan += [
        ("bystander: getppid, 1 thread", name, [str(loop), bystander, "1", "getppid"])
        for name in BYSTANDER
        if not args.only or name in args.only
    ]
    runs: dict = {(s, n): [] for s, n, _ in plan}
    noisy = runs["noisy"] = {"repeated": 0, "kept": 0, "retries": args.retries}
    for rep in range(args.reps):
        for scenario, name, argv in plan:
            for attempt in range(args.retries + 1):
                deadline = time.monotonic() + args.max_wait
                while time.monotonic() < deadline and (
                    foreign_tracers() or _others_cpu() > args.max_others
                ):
                    time.sleep(2)
                t0 = time.monotonic()
                run = run_config(name, argv, args.recorder, tmp)
                why = (
                    "other tracers attached"
                    if run["foreign"]
                    else "other processes busy"
                    if run["others_cpu"] > args.max_others
                    else None
                )
                print(
                    f"rep {rep + 1}/{args.reps} {scenario:30} {name:24} {run['ns']:8.1f} ns/call"
                    f" ({time.monotonic() - t0:.1f} s, others' CPU {run['others_cpu']:.0%})"
                    + (f" noisy: {why}" if why else ""),
                    file=sys.stderr,
                    flush=True,
                )
                if not why:
                    break
                noisy["kept" if attempt == args.retries else "repeated"] += 1
            runs[scenario, name].append(run)
    return runs


def _med(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(x: float | None, spec: str = ",.0f") -> str:
    return "n/a" if x is None else f"{x:{spec}}"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def render(runs: dict, header: str) -> str:
    """Two markdown tables per scenario (speed; fidelity and cost) and the bystander table."""
    lines = [header]
    noisy = runs.pop("noisy")
    lines.append(
        f"- runs disturbed by other tracers or busy processes: {noisy['repeated']} repeated, "
        f"{noisy['kept']} kept after {noisy['retries']} retries (flagged in the run log)"
    )
    for scenario in dict.fromkeys(k[0] for k in runs):
        names = [k[1] for k in runs if k[0] == scenario]
        ns = {n: _med([r["ns"] for r in runs[scenario, n]]) for n in names}
        bare = ns["bare"]
        bpf = next((ns[n] - bare for n in names if n.startswith("bpftrace")), None)
        lines += ["", f"### {scenario}", ""]
        speed = ["configuration", "ns/call, median (min-max)", "overhead vs bare", "ratio to bare"]
        cost = [
            "configuration",
            "calls recorded / made",
            "lost (counted)",
            "unaccounted",
            "bytes/call on disk",
            "tracer CPU s",
            "tracer CPU ns/call",
            "peak RSS MB, process tree",
            "peak RSS MB, main process",
        ]
        bystander = scenario.startswith("bystander")
        speed += (
            ["tracer CPU s", "peak RSS MB, process tree"]
            if bystander
            else ["vs bpftrace's overhead"]
        )
        table = [_row(speed), _row(["---"] * len(speed))]
        table2 = [_row(cost), _row(["---"] * len(cost))]
        for name in names:
            rs = runs[scenario, name]
            lo, hi = min(r["ns"] for r in rs), max(r["ns"] for r in rs)
            over = ns[name] - bare
            cells = [
                name,
                f"{ns[name]:,.0f} ({lo:,.0f}-{hi:,.0f})",
                "-" if name == "bare" else f"{over:+,.0f} ns",
                f"{ns[name] / bare:.2f}x",
            ]
            cpu = _med([r.get("cpu_s") for r in rs])
            rss = _med([r.get("rss_kb") for r in rs])
            hwm = _med([r.get("hwm_kb") for r in rs])
            if bystander:
                table.append(_row([*cells, _fmt(cpu, ".2f"), _fmt(rss and rss / 1024)]))
                continue
            ratio = "-" if name == "bare" or not bpf else f"{over / bpf:.2f}x"
            table.append(_row([*cells, ratio]))
            if name == "bare":
                continue
            made = sum(r["calls"] for r in rs)
            counted = None not in [r["recorded"] for r in rs]
            recorded = sum(r["recorded"] for r in rs) if counted else 0
            lost = None if rs[0]["lost"] is None else sum(r["lost"] for r in rs)
            sizes = [r["bytes"] / r["recorded"] for r in rs if r["bytes"] and r["recorded"]]
            per_call = _med(sizes)
            table2.append(
                _row(
                    [
                        name,
                        f"{recorded:,} / {made:,}"
                        + (" (all processes)" if name == "bpftrace" else "")
                        if counted
                        else "n/a",
                        _fmt(lost, ","),
                        "n/a" if lost is None else f"{made - recorded - lost:,}",
                        _fmt(per_call, ",.2f"),
                        _fmt(cpu, ".2f"),
                        _fmt(_med([r["cpu_s"] / r["calls"] * 1e9 for r in rs])),
                        _fmt(rss and rss / 1024),
                        _fmt(hwm and hwm / 1024),
                    ]
                )
            )
        lines += table if bystander else [*table, "", *table2]
        others = [r["others_cpu"] for n in names for r in runs[scenario, n]]
        lines.append(
            f"\nOther processes' CPU use during these runs: median {_med(others):.0%}, "
            f"max {max(others):.0%} of the machine."
        )
        notes = sorted({r["note"] for n in names for r in runs[scenario, n] if r.get("note")})
        lines += [f"\nnote: {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "not found"


def machine(args: argparse.Namespace) -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", cpuinfo)
    mem_kb = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
    git_log = ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s", args.rev]
    commit = _first_line(git_log)
    recorder = _first_line([*git_log, "--", "recorder", "sockopt_trace"])
    tools = ", ".join(
        _first_line([tool, "--version"])
        for tool in ("bpftrace", "perf", os.environ.get("CC", "cc"))
    )
    return "\n".join(
        [
            f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- command: `{shlex.join(['python', 'bench/recorder_bench.py', *sys.argv[1:]])}`",
            f"- machine: {os.cpu_count()} CPUs ({model.group(1) if model else '?'}), "
            f"{mem_kb / 2**20:.1f} GiB RAM, kernel {platform.release()}, "
            f"load average at start {os.getloadavg()[0]:.2f}",
            f"- tools: {tools}",
            f"- recorder: `git archive {args.rev}` = {commit}; last change under recorder/ or "
            f"sockopt_trace/: {recorder}",
            f"- workload: bench/loop.c, {args.calls:,} getsockopt(SOL_SOCKET, SO_RCVBUF) calls per "
            f"thread; bystander: {args.bystander_calls:,} getppid calls; {args.reps} repetitions, "
            "configurations interleaved round-robin",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few calls, 2 reps")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10_000_000, help="getsockopt calls/thread")
    parser.add_argument("--bystander-calls", type=int, default=20_000_000)
    parser.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    parser.add_argument("--rev", default="HEAD", help="git revision of the recorder to measure")
    parser.add_argument(
        "--max-wait", type=float, default=600, help="s to wait for other tracers to detach"
    )
    parser.add_argument(
        "--max-others", type=float, default=0.25, help="others' CPU share that voids a run"
    )
    parser.add_argument("--retries", type=int, default=3, help="repeats of a disturbed run")
    parser.add_argument(
        "--only", default="", help="run only these configurations (comma-separated names)"
    )
    args = parser.parse_args()
    args.only = [n.strip() for n in args.only.split(",") if n.strip()]
    if args.quick:
        args.reps, args.calls, args.bystander_calls = 2, 200_000, 1_000_000
        args.max_wait, args.retries = min(args.max_wait, 10), min(args.retries, 1)
    args.threads = [int(t) for t in args.threads.split(",")]
    if os.geteuid() != 0:
        sys.exit("recorder_bench: needs root (eBPF)")
    started = time.monotonic()
    header = machine(args)
    with tempfile.TemporaryDirectory(prefix="recorder-bench-") as tmp:
        site = snapshot(args.rev, Path(tmp))
        os.environ["PYTHONPATH"] = str(site)  # the recorder, and what reads its files
        os.environ["PYTHONSAFEPATH"] = "1"  # not the working tree in the current directory
        sys.path.insert(0, str(site))
        args.recorder = [str(VENV_PYTHON), "-m", "sockopt_trace"]
        loop = build(Path(tmp))
        runs = measure(args, loop, Path(tmp))
    header += (
        f"\n- wall time of the whole run: {(time.monotonic() - started) / 60:.1f} min, "
        f"load average at end {os.getloadavg()[0]:.2f}"
    )
    print(render(runs, header))


if __name__ == "__main__":
    # The recorder and its files need the project's venv (pyarrow, ...): re-run under it.
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != VENV_PYTHON.parent.parent.resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])
    with contextlib.suppress(KeyboardInterrupt):
        main()
