"""Compare two recordings: what got slower, more frequent, or failed more, with confidence.

    result = diff(["before/"], ["after/"], by=["comm", "callsite"])
    for g in result.groups: ...            # every group, the largest change in time first
    render(result.sections(top=20), "table", sys.stdout)

Both recordings are opened with the analyzer's loader on one DuckDB connection, as the views
`base_events` and `new_events`, and two canned queries read them: `queries/diff/groups.sql`
(per group: calls, errors, time in getsockopt, exact p50/p90/p99, calls and errors per time
slot) and `queries/diff/latency.sql` (per group and recording: calls per latency bin, 0.5%
wide). The tests then run in numpy (`stats`):

- calls per second (each recording's calls over its own wall-clock span, from file metadata):
  Poisson rate test, exact and conditional on the total, on counts divided by the
  over-dispersion seen across `SLOTS` time slots of each recording (quasi-Poisson);
- p50 / p90 / p99: Mood's quantile test (Fisher's exact test of how many calls of each
  recording fall at or below the pooled percentile), with an interval for the difference from
  the bootstrap over all calls (`stats.quantile_replicates`: nothing is sampled). Compared only
  with `MIN_BEYOND` calls or more beyond the percentile on each side;
- error rate (% of calls failing): Fisher's exact test on counts divided by the
  over-dispersion of errors across time slots (quasi-binomial).

A change is significant when its p-value is below alpha after a Bonferroni correction over
every test run (so two recordings of the same workload report nothing, with probability at
least 1 - alpha), and its size is not negligible: `min_change` (10%) for rates and percentiles,
`MIN_ERROR_POINTS` percentage points for error rates. Groups are ranked by impact: the change in
time spent in getsockopt per second of wall clock. See docs/diff.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sockopt_trace.analyzer import stats
from sockopt_trace.analyzer.database import Loaded, execute
from sockopt_trace.analyzer.diffsettings import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_CHANGE,
    MIN_BEYOND,
    MIN_ERROR_POINTS,
)
from sockopt_trace.analyzer.dimensions import parse_by
from sockopt_trace.analyzer.filters import Filters
from sockopt_trace.analyzer.load import load_pair
from sockopt_trace.analyzer.recording import Recording
from sockopt_trace.analyzer.render import Result, human
from sockopt_trace.analyzer.reports import Report, load_queries, prepare
from sockopt_trace.errors import UserError
from sockopt_trace.schema import RecordingMetadata

SLOTS = 30  # time slots per recording, for the over-dispersion of counts
REPLICATES = 2000  # bootstrap replicates per percentile and recording
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}  # the order of the SQL's quantile lists
SEED = 0  # the bootstrap's random numbers: the same recordings give the same output
METRICS = ("rate", "errors", *PERCENTILES)
SIDES = ("base", "new")
SIGNIFICANT = " *"  # marks in the human tables
NOT_TESTED = " ~"


def diff_queries() -> dict[str, Report]:
    """The canned diff queries, `queries/diff/*.sql`, by name (groups, latency)."""
    return load_queries("diff")


@dataclass(frozen=True)
class Change:
    """One metric of one group in both recordings, and the confidence in its change."""

    base: float | None
    new: float | None
    p: float | None = None  # Bonferroni-adjusted p-value; None: not tested
    low: float | None = None  # simultaneous confidence interval of new - base (percentiles)
    high: float | None = None
    significant: bool = False

    @property
    def diff(self) -> float | None:
        return None if self.base is None or self.new is None else self.new - self.base

    @property
    def rel(self) -> float | None:
        """(new - base) / base; +inf when it appears from zero."""
        d = self.diff
        if d is None:
            return None
        if self.base == 0:
            return 0.0 if d == 0 else math.copysign(math.inf, d)
        return d / self.base

    @property
    def tested(self) -> bool:
        return self.p is not None


@dataclass(frozen=True)
class GroupDiff:
    """A group (values of the --by dimensions) in both recordings."""

    key: tuple[Any, ...]
    calls: tuple[int, int]  # base, new
    rate: Change  # calls per second of wall clock
    errors: Change  # % of calls that failed
    time: Change  # microseconds in getsockopt per second of wall clock (not tested: ranks rows)
    percentiles: dict[str, Change]  # p50, p90, p99 latency in ns

    @property
    def status(self) -> str:
        return "new" if not self.calls[0] else "vanished" if not self.calls[1] else "both"

    @property
    def impact(self) -> float:
        """Change in time spent in getsockopt, microseconds per second of wall clock."""
        return (self.time.new or 0.0) - (self.time.base or 0.0)

    def change(self, metric: str) -> Change:
        return self.percentiles[metric] if metric in PERCENTILES else getattr(self, metric)

    @property
    def significant(self) -> list[str]:
        """The metrics whose change is significant."""
        return [m for m in METRICS if self.change(m).significant]


@dataclass(frozen=True)
class Side:
    """One of the two recordings as compared: its files and the wall-clock time in scope."""

    name: str  # base | new
    specs: tuple[str, ...]
    recording: Recording
    start_ns: int
    end_ns: int
    seconds: float  # wall-clock time covered by its files within --since/--until

    @property
    def slot_ns(self) -> int:
        return max(1, -(-(self.end_ns - self.start_ns) // SLOTS))

    @property
    def slots(self) -> int:
        return max(1, -(-(self.end_ns - self.start_ns) // self.slot_ns))


@dataclass
class DiffResult:
    """The comparison; `sections()` and `machine_sections()` give what the renderers print."""

    dims: tuple[str, ...]
    base: Side
    new: Side
    groups: list[GroupDiff]  # every group, the largest |impact| first
    callsites: list[GroupDiff]  # call sites in one recording only (unless grouped by callsite)
    warnings: list[str]  # settings that differ, lost events, files left out
    alpha: float
    min_change: float
    tests: int  # tests run: the Bonferroni divisor

    # -- machine output: every number, for csv and json ----------------------------------------

    def table(self, groups: Iterable[GroupDiff] | None = None, dims: Sequence[str] = ()) -> Result:
        """One row per group with every value, change, p-value and flag (csv, json)."""
        columns = [*(dims or self.dims), "status", "impact_us_per_s", "significant"]
        columns += ["base_calls", "new_calls"]
        for unit in ("calls_per_s", "error_pct"):
            columns += [f"base_{unit}", f"new_{unit}", f"{unit}_change", f"{unit}_change_pct"]
            columns += [f"{unit}_p", f"{unit}_significant"]
        columns += ["base_time_us_per_s", "new_time_us_per_s"]
        for name in PERCENTILES:
            columns += [f"base_{name}_ns", f"new_{name}_ns", f"{name}_change_ns"]
            columns += [f"{name}_change_pct", f"{name}_low_ns", f"{name}_high_ns"]
            columns += [f"{name}_p", f"{name}_significant"]
        rows = []
        for g in self.groups if groups is None else groups:
            row: list[Any] = [*g.key, g.status, g.impact, ",".join(g.significant), *g.calls]
            for c in (g.rate, g.errors):
                row += [c.base, c.new, c.diff, _pct(c.rel), c.p, c.significant]
            row += [g.time.base, g.time.new]
            for c in g.percentiles.values():
                row += [c.base, c.new, c.diff, _pct(c.rel), c.low, c.high, c.p, c.significant]
            rows.append(row)
        return Result(columns, rows, "groups")

    def machine_sections(self, top: int | None = None) -> list[Result]:
        """The recordings, the groups (top by impact), the call sites found in one recording
        only, and the method: json prints them keyed by title."""
        callsites = self.table(self.callsites[:top] if top else self.callsites, ("callsite",))
        callsites.title = "callsites"
        groups = self.table(self.groups[:top] if top else self.groups)
        return [self._recordings(), groups, callsites, self._method()]

    # -- human output: table and markdown ------------------------------------------------------

    def sections(self, top: int | None = 20, *, warnings: bool = True) -> list[Result]:
        """The recordings, warnings, groups in both by impact ("before → after change", *
        when significant), groups and call sites in one recording only, and the method."""
        both = [g for g in self.groups if g.status == "both"]
        shown = [g for i, g in enumerate(both) if not top or i < top or g.significant]
        flagged = sum(1 for g in both if g.significant)
        sections = [self._recordings()]
        if warnings and self.warnings:
            sections.append(Result(["warning"], [(w,) for w in self.warnings], "warnings"))
        columns = [*self.dims, "time_us_per_s", "calls_per_s"]
        columns += [*(f"{p}_ns" for p in PERCENTILES), "error_pct"]
        rows = [
            (
                *g.key,
                _cell(g.time, human, signed=True),
                _cell(g.rate, human),
                *(_cell(c, _ns) for c in g.percentiles.values()),
                _cell(g.errors, human, points=True),
            )
            for g in shown
        ]
        title = (
            f"changes: {flagged} of {len(both)} groups in both recordings changed significantly"
            f" (*); the top {min(top or len(both), len(both))} by change in time, and every *"
        )
        sections.append(Result(columns, rows, title))
        for status in ("new", "vanished"):
            sections += self._one_sided(self.groups, status, "groups", self.dims, top)
            sections += self._one_sided(self.callsites, status, "call sites", ("callsite",), top)
        return [*sections, self._method()]

    def _one_sided(
        self, groups: list[GroupDiff], status: str, what: str, dims: Sequence[str], top: int | None
    ) -> list[Result]:
        chosen = [g for g in groups if g.status == status]
        if not chosen:
            return []
        i = 1 if status == "new" else 0
        columns = [*dims, "calls", "calls_per_s", "time_us_per_s", "p50_ns", "p99_ns"]
        columns += ["error_pct", "significant"]
        rows = []
        for g in chosen[:top] if top else chosen:
            values = (g.rate, g.time, g.percentiles["p50"], g.percentiles["p99"], g.errors)
            side: list[Any] = [(c.base, c.new)[i] for c in values]
            side[2:4] = [None if v is None else round(v) for v in side[2:4]]  # ns
            rows.append((*g.key, g.calls[i], *side, "yes" if g.rate.significant else "no"))
        where = ("base", "new")[i]
        title = (
            f"{status} {what}: {len(chosen)}, only in the {where} recording "
            "(significant: more calls than chance allows)"
        )
        return [Result(columns, rows, title)]

    def _recordings(self) -> Result:
        columns = ["side", "recording", "hosts", "span_s", "calls", "calls_per_s"]
        columns += ["time_us_per_s", "lost", "probe", "stacks"]
        rows = []
        for i, side in enumerate((self.base, self.new)):
            metas = [f.meta for f in side.recording.files]
            calls = sum(g.calls[i] for g in self.groups)
            time_us = sum((g.time.base, g.time.new)[i] or 0.0 for g in self.groups)
            rows.append(
                (
                    side.name,
                    " ".join(side.specs),
                    ", ".join(side.recording.hosts),
                    side.seconds,
                    calls,
                    calls / side.seconds,
                    time_us,
                    side.recording.lost_total,
                    ", ".join(sorted({m.probe for m in metas})),
                    ", ".join(sorted({_stacks(m.stacks, m.stack_sample_period) for m in metas})),
                )
            )
        return Result(columns, rows, "recordings")

    def _method(self) -> Result:
        least = f"p < alpha, change >= {self.min_change * 100:g}%"
        slots = f"over {SLOTS} time slots of each recording"
        rows = [
            (
                "calls_per_s",
                "Poisson rate test, exact, conditional on the total; counts divided by their "
                f"over-dispersion {slots}",
                least,
            ),
            (
                "p50/p90/p99_ns",
                "Mood's quantile test: Fisher's exact test at the pooled percentile; interval: "
                f"bootstrap over all calls ({REPLICATES:,} replicates)",
                f"{least}, interval excludes 0; {NOT_TESTED.strip()} not tested: < {MIN_BEYOND} "
                "calls beyond the percentile",
            ),
            (
                "error_pct",
                f"Fisher's exact test; counts divided by the over-dispersion of errors {slots}",
                f"p < alpha, change >= {MIN_ERROR_POINTS:g} points",
            ),
            ("time_us_per_s", "not tested: the impact that ranks the groups", ""),
            (
                "alpha",
                f"{self.alpha:g} for all {self.tests:,} tests together (Bonferroni): p values "
                "adjusted, intervals simultaneous",
                f"{SIGNIFICANT.strip()}: significant",
            ),
        ]
        return Result(["metric", "method", "significant when"], rows, "method")


def _stacks(mode: str, period: int) -> str:
    return f"{mode} (1 in {period})" if mode == "full" and period > 1 else mode


def _pct(rel: float | None) -> float | None:
    return None if rel is None else rel * 100


def _ns(value: float) -> str:
    return f"{round(value):,}"


def _cell(c: Change, fmt: Any, *, signed: bool = False, points: bool = False) -> str:
    """'base → new +12% *' for the human tables: the change relative to base (or signed, in
    the values' unit, or in percentage points), * significant, ~ not tested."""
    if c.base is None or c.new is None:
        return ""
    text = f"{fmt(c.base)} → {fmt(c.new)}"
    d, rel = c.diff or 0.0, c.rel or 0.0
    if points and d:
        text += f" {d:+.2g} pts" if abs(d) < 1 else f" {d:+,.1f} pts"
    elif signed and d:
        text += f" {'+' if d > 0 else '-'}{fmt(abs(d))}"
    elif d and not points:
        text += " new" if math.isinf(rel) else f" {rel * 100:+.{0 if abs(rel) >= 0.1 else 1}f}%"
    if c.significant:
        return text + SIGNIFICANT
    return text + (NOT_TESTED if fmt is _ns and not c.tested else "")


# -- computing the diff -----------------------------------------------------------------------


def diff(
    base: Sequence[str | Path],
    new: Sequence[str | Path],
    *,
    by: Sequence[str] | str | None = None,
    filters: Filters = Filters(),
    alpha: float = DEFAULT_ALPHA,
    min_change: float = DEFAULT_MIN_CHANGE,
    skip_bad: bool = False,
    allow_external: bool = False,
) -> DiffResult:
    """Compare recording `new` with recording `base` (each: files, directories or globs).

    `by`: dimensions of the report allow-list (default comm, level, optname); `filters` as for
    reports, applied to both (offsets from each recording's start). Raises UserError on bad
    input.
    """
    if not 0 < alpha < 1:
        raise UserError(f"bad --alpha {alpha:g}: between 0 and 1, e.g. 0.01")
    if not 0 <= min_change < 100:
        raise UserError(f"bad --min-change {min_change:g}: a fraction, e.g. 0.1 for 10%")
    dims = tuple(parse_by(by)) if by else tuple(diff_queries()["groups"].by or ())
    b, n = load_pair(base, new, filters, skip_bad=skip_bad, allow_external=allow_external)
    try:
        sides = (_side("base", base, b), _side("new", new, n))
        rows = _compare(b, dims, sides)
        callsites: list[_Group] = []
        if "callsite" not in dims and _has_callsites(b.recording, n.recording):
            compared = _compare(b, ("callsite",), sides, percentiles=False)
            callsites = [g for g in compared if g.status != "both"]
    finally:
        b.con.close()
    tests = sum(g.tests for g in rows) + sum(g.tests for g in callsites)
    return DiffResult(
        dims,
        *sides,
        _finish(rows, sides, tests, alpha, min_change),
        _finish(callsites, sides, tests, alpha, min_change),
        settings_warnings(b.recording, n.recording, dims),
        alpha,
        min_change,
        tests,
    )


def _side(name: str, specs: Sequence[str | Path], loaded: Loaded) -> Side:
    """The wall-clock span a recording covers: the union of its files' [start, end) intervals
    (hosts recording at once count once, gaps between files not at all), within the bounds."""
    lo = loaded.since_ns if loaded.since_ns is not None else -math.inf
    hi = loaded.until_ns if loaded.until_ns is not None else math.inf
    spans = sorted(
        (max(f.meta.start_ns, lo), min(f.meta.end_ns, hi)) for f in loaded.recording.files
    )
    spans = [(s, e) for s, e in spans if e > s]
    if not spans:
        raise UserError(f"the {name} recording covers no time within --since/--until")
    covered, reach = 0, spans[0][0]
    for s, e in spans:
        covered += max(0, e - max(s, reach))
        reach = max(reach, e)
    start, end = int(spans[0][0]), int(max(e for _, e in spans))
    return Side(name, tuple(map(str, specs)), loaded.recording, start, end, covered / 1e9)


def _has_callsites(*recordings: Recording) -> bool:
    return all(any(f.meta.stacks != "off" for f in r.files) for r in recordings)


@dataclass
class _Group:
    """One group's row of queries/diff/groups.sql, and its raw (unadjusted) test results."""

    row: dict[str, Any]
    key: tuple[Any, ...]
    rate_p: float | None = None
    errors_p: float | None = None
    percentiles: dict[str, tuple[float, float]] = field(default_factory=dict)  # name: (p, se)

    @property
    def status(self) -> str:
        return (
            "new"
            if not self.row["base_calls"]
            else "vanished"
            if not self.row["new_calls"]
            else "both"
        )

    @property
    def tests(self) -> int:
        return (self.rate_p is not None) + (self.errors_p is not None) + len(self.percentiles)


def _compare(
    loaded: Loaded, dims: Sequence[str], sides: tuple[Side, Side], *, percentiles: bool = True
) -> list[_Group]:
    """Run the diff queries grouped by `dims` and the tests on their rows (the percentile
    tests, which read latency bins, only if `percentiles`)."""
    queries = diff_queries()
    params = {}
    for s in sides:
        params |= {f"{s.name}_start_ns": s.start_ns, f"{s.name}_slot_ns": s.slot_ns}
    groups = [
        _Group(row, tuple(row[d] for d in dims))
        for row in _fetch(loaded, queries["groups"], dims, params)
    ]
    for g in groups:
        _test_counts(g, sides)
    if not percentiles:
        return groups
    min_calls = math.ceil(MIN_BEYOND / max(min(p, 1 - p) for p in PERCENTILES.values()))
    bins = _latency_bins(loaded, queries["latency"], dims, min_calls)
    seen = Counter(g.key for g in groups)
    rng = np.random.default_rng(SEED)
    for g in groups:
        if g.key in bins and seen[g.key] == 1:  # labels of distinct groups can collide: skip
            _test_percentiles(g, bins[g.key], rng)
    return groups


_Bins = tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]  # base, new: (ids, values, counts)


def _latency_bins(
    loaded: Loaded, report: Report, dims: Sequence[str], min_calls: int
) -> dict[tuple[Any, ...], _Bins]:
    """Each group's latency bins on each side, from queries/diff/latency.sql. Its rows come
    sorted by group, side and bin, and may be millions (--by tid,fd): they are cut into groups
    with numpy rather than read one by one."""
    sql, values = prepare(report, by=list(dims), params={"min_calls": min_calls})
    columns = execute(loaded.con, sql, values).fetchnumpy()
    n = len(columns["bin"])
    labels = [np.ma.filled(np.ma.asarray(columns[d]).astype(object), None) for d in dims]
    starts = np.zeros(n, dtype=bool)
    starts[:1] = True
    for label in labels:
        starts[1:] |= label[1:] != label[:-1]
    bounds = [*np.flatnonzero(starts), n]
    side = np.asarray(columns["side"])
    data = [np.asarray(columns[c], dtype=np.float64) for c in ("bin", "latency_ns", "calls")]
    out = {}
    for a, b in itertools.pairwise(bounds):
        cut = a + int(np.searchsorted(side[a:b], 1))
        key = tuple(_plain(label[a]) for label in labels)
        out[key] = (tuple(d[a:cut] for d in data), tuple(d[cut:b] for d in data))
    return out


def _plain(value: Any) -> Any:
    """A Python value for a numpy one, so keys compare and hash like the other query's."""
    return value.item() if isinstance(value, np.generic) else value


def _fetch(
    loaded: Loaded, report: Report, dims: Sequence[str], params: dict[str, Any]
) -> list[dict[str, Any]]:
    sql, values = prepare(report, by=list(dims), params=params)
    cursor = execute(loaded.con, sql, values)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, values_, strict=True)) for values_ in cursor.fetchall()]


def _test_counts(g: _Group, sides: tuple[Side, Side]) -> None:
    """The rate test (every group) and the error-rate test (groups in both with errors)."""
    row = g.row
    calls = [float(row[f"{s}_calls"]) for s in SIDES]
    errors = [float(row[f"{s}_errors"]) for s in SIDES]
    phi = max(
        stats.rate_dispersion(calls[i], float(row[f"{s.name}_calls_sq"]), s.slots)
        for i, s in enumerate(sides)
    )
    g.rate_p = stats.poisson_rates_p(calls[0], sides[0].seconds, calls[1], sides[1].seconds, phi)
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
        g.errors_p = stats.proportions_p(errors[0], calls[0], errors[1], calls[1], phi_errors)


def _test_percentiles(g: _Group, bins: _Bins, rng: np.random.Generator) -> None:
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
        g.percentiles[name] = (stats.quantile_test(ids, counts, p), math.sqrt(var))


def _finish(
    groups: list[_Group],
    sides: tuple[Side, Side],
    tests: int,
    alpha: float,
    min_change: float,
) -> list[GroupDiff]:
    """GroupDiffs with Bonferroni-adjusted p-values and significance, the largest |impact|
    first; intervals are simultaneous over all tests."""
    z = stats.normal_quantile(1 - alpha / (2 * max(1, tests)))

    def adjusted(p_raw: float | None) -> float | None:
        return None if p_raw is None else min(1.0, p_raw * max(1, tests))

    def judged(c: Change, least: float, effect: float | None) -> Change:
        ok = c.p is not None and c.p < alpha and effect is not None and abs(effect) >= least
        if c.low is not None and c.high is not None:  # a percentile: its interval agrees
            ok = ok and (c.low > 0 or c.high < 0)
        return dataclasses.replace(c, significant=ok)

    out = []
    for g in groups:
        row = g.row
        calls = (int(row["base_calls"]), int(row["new_calls"]))
        rates = (calls[i] / s.seconds for i, s in enumerate(sides))
        rate = Change(*rates, p=adjusted(g.rate_p))
        errors = Change(
            *(
                100.0 * row[f"{s}_errors"] / c if c else None
                for s, c in zip(SIDES, calls, strict=True)
            ),
            p=adjusted(g.errors_p),
        )
        time = Change(*(float(row[f"{s.name}_total_ns"]) / 1e3 / s.seconds for s in sides))
        percentiles = {}
        for i, name in enumerate(PERCENTILES):
            c = Change(*(None if row[f"{s}_q"] is None else float(row[f"{s}_q"][i]) for s in SIDES))
            if name in g.percentiles:
                p_raw, se = g.percentiles[name]
                d = c.diff or 0.0
                c = dataclasses.replace(c, p=adjusted(p_raw), low=d - z * se, high=d + z * se)
            percentiles[name] = judged(c, min_change, c.rel)
        out.append(
            GroupDiff(
                g.key,
                calls,
                judged(rate, min_change, rate.rel),
                judged(errors, MIN_ERROR_POINTS, errors.diff),
                time,
                percentiles,
            )
        )
    out.sort(key=lambda g: (-abs(g.impact), -max(g.calls), _sort_key(g.key)))
    return out


def _sort_key(key: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if k is None else str(k) for k in key)


def settings_warnings(base: Recording, new: Recording, dims: Sequence[str]) -> list[str]:
    """What the reader must know before trusting the comparison: settings that differ between
    the recordings, lost events and files left out in either, call sites missing on a side."""
    lines = []
    settings = {
        "hosts": lambda m: m.host,
        "probe modes": lambda m: m.probe,
        "kernels": lambda m: m.kernel,
        "recorder versions": lambda m: m.recorder_version,
        "filters": _filters,
        "stack settings": lambda m: _stacks(m.stacks, m.stack_sample_period),
    }
    for what, get in settings.items():
        values = [sorted({get(f.meta) for f in rec.files}) for rec in (base, new)]
        if values[0] != values[1]:
            shown = [", ".join(v) for v in values]
            lines.append(f"the recordings differ in {what}: base {shown[0]}; new {shown[1]}")
    for name, rec in zip(SIDES, (base, new), strict=True):
        lines += [f"{name} recording: {line}" for line in rec.notices()]
        if ("callsite" in dims or "stack" in dims) and not _has_callsites(rec):
            lines.append(
                f"{name} recording: recorded without call sites (--no-stacks): its call sites "
                "are all empty"
            )
    return lines


def _filters(meta: RecordingMetadata) -> str:
    """The recorder's filters, pids aside: a process restarted between the recordings has a
    new pid, so only whether calls were filtered by pid is compared."""
    filters = {k: v for k, v in meta.filters.items() if v and k != "pids"}
    if meta.filters.get("pids"):
        filters["pids"] = "some"
    return json.dumps(filters, sort_keys=True) if filters else "none"


# -- --fail-on --------------------------------------------------------------------------------

_RULE = re.compile(
    r"(?P<metric>[a-z0-9]+)\s*:\s*(?P<sign>[+-]?)\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>%|[a-zµ]*)"
)
_TIME_UNITS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}


@dataclass(frozen=True)
class FailRule:
    """A regression that fails a run: `p99:+20%`, `p99:+5us`, `rate:+50%`, `errors:+1%`."""

    text: str
    metric: str  # p50 | p90 | p99 | rate | errors
    threshold: float  # fraction (relative), ns (percentile, absolute) or points (errors)
    relative: bool

    def tripped(self, g: GroupDiff) -> bool:
        c = g.change(self.metric)
        if not c.significant or not c.diff or c.diff <= 0:
            return False
        if self.metric == "errors":
            return c.diff >= self.threshold
        return (c.rel or 0.0) >= self.threshold if self.relative else c.diff >= self.threshold

    def describe(self, g: GroupDiff, dims: Sequence[str]) -> str:
        c = g.change(self.metric)
        what = ", ".join(f"{d}={'' if k is None else k}" for d, k in zip(dims, g.key, strict=True))
        if self.metric == "errors":
            values, change = f"{human(c.base)}% → {human(c.new)}% errors", f"{c.diff:+.2g} points"
        else:
            fmt, unit = (human, " calls/s") if self.metric == "rate" else (_ns, " ns")
            values = f"{fmt(c.base)} → {fmt(c.new)}{unit}"
            rel = c.rel or 0.0
            change = "new" if math.isinf(rel) else f"{rel * 100:+.0f}%"
        return f"{self.text} tripped by {what}: {self.metric} {values} ({change}, p={c.p:.2g})"


def parse_fail_on(texts: Sequence[str] | str | None) -> list[FailRule]:
    """Rules from 'p99:+20%,rate:+50%' (or a list of such strings). Raises UserError."""
    items = [texts] if isinstance(texts, str) else list(texts or [])
    rules = []
    for text in (t.strip() for item in items for t in item.split(",")):
        if not text:
            continue
        m = _RULE.fullmatch(text.lower())
        hint = "e.g. p99:+20%, p99:+5us, rate:+50%, errors:+1% (error-rate points)"
        if not m or m["metric"] not in METRICS or m["unit"] not in ("%", "", *_TIME_UNITS):
            raise UserError(f"bad --fail-on {text!r}: give METRIC:+THRESHOLD, {hint}")
        if m["sign"] == "-":
            raise UserError(f"bad --fail-on {text!r}: only increases fail a run (use +N)")
        metric, value, unit = m["metric"], float(m["value"]), m["unit"]
        if unit == "%":
            rule = FailRule(text, metric, value if metric == "errors" else value / 100, True)
        elif metric not in PERCENTILES:
            raise UserError(f"bad --fail-on {text!r}: {metric} needs a threshold in %, {hint}")
        elif not unit:
            raise UserError(f"bad --fail-on {text!r}: {metric} needs a unit: % or ns, us, ms, s")
        else:
            rule = FailRule(text, metric, value * _TIME_UNITS[unit], False)
        if rule.threshold <= 0:
            raise UserError(f"bad --fail-on {text!r}: the threshold must be more than zero")
        rules.append(rule)
    return rules


def regressions(result: DiffResult, rules: Sequence[FailRule]) -> list[str]:
    """One line per (rule, group) where a significant regression passes the rule's threshold."""
    return [r.describe(g, result.dims) for r in rules for g in result.groups if r.tripped(g)]
