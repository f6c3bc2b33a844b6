"""Back-pressure benchmark: the highest steady call rate recorded with 0 loss, with one busy
bystander loop on the other core, for the recorder as committed and for an older commit.

One thread calls getsockopt at a steady RATE per second (bench/loop.c paces itself) pinned to
CPU 0, traced with `sockopt-trace record -- ...`; a getppid loop keeps CPU 1 busy the whole
time (another process using the machine, as on a production host). Each rate runs TRIALS times
per commit, interleaved (rates and commits round-robin, so drift hits them alike). A trial is
lossless when the recording holds exactly the calls the workload made. The table says, per
rate and commit, how many trials were lossless and what was lost (by reason) in the others.

usage: flock -x /work/locks/cpu.lock python bench/backpressure_bench.py
       [--rates 200000,400000,...] [--seconds 5] [--trials 3] [--baseline REV] [--rev REV]
Needs root, a C compiler and the recorder (bash scripts/setup.sh --system --dev).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recorder_bench import ROOT, VENV_PYTHON, build, snapshot


def trial(site: Path, loop: Path, out: Path, rate: int, seconds: float) -> dict:
    """One traced run at `rate`: calls made, rows recorded, losses by reason."""
    calls = int(rate * seconds)
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = ["taskset", "-c", "0", str(loop), str(calls), "1", "getsockopt", str(rate)]
    done = subprocess.run(
        [str(VENV_PYTHON), "-m", "sockopt_trace", "record", "-q", "-o", str(out), "--", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds * 10 + 120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"record failed ({done.returncode}): {done.stderr[-2000:]}")
    made = json.loads(done.stdout.strip().splitlines()[-1])["calls"]
    code = (
        "import glob, json, sys; from sockopt_trace import schema; "
        "ms = [schema.read_file_metadata(f) for f in glob.glob(sys.argv[1] + '/*.parquet')]; "
        "lost = {}; [lost.__setitem__(k, lost.get(k, 0) + v) for m in ms for k, v in "
        "m.lost.items() if v]; print(json.dumps([sum(m.events for m in ms), lost]))"
    )
    read = subprocess.run(
        [str(VENV_PYTHON), "-c", code, str(out)], env=env, capture_output=True, text=True
    )
    recorded, lost = json.loads(read.stdout)
    return {"made": made, "recorded": recorded, "lost": lost}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="200000,400000,600000,800000,1000000,1200000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--rev", default="HEAD")
    parser.add_argument("--baseline", default="", help="an older commit to run beside it")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory(prefix="backpressure-") as tmp:
        work = Path(tmp)
        loop = build(work)
        revs = [args.rev] + ([args.baseline] if args.baseline else [])
        sites = {}
        for rev in revs:
            (work / rev).mkdir()
            sites[rev] = snapshot(rev, work / rev)
        bystander = subprocess.Popen(
            ["taskset", "-c", "1", str(loop), str(10**12), "1", "getppid"],
            stdout=subprocess.DEVNULL,
        )
        results: dict[tuple[int, str], list[dict]] = {}
        try:
            for t in range(args.trials):
                for rate in rates:
                    for rev in revs:
                        out = work / f"rec-{rev}-{rate}-{t}"
                        got = trial(sites[rev], loop, out, rate, args.seconds)
                        results.setdefault((rate, rev), []).append(got)
                        print(f"# {rev} {rate}/s trial {t}: {got}", file=sys.stderr, flush=True)
        finally:
            bystander.kill()
            bystander.wait()
    report(results, revs)


def report(results: dict[tuple[int, str], list[dict]], revs: list[str]) -> None:
    names = {rev: _describe(rev) for rev in revs}
    print(
        f"Command: `{' '.join(sys.argv)}` on {platform.node()}, kernel {platform.release()}, "
        f"{time.strftime('%Y-%m-%d')}.\n"
    )
    print(
        "| calls/s (1 thread, CPU 0) | commit | lossless trials | recorded / made (worst) "
        "| lost in the worst trial |"
    )
    print("|---:|---|---:|---:|---|")
    for (rate, rev), runs in sorted(results.items()):
        worst = min(runs, key=lambda r: r["recorded"] / r["made"])
        clean = sum(1 for r in runs if r["recorded"] == r["made"] and not r["lost"])
        lost = ", ".join(f"{k} {v:,}" for k, v in worst["lost"].items()) or "0"
        share = worst["recorded"] / worst["made"]
        print(f"| {rate:,} | {names[rev]} | {clean}/{len(runs)} | {share:.4f} | {lost} |")
    for rev in revs:
        ok = [
            rate
            for (rate, r), runs in results.items()
            if r == rev and all(x["recorded"] == x["made"] and not x["lost"] for x in runs)
        ]
        best = max(ok) if ok else 0
        print(f"\nHighest rate with 0 loss in every trial, {names[rev]}: {best:,} calls/s")


def _describe(rev: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


if __name__ == "__main__":
    main()
