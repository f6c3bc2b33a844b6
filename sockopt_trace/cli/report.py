"""`sockopt-trace report REC... [NAME]`: run a canned report (queries/*.sql)."""

from __future__ import annotations

import difflib
import glob
from pathlib import Path
from typing import Annotated

import typer

from sockopt_trace.analyzer.dimensions import DIMENSIONS, parse_by
from sockopt_trace.cli.analysis import (
    AllowExternal,
    By,
    Engine,
    EngineOpt,
    Format,
    FormatOpt,
    MaxRows,
    Recs,
    Since,
    SkipBad,
    SparkMaster,
    Until,
    Where,
    emit,
    note,
    open_on_engine,
)
from sockopt_trace.cli.app import app
from sockopt_trace.errors import UserError

HELP = (
    "Run a canned report (default: summary); `sockopt-trace queries` lists them.\n\n"
    "The report name may come after the recordings: an argument that names a report and is not "
    "an existing path is the report name. --by dimensions: " + ", ".join(DIMENSIONS) + ".\n\n"
    "Examples:\n\n\b\n"
    "  sockopt-trace report rec/\n"
    "  sockopt-trace report rec/ latency --by comm,optname\n"
    "  sockopt-trace report rec/ callsites --top 20 --format markdown\n"
    "  sockopt-trace report rec/ errors --where \"comm = 'nginx'\" --since 30s --until 2m\n"
    "  sockopt-trace report host-a/ host-b/ timeline -p interval=100ms"
)


@app.command("report", help=HELP)
def report(
    args: Recs,
    name: Annotated[
        str | None, typer.Option("--report", "-r", help="Report name (or give it after REC).")
    ] = None,
    by: By = None,
    where: Where = None,
    since: Since = None,
    until: Until = None,
    top: Annotated[
        int | None, typer.Option("--top", "-n", help="Rows (groups) to show; 0: all.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Report parameter NAME=VALUE.")
    ] = None,
    fmt: FormatOpt = Format.table,
    skip_bad: SkipBad = False,
    max_rows: MaxRows = 1000,
    allow_external: AllowExternal = False,
    engine: EngineOpt = Engine.duckdb,
    spark_master: SparkMaster = None,
) -> None:
    recs, report_name = split_name(args, name)
    params: dict[str, object] = dict(key_value(p) for p in param or [])
    if top is not None:
        params["top"] = top
    from sockopt_trace.analyzer.empty import why_empty
    from sockopt_trace.analyzer.filters import Filters
    from sockopt_trace.analyzer.reports import run_report

    dims = parse_by(by) if by else None
    filters = Filters(where, since, until)
    loaded = open_on_engine(
        recs,
        engine,
        spark_master,
        skip_bad=skip_bad,
        filters=filters,
        allow_external=allow_external,
    )
    result = run_report(loaded.con, report_name, by=dims, params=params, raw=True)
    rows = list(result.rows)
    result.rows = rows
    nothing = not rows or (result.record and rows[0][result.columns.index("events")] == 0)
    if nothing:  # say why on stderr, in one line; the (empty) table still goes to stdout
        note(why_empty(loaded, report_name, dims or ()))
    emit(result, fmt, max_rows)


def split_name(args: list[str], option: str | None) -> tuple[list[str], str]:
    """(recordings, report name) from the positional arguments and --report."""
    from sockopt_trace.analyzer.reports import load_reports

    known = load_reports()
    named = [a for a in args if a in known and not Path(a).exists()]
    for a in args:  # a typo of a report name, not a missing recording
        if a not in known and not Path(a).exists() and not glob.has_magic(a) and "/" not in a:
            close = difflib.get_close_matches(a, known, n=1)
            if close:
                raise UserError(f"unknown report {a!r}: did you mean {close[0]}?")
    if option:
        named.append(option)
    if len(named) > 1:
        raise UserError(f"give one report name, not {' and '.join(named)}")
    recs = [a for a in args if a not in named]
    if not recs:
        raise UserError("no recording given: sockopt-trace report REC... [NAME]")
    return recs, named[0] if named else "summary"


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"bad --param {text!r}: use NAME=VALUE, e.g. -p top=50")
    return key.strip(), value
