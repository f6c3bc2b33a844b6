"""The diff table of the two-recording page, from the diff library's model (`analyzer.diff`):
per group, each metric as base -> new with its relative change, adjusted p-value and (for
percentiles) the confidence interval of the difference; significant changes coloured, red for
more (slower, more frequent, more failures), green for less.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import Any

from sockopt_trace.analyzer import render_diff
from sockopt_trace.analyzer.diff.model import Change, DiffResult
from sockopt_trace.analyzer.htmlreport.blocks import lead, notices, table
from sockopt_trace.analyzer.htmlreport.fmt import duration, number, percent

# (column heading, metric, how a value reads)
METRICS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("calls/s", "rate", lambda v: number(v, 1)),
    ("p50", "p50", duration),
    ("p90", "p90", duration),
    ("p99", "p99", duration),
    ("failed", "errors", percent),
)


def _change_cell(c: Change, fmt: Callable[[float], str], *, points: bool = False) -> str:
    """One metric of one group: 'base → new', the change, the evidence for it and, with
    replicates, the range of the recordings' values on each side (the spread between runs)."""
    if c.base is None or c.new is None:
        return '<td class="num"></td>'
    main = f"{fmt(c.base)} → {fmt(c.new)}"
    d, rel = c.diff, c.rel
    change = render_diff.cell_change(c, fmt, points=points)
    evidence = [_p_value(c.p)]
    if c.low is not None and c.high is not None:
        evidence.append(f"CI {_signed(c.low, fmt)} … {_signed(c.high, fmt)}")
    if c.beyond_host is not None and not points:
        evidence.append(f"{c.beyond_host * 100:+.0f}% beyond the host's")
    css = ("up" if (d or 0) > 0 else "down") if c.significant else ""
    mark = render_diff.mark(c, tested=False)
    spread = ""
    if c.spread is not None:
        runs = " → ".join(_range(lo, hi, fmt) for lo, hi in c.spread)
        spread = f'<br><small class="spread">runs: {html.escape(runs)}</small>'
    return (
        f'<td class="num" data-v="{rel if rel is not None and math.isfinite(rel) else 0}">'
        f'<span class="v">{html.escape(main)}</span><br>'
        f'<span class="{css}">{html.escape(change)}{mark}</span> '
        f"<small>{html.escape(', '.join(evidence))}</small>{spread}</td>"
    )


def _range(lo: float, hi: float, fmt: Callable[[float], str]) -> str:
    if math.isnan(lo):
        return "none"
    return fmt(lo) if lo == hi else f"{fmt(lo)} to {fmt(hi)}"


def _p_value(p: float | None) -> str:
    if p is None:
        return "not tested"
    return "p < 0.0001" if p < 1e-4 else f"p {p:.2g}"


def _rate(us_per_s: float) -> str:
    """Microseconds in getsockopt per second of wall clock."""
    return f"{us_per_s:,.0f}" if abs(us_per_s) >= 100 else f"{us_per_s:.3g}"


def _signed(value: float, fmt: Callable[[float], str]) -> str:
    return ("+" if value >= 0 else "-") + fmt(abs(value))


def diff_table_html(result: DiffResult, top: int = 30) -> str:
    """The whole 'what changed' section: warnings, the changed groups, new and vanished
    groups and call sites, and how significance was decided."""
    both = result.both
    flagged = sum(1 for g in both if g.significant)
    dims = list(result.dims)
    head = "".join(f"<th>{html.escape(d)}</th>" for d in dims)
    head += '<th class="num">time in getsockopt</th>'
    head += "".join(f'<th class="num">{html.escape(h)}</th>' for h, _, _ in METRICS)
    rows = []
    for g in both[:top]:
        cells = "".join(f'<td class="wrap">{html.escape(_text(k))}</td>' for k in g.key)
        t = g.time
        impact = g.impact
        cells += (
            f'<td class="num" data-v="{impact}">{_rate(t.base or 0)} → {_rate(t.new or 0)} µs/s'
            f"<br><span>{'+' if impact >= 0 else '-'}{_rate(abs(impact))} µs/s</span></td>"
        )
        for _, metric, fmt in METRICS:
            cells += _change_cell(g.change(metric), fmt, points=metric == "errors")
        rows.append(f"<tr>{cells}</tr>")
    against = (
        f"the variation between recordings ({len(result.base.replicates)} base, "
        f"{len(result.new.replicates)} new)"
        if result.replicated
        else "chance within the two runs"
    )
    noisy = sum(1 for g in both if g.noise and not g.significant)
    summary = (
        f"{flagged} of {len(both)} groups in both recordings changed significantly (*: beyond "
        f"{against}, alpha {result.alpha:g} over all {result.tests:,} tests, Bonferroni; "
        f"changes under {result.min_change * 100:g}% are not flagged)"
        + (f"; {noisy} only within run-to-run noise (?)" if noisy else "")
        + ". Largest change in time spent in getsockopt per second first"
        + (f"; the first {top} shown." if len(both) > top else ".")
        + " Under each value: the change, its adjusted p-value"
        + (
            " and the range of the recordings' values before → after (the spread between runs)."
            if result.replicated
            else " and, for percentiles, the confidence interval of new - base."
        )
    )
    main = (
        f'<div class="scroll"><table class="sortable diff"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        if rows
        else '<p class="empty">No group is in both recordings.</p>'
    )
    tables = [*render_diff.one_sided(result, "new", top)]
    tables += render_diff.one_sided(result, "vanished", top)
    host = [render_diff.host(result)] if result.host else []
    extra = [
        f"<h3>{html.escape(res.title or '')}</h3>{table(res)}"
        for res in [*tables, render_diff.method(result)]
    ]
    before = [notices([*render_diff.limits(result), *result.warnings]), lead(html.escape(summary))]
    hosts = [f"<h3>{html.escape(h.title or '')}</h3>{table(h)}" for h in host]
    return "\n".join([*before, *hosts, main, *extra])


def _text(value: Any) -> str:
    return "" if value is None else str(value)
