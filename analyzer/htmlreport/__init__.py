"""Self-contained HTML pages: one recording's report, or two recordings compared.

    text = report_html(["rec/"])                 # summary, latency, timeline, flame graph, errors
    text = diff_html(["before/"], ["after/"])    # diff table, overlays, differential flame graph

Charts are drawn by plotly.js, which the `plotly` Python package ships and which is inlined in
the page with the figures' data (an optional dependency: `pip install 'sockopt-trace[html]'`);
the page needs no network to open. All aggregation happens in DuckDB (`data`), so the page's
size does not grow with the number of events: about 5 MB, nearly all of it plotly.js.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sockopt_trace.analyzer.dimensions import parse_by
from sockopt_trace.analyzer.filters import Filters
from sockopt_trace.analyzer.htmlreport.data import DEFAULT_BY, SideData, gather
from sockopt_trace.analyzer.htmlreport.difftable import diff_table_html
from sockopt_trace.analyzer.htmlreport.page import diff_page, report_page
from sockopt_trace.analyzer.load import load
from sockopt_trace.errors import UserError

INSTALL_HINT = "pip install 'sockopt-trace[html]'"


def plotly_js() -> tuple[str, str]:
    """(plotly.js source, its version), or a UserError saying how to install it."""
    try:
        from plotly.offline import get_plotlyjs, get_plotlyjs_version
    except ImportError:
        raise UserError(f"the html report needs the plotly package: {INSTALL_HINT}") from None
    return get_plotlyjs(), get_plotlyjs_version()


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
) -> str:
    """The report page of one recording (files, directories or globs read together)."""
    js, version = plotly_js()
    dims = parse_by(by) if by else list(DEFAULT_BY)
    side = _side(specs, filters, dims, top, skip_bad, allow_external)
    return report_page(side).render(js, version)


def diff_html(
    base: Sequence[str | Path],
    new: Sequence[str | Path],
    *,
    filters: Filters = Filters(),
    by: Sequence[str] | str | None = None,
    top: int = 6,
    skip_bad: bool = False,
    allow_external: bool = False,
) -> str:
    """The page comparing recording `new` with recording `base`: the diff library's table
    (with its tests), then both recordings' distributions, timelines and stacks."""
    from sockopt_trace.analyzer.diff import diff

    js, version = plotly_js()
    dims = parse_by(by) if by else list(DEFAULT_BY)
    result = diff(
        base,
        new,
        by=dims,
        filters=filters,
        skip_bad=skip_bad,
        allow_external=allow_external,
    )
    sides = [_side(s, filters, dims, top, skip_bad, allow_external) for s in (base, new)]
    page = diff_page(*sides, diff_table_html(result), top=top)
    return page.render(js, version)


__all__ = ["INSTALL_HINT", "Filters", "diff_html", "plotly_js", "report_html"]
