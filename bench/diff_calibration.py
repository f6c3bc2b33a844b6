"""Does diff report nothing when nothing changed? The calibration table of docs/diff.md.

    python bench/diff_calibration.py [--events 20000] [--pairs 100] [--dir /tmp/sockopt-calib]

Writes pairs of synthetic recordings of the same workload (tests/synth.py, seeds 100+i and
500+i), diffs each pair as the CLI does, and counts the diffs that flagged anything (at most
alpha of them should). It also reruns each pair's tests without the Bonferroni correction and
prints, per test, the share of raw p-values under 5%, 1% and 0.1%: a calibrated test gives
0.05, 0.01 and 0.001.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sockopt_trace.analyzer.diff import DiffResult, diff  # noqa: E402
from sockopt_trace.analyzer.diff.model import METRICS  # noqa: E402
from tests.synth import write_recording  # noqa: E402


def raw_p_values(result: DiffResult) -> dict[str, list[float]]:
    """Every test's p-value before the Bonferroni correction."""
    return {
        m: [c.p_raw for g in result.groups if (c := g.change(m)).p_raw is not None] for m in METRICS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/sockopt-calib"))
    args = parser.parse_args()

    p_values: dict[str, list[float]] = {m: [] for m in METRICS}
    flagged = []
    for i in range(args.pairs):
        pair = [args.dir / f"{args.events}-{i}-{side}" for side in ("a", "b")]
        for path, seed in zip(pair, (100 + i, 500 + i), strict=True):
            if not path.exists():
                write_recording(path, args.events, files=1, seed=seed)
        result = diff([pair[0]], [pair[1]])
        flagged += [(i, g.key, g.significant) for g in result.groups if g.significant]
        for metric, values in raw_p_values(result).items():
            p_values[metric] += values

    print(f"{args.pairs} pairs of {args.events:,} calls; diffs with a flag: {len(flagged)}")
    for row in flagged:
        print("  flagged:", *row)
    print("\n| test | tests | p < 0.05 | p < 0.01 | p < 0.001 |\n|---|---:|---:|---:|---:|")
    for metric, values in p_values.items():
        v = np.array(values)
        if not len(v):
            print(f"| {metric} | 0 | | | |")
            continue
        shares = " | ".join(f"{np.mean(v < t):.4g}" for t in (0.05, 0.01, 0.001))
        print(f"| {metric} | {len(v):,} | {shares} |")


if __name__ == "__main__":
    main()
