"""Does diff tell run-to-run noise from real changes, on real recordings? The calibration of
docs/diff.md ("Measured on real recordings").

    sudo flock -x /work/locks/cpu.lock .venv/bin/python bench/diff_noise.py \
        [--runs 12] [--changed 6] [--trials 40] [--dir /tmp/sockopt-noise]

Records tests/workloads/steady.c (1500 rounds, 3 threads: ~22,500 calls in 5 groups, ~1 s)
`--runs` times with `record --repeat`, and `--changed` times with its three changes (an extra
call site, SO_RCVBUF twice as often, SO_PEERGROUPS about twice as slow); recordings already
under --dir are reused. Then, with the library as the CLI calls it:

- every pair of identical runs (single pairs): how many diffs flag anything (*), how many
  `--fail-on p99:+20%` would fail (exit 1), call inconclusive (exit 5), or would have failed
  without the run-to-run noise floor (the verdict before issue 13); and, per metric, the
  largest change beyond the host's that passed the within-run tests (what sets NOISE_FLOOR);
- random splits of the identical runs into k and k (replicates): how many flag anything;
- power: k base runs against k changed runs (k = 1, 2, 3), how often each change is found.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sockopt_trace.analyzer.diff import (  # noqa: E402
    DiffResult,
    diff,
    inconclusive,
    parse_fail_on,
    regressions,
)
from sockopt_trace.analyzer.diff.model import SCALED  # noqa: E402

ROUNDS, THREADS = 1500, 3
LATENCY_GATE = "p50:+30%,p90:+30%"  # the gate tests/kernel/test_diff_noise.py puts on it


def record(out: Path, runs: int, *changes: str) -> list[Path]:
    """`runs` recordings of the workload under `out` (made once; reused after)."""
    if not out.exists():
        binary = out.parent / "steady"
        if not binary.exists():
            source = ROOT / "tests" / "workloads" / "steady.c"
            subprocess.run(
                ["gcc", "-O2", "-g", "-o", str(binary), str(source), "-lpthread"], check=True
            )
        command = [str(binary), str(ROUNDS), str(THREADS), *changes]
        cli = [sys.executable, "-m", "sockopt_trace", "record", "-q", "--repeat", str(runs)]
        subprocess.run(
            [*cli, "-o", str(out), "--", *command], check=True, stdout=subprocess.DEVNULL
        )
    return sorted(p for p in out.iterdir() if p.is_dir())


def flags(result: DiffResult) -> list[str]:
    out = [f"{g.key[-1]}:{','.join(g.significant)}" for g in result.groups if g.significant]
    return out + [f"site {g.key[0]}" for g in result.callsites if g.significant]


def found(result: DiffResult) -> dict[str, bool]:
    """Which of the three real changes the diff flagged (* significant; ? past chance for its
    own test only), and what the latency gate made of the slower group."""
    by_option = {g.key[-1]: g for g in result.groups}
    slow, rate, extra = (by_option.get(o) for o in ("SO_PEERGROUPS", "SO_RCVBUF", "SO_SNDBUF"))
    pct = {"p50", "p90", "p99"}
    latency = set(slow.significant) & pct if slow else set()
    unsure = set(slow.noise) & pct if slow else set()
    rules = parse_fail_on(LATENCY_GATE)
    failed = any(t.group is slow for t in regressions(result, rules))
    unsure_gate = any(t.group is slow for t in inconclusive(result, rules))
    return {
        "2x latency, p50 *": "p50" in latency,
        "2x latency, any percentile *": bool(latency),
        "2x latency, * or ?": bool(latency | unsure),
        f"--fail-on {LATENCY_GATE}: exit 1": failed,
        "exit 1 or 5": failed or unsure_gate,
        "2x rate (SO_RCVBUF) *": bool(rate and "rate" in rate.significant),
        "extra call site (SO_SNDBUF, new) *": bool(extra and extra.significant),
    }


def spread(same: list[Path]) -> None:
    """How runs differ: per group, the standard deviation of ln p50/p90/p99 across the runs,
    raw and net of each run's effect on all its groups (the median, as diff's replicates)."""
    import duckdb
    import numpy as np

    values = []
    for run in same:
        rows = duckdb.sql(
            f"SELECT optname, quantile_cont(latency_ns, [0.5, 0.9, 0.99]) "
            f"FROM read_parquet('{run}/*.parquet') GROUP BY optname ORDER BY optname"
        ).fetchall()
        values.append([q for _, q in rows])
    y = np.log(np.array(values))  # runs x groups x percentiles
    centred = y - y.mean(axis=0)
    effects = np.median(centred, axis=1, keepdims=True)
    print(
        "\nsd of ln value across runs, per group (min-max over the 5 groups), raw -> net of "
        "each run's effect:"
    )
    for k, name in enumerate(("p50", "p90", "p99")):
        raw = centred[:, :, k].std(axis=0, ddof=1)
        net = (centred - effects)[:, :, k].std(axis=0, ddof=1)
        print(f"- {name}: {raw.min():.2f}-{raw.max():.2f} -> {net.min():.2f}-{net.max():.2f}")


def pairs(same: list[Path]) -> None:
    rules = parse_fail_on("p99:+20%")
    flagged, failed, unsure, before = 0, 0, 0, 0
    largest: dict[str, float] = dict.fromkeys(SCALED, 0.0)
    all_pairs = list(itertools.combinations(same, 2))
    for a, b in all_pairs:
        result = diff([a], [b])
        flagged += bool(flags(result))
        failed += bool(regressions(result, rules))
        unsure += bool(inconclusive(result, rules)) and not regressions(result, rules)
        before += bool(regressions(result, rules) or inconclusive(result, rules))
        for g in result.groups:
            for metric in SCALED:
                c = g.change(metric)
                if (c.significant or c.noise) and c.beyond_host is not None:
                    largest[metric] = max(largest[metric], abs(c.beyond_host))
    n = len(all_pairs)
    print(f"\n## Single pairs of identical runs ({n} pairs of {len(same)} runs)\n")
    print(
        "| diffs flagging anything | --fail-on p99:+20%: exit 1 | exit 5 (inconclusive) |"
        " exit 1 without the noise floor |"
    )
    print("|---:|---:|---:|---:|")
    print(f"| {flagged} | {failed} | {unsure} | {before} |")
    print(
        "\nlargest change beyond the host's that passed the within-run tests, per metric: "
        + ", ".join(f"{m} {v * 100:.0f}%" for m, v in largest.items())
    )


def splits(same: list[Path], k: int, trials: int, rng: random.Random) -> None:
    seen, alarms = set(), Counter()
    for _ in range(trials * 20):
        if len(seen) >= trials:
            break
        chosen = rng.sample(same, 2 * k)
        key = (frozenset(chosen[:k]), frozenset(chosen[k:]))
        if key in seen:
            continue
        seen.add(key)
        result = diff(chosen[:k], chosen[k:])
        for f in flags(result):
            alarms[f] += 1
        alarms["diffs"] += bool(flags(result))
        rules = parse_fail_on(LATENCY_GATE)
        alarms["gate"] += bool(regressions(result, rules) or inconclusive(result, rules))
    print(
        f"| {k} vs {k} | {len(seen)} | {alarms.pop('diffs', 0)} | {alarms.pop('gate', 0)} | "
        f"{', '.join(f'{f} ({n})' for f, n in alarms.items()) or '-'} |"
    )


def power(same: list[Path], changed: list[Path], k: int, trials: int, rng: random.Random) -> None:
    hits: Counter[str] = Counter()
    others = 0
    combos = list(
        itertools.product(itertools.combinations(same, k), itertools.combinations(changed, k))
    )
    rng.shuffle(combos)
    chosen = combos[:trials]
    for base, new in chosen:
        result = diff(list(base), list(new))
        for what, ok in found(result).items():
            hits[what] += ok
        expected = ("SO_PEERGROUPS", "SO_RCVBUF", "SO_SNDBUF")
        others += any(g.significant and g.key[-1] not in expected for g in result.groups)
    row = " | ".join(f"{hits[w]}/{len(chosen)}" for w in found(result))
    print(f"| {k} vs {k} | {row} | {others}/{len(chosen)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--changed", type=int, default=6)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/sockopt-noise"))
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    same = record(args.dir / f"same-{args.runs}", args.runs)
    changed = record(args.dir / f"changed-{args.changed}", args.changed, "xrs")
    print(
        f"{len(same)} identical runs and {len(changed)} changed runs of steady {ROUNDS} "
        f"{THREADS}; load average {load:.1f} before, {os.getloadavg()[0]:.1f} after recording"
    )
    spread(same)
    pairs(same)
    rng = random.Random(0)
    print("\n## Replicates of identical runs (random splits)\n")
    print(
        "| runs a side | splits | diffs flagging anything | "
        f"--fail-on {LATENCY_GATE}: exit 1 or 5 | what was flagged (times) |"
    )
    print("|---|---:|---:|---:|---|")
    for k in (2, 3, 4):
        if 2 * k <= len(same):
            splits(same, k, args.trials, rng)
    print("\n## Power: base runs against changed runs\n")
    columns = [*found(diff(same[:1], changed[:1])), "anything else *"]
    print(f"| runs a side | {' | '.join(columns)} |")
    print("|---|" + "---:|" * len(columns))
    for k in (1, 2, 3):
        trials = min(args.trials, math.comb(len(same), k) * math.comb(len(changed), k))
        power(same, changed, k, trials, rng)


if __name__ == "__main__":
    main()
