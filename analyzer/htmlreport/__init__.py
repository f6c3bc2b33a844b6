"""Self-contained HTML pages: one recording's report, or two recordings compared.

    text = report_html(["rec/"])                 # summary, latency, timeline, flame graph, errors
    text = diff_html(["before/"], ["after/"])    # diff table, overlays, differential flame graph

Charts are drawn by plotly.js, which the `plotly` Python package ships and which is inlined in
the page with the figures' data (an optional dependency: `pip install 'sockopt-trace[html]'`);
the page needs no network to open. All aggregation happens in DuckDB (`data`), so the page's
size does not grow with the number of events: about 5 MB, nearly all of it plotly.js, or a few
hundred kB when the page loads plotly.js from a file beside it or the CDN (`plotlyjs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sockopt_trace.analyzer.dimensions import parse_by
from sockopt_trace.analyzer.filters import Filters
from sockopt_trace.analyzer.htmlreport.data import DEFAULT_BY, SideData, gather
from sockopt_trace.analyzer.htmlreport.difftable import diff_table_html
from sockopt_trace.analyzer.htmlreport.page import diff_page, report_page
from sockopt_trace.analyzer.htmlreport.plotlyjs import INSTALL_HINT, PlotlyJs, choose, plotly_js
from sockopt_trace.analyzer.load import load
from sockopt_trace.analyzer.reports import ALL
from sockopt_trace.errors import UserError


def _side(
    specs: Sequence[str | Path],
    filters: Filters,
    by: Sequence[str],
    top: int,
    skip_bad: bool,
    allow_external: bool,
) -> SideData:
    loaded = load(specs, filters, skip_bad=skip_bad, allow_external=allow_external)
    try:
        return gather(" ".join(map(str, specs)), loaded, by=by, top=top)
    finally:
        loaded.con.close()


def report_html(
    specs: Sequence[str | Path],
    *,
    filters: Filters = Filters(),
    by: Sequence[str] | str | None = None,
    top: int = 8,
    skip_bad: bool = False,
    allow_external: bool = False,
    plotly: PlotlyJs | None = None,
) -> str:
    """The report page of one recording (files, directories or globs read together); plotly.js
    inlined unless `plotly` says otherwise (`plotlyjs.choose`)."""
    plotly = plotly or choose("inline", Path("."))
    dims = parse_by(by) if by else list(DEFAULT_BY)
    top = _top(top)
    side = _side(specs, filters, dims, top, skip_bad, allow_external)
    return report_page(side).render(plotly)


def diff_html(
    base: Sequence[str | Path],
    new: Sequence[str | Path],
    *,
    filters: Filters = Filters(),
    by: Sequence[str] | str | None = None,
    top: int = 6,
    skip_bad: bool = False,
    allow_external: bool = False,
    plotly: PlotlyJs | None = None,
) -> str:
    """The page comparing recording `new` with recording `base`: the diff library's table
    (with its tests), then both recordings' distributions, timelines and stacks."""
    from sockopt_trace.analyzer.diff import diff

    plotly = plotly or choose("inline", Path("."))
    dims = parse_by(by) if by else list(DEFAULT_BY)
    top = _top(top)
    result = diff(
        base,
        new,
        by=dims,
        filters=filters,
        skip_bad=skip_bad,
        allow_external=allow_external,
    )
    sides = [_side(s, filters, dims, top, skip_bad, allow_external) for s in (base, new)]
    page = diff_page(sides[0], sides[1], diff_table_html(result), top=top)
    return page.render(plotly)


def _top(top: int) -> int:
    """--top: groups to draw, 0 for all (as in every command)."""
    if top < 0:
        raise UserError(f"bad --top {top}: 0 (all) or more")
    return top or ALL


__all__ = ["INSTALL_HINT", "Filters", "PlotlyJs", "choose", "diff_html", "plotly_js", "report_html"]
