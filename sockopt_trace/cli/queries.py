"""`sockopt-trace queries`: the canned reports, what each answers, and its parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sockopt_trace.cli.analysis import Format, FormatOpt, emit
from sockopt_trace.cli.app import app

if TYPE_CHECKING:
    from sockopt_trace.analyzer.render import Result


@app.command("queries")
def queries(fmt: FormatOpt = Format.table) -> None:
    """List the canned reports: what each answers, its default --by and its parameters."""
    emit(catalog(), fmt, 0)


def catalog() -> Result:
    from sockopt_trace.analyzer.render import Result
    from sockopt_trace.analyzer.reports import load_reports

    rows = [
        (
            r.name,
            r.answers,
            ", ".join(r.by) if r.by else "",
            "; ".join(f"{p.name}={p.default} ({p.type}): {p.help}" for p in r.params),
        )
        for r in load_reports().values()
    ]
    return Result(["name", "answers", "default_by", "params"], rows)
