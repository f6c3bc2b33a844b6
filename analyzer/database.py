"""A DuckDB connection over a validated recording: the `events` and `files` views.

The Parquet files are read in place with `read_parquet([...])`, never loaded into memory, so a
query over 100M events costs one scan. Everything DuckDB-specific that the canned queries need
lives here (the `ns_to_time` macro, `read_parquet`), so that porting the reports to another
engine (Spark, DESIGN.md) means redefining this module, not rewriting the queries.

Views (names can be changed with `register(..., events=..., files=...)`):
- `events_all`: every column of the files, plus `time` (TIMESTAMP, UTC), `level_name`,
  `optname_name`, `errno` (-ret for a failed call, else 0), `errno_name` (OK on success) and
  `stack_weight` (how many calls a row's stack stands for when stacks are sampled; NULL on rows
  without a stack);
- `events`: `events_all` after the filters of `filter_events` (all rows until then);
- `files`: one row per file, from its metadata;
- `level_names`, `optname_names`, `errno_names`: the decoding tables of `names`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import pyarrow as pa

from sockopt_trace.analyzer import names
from sockopt_trace.analyzer.info import files_table
from sockopt_trace.analyzer.recording import Recording, first_line
from sockopt_trace.errors import UserError

# DuckDB-only: ns since the epoch -> TIMESTAMP (microseconds, UTC).
# On Spark: timestamp_micros(ns div 1000).
MACROS = ("CREATE OR REPLACE MACRO ns_to_time(ns) AS make_timestamp(ns // 1000)",)


def connect(rec: Recording, *, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views of `rec` registered."""
    con = duckdb.connect(config={"threads": threads} if threads else {})
    register(con, rec)
    return con


def register(
    con: duckdb.DuckDBPyConnection,
    rec: Recording,
    *,
    events: str = "events",
    files: str = "files",
) -> None:
    """Create the views of `rec` on `con` under the given names (two recordings can share one
    connection under different names)."""
    for macro in MACROS:
        con.execute(macro)
    _create_name_tables(con)
    con.execute(f"DROP TABLE IF EXISTS {files}")
    con.from_arrow(files_table(rec)).create(files)
    con.execute(f"CREATE OR REPLACE VIEW {events}_all AS {events_sql(rec)}")
    filter_events(con, events=events)


def filter_events(
    con: duckdb.DuckDBPyConnection,
    *,
    where: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    events: str = "events",
) -> None:
    """Redefine `events` as the rows of `events_all` that pass the filters.

    `where` is user SQL by design (a boolean expression over the view's columns); it is put on
    its own lines so that a trailing `--` comment cannot swallow the rest, and the view must stay
    one statement (no `; DROP ...`). The time bounds are
    integers, so they are written into the view as literals.
    """
    conditions = []
    if where and where.strip():
        conditions.append(f"(\n{where}\n)")
    if since_ns is not None:
        conditions.append(f"ts_ns >= {int(since_ns)}")
    if until_ns is not None:
        conditions.append(f"ts_ns < {int(until_ns)}")
    clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"CREATE OR REPLACE VIEW {events} AS SELECT * FROM {events}_all{clause}"
    try:
        if len(con.extract_statements(sql)) != 1:
            raise UserError(f"bad --where {where!r}: give one condition, not several statements")
        con.execute(sql)
        if where:
            con.execute(f"SELECT * FROM {events} LIMIT 0")  # bind now: name the bad column here
    except duckdb.Error as err:
        raise UserError(f"bad --where {where!r}: {first_line(err)}") from None


def events_sql(rec: Recording) -> str:
    """SELECT over the files with decoded names; files that sample stacks at different
    periods are read in separate `read_parquet` calls so each row knows its stack weight."""
    by_period: dict[int, list[str]] = {}
    for f in rec.files:
        period = max(1, f.meta.stack_sample_period) if f.meta.stacks == "full" else 1
        by_period.setdefault(period, []).append(str(f.path.resolve()))
    mixed = len({f.columns for f in rec.files}) > 1
    options = ", union_by_name = true" if mixed else ""
    parts = [
        f"SELECT *, CASE WHEN stack IS NULL THEN NULL ELSE {period} END AS stack_weight "
        f"FROM read_parquet([{', '.join(sql_string(p) for p in paths)}]{options})"
        for period, paths in sorted(by_period.items())
    ]
    source = "\nUNION ALL BY NAME\n".join(parts)
    return f"""
SELECT e.*,
    ns_to_time(e.ts_ns) AS time,
    coalesce(l.level_name, CAST(e.level AS VARCHAR)) AS level_name,
    coalesce(o.optname_name, CAST(e.optname AS VARCHAR)) AS optname_name,
    CASE WHEN e.ret < 0 THEN -e.ret ELSE 0 END AS errno,
    CASE WHEN e.ret >= 0 THEN '{names.OK}'
         ELSE coalesce(x.errno_name, CAST(-e.ret AS VARCHAR)) END AS errno_name
FROM ({source}) e
LEFT JOIN level_names l ON l.level = e.level
LEFT JOIN optname_names o ON o.level = e.level AND o.optname = e.optname
LEFT JOIN errno_names x ON x.errno = -e.ret
"""


def _create_name_tables(con: duckdb.DuckDBPyConnection) -> None:
    tables = {
        "level_names": {
            "level": pa.array(list(names.LEVELS), pa.int32()),
            "level_name": list(names.LEVELS.values()),
        },
        "optname_names": {
            "level": pa.array(
                [lv for lv, opts in names.OPTNAMES.items() for _ in opts], pa.int32()
            ),
            "optname": pa.array([o for opts in names.OPTNAMES.values() for o in opts], pa.int32()),
            "optname_name": [n for opts in names.OPTNAMES.values() for n in opts.values()],
        },
        "errno_names": {
            "errno": pa.array(list(names.ERRNOS), pa.int32()),
            "errno_name": list(names.ERRNOS.values()),
        },
    }
    for name, columns in tables.items():
        con.execute(f"DROP TABLE IF EXISTS {name}")
        con.from_arrow(pa.table(columns)).create(name)


def execute(
    con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """Run SQL; a DuckDB error becomes a one-line UserError (bad SQL is bad input)."""
    try:
        return con.execute(sql, dict(params) if params else None)
    except duckdb.Error as err:
        raise UserError(f"query failed: {first_line(err)}") from None


def sql_string(value: str) -> str:
    """A SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"
