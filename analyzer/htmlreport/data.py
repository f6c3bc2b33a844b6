"""What the HTML pages show of one recording, aggregated in DuckDB: a few thousand numbers at
most, whatever the number of events (histogram bins, time buckets, distinct stacks, top rows).

Everything here reuses the canned reports (summary, latency, timeline, errors, callsites,
processes) and the histogram query beside them in `queries/html/`, so the page and the command
line agree on every number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sockopt_trace.analyzer.database import Loaded, execute
from sockopt_trace.analyzer.filters import Filters
from sockopt_trace.analyzer.reports import load_queries, prepare, run_report
from sockopt_trace.analyzer.stacks import StackSource, folded_stacks, stack_source
from sockopt_trace.analyzer.summary import RecordingSummary, summarize, total
from sockopt_trace.analyzer.timespec import to_ns

DEFAULT_BY = ("comm", "level", "optname")
PERCENTILES = (0.5, 0.9, 0.99, 0.999)
# Histogram bins per factor of ten of latency: fine enough that the CDF drawn through their
# edges passes within 2.3% of the exact percentiles marked on it (the histograms show every 5
# bins merged). Exact quantiles at many probabilities instead cost a scan per ~20 of them.
BINS_PER_DECADE = 100
MAX_STACKS = 5000  # distinct stacks kept for the flame graph; the rest are summed as one
OTHER_STACKS = "[other stacks]"
MAX_BUCKETS = 300  # time buckets of the timeline at most
# Timeline bucket widths to choose from: 1, 2, 5 x 10^k ns from 1 ms, then minutes and hours.
INTERVALS_NS = tuple(m * 10**e for e in range(6, 10) for m in (1, 2, 5)) + tuple(
    s * 10**9 for s in (10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400)
)


@dataclass
class Distribution:
    """Calls per logarithmic latency bin, and exact percentiles, of one group of calls."""

    label: tuple[str, ...]
    calls: int
    bins: dict[int, int]  # bin index -> calls (see queries/html/histogram.sql)
    percentiles: dict[float, float] = field(default_factory=dict)  # PERCENTILES -> ns


@dataclass
class Timeline:
    interval_ns: int
    start_ns: int  # of the first bucket
    calls: list[int]  # one value per bucket, from start_ns
    calls_per_s: list[float]  # over the part of each bucket the recording span covers
    errors: list[int]
    p99_ns: list[float | None]
    mean_ns: list[float | None]


@dataclass
class SideData:
    """Everything one recording contributes to a page."""

    title: str  # what the recording was given as
    loaded: Loaded
    by: tuple[str, ...]
    summary: dict[str, Any]
    facts: RecordingSummary  # the recordings' metadata, pooled
    notices: list[str]  # lost events, files left out: one line each
    overall: Distribution
    groups: list[Distribution]
    latency: Any  # render.Result: the latency report's rows
    timeline: Timeline
    stack_source: StackSource
    stacks: list[tuple[str, int, int]]  # (folded, calls, time_ns), most calls first
    errors: dict[str, Any]  # title -> render.Result
    error_matrix: Any  # render.Result: errors by errno and option
    callsites: Any
    processes: Any

    @property
    def filters(self) -> Filters:
        return self.loaded.filters

    @property
    def start_ns(self) -> int:
        return window(self.loaded)[0]

    @property
    def end_ns(self) -> int:
        return window(self.loaded)[1]

    @property
    def seconds(self) -> float:
        """The recording span after --since/--until (summed over recordings; `span`)."""
        return sum(s.seconds for s in self.loaded.spans.values())

    @property
    def exposure(self) -> float:
        """Seconds that turn calls into the summed per-recording rate (the span itself for one
        recording): what the differential flame graph divides by."""
        calls, rate = self.summary.get("events") or 0, self.summary.get("calls_per_s") or 0
        return calls / rate if calls and rate else max(self.seconds, 1e-3)


def window(loaded: Loaded) -> tuple[int, int]:
    """(start, end) ns of the recording's span, narrowed by --since/--until."""
    rec = loaded.recording
    start, end = loaded.window.clip(rec.start_ns, rec.end_ns)
    return start, max(start, end)


def gather(
    title: str,
    loaded: Loaded,
    *,
    by: Sequence[str] = DEFAULT_BY,
    top: int = 8,
    top_rows: int = 15,
) -> SideData:
    """Run every aggregation a page needs over `loaded`'s `events` view."""
    con = loaded.con
    by = tuple(by)
    summary_result = run_report(con, "summary")
    summary = dict(zip(summary_result.columns, next(iter(summary_result.rows)), strict=True))
    latency = run_report(con, "latency", by=list(by), params={"top": top})
    groups = histograms(loaded, by, top)
    for row in latency.rows:  # the exact percentiles of the same groups
        record = dict(zip(latency.columns, row, strict=True))
        for g in groups:
            if g.label == tuple(str(record[d]) for d in by):
                g.percentiles = {p: record[_column(p)] for p in PERCENTILES}
    source = stack_source(loaded.recording)
    return SideData(
        title=title,
        loaded=loaded,
        by=by,
        summary=summary,
        facts=recording_facts(loaded),
        notices=loaded.recording.notices(),
        overall=overall_distribution(loaded, groups_by_host=histograms(loaded, ("host",), 10**6)),
        groups=groups,
        latency=latency,
        timeline=timeline(loaded, *window(loaded)),
        stack_source=source,
        stacks=top_stacks(loaded, source),
        errors={
            "by errno": run_report(con, "errors", by=["errno"], params={"top": top_rows}),
            "by option": run_report(
                con, "errors", by=["level", "optname"], params={"top": top_rows}
            ),
            "by call site": run_report(con, "errors", by=["callsite"], params={"top": top_rows}),
        },
        error_matrix=run_report(
            con, "errors", by=["level", "optname", "errno"], params={"top": 60}
        ),
        callsites=run_report(con, "callsites", params={"top": top_rows}),
        processes=run_report(con, "processes", params={"top": top_rows}),
    )


def histograms(loaded: Loaded, by: Sequence[str], top: int) -> list[Distribution]:
    """The `top` busiest groups' latency histograms, busiest first."""
    params = {"top": top, "bins_per_decade": BINS_PER_DECADE}
    sql, values = prepare(load_queries("html")["histogram"], by=list(by), params=params)
    cursor = execute(loaded.con, sql, values)
    columns = [d[0] for d in cursor.description]
    groups: dict[tuple[str, ...], Distribution] = {}
    for row in cursor.fetchall():
        record = dict(zip(columns, row, strict=True))
        label = tuple(str(record[d]) for d in by)
        g = groups.setdefault(label, Distribution(label, int(record["group_calls"]), {}))
        g.bins[int(record["bin"])] = int(record["calls"])
    return list(groups.values())


def _column(p: float) -> str:
    """0.5 -> 'p50_ns', 0.999 -> 'p999_ns': the latency report's column names."""
    return "p" + f"{p * 100:g}".replace(".", "") + "_ns"


def overall_distribution(loaded: Loaded, groups_by_host: list[Distribution]) -> Distribution:
    """All calls: the per-host histograms summed (hosts are few), and exact percentiles."""
    bins: dict[int, int] = {}
    for g in groups_by_host:
        for b, n in g.bins.items():
            bins[b] = bins.get(b, 0) + n
    sql, _ = prepare(load_queries("html")["overall"])
    cursor = execute(loaded.con, sql)
    columns = [d[0] for d in cursor.description]
    row = dict(zip(columns, cursor.fetchone() or [None] * len(columns), strict=True))
    percentiles = {p: row[_column(p)] for p in PERCENTILES if row.get(_column(p)) is not None}
    return Distribution(("all calls",), sum(bins.values()), bins, percentiles)


def choose_interval(span_ns: int) -> int:
    for interval in INTERVALS_NS:
        if span_ns / interval <= MAX_BUCKETS:
            return interval
    return INTERVALS_NS[-1]


def timeline(loaded: Loaded, start_ns: int, end_ns: int) -> Timeline:
    """The timeline report at a width that gives at most MAX_BUCKETS buckets, with the empty
    buckets (which the report leaves out) filled in as zero calls."""
    interval = choose_interval(end_ns - start_ns)
    result = run_report(loaded.con, "timeline", params={"interval": f"{interval}ns"})
    rows = [dict(zip(result.columns, r, strict=True)) for r in result.rows]
    if not rows:
        return Timeline(interval, start_ns - start_ns % interval, [], [], [], [], [])
    # The report's buckets start at multiples of the interval since the epoch.
    first = start_ns - start_ns % interval
    index = {to_ns(r["time"]) // interval - first // interval: r for r in rows}
    count = max(max(index) + 1, 1)
    lo = min(0, min(index))
    calls, rates, errors, p99, mean = [], [], [], [], []
    for i in range(lo, count):
        r = index.get(i)
        calls.append(int(r["calls"]) if r else 0)
        rates.append(float(r["calls_per_s"]) if r else 0.0)
        errors.append(int(r["errors"]) if r else 0)
        p99.append(float(r["p99_ns"]) if r else None)
        mean.append(float(r["mean_ns"]) if r else None)
    return Timeline(interval, first + lo * interval, calls, rates, errors, p99, mean)


def top_stacks(loaded: Loaded, source: StackSource) -> list[tuple[str, int, int]]:
    """The MAX_STACKS stacks with most calls, and the rest summed as one root frame."""
    kept: list[tuple[str, int, int]] = []
    other_calls = other_time = 0
    for folded, calls, time_ns in folded_stacks(loaded.con, source):
        if len(kept) < MAX_STACKS:
            kept.append((folded, calls, time_ns))
        else:
            other_calls += calls
            other_time += time_ns
    if other_calls:
        kept.append((OTHER_STACKS, other_calls, other_time))
    return kept


def recording_facts(loaded: Loaded) -> RecordingSummary:
    """From the files' metadata (`summary`): the recordings together, within the window."""
    rec = loaded.recording
    return total(summarize(rec, loaded.window), rec)
