"""Always-on benchmark: what --max-rate, --upload, --flight and retention cost, and how close
sampled answers are to the truth.

Part 1, cost (interleaved round-robin, medians): bench/loop.c calling getsockopt in a tight loop
under `record` with each always-on option, beside bare and bpftrace's in-kernel histogram (the
peer); ns per call, rows kept per call, bytes on disk per call, the recorder's own CPU and peak
RSS (measured as recorder_bench.py does: wait4 over the tree minus the workload's own CPU).

Part 2, error of the estimates: one workload of mixed calls (tests/workloads/calls.c: six kinds,
three of them failing, each made the same number of times, which it prints) recorded by
`record` and by `record --max-rate R` in separate runs, interleaved: per (level, optname,
errno), the sampled count's error against the calls made, and each percentile's error against
the unsampled runs beside those runs' own run-to-run spread; and what `diff` of the unsampled
runs against the sampled runs (replicates) calls significant.

usage: python bench/always_on_bench.py [--quick] [--reps N] [--calls N] [--rates 1000,10000]
Needs root, a C compiler, bpftrace and the recorder (bash scripts/setup.sh --system --dev).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
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
    """Sampled against unsampled recordings of the same workload, made one after the other,
    interleaved (ABBA), never at once: two recorders at once time each other's probes (each
    call's latency includes the other's), which made an earlier version of this bench report
    sampled percentiles 19-45% off when the error was the setup's."""
    calls_bin = tmp / "calls"
    src = ROOT / "tests" / "workloads" / "calls.c"
    subprocess.run(["cc", "-O2", "-g", "-pthread", "-o", str(calls_bin), str(src)], check=True)
    sections = []
    for rate in args.rates:
        runs: dict[str, list[dict[tuple, dict]]] = {"all": [], "sampled": []}
        made = []
        for i in range(args.accuracy_runs):
            order = [("all", []), ("sampled", ["--max-rate", str(rate)])]
            for kind, options in order[:: -1 if i % 2 else 1]:
                rec = tmp / f"{kind}-{rate}" / f"run-{i}"
                done = subprocess.run(
                    [
                        *args.recorder,
                        "record",
                        "-q",
                        "-o",
                        str(rec),
                        *options,
                        "--",
                        str(calls_bin),
                        str(args.rounds),
                        "2",
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                said = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
                made.append(json.loads(said[-1])["calls_per_function"])
                runs[kind].append(_report(args, rec))
        sections.append(_compare(args, tmp, rate, runs, made))
    return "\n\n".join(sections)


def _report(args: argparse.Namespace, rec: Path) -> dict[tuple, dict]:
    by = "level,optname,errno"
    out = subprocess.run(
        [*args.recorder, "report", str(rec), "latency", "--by", by, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {(r["level"], r["optname"], r["errno"]): r for r in json.loads(out.stdout)}


def _compare(
    args: argparse.Namespace,
    tmp: Path,
    rate: int,
    runs: dict[str, list[dict[tuple, dict]]],
    made: list[int],
) -> str:
    """Per group: the sampled count's error against the calls the workload says it made, and
    each percentile's error against the unsampled runs beside the unsampled runs' own spread
    (run-to-run noise: the least error any estimate of another run can have)."""
    if len(set(made)) != 1:
        raise RuntimeError(f"the workload made different numbers of calls: {made}")
    truth = made[0]
    rows = [
        f"#### --max-rate {rate:,}: {len(runs['all'])} unsampled and {len(runs['sampled'])} "
        f"sampled runs of `calls {args.rounds} 2` ({truth:,} calls per group)",
        "",
        "| group | count error: sampled (unsampled), sampled runs' range | "
        "p50 error, sampled (noise) | p90 | p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for key in sorted(runs["all"][0]):
        all_, sampled = [r[key] for r in runs["all"]], [r.get(key) for r in runs["sampled"]]
        if any(r is None for r in sampled):
            rows.append(f"| {'/'.join(map(str, key))} | missing in a sampled run | | | |")
            continue
        errors = [r["calls"] / truth - 1 for r in sampled]
        exact = _median_abs([r["calls"] / truth - 1 for r in all_])
        spread = f"{min(errors):+.1%}..{max(errors):+.1%}"
        cells = [f"{_median_abs(errors):.2%} ({exact:.2%}), {spread}"]
        for q in ("p50_ns", "p90_ns", "p99_ns"):
            pooled = statistics.median(r[q] for r in all_)
            error = _median_abs([r[q] / pooled - 1 for r in sampled])
            noise = _median_abs(
                [
                    r[q] / statistics.median(o[q] for j, o in enumerate(all_) if j != i) - 1
                    for i, r in enumerate(all_)
                ]
            )
            cells.append(f"{error:.1%} ({noise:.1%})")
        rows.append(f"| {'/'.join(map(str, key))} | " + " | ".join(cells) + " |")
    diff = subprocess.run(
        [
            *args.recorder,
            "diff",
            str(tmp / f"all-{rate}"),
            str(tmp / f"sampled-{rate}"),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
    )
    rows += ["", f"`diff unsampled-runs sampled-runs` exit {diff.returncode}: {_flagged(diff)}"]
    return "\n".join(rows)


def _median_abs(values: list[float]) -> float:
    return statistics.median(abs(v) for v in values)


def _flagged(diff: subprocess.CompletedProcess[str]) -> str:
    """The groups the replicate diff calls changed beyond chance (*) or by chance alone (?)."""
    try:
        groups = json.loads(diff.stdout)["groups"]
    except (ValueError, KeyError):
        return f"no JSON: {diff.stderr.strip()[:200]!r}"
    named = [f"{g['optname']} ({g['significant']})" for g in groups if g.get("significant")]
    noise = [f"{g['optname']} ({g['noise']})" for g in groups if g.get("noise")]
    return (
        f"{len(groups)} groups, changed (*): {', '.join(named) or 'none'}; "
        f"chance only (?): {', '.join(noise) or 'none'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5_000_000)
    parser.add_argument("--rates", default="1000,10000,100000")
    parser.add_argument("--rounds", type=int, default=100_000, help="calls.c rounds per run")
    parser.add_argument("--accuracy-runs", type=int, default=6)
    parser.add_argument("--only", choices=("cost", "accuracy"), help="run one part")
    parser.add_argument("--rev", default="HEAD")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.calls, args.rounds, args.accuracy_runs = 1, 300_000, 5_000, 2
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
        print(header, flush=True)
        if args.only in (None, "cost"):
            loop = rb.build(Path(tmp))
            print("\n### Cost, 1 thread\n\n" + cost(args, loop, Path(tmp)), flush=True)
        if args.only in (None, "accuracy"):
            print("\n### Error of sampled estimates\n\n" + accuracy(args, Path(tmp)))


if __name__ == "__main__":
    if (
        rb.VENV_PYTHON.exists()
        and Path(sys.prefix).resolve() != rb.VENV_PYTHON.parent.parent.resolve()
    ):
        os.execv(str(rb.VENV_PYTHON), [str(rb.VENV_PYTHON), *sys.argv])
    with contextlib.suppress(KeyboardInterrupt):
        main()
