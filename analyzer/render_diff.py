"""A diff as tables (`Result`s) for `render`: what people read (table, markdown) and every
number for machines (csv, json). The HTML page builds on the same pieces (`one_sided`,
`host`, `method`, `cell_change`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sockopt_trace.analyzer.diff.gate import Trip
from sockopt_trace.analyzer.diff.model import (
    MIN_BEYOND,
    MIN_ERROR_POINTS,
    NOISE_FLOOR,
    PERCENTILES,
    REPLICATES,
    SLOTS,
    Change,
    DiffResult,
    GroupDiff,
)
from sockopt_trace.analyzer.render import Result, human
from sockopt_trace.analyzer.summary import summarize, total

SIGNIFICANT = " *"  # marks in the human tables
NOISE = " ?"
NOT_TESTED = " ~"
REPEAT_HINT = "sockopt-trace record --repeat 5 -o DIR -- COMMAND"


# -- machine output: every number, for csv and json --------------------------------------------


def groups_table(
    result: DiffResult, groups: Iterable[GroupDiff] | None = None, dims: Sequence[str] = ()
) -> Result:
    """One row per group with every value, change, p-value and verdict (csv, json)."""
    columns = [*(dims or result.dims), "status", "impact_us_per_s", "significant", "noise"]
    columns += ["base_calls", "new_calls"]
    for unit in ("calls_per_s", "error_pct"):
        columns += [f"base_{unit}", f"new_{unit}", f"{unit}_change", f"{unit}_change_pct"]
        columns += _judgement_columns(unit)
    columns += ["base_time_us_per_s", "new_time_us_per_s"]
    for name in PERCENTILES:
        columns += [f"base_{name}_ns", f"new_{name}_ns", f"{name}_change_ns"]
        columns += [f"{name}_change_pct", f"{name}_low_ns", f"{name}_high_ns"]
        columns += _judgement_columns(name)
    rows = []
    for g in result.groups if groups is None else groups:
        row: list[Any] = [*g.key, g.status, g.impact, ",".join(g.significant), ",".join(g.noise)]
        row += g.calls
        for c in (g.rate, g.errors):
            row += [c.base, c.new, c.diff, _pct(c.rel), *_judgement(c)]
        row += [g.time.base, g.time.new]
        for c in g.percentiles.values():
            row += [c.base, c.new, c.diff, _pct(c.rel), c.low, c.high, *_judgement(c)]
        rows.append(row)
    return Result(columns, rows, "groups")


def _judgement_columns(name: str) -> list[str]:
    """The p-value, verdict, change beyond the host's and replicates' range of a metric."""
    columns = [f"{name}_p", f"{name}_significant", f"{name}_noise", f"{name}_beyond_host"]
    return columns + [f"{side}_{name}_{end}" for side in ("base", "new") for end in ("min", "max")]


def _judgement(c: Change) -> list[Any]:
    spread = c.spread or ((None, None), (None, None))
    beyond = c.beyond_host
    return [c.p, c.significant, c.noise, beyond, *spread[0], *spread[1]]


def machine_sections(result: DiffResult, top: int | None = None) -> list[Result]:
    """The recordings, the host's shift, the groups (top by impact), the call sites found in
    one recording only, and the method: json prints them keyed by title, csv the groups."""
    callsites = groups_table(
        result, result.callsites[:top] if top else result.callsites, ("callsite",)
    )
    callsites.title = "callsites"
    groups = groups_table(result, result.groups[:top] if top else result.groups)
    shifts = host(result)
    shifts.title = "host"
    return [recordings(result), shifts, groups, callsites, method(result)]


# -- human output: table and markdown ---------------------------------------------------------


def sections(
    result: DiffResult, top: int | None = 20, *, warnings: bool = True, explain: bool = False
) -> list[Result]:
    """The recordings, warnings and limits, the host's shift, groups in both by impact
    ("before → after change", * significant, ? within run-to-run noise), groups and call
    sites in one recording only, and with `explain` the method (json always has it)."""
    both = result.both
    shown = [g for i, g in enumerate(both) if not top or i < top or g.significant]
    flagged = sum(1 for g in both if g.significant)
    noisy = sum(1 for g in both if g.noise and not g.significant)
    out = [recordings(result)]
    lines = [*limits(result), *(result.warnings if warnings else [])]
    if lines:
        out.append(Result(["warning"], [(w,) for w in lines], "warnings"))
    if result.host:
        out.append(host(result))
    columns = [*result.dims, "time_us_per_s", "calls_per_s"]
    columns += [*(f"{p}_ns" for p in PERCENTILES), "error_pct"]
    rows = [
        (
            *g.key,
            _cell(g.time, human, signed=True),
            _cell(g.rate, human),
            *(_cell(c, ns) for c in g.percentiles.values()),
            _cell(g.errors, human, points=True),
        )
        for g in shown
    ]
    against = "the variation between recordings" if result.replicated else "chance"
    title = f"changes: {flagged} of {len(both)} groups in both changed beyond {against} (*)"
    if noisy:
        title += f", {noisy} only within run-to-run noise (?)"
    title += f"; the top {min(top or len(both), len(both))} by change in time, and every *"
    out.append(Result(columns, rows, title))
    for status in ("new", "vanished"):
        out += one_sided(result, status, top)
    return [*out, method(result)] if explain else out


def limits(result: DiffResult) -> list[str]:
    """What the comparison can and cannot see, in plain words (single pairs)."""
    if result.replicated:
        return []
    floors = ", ".join(f"{m} {v * 100:g}%" for m, v in NOISE_FLOOR.items())
    lines = [
        "one recording per side: changes are tested within the two runs, which cannot see "
        "run-to-run noise (CPU frequency, caches, placement, neighbours move a whole run); "
        "a change shared by every group (a slower host, more load, or a change that slows "
        "every call alike) is at most ? (within noise); a group's change counts (*) only "
        f"beyond the other groups' by more than runs of one workload differ ({floors}); "
        f"compare replicates for a real test: {REPEAT_HINT}"
    ]
    if not result.host:
        lines.append(
            "fewer than 3 groups in both recordings: there is no host shift to net out, so "
            "no change in a group in both can be told from run-to-run noise"
        )
    return lines


def host(result: DiffResult) -> Result:
    """How all groups moved together (the median group's change) and, with replicates, how
    much whole recordings of one side differ, and the test of that shift."""
    rows = []
    for metric, h in result.host.items():
        verdict = "significant" if h.significant else "" if result.replicated else "not tested"
        spread = None if h.spread is None else f"±{h.spread * 100:.0f}%"
        rows.append((metric, f"{h.shift * 100:+.1f}%", spread, h.p, verdict))
    columns = ["metric", "all_groups_change", "runs_vary", "p", "verdict"]
    return Result(columns, rows, "host: all groups together (the median group's change)")


def one_sided(result: DiffResult, status: str, top: int | None) -> list[Result]:
    """The groups, then the call sites, found only in the new (`status` new) or only in the
    base recording (vanished): a table each, if any."""
    out = []
    for groups, what, dims in (
        (result.groups, "groups", result.dims),
        (result.callsites, "call sites", ("callsite",)),
    ):
        chosen = [g for g in groups if g.status == status]
        if not chosen:
            continue
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
        chance = "in every recording, " if result.replicated else ""
        title = (
            f"{status} {what}: {len(chosen)}, only in the {where} recording "
            f"(significant: {chance}more calls than chance allows)"
        )
        out.append(Result(columns, rows, title))
    return out


def recordings(result: DiffResult) -> Result:
    """One row per side: what was compared (files, recordings, hosts, recording span (summed
    over its recordings, as `summary` and `info` show it), calls, settings)."""
    columns = ["side", "recording", "recordings", "hosts", "recording_span_s", "calls"]
    columns += ["calls_per_s", "time_us_per_s", "lost", "probe", "stacks"]
    rows = []
    for i, side in enumerate((result.base, result.new)):
        facts = total(summarize(side.recording))
        calls = sum(g.calls[i] for g in result.groups)
        rate = sum((g.rate.base, g.rate.new)[i] or 0.0 for g in result.groups)
        time_us = sum((g.time.base, g.time.new)[i] or 0.0 for g in result.groups)
        rows.append(
            (
                side.name,
                " ".join(side.specs),
                len(side.replicates),
                ", ".join(facts.hosts),
                side.seconds,
                calls,
                rate,
                time_us,
                facts.lost_total,
                ", ".join(facts.probes),
                ", ".join(facts.stacks),
            )
        )
    return Result(columns, rows, "recordings")


def method(result: DiffResult) -> Result:
    """How each metric was tested and when a change counts as significant."""
    least = f"change >= {result.min_change * 100:g}%"
    rows = _replicate_method(result, least) if result.replicated else _pair_method(result, least)
    rows += [
        ("time_us_per_s", "not tested: the impact that ranks the groups", ""),
        (
            "alpha",
            f"{result.alpha:g} for all {result.tests:,} tests together (Bonferroni): p values "
            "adjusted" + ("" if result.replicated else ", intervals simultaneous"),
            f"{SIGNIFICANT.strip()}: significant",
        ),
    ]
    return Result(["metric", "method", "significant when"], rows, "method")


def _replicate_method(result: DiffResult, least: str) -> list[tuple[str, str, str]]:
    k = f"{len(result.base.replicates)} base and {len(result.new.replicates)} new recordings"
    net = "net of each recording's effect on all its groups (the median)"
    return [
        (
            "calls_per_s, p50/p90/p99_ns",
            f"one value per recording ({k}), in logs, {net}; the change beyond the host's "
            "(the median group's) against the spread between recordings: Student's t, "
            "variances moderated over the groups (empirical Bayes)",
            f"p < alpha, {least} beyond the host's; or the host's change significant",
        ),
        (
            "error_pct",
            f"one error share per recording ({k}); Student's t against the spread between "
            "recordings, variances moderated over the groups",
            f"p < alpha, change >= {MIN_ERROR_POINTS:g} points",
        ),
        (
            "host",
            "the median group's change against the spread of whole recordings within each "
            f"side (Student's t, {len(result.base.replicates) + len(result.new.replicates) - 2} "
            "degrees of freedom)",
            f"p < alpha, {least}",
        ),
        (
            "new/vanished",
            "each recording of the side where the group is: Poisson rate test against none "
            f"in the other side's time, over-dispersion over {SLOTS} time slots",
            "every recording p < alpha",
        ),
    ]


def _pair_method(result: DiffResult, least: str) -> list[tuple[str, str, str]]:
    slots = f"over {SLOTS} time slots of each recording"
    floors = ", ".join(f"{m} {v * 100:g}%" for m, v in NOISE_FLOOR.items())
    return [
        (
            "calls_per_s",
            "Poisson rate test, exact, conditional on the total; counts divided by their "
            f"over-dispersion {slots}",
            f"p < alpha, {least}",
        ),
        (
            "p50/p90/p99_ns",
            "Mood's quantile test: Fisher's exact test at the pooled percentile; interval: "
            f"bootstrap over all calls ({REPLICATES:,} replicates)",
            f"p < alpha, {least}, interval excludes 0; {NOT_TESTED.strip()} not tested: "
            f"< {MIN_BEYOND} calls beyond the percentile",
        ),
        (
            "error_pct",
            f"Fisher's exact test; counts divided by the over-dispersion of errors {slots}",
            f"p < alpha, change >= {MIN_ERROR_POINTS:g} points",
        ),
        (
            "run-to-run noise",
            "calls/s and percentiles: the change net of the host's (the median group's, with "
            "3 groups or more) must pass the noise floor measured between identical runs "
            f"({floors})",
            f"{NOISE.strip()}: passes the test above, not the floor",
        ),
    ]


def _pct(rel: float | None) -> float | None:
    return None if rel is None else rel * 100


def ns(value: float | None) -> str:
    """A latency in ns as the tables show it: 1,234."""
    return "" if value is None else f"{round(value):,}"


def cell_change(c: Change, fmt: Callable[[Any], str], *, points: bool = False) -> str:
    """The change alone: '+12%', '-0.5 pts', 'new' (empty when there is none)."""
    d, rel = c.diff or 0.0, c.rel or 0.0
    if not d:
        return ""
    if points:
        return f"{d:+.2g} pts" if abs(d) < 1 else f"{d:+,.1f} pts"
    return "new" if math.isinf(rel) else f"{rel * 100:+.{0 if abs(rel) >= 0.1 else 1}f}%"


def mark(c: Change, *, tested: bool = True) -> str:
    """* significant, ? within run-to-run noise, ~ not tested (where a test was expected)."""
    if c.significant:
        return SIGNIFICANT
    if c.noise:
        return NOISE
    return NOT_TESTED if tested and not c.tested else ""


def _cell(
    c: Change, fmt: Callable[[Any], str], *, signed: bool = False, points: bool = False
) -> str:
    """'base → new +12% *' for the human tables: the change relative to base (or signed, in
    the values' unit, or in percentage points), then its mark."""
    if c.base is None or c.new is None:
        return ""
    text = f"{fmt(c.base)} → {fmt(c.new)}"
    d = c.diff or 0.0
    if signed and d:
        text += f" {'+' if d > 0 else '-'}{fmt(abs(d))}"
    elif d:
        text += " " + cell_change(c, fmt, points=points)
    return text + mark(c, tested=fmt is ns)


def trip_line(trip: Trip, dims: Sequence[str]) -> str:
    """What `--fail-on` prints for a tripped rule: the rule, the group, the values, p."""
    g, metric = trip.group, trip.rule.metric
    c = g.change(metric)
    what = ", ".join(f"{d}={'' if k is None else k}" for d, k in zip(dims, g.key, strict=True))
    if metric == "errors":
        values, change = f"{human(c.base)}% → {human(c.new)}% errors", f"{c.diff or 0:+.2g} points"
    else:
        unit = " calls/s" if metric == "rate" else " ns"
        fmt = human if metric == "rate" else ns
        values = f"{fmt(c.base)} → {fmt(c.new)}{unit}"
        rel = c.rel or 0.0
        change = "new" if math.isinf(rel) else f"{rel * 100:+.0f}%"
    return f"{trip.rule.text} tripped by {what}: {metric} {values} ({change}, p={c.p or 0:.2g})"
