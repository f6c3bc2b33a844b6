"""What the analyzer commands (info, report, query, queries) share: options, warnings, output."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer

from sockopt_trace.errors import ExitCode, UserError

if TYPE_CHECKING:
    from sockopt_trace.analyzer.database import Loaded
    from sockopt_trace.analyzer.filters import Filters
    from sockopt_trace.analyzer.render import Result
    from sockopt_trace.analyzer.spark import SparkConnection


class Engine(str, Enum):
    duckdb = "duckdb"
    spark = "spark"


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


Recs = Annotated[
    list[str],
    typer.Argument(
        metavar="REC",
        help="Recording: a Parquet file, a recording directory (searched recursively) or a "
        "glob; give several to read several hosts' recordings together.",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    Format, typer.Option("--format", "-f", help="table for people; csv, json, markdown for tools.")
]
SkipBad = Annotated[
    bool,
    typer.Option("--skip-bad", help="Skip files that are not readable recordings (and list them)."),
]
MaxRows = Annotated[
    int,
    typer.Option(
        "--max-rows", help="Rows shown by table and markdown (0: all); csv and json print all."
    ),
]
Where = Annotated[
    str | None,
    typer.Option(
        "--where",
        "-w",
        help="SQL condition on events columns, e.g. \"comm = 'nginx' AND errno_name <> 'OK'\".",
    ),
]
Since = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Only calls at or after this time: 2025-01-31T12:00:00 (UTC unless it has an "
        "offset) or an offset from the recording's start (30s, 5m).",
    ),
]
Until = Annotated[
    str | None, typer.Option("--until", help="Only calls before this time (same forms as --since).")
]
By = Annotated[
    str | None,
    typer.Option("--by", "-b", help="Group by these dimensions, e.g. comm,optname or callsite."),
]


EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine",
        help="duckdb (embedded) or spark: the same SQL on Apache Spark through PySpark "
        "(SPARK_REMOTE for Spark Connect, or --spark-master; local[*] by default).",
    ),
]
SparkMaster = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        help="Spark master URL for --engine spark: local[4], spark://h:7077, yarn.",
    ),
]
AllowExternal = Annotated[
    bool,
    typer.Option(
        "--allow-external-sql",
        help="Let SQL (--where, query) read and write other files, the network and extensions; "
        "by default it reads the recording only.",
    ),
]


def warn(message: str) -> None:
    print(f"sockopt-trace: warning: {message}", file=sys.stderr)


def note(message: str) -> None:
    """What the reader should know that is not a problem: why a result is empty."""
    print(f"sockopt-trace: note: {message}", file=sys.stderr)


def open_and_warn(
    recs: Sequence[str],
    *,
    skip_bad: bool,
    filters: Filters | None = None,
    allow_external: bool = False,
) -> Loaded:
    """Load the recording; what the user should know (lost events, files left out) goes to
    stderr, one line each, so stdout stays machine-readable."""
    from sockopt_trace.analyzer.filters import Filters
    from sockopt_trace.analyzer.load import load

    loaded = load(recs, filters or Filters(), skip_bad=skip_bad, allow_external=allow_external)
    _notices(loaded)
    return loaded


def open_on_engine(
    recs: Sequence[str],
    engine: Engine,
    master: str | None,
    *,
    skip_bad: bool,
    filters: Filters | None = None,
    allow_external: bool = False,
) -> Loaded | Loaded[SparkConnection]:
    """`open_and_warn` on the engine the user chose (--engine, --spark-master)."""
    if engine is Engine.duckdb:
        if master:
            raise UserError("--spark-master goes with --engine spark")
        return open_and_warn(
            recs, skip_bad=skip_bad, filters=filters, allow_external=allow_external
        )
    from sockopt_trace.analyzer import spark
    from sockopt_trace.analyzer.filters import Filters

    loaded = spark.load(recs, filters or Filters(), master=master, skip_bad=skip_bad)
    _notices(loaded)
    return loaded


def _notices(loaded: Loaded | Loaded[SparkConnection]) -> None:
    for line in [*loaded.recording.notices(), *getattr(loaded, "notes", [])]:
        warn(line)


def terminal_width() -> int | None:
    """The terminal's width when stdout is one (tables are fitted to it); None into a pipe or
    a file, where output stays whole."""
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def emit(results: Result | Sequence[Result], fmt: Format, max_rows: int) -> None:
    from sockopt_trace.analyzer.render import render

    width = terminal_width()
    color = width is not None and not os.environ.get("NO_COLOR")
    try:
        truncated = render(
            results, fmt.value, sys.stdout, max_rows=max_rows or None, width=width, color=color
        )
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(ExitCode.BROKEN_PIPE) from None
    if truncated:
        warn(f"showing the first {max_rows:,} rows: --max-rows 0 shows all, --format csv too")
