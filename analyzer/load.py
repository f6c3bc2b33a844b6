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
    since_ns: int | None = None  # the --since/--until bounds, as wall-clock ns
    until_ns: int | None = None


def load(
    specs: Sequence[str | Path],
    *,
    skip_bad: bool = False,
    where: str | None = None,
    since: str | None = None,
    until: str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    events: str = "events",
    files: str = "files",
) -> Loaded:
    """Open and validate the recording, register its views, and filter `events`.

    `since`/`until` are wall-clock times or offsets from the recording's start (see
    `timespec`); `where` is a SQL boolean expression over the `events` columns. The views go
    on a new connection, or on `con` under the names `events`/`files` (diff puts two
    recordings on one connection as `base_events`/`new_events`).
    """
    rec = open_recording(specs, skip_bad=skip_bad)
    con = con if con is not None else duckdb.connect()
    rec = register(con, rec, events=events, files=files, skip_bad=skip_bad)
    since_ns = parse_time_bound(since, rec.start_ns, "--since") if since else None
    until_ns = parse_time_bound(until, rec.start_ns, "--until") if until else None
    filter_events(con, where=where, since_ns=since_ns, until_ns=until_ns, events=events)
    return Loaded(rec, con, since_ns, until_ns)
