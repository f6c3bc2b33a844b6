"""One call from recording paths and filters to a ready DuckDB connection (CLI and diff)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from sockopt_trace.analyzer.database import filter_events, register
from sockopt_trace.analyzer.recording import Recording, open_recording
from sockopt_trace.analyzer.timespec import parse_time_bound


@dataclass
class Loaded:
    recording: Recording
    con: duckdb.DuckDBPyConnection


def load(
    specs: Sequence[str | Path],
    *,
    skip_bad: bool = False,
    where: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Loaded:
    """Open and validate the recording, register its views, and filter `events`.

    `since`/`until` are wall-clock times or offsets from the recording's start (see
    `timespec`); `where` is a SQL boolean expression over the `events` columns.
    """
    rec = open_recording(specs, skip_bad=skip_bad)
    con = duckdb.connect()
    rec = register(con, rec, skip_bad=skip_bad)
    filter_events(
        con,
        where=where,
        since_ns=parse_time_bound(since, rec.start_ns, "--since") if since else None,
        until_ns=parse_time_bound(until, rec.start_ns, "--until") if until else None,
    )
    return Loaded(rec, con)
