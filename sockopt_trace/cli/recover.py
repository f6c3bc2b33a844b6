"""`sockopt-trace recover DIR`: salvage or set aside the partial files of a killed recorder."""

from __future__ import annotations

from pathlib import Path

import typer

from sockopt_trace.cli.analysis import Format, FormatOpt, emit, warn
from sockopt_trace.cli.app import app


@app.command()
def recover(
    directory: Path = typer.Argument(..., help="Recording directory."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be done, do nothing."),
    fmt: FormatOpt = Format.table,
) -> None:
    """Salvage the whole .partial files a killed recorder left, quarantine the rest.

    A file that has its footer is renamed to its final name; one that has not is renamed to
    *.parquet.quarantined (readers ignore it), with the stretch of time it covered.
    """
    from sockopt_trace.analyzer.recover import recover as run
    from sockopt_trace.analyzer.render import Result
    from sockopt_trace.analyzer.timespec import to_datetime

    outcomes = run(directory, dry_run=dry_run)
    if not outcomes:
        warn(f"no partial files in {directory}: nothing to do")
        return
    # A dry run says what it would do, not what it did.
    action = {"salvaged": "would salvage", "quarantined": "would quarantine"} if dry_run else {}
    rows = [
        (
            str(o.path),
            action.get(o.action, o.action),
            o.new_path.name,
            o.events,
            None if o.lost_from_ns is None else to_datetime(o.lost_from_ns),
            None if o.lost_to_ns is None else to_datetime(o.lost_to_ns),
        )
        for o in outcomes
    ]
    renamed = "would_rename_to" if dry_run else "renamed_to"
    columns = ["file", "action", renamed, "events", "lost_from", "lost_to"]
    emit(Result(columns, rows, "recover (dry run)" if dry_run else "recover"), fmt, 0)
