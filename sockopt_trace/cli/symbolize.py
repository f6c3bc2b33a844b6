"""`sockopt-trace symbolize REC...`: name call sites from debug information, into a sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sockopt_trace.cli.analysis import Format, FormatOpt, MaxRows, Recs, SkipBad, emit, warn
from sockopt_trace.cli.app import app

HELP = (
    "Name call sites and stack frames from debug information, with file:line and inlined "
    "frames.\n\n"
    "For every object the recording's call sites are in, by its GNU build-id: --debug-dir "
    "directories (.build-id/xx/rest.debug layout), /usr/lib/debug, the object itself if this "
    "machine has it, and the debuginfod servers of DEBUGINFOD_URLS (cached in "
    "~/.cache/sockopt-trace). The names go to a sidecar file beside the recording's files "
    "(sockopt-trace.symbols), which every report then uses; the recorded files are not "
    "changed. Reports do this by themselves, without --debug-dir, when call sites are "
    "unnamed.\n\n"
    "Examples:\n\n\b\n"
    "  sockopt-trace symbolize rec/\n"
    "  sockopt-trace symbolize rec/ --debug-dir ./debug\n"
    "  DEBUGINFOD_URLS=https://debuginfod.debian.net sockopt-trace symbolize rec/"
)


@app.command("symbolize", help=HELP)
def symbolize(
    recs: Recs,
    debug_dir: Annotated[
        list[Path] | None,
        typer.Option("--debug-dir", help="A directory of debug files by build-id (repeatable)."),
    ] = None,
    fmt: FormatOpt = Format.table,
    skip_bad: SkipBad = False,
    max_rows: MaxRows = 1000,
) -> None:
    from sockopt_trace.analyzer.debuginfo import DebugInfo
    from sockopt_trace.analyzer.recording import open_recording
    from sockopt_trace.analyzer.symbolize import symbolize as run
    from sockopt_trace.errors import UserError

    for d in debug_dir or []:
        if not d.is_dir():
            raise UserError(f"--debug-dir {d}: no such directory")
    done = run(open_recording(recs, skip_bad=skip_bad), DebugInfo(debug_dir or []))
    for note in done.notes:
        warn(note)
    emit(done.result(), fmt, max_rows)
