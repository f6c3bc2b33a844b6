"""Always-on benchmark: what --max-rate, --upload, --flight and retention cost, and how close
sampled answers are to the truth.

Part 1, cost (interleaved round-robin, medians): bench/loop.c calling getsockopt in a tight loop
under `record` with each always-on option, beside bare and bpftrace's in-kernel histogram (the
peer); ns per call, rows kept per call, bytes on disk per call, the recorder's own CPU and peak
RSS (measured as recorder_bench.py does: wait4 over the tree minus the workload's own CPU).

Part 2, error of the estimates: one workload of mixed calls (tests/workloads/calls.c: six kinds,
three of them failing) recorded at once by an unsampled recorder (the truth: the same calls)
and by `record --max-rate R`; the canned latency report of each, per (comm, level, optname,
errno): relative error of the sampled estimate of calls and of p50/p90/p99, and what `diff`
of the two says (a sampled recording of the same calls should show no significant change).

usage: python bench/always_on_bench.py [--quick] [--reps N] [--calls N] [--rates 1000,10000]
Needs root, a C compiler, bpftrace and the recorder (bash scripts/setup.sh --system --dev).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import recorder_bench as rb

ROOT = rb.ROOT


def configs(rates: list[int]) -> dict[str, list[str]]:
    """Name -> the record options of each configuration ("bare" and "bpftrace" apart)."""
    out: dict[str, list[str]] = {"bare": [], "record": []}
    for rate in rates:
        out[f"record --max-rate {rate:,}"] = ["--max-rate", str(rate)]
    out["record --upload DIR"] = ["--upload", "{tmp}/shipped", "--rotate-interval", "1s"]
    out["record --flight 30s"] = ["--flight", "30s"]
    out["record --max-size 8M"] = ["--max-size", "8M", "--rotate-interval", "1s"]
    out["bpftrace"] = []
    return out


def run_one(name: str, options: list[str], loop: list[str], recorder: list[str], tmp: Path) -> dict:
    data = tmp / "data"
    opts = [o.replace("{tmp}", str(tmp)) for o in options]
    if name == "bare":
        argv = loop
    elif name == "bpftrace":
        argv = ["bpftrace", "-e", rb.BPFTRACE_SCRIPT, "-c", shlex.join(loop)]
    else:
        argv = [*recorder, "record", "-q", "-o", str(data), *opts, "--", *loop]
    out = tmp / "stdout"
    with open(out, "w") as o, open(tmp / "stderr", "w") as e:
        proc = subprocess.Popen(argv, stdout=o, stderr=e)
        code, cpu, rss = rb._wait(proc)
    if code != 0:
        raise RuntimeError(f"{name} exited {code}: {(tmp / 'stderr').read_text()[-2000:]}")
    result = rb._loop_result(out.read_text())
    run = {"ns": result["ns_per_call"], "calls": result["calls"]}
    if name != "bare":
        run |= {"cpu_s": cpu - result.get("cpu_s", 0.0), "rss_kb": rss}
    if data.is_dir():
        run |= rb._recording_stats(data) if any(data.glob("*.parquet")) else {"recorded": 0}
        subprocess.run(["rm", "-rf", str(data), str(tmp / "shipped")], check=True)
    return run


def cost(args: argparse.Namespace, loop: Path, tmp: Path) -> str:
    plan = configs(args.rates)
    runs: dict[str, list[dict]] = {n: [] for n in plan}
    argv = [str(loop), str(args.calls), "1"]
    for rep in range(args.reps):
        for name, options in plan.items():
            run = run_one(name, options, argv, args.recorder, tmp)
            runs[name].append(run)
            print(f"rep {rep + 1}/{args.reps} {name:28} {run['ns']:8.1f} ns/call", file=sys.stderr)
    bare = statistics.median(r["ns"] for r in runs["bare"])
    rows = [
        "| configuration | ns/call, median (min-max) | overhead vs bare | rows kept per call "
        "| bytes on disk per call | recorder CPU ns/call | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rs in runs.items():
        ns = statistics.median(r["ns"] for r in rs)
        lo, hi = min(r["ns"] for r in rs), max(r["ns"] for r in rs)
        kept = [r["recorded"] / r["calls"] for r in rs if "recorded" in r]
        size = [r["bytes"] / r["calls"] for r in rs if r.get("bytes")]
        cpu = [r["cpu_s"] / r["calls"] * 1e9 for r in rs if "cpu_s" in r]
        rss = [r["rss_kb"] / 1024 for r in rs if "rss_kb" in r]
        rows.append(
            f"| {name} | {ns:,.0f} ({lo:,.0f}-{hi:,.0f}) | "
            + ("-" if name == "bare" else f"{ns - bare:+,.0f} ns")
            + f" | {_med(kept, '.4f')} | {_med(size, '.3f')} | {_med(cpu, ',.0f')} "
            f"| {_med(rss, ',.0f')} |"
        )
    return "\n".join(rows)


def _med(values: list[float], spec: str) -> str:
    return f"{statistics.median(values):{spec}}" if values else "-"


def accuracy(args: argparse.Namespace, tmp: Path) -> str:
    """Two recorders on the same calls: the unsampled one is the truth for the sampled one."""
    calls_bin = tmp / "calls"
    src = ROOT / "tests" / "workloads" / "calls.c"
    subprocess.run(["cc", "-O2", "-g", "-pthread", "-o", str(calls_bin), str(src)], check=True)
    lines = []
    for rate in args.rates:
        truth, sampled = tmp / f"truth-{rate}", tmp / f"sampled-{rate}"
        recs = [
            _background(args.recorder, truth, []),
            _background(args.recorder, sampled, ["--max-rate", str(rate)]),
        ]
        try:
            for _ in range(args.accuracy_runs):
                subprocess.run(
                    [str(calls_bin), str(args.rounds), "2"], check=True, capture_output=True
                )
            time.sleep(1)
        finally:
            for rec in recs:
                rec.send_signal(signal.SIGINT)
            for rec in recs:
                rec.wait(60)
        lines.append(_compare(args, truth, sampled, rate))
    return "\n\n".join(lines)


def _background(recorder: list[str], out: Path, options: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [*recorder, "record", "-o", str(out), "--comm", "calls", *options],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    while "recording getsockopt" not in proc.stderr.readline():
        if proc.poll() is not None:
            raise RuntimeError(f"recorder did not start: {proc.stderr.read()}")
    return proc


def _report(args: argparse.Namespace, rec: Path) -> dict[tuple, dict]:
    by = "comm,level,optname,errno"
    out = subprocess.run(
        [*args.recorder, "report", str(rec), "latency", "--by", by, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {(r["comm"], r["level"], r["optname"], r["errno"]): r for r in json.loads(out.stdout)}


def _compare(args: argparse.Namespace, truth: Path, sampled: Path, rate: int) -> str:
    t, s = _report(args, truth), _report(args, sampled)
    rows = [
        f"#### --max-rate {rate:,}",
        "",
        "| group | calls (truth) | calls error | p50 error | p90 error | p99 error |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, tr in sorted(t.items(), key=lambda kv: -kv[1]["calls"]):
        sr = s.get(key)
        if sr is None:
            rows.append(f"| {'/'.join(map(str, key))} | {tr['calls']:,} | missing | | | |")
            continue
        errs = [
            f"{(sr[c] - tr[c]) / tr[c]:+.2%}" if tr[c] else "-"
            for c in ("calls", "p50_ns", "p90_ns", "p99_ns")
        ]
        rows.append(f"| {'/'.join(map(str, key))} | {tr['calls']:,} | " + " | ".join(errs) + " |")
    diff = subprocess.run(
        [*args.recorder, "diff", str(truth), str(sampled), "--format", "json"],
        capture_output=True,
        text=True,
    )
    rows.append("")
    rows.append(f"`diff truth sampled` (exit {diff.returncode}): {diff.stdout[:400]!r}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5_000_000)
    parser.add_argument("--rates", default="1000,10000,100000")
    parser.add_argument("--rounds", type=int, default=100_000, help="calls.c rounds per run")
    parser.add_argument("--accuracy-runs", type=int, default=3)
    parser.add_argument("--rev", default="HEAD")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.calls, args.rounds, args.accuracy_runs = 1, 300_000, 5_000, 1
    args.rates = [int(r) for r in args.rates.split(",")]
    if os.geteuid() != 0:
        sys.exit("always_on_bench: needs root (eBPF)")
    header = rb.machine(
        argparse.Namespace(rev=args.rev, calls=args.calls, bystander_calls=0, reps=args.reps)
    ).replace("bench/recorder_bench.py", "bench/always_on_bench.py")
    with tempfile.TemporaryDirectory(prefix="always-on-bench-") as tmp:
        site = rb.snapshot(args.rev, Path(tmp))
        os.environ["PYTHONPATH"] = str(site)
        os.environ["PYTHONSAFEPATH"] = "1"
        args.recorder = [str(rb.VENV_PYTHON), "-m", "sockopt_trace"]
        loop = rb.build(Path(tmp))
        print(header + "\n\n### Cost, 1 thread\n\n" + cost(args, loop, Path(tmp)), flush=True)
        print("\n### Error of sampled estimates\n\n" + accuracy(args, Path(tmp)))


if __name__ == "__main__":
    if (
        rb.VENV_PYTHON.exists()
        and Path(sys.prefix).resolve() != rb.VENV_PYTHON.parent.parent.resolve()
    ):
        os.execv(str(rb.VENV_PYTHON), [str(rb.VENV_PYTHON), *sys.argv])
    with contextlib.suppress(KeyboardInterrupt):
        main()
