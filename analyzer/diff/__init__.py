"""Compare two recordings: what got slower, more frequent, or failed more, with confidence.

    result = diff(["before/"], ["after/"], by=["comm", "callsite"])
    for g in result.groups: ...            # every group, the largest change in time first
    render(render_diff.sections(result, top=20), "table", sys.stdout)

One job per module: `model` (what a diff says, as data), `compute` (the queries and the tests),
`gate` (`--fail-on`); the text renderers are in `analyzer.render_diff`, the page's in
`analyzer.htmlreport.difftable`. See docs/diff.md.
"""

from sockopt_trace.analyzer.diff.compute import diff, diff_queries, settings_warnings
from sockopt_trace.analyzer.diff.gate import FailRule, inconclusive, parse_fail_on, regressions
from sockopt_trace.analyzer.diff.model import Change, DiffResult, GroupDiff, Side

__all__ = [
    "Change",
    "DiffResult",
    "FailRule",
    "GroupDiff",
    "Side",
    "diff",
    "diff_queries",
    "inconclusive",
    "parse_fail_on",
    "regressions",
    "settings_warnings",
]
