"""Judge each change: the tests, the Bonferroni correction, and what counts as significant.

Replicates (3 or more recordings in all): every group in both sides is tested against the
variation between recordings of the same side (`replicates.compare`: per-recording values, net
of each recording's effect on all its groups, Student's t with moderated variances), and so is
the host's change (every group moving together). A group found on one side only is "new"
(or "vanished") when every recording of the side where it is shows more calls than chance
allows against none on the other (an intersection-union test: each recording must pass).

A single pair (one recording per side) is judged within its two runs, as if calls were
independent draws, corrected only for bursts: calls/s by the exact Poisson rate test and error
rates by Fisher's exact test, both on counts divided by their over-dispersion across time slots;
percentiles by Mood's quantile test, with a bootstrap interval. That cannot see run-to-run
noise, so a change counts as significant only when, beyond chance, it is also larger than
run-to-run noise: net of the host's shift (the median group's change, with 3 groups or more),
at least `NOISE_FLOOR` (measured on real pairs of identical runs, docs/diff.md). Changes that
pass the tests but not the floor are marked as noise ("?"): a single pair cannot tell them
from a slower or faster run. Error rates, which do not scale with the host's speed, keep the
within-run verdict.

Every significant change is also not negligible (`min_change` for rates and percentiles,
`MIN_ERROR_POINTS` for error rates), and its p-value is below alpha after a Bonferroni
correction over every test run.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sockopt_trace.analyzer import stats
from sockopt_trace.analyzer.diff import replicates as rep
from sockopt_trace.analyzer.diff.model import (
    MIN_BEYOND,
    MIN_ERROR_POINTS,
    NOISE_FLOOR,
    PERCENTILES,
    REPLICATES,
    SCALED,
    SIDES,
    SLOTS,
    Change,
    DiffResult,
    GroupDiff,
    HostChange,
    Side,
)

SEED = 0  # the bootstrap's random numbers: the same recordings give the same output
Bins = tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]  # base, new: (ids, values, counts)
Spread = tuple[tuple[float, float], tuple[float, float]]


@dataclass
class Group:
    """One group: its row of groups.sql, its rows of replicates.sql (one per recording) or
    latency bins (single pair), and its raw (unadjusted) test results."""

    row: dict[str, Any]
    key: tuple[Any, ...]
    replicates: list[dict[str, Any]] = field(default_factory=list)
    bins: Bins | None = None
    p: dict[str, float] = field(default_factory=dict)  # metric: raw p-value
    se: dict[str, float] = field(default_factory=dict)  # percentile: bootstrap se (single)
    beyond: dict[str, float] = field(default_factory=dict)  # metric: change beyond the host's
    spread: dict[str, Spread] = field(default_factory=dict)  # metric: replicates' (min, max)

    @property
    def calls(self) -> tuple[int, int]:
        return int(self.row["base_calls"]), int(self.row["new_calls"])

    @property
    def status(self) -> str:
        calls = self.calls
        return "new" if not calls[0] else "vanished" if not calls[1] else "both"


def judge(
    dims: tuple[str, ...],
    sides: tuple[Side, ...],
    rows: list[Group],
    callsites: list[Group],
    warnings: list[str],
    alpha: float,
    min_change: float,
    replicated: bool,
) -> DiffResult:
    """Run every test, then adjust and judge: the DiffResult."""
    base, new = sides
    hosts: dict[str, rep.HostShift] = {}
    if replicated:
        hosts = _test_replicates([g for g in rows if g.status == "both"], base, new)
        for g in [*rows, *callsites]:
            if g.status != "both":
                _test_appeared(g, base, new)
    else:
        rng = np.random.default_rng(SEED)
        seen = Counter(g.key for g in rows)
        for g in [*rows, *callsites]:
            _test_counts(g, base, new)
            if g.bins is not None and seen[g.key] == 1:  # labels of distinct groups can collide
                _test_percentiles(g, g.bins, rng)
    tests = sum(len(g.p) for g in [*rows, *callsites]) + len(hosts)
    verdicts = _Verdicts(sides, tests, alpha, min_change, replicated)
    host = {m: verdicts.host(h) for m, h in hosts.items()}
    if not replicated:
        shifts = _single_shifts(rows, sides)
        host = {m: HostChange(math.expm1(s), None) for m, s in shifts.items()}
    return DiffResult(
        dims,
        base,
        new,
        verdicts.finish(rows, host),
        verdicts.finish(callsites, host),
        warnings,
        alpha,
        min_change,
        tests,
        host,
        replicated,
    )


# -- replicates -------------------------------------------------------------------------------


def _test_replicates(groups: list[Group], base: Side, new: Side) -> dict[str, rep.HostShift]:
    """Each metric of every group in both sides, against the variation between recordings;
    returns the host's shift per scaled metric (when estimable)."""
    recordings = [(0, r) for r in base.replicates] + [(1, r) for r in new.replicates]
    column = {(side, r.recording_id): j for j, (side, r) in enumerate(recordings)}
    is_new = np.array([side == 1 for side, _ in recordings])
    seconds = np.array([r.seconds for _, r in recordings])
    shape = (len(groups), len(recordings))
    calls, errors = np.zeros(shape), np.zeros(shape)
    q = np.full((*shape, len(PERCENTILES)), np.nan)
    for i, g in enumerate(groups):
        for row in g.replicates:
            j = column[(int(row["side"]), row["recording_id"])]
            calls[i, j], errors[i, j] = float(row["calls"]), float(row["errors"])
            for k, p in enumerate(PERCENTILES.values()):
                if row["q"] is not None and calls[i, j] * min(p, 1 - p) >= MIN_BEYOND:
                    q[i, j, k] = float(row["q"][k])
    # (ln) values per recording, the least variance one recording's sampling allows (Poisson
    # counts, binomial errors, a nanosecond's resolution), and the values as shown
    values: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    rate = (calls + 0.5) / seconds
    values["rate"] = (np.log(rate), _row_mean(1 / (calls + 0.5)), calls / seconds)
    for k, name in enumerate(PERCENTILES):
        values[name] = (np.log(q[:, :, k]), _row_mean(1 / q[:, :, k] ** 2), q[:, :, k])
    share = np.divide(errors, calls, out=np.full(shape, np.nan), where=calls > 0)
    pooled = (errors.sum(axis=1) + 0.5) / (calls.sum(axis=1) + 1)
    per_call = np.divide(1.0, calls, out=np.full(shape, np.nan), where=calls > 0)
    values["errors"] = (share, pooled * (1 - pooled) * _row_mean(per_call), 100 * share)

    hosts = {}
    for metric, (y, least, shown) in values.items():
        testable = np.ones(len(groups), dtype=bool)
        if metric == "errors":
            testable = errors.sum(axis=1) > 0
        compared = rep.compare(
            np.where(testable[:, None], y, np.nan), is_new, least, blocks=metric in SCALED
        )
        if compared.host is not None:
            hosts[metric] = compared.host
        for i, g in enumerate(groups):
            g.spread[metric] = _spread(shown[i], is_new)
            if not math.isnan(compared.p[i]):
                g.p[metric] = float(compared.p[i])
                g.beyond[metric] = float(compared.beyond[i])
    return hosts


def _row_mean(values: np.ndarray) -> np.ndarray:
    """Each row's mean over its finite values (0 where it has none)."""
    finite = np.isfinite(values)
    total = np.where(finite, values, 0.0).sum(axis=1)
    return total / np.maximum(finite.sum(axis=1), 1)


def _spread(values: np.ndarray, is_new: np.ndarray) -> Spread:
    def span(v: np.ndarray) -> tuple[float, float]:
        v = v[np.isfinite(v)]
        return (float(v.min()), float(v.max())) if len(v) else (math.nan, math.nan)

    return span(values[~is_new]), span(values[is_new])


def _test_appeared(g: Group, base: Side, new: Side) -> None:
    """A group on one side only: every recording of that side must show more calls than
    chance allows against none in all the other side's time (the largest p-value is the test's)."""
    present, absent = (new, base) if g.status == "new" else (base, new)
    side = SIDES.index(present.name)
    rows = {row["recording_id"]: row for row in g.replicates if int(row["side"]) == side}
    worst = 0.0
    for r in present.replicates:
        row = rows.get(r.recording_id)
        if row is None:
            worst = 1.0
            break
        calls = float(row["calls"])
        phi = stats.rate_dispersion(calls, float(row["calls_sq"]), SLOTS)
        worst = max(worst, stats.poisson_rates_p(0, absent.seconds, calls, r.seconds, phi))
    g.p["rate"] = worst


# -- a single pair ----------------------------------------------------------------------------


def _test_counts(g: Group, base: Side, new: Side) -> None:
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


def _test_percentiles(g: Group, bins: Bins, rng: np.random.Generator) -> None:
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


def _single_shifts(groups: list[Group], sides: tuple[Side, ...]) -> dict[str, float]:
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


# -- adjusting and judging --------------------------------------------------------------------


@dataclass(frozen=True)
class _Verdicts:
    sides: tuple[Side, ...]
    tests: int
    alpha: float
    min_change: float
    replicated: bool

    def adjusted(self, p_raw: float | None) -> float | None:
        return None if p_raw is None else min(1.0, p_raw * max(1, self.tests))

    def host(self, h: rep.HostShift) -> HostChange:
        p = self.adjusted(h.p)
        rel = math.expm1(h.shift)
        ok = p is not None and p < self.alpha and abs(rel) >= self.min_change
        return HostChange(rel, math.expm1(h.spread), p, ok)

    def finish(self, groups: list[Group], host: dict[str, HostChange]) -> list[GroupDiff]:
        """GroupDiffs with adjusted p-values and verdicts, the largest |impact| first."""
        out = [self._group(g, host) for g in groups]
        out.sort(key=lambda g: (-abs(g.impact), -max(g.calls), _sort_key(g.key)))
        return out

    def _group(self, g: Group, host: dict[str, HostChange]) -> GroupDiff:
        row, calls = g.row, g.calls
        # a side's rates: each recording's calls over its own span, added up (analyzer.span);
        # replicates are runs of one workload, not hosts at once: their mean
        runs = [len(s.replicates) if self.replicated else 1 for s in self.sides]

        def both(value: Callable[[int, str], float | None]) -> Change:
            return Change(value(0, SIDES[0]), value(1, SIDES[1]))

        def quantile(k: int) -> Callable[[int, str], float | None]:
            return lambda _, s: None if row[f"{s}_q"] is None else float(row[f"{s}_q"][k])

        rate = both(lambda i, s: float(row[f"{s}_rate"]) / runs[i])
        errors = both(lambda i, s: 100.0 * row[f"{s}_errors"] / calls[i] if calls[i] else None)
        time = both(lambda i, s: float(row[f"{s}_time_rate"]) / 1e3 / runs[i])
        percentiles = {
            name: self._judged(g, name, both(quantile(k)), host)
            for k, name in enumerate(PERCENTILES)
        }
        return GroupDiff(
            g.key,
            calls,
            self._judged(g, "rate", rate, host),
            self._judged(g, "errors", errors, host),
            time,
            percentiles,
        )

    def _judged(self, g: Group, metric: str, c: Change, host: dict[str, HostChange]) -> Change:
        p = self.adjusted(g.p.get(metric))
        points = metric == "errors"
        least = MIN_ERROR_POINTS if points else self.min_change
        effect = c.diff if points else c.rel
        if metric in g.se:  # a single pair's percentile: its simultaneous interval
            z = stats.normal_quantile(1 - self.alpha / (2 * max(1, self.tests)))
            d, se = c.diff or 0.0, g.se[metric]
            c = dataclasses.replace(c, low=d - z * se, high=d + z * se)
        spread = g.spread.get(metric) if self.replicated else None
        c = dataclasses.replace(c, p=p, p_raw=g.p.get(metric), spread=spread)
        chance = p is not None and p < self.alpha
        big = effect is not None and abs(effect) >= least
        if c.low is not None and c.high is not None:
            chance = chance and (c.low > 0 or c.high < 0)
        if not (chance and big) and not self.replicated:
            return c
        if self.replicated:
            return self._replicated(g, metric, c, host, least)
        if points or g.status != "both":  # errors and new groups: the within-run verdict
            return dataclasses.replace(c, significant=True)
        shift = host.get(metric)
        if shift is None:  # no host shift to net out: nothing beyond noise can be shown
            return dataclasses.replace(c, noise=True)
        beyond = math.expm1(math.log1p(effect or 0.0) - math.log1p(shift.shift))
        c = dataclasses.replace(c, beyond_host=beyond)
        same_way = beyond * (effect or 0.0) > 0
        ok = same_way and abs(beyond) >= max(NOISE_FLOOR[metric], least)
        return dataclasses.replace(c, significant=ok, noise=not ok)

    def _replicated(
        self, g: Group, metric: str, c: Change, host: dict[str, HostChange], least: float
    ) -> Change:
        """Replicates: significant when the group changed beyond the host's shift (or the host
        itself changed significantly and the group with it), by at least `least`."""
        effect = (c.diff if metric == "errors" else c.rel) or 0.0
        if g.status != "both":
            ok = c.p is not None and c.p < self.alpha
            return dataclasses.replace(c, significant=ok)
        beyond = g.beyond.get(metric)
        if beyond is not None and metric != "errors":
            beyond = math.expm1(beyond)
        elif beyond is not None:
            beyond *= 100  # error share -> percentage points
        c = dataclasses.replace(c, beyond_host=beyond)
        alone = (
            c.p is not None
            and c.p < self.alpha
            and beyond is not None
            and abs(beyond) >= least
            and beyond * effect > 0
        )
        shift = host.get(metric)
        together = (
            shift is not None
            and shift.significant
            and shift.shift * effect > 0
            and abs(effect) >= least
        )
        if together and not alone and shift is not None:
            c = dataclasses.replace(c, p=shift.p)
        return dataclasses.replace(c, significant=alone or together)


def _sort_key(key: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if k is None else str(k) for k in key)
