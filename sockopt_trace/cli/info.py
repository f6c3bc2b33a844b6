"""`sockopt-trace info REC...`: what a recording holds, from file metadata alone."""

from __future__ import annotations

from sockopt_trace.cli.analysis import Format, FormatOpt, MaxRows, Recs, SkipBad, emit
from sockopt_trace.cli.app import app

HELP = (
    "Show what a recording holds, from file metadata alone.\n\n"
    "Hosts, time span, events, lost events by reason, probe mode, stacks and files; partial "
    "files (still being written, or left by a killed recorder) and gaps in the files' sequence "
    "numbers (files missing from a recording), with the time they covered.\n\n"
    "Examples:\n\n\b\n"
    "  sockopt-trace info rec/\n"
    "  sockopt-trace info 'fleet/*/' --format json"
)


@app.command("info", help=HELP)
def info(
    recs: Recs,
    fmt: FormatOpt = Format.table,
    skip_bad: SkipBad = False,
    max_rows: MaxRows = 1000,
) -> None:
    from sockopt_trace.analyzer.info import describe
    from sockopt_trace.analyzer.recording import open_recording

    emit(describe(open_recording(recs, skip_bad=skip_bad, ledgers_only=True)), fmt, max_rows)
