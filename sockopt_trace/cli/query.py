"""`sockopt-trace query REC... "SQL"`: ad hoc SQL over the `events` and `files` views."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sockopt_trace.cli.analysis import (
    AllowExternal,
    Engine,
    EngineOpt,
    Format,
    FormatOpt,
    MaxRows,
    SkipBad,
    SparkMaster,
    emit,
    open_on_engine,
)
from sockopt_trace.cli.app import app
from sockopt_trace.errors import UserError

HELP = (
    "Run ad hoc SQL (DuckDB dialect) over a recording; with --engine spark it is transpiled "
    "to Spark SQL (sqlglot), and SQL with no faithful Spark form is refused.\n\n"
    "Views: events (every column of the files, plus time, level_name, optname_name, errno, "
    "errno_name, stack_weight), files (one row per file: host, span, events, lost, ...), and the "
    "decoding tables level_names, optname_names, errno_names.\n\n"
    "Examples:\n\n\b\n"
    '  sockopt-trace query rec/ "SELECT optname_name, count(*) FROM events GROUP BY 1"\n'
    "  sockopt-trace query rec/ --file slow_tcp_info.sql --format csv"
)


@app.command("query", help=HELP)
def query(
    args: Annotated[
        list[str],
        typer.Argument(
            metavar="REC... SQL",
            help="Recordings (as for report), then the SQL unless --file is given.",
            show_default=False,
        ),
    ],
    file: Annotated[
        Path | None, typer.Option("--file", "-F", help="Read the SQL from this file.")
    ] = None,
    fmt: FormatOpt = Format.table,
    skip_bad: SkipBad = False,
    max_rows: MaxRows = 1000,
    allow_external: AllowExternal = False,
    engine: EngineOpt = Engine.duckdb,
    spark_master: SparkMaster = None,
) -> None:
    import duckdb

    from sockopt_trace.analyzer.database import execute
    from sockopt_trace.analyzer.render import Result

    recs, sql = split_sql(args, file)
    loaded = open_on_engine(
        recs, engine, spark_master, skip_bad=skip_bad, allow_external=allow_external
    )
    con = loaded.con
    cursor = execute(con, sql) if isinstance(con, duckdb.DuckDBPyConnection) else con.execute(sql)
    if cursor.description is not None:
        emit(Result.from_cursor(cursor), fmt, max_rows)


def split_sql(args: list[str], file: Path | None) -> tuple[list[str], str]:
    """(recordings, SQL): the SQL is the last argument unless it comes from --file."""
    if file is not None:
        try:
            return args, file.read_text()
        except OSError as err:
            raise UserError(f"{file}: cannot read the SQL file: {err.strerror}") from None
    if len(args) < 2:
        raise UserError('give the recording, then the SQL: sockopt-trace query REC... "SQL"')
    return args[:-1], args[-1]
