"""From recording paths and filters to a ready, sealed DuckDB connection (CLI, pages); diff
puts two recordings on one connection with `database.connect` itself."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sockopt_trace.analyzer import symbolviews
from sockopt_trace.analyzer.database import Loaded, Setup, Source, connect, new_connection
from sockopt_trace.analyzer.filters import Filters
from sockopt_trace.analyzer.footerbatch import duckdb_footers
from sockopt_trace.analyzer.naming import prepare as prepare_symbols
from sockopt_trace.analyzer.recording import open_recording
from sockopt_trace.analyzer.storage import Prune, hosts_in_where
from sockopt_trace.analyzer.timespec import is_offset, parse_time_bound

Specs = Sequence[str | Path]


def load(
    specs: Specs,
    filters: Filters = Filters(),
    *,
    skip_bad: bool = False,
    allow_external: bool = False,
    threads: int | None = None,
    setup: Sequence[Setup] = (),
) -> Loaded:
    """Open and validate the recording, register its views and filter `events`.

    Call sites its recorder could only name module+offset are named from debug information
    first, if there is some (`symbolize.prepare`; `notes` say what it did).
    `filters.since`/`until` are wall-clock times or offsets from the recording's start (see
    `timespec`); `filters.where` is a SQL boolean expression over the `events` columns.
    """
    con = new_connection(threads)
    try:
        footers = duckdb_footers(con)
        rec = open_recording(specs, skip_bad=skip_bad, prune=prune_for(filters), footers=footers)
        symbols, notes = prepare_symbols([rec])
    except BaseException:
        con.close()
        raise
    [loaded] = connect(
        [Source(rec, filters)],
        skip_bad=skip_bad,
        setup=[symbolviews.setup(symbols), *setup],
        allow_external=allow_external,
        con=con,
    )
    loaded.notes = notes
    return loaded


def prune_for(filters: Filters) -> Prune:
    """Which fleet-layout directories the filters rule out before any file is opened: hosts
    from --where, dates from --since/--until given as times (an offset from the recording's
    start needs the files first)."""
    since, until = filters.since, filters.until
    since_ns = parse_time_bound(since, 0, "--since") if since and not is_offset(since) else None
    until_ns = parse_time_bound(until, 0, "--until") if until and not is_offset(until) else None
    return Prune(hosts_in_where(filters.where), since_ns, until_ns)
