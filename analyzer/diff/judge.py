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
from dataclasses import dataclass
from typing import Any

import numpy as np

from sockopt_trace.analyzer import stats
from sockopt_trace.analyzer.diff import pair
from sockopt_trace.analyzer.diff import replicates as rep
from sockopt_trace.analyzer.diff.group import Group
from sockopt_trace.analyzer.diff.model import (
    MIN_ERROR_POINTS,
    NOISE_FLOOR,
    PERCENTILES,
    SIDES,
    Change,
    DiffResult,
    GroupDiff,
    HostChange,
    Side,
)

SEED = 0  # the bootstrap's random numbers: the same recordings give the same output


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
        hosts = rep.test_groups([g for g in rows if g.status == "both"], base, new)
        for g in [*rows, *callsites]:
            if g.status != "both":
                rep.test_appeared(g, base, new)
    else:
        rng = np.random.default_rng(SEED)
        seen = Counter(g.key for g in rows)
        for g in [*rows, *callsites]:
            pair.test_counts(g, base, new)
            if g.bins is not None and seen[g.key] == 1:  # labels of distinct groups can collide
                pair.test_percentiles(g, g.bins, rng)
    tests = sum(len(g.p) for g in [*rows, *callsites]) + len(hosts)
    verdicts = _Verdicts(sides, tests, alpha, min_change, replicated)
    host = {m: verdicts.host(h) for m, h in hosts.items()}
    if not replicated:
        shifts = pair.host_shifts(rows, sides)
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
        # past chance for this one test but not over all the tests run: too few replicates to
        # tell (3 a side find a 2x change of one group in about half the diffs, docs/diff.md)
        unsure = (
            not (alone or together)
            and c.p_raw is not None
            and c.p_raw < self.alpha
            and beyond is not None
            and abs(beyond) >= least
            and beyond * effect > 0
        )
        return dataclasses.replace(c, significant=alone or together, noise=unsure)


def _sort_key(key: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if k is None else str(k) for k in key)
