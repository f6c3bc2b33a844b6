"""`sockopt-trace info REC...`: what a recording holds, from file metadata alone."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from sockopt_trace.cli.analysis import (
    Engine,
    EngineOpt,
    Format,
    FormatOpt,
    MaxRows,
    Recs,
    SkipBad,
    SparkMaster,
    emit,
)
from sockopt_trace.cli.app import app

HELP = (
    "Show what a recording holds, from file metadata alone.\n\n"
    "It reads only the files' footers, never their rows, so --engine makes no difference (it "
    "is accepted so that one command line works with either engine).\n\n"
    "Each recording (host, the command line that recorded it, its filters, probe mode, stacks, "
    "recording span, events, calls per second, lost events, files), then their total; the "
    "files; partial files (still being written, or left by a killed recorder) and gaps in the "
    "files' sequence numbers (files missing from a recording), with the time they covered. "
    "csv prints one table: the recordings, or the files with --what files.\n\n"
    "Examples:\n\n\b\n"
    "  sockopt-trace info rec/\n"
    "  sockopt-trace info 'fleet/*/' --format json\n"
    "  sockopt-trace info 'fleet/*/' --what files --format csv"
)


class What(str, Enum):
    recordings = "recordings"
    files = "files"


@app.command("info", help=HELP)
def info(
    recs: Recs,
    fmt: FormatOpt = Format.table,
    what: Annotated[
        What | None,
        typer.Option(
            "--what",
            help="Only this table: recordings or files (csv: recordings unless files).",
            show_default=False,
        ),
    ] = None,
    skip_bad: SkipBad = False,
    max_rows: MaxRows = 1000,
    engine: EngineOpt = Engine.duckdb,
    spark_master: SparkMaster = None,
) -> None:
    from sockopt_trace.analyzer.info import describe
    from sockopt_trace.analyzer.recording import open_recording

    table = what.value if what else ("recordings" if fmt is Format.csv else None)
    rec = open_recording(recs, skip_bad=skip_bad, ledgers_only=True)
    emit(describe(rec, table), fmt, max_rows)
