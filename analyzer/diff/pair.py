"""A single pair (one recording per side): the tests within the two runs, which treat calls as
draws from their recording (corrected for bursts), and the host's shift between the two runs.

calls/s by the exact Poisson rate test and error rates by Fisher's exact test, both on counts
divided by their over-dispersion across time slots; percentiles by Mood's quantile test, with
the bootstrap standard error of the difference. `judge` then asks for a change beyond the
host's (the median group's) larger than `NOISE_FLOOR`.
"""

from __future__ import annotations

import math

import numpy as np

from sockopt_trace.analyzer import stats
from sockopt_trace.analyzer.diff import replicates as rep
from sockopt_trace.analyzer.diff.group import Bins, Group
from sockopt_trace.analyzer.diff.model import (
    MIN_BEYOND,
    PERCENTILES,
    REPLICATES,
    SCALED,
    SIDES,
    SLOTS,
    Side,
)


def test_counts(g: Group, base: Side, new: Side) -> None:
    """The rate test (every group) and the error-rate test (groups in both with errors)."""
    row = g.row
    calls = [float(row[f"{s}_calls"]) for s in SIDES]
    errors = [float(row[f"{s}_errors"]) for s in SIDES]
    sides = (base, new)
    phi = max(
        stats.rate_dispersion(calls[i], float(row[f"{s.name}_calls_sq"]), SLOTS * len(s.replicates))
        for i, s in enumerate(sides)
    )
    g.p["rate"] = stats.poisson_rates_p(calls[0], base.seconds, calls[1], new.seconds, phi)
    if g.status == "both" and sum(errors) > 0:
        phi_errors = max(
            stats.error_dispersion(
                errors[i],
                calls[i],
                float(row[f"{s}_errors_sq_per_call"]),
                int(row[f"{s}_slots_with_calls"]),
            )
            for i, s in enumerate(SIDES)
        )
        g.p["errors"] = stats.proportions_p(errors[0], calls[0], errors[1], calls[1], phi_errors)


def test_percentiles(g: Group, bins: Bins, rng: np.random.Generator) -> None:
    """Mood's test of each percentile with enough calls beyond it on both sides, and the
    bootstrap standard error of its difference."""
    ids, values, counts = zip(*bins, strict=True)
    sizes = [int(c.sum()) for c in counts]
    for name, p in PERCENTILES.items():
        if min(sizes) * min(p, 1 - p) < MIN_BEYOND:
            continue
        var = sum(
            float(stats.quantile_replicates(v, c, p, rng, REPLICATES).var())
            for v, c in zip(values, counts, strict=True)
        )
        g.p[name] = stats.quantile_test(ids, counts, p)
        g.se[name] = math.sqrt(var)


def host_shifts(groups: list[Group], sides: tuple[Side, ...]) -> dict[str, float]:
    """The host's shift between two single recordings per scaled metric: ln of the median
    group's ratio new / base, over the groups in both where the metric was tested (when there
    are `replicates.MIN_REFERENCE` or more)."""
    out = {}
    for metric in SCALED:
        ratios = [_log_ratio(g, metric, sides) for g in groups if metric in g.p]
        shift = rep.median_shift(np.array([r for r in ratios if r is not None], dtype=float))
        if shift is not None:
            out[metric] = shift
    return out


def _log_ratio(g: Group, metric: str, sides: tuple[Side, ...]) -> float | None:
    if g.status != "both":
        return None
    if metric == "rate":
        values = [float(g.row[f"{s}_rate"]) for s in SIDES]
    else:
        k = list(PERCENTILES).index(metric)
        quantiles = [g.row[f"{s}_q"] for s in SIDES]
        if None in quantiles:
            return None
        values = [float(q[k]) for q in quantiles]
    return math.log(values[1] / values[0]) if min(values) > 0 else None
