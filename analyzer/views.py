"""The SQL side of a recording: the views, tables and macros every query reads.

The Parquet files are read in place with `read_parquet([...])`, never loaded into memory, so a
query over 100M events costs one scan. Everything DuckDB-specific that the canned queries need
lives here (`read_parquet` and the macros `ns_to_time`, `level_label`, `optname_label`,
`errno_label`), so that porting the reports to another engine (Spark, docs/design.md) means
redefining this module, not rewriting the queries.

Names are decoded by scalar macros, not joins: a column nobody selects costs nothing (joins in a
view run whether or not their columns are used), and the reports group by the raw numbers and
decode only their result rows (measured: 2.5x faster on the latency report).

Views and tables (with a prefix when two recordings share a connection, `ViewNames`):
- `events_all`: every column of the files (nulls for the context columns a file lacks: they
  are recorded only when asked for), plus `time` (TIMESTAMP, UTC), `level_name`,
  `optname_name`, `errno` (-ret for a failed call, else 0), `errno_name` (OK on success),
  `family_name`, `sock_type_name`,
  `protocol_name`, `state_name` (the socket's), `value_name` (the value returned, named where
  the option's value is a name: SO_ERROR's errno, SO_TYPE, SO_DOMAIN, SO_PROTOCOL),
  `stack_weight` (how many calls a row's stack stands for when stacks are sampled; NULL on rows
  without a stack) and `recording_id`; `callsite` and `stack` as the symbols sidecar names
  them where it does (symbolviews.py), the recorder's text in `callsite_recorded` and
  `stack_recorded`; columns added to the format since a file was written are NULL in it;
- `events`: `events_all` after --where, --since and --until (`database.filter_events`);
- `files`: one row per file, from its metadata;
- `recordings`: one row per recording, its span within --since/--until (`span`);
- `level_names`, `optname_names`, `errno_names`: the tables of `names`, for ad hoc joins;
- `symbols`: the rows of the recordings' symbols sidecars (symbolviews.setup).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb

from sockopt_trace import schema
from sockopt_trace.analyzer import names, storage, symbolviews
from sockopt_trace.analyzer.filters import Filters, Window
from sockopt_trace.analyzer.recording import (
    SKIP_HINT,
    Recording,
    RecordingFile,
    SkippedFile,
    absolute_paths,
    first_line,
)
from sockopt_trace.analyzer.span import RecordingSpan, recording_spans
from sockopt_trace.analyzer.storage import ObjectPath
from sockopt_trace.analyzer.summary import files_table
from sockopt_trace.analyzer.tables import Table, doubles, integers, strings
from sockopt_trace.errors import UserError


def macros() -> list[str]:
    """The DuckDB-only functions the views and canned queries use.

    ns_to_time(ns): ns since the epoch -> TIMESTAMP (UTC); Spark: timestamp_micros(ns div 1000).
    level_label(level), optname_label(level, optname), errno_label(errno), family_label,
    sock_type_label, protocol_label, state_label, value_label(level, optname, value): the names
    of `names`, an unknown value as its number (errno 0 is OK); on another engine, a join with
    the level_names / optname_names / errno_names tables or a CASE. endpoint_label(addr, port):
    `addr:port`, `[v6]:port`, or a Unix path. Lists are indexed 1-based, and a negative index
    would count from the end, hence the range checks.
    """
    options = " ".join(
        f"WHEN {level} THEN {_list(table)}[o + 1]" for level, table in names.OPTNAMES.items()
    )
    top_option = max(max(t) for t in names.OPTNAMES.values())
    return [
        "CREATE OR REPLACE MACRO ns_to_time(ns) AS make_timestamp(ns // 1000)",
        "CREATE OR REPLACE MACRO level_label(lv) AS coalesce(CASE WHEN lv BETWEEN 0 AND "
        f"{max(names.LEVELS)} THEN {_list(names.LEVELS)}[lv + 1] END, CAST(lv AS VARCHAR))",
        "CREATE OR REPLACE MACRO optname_label(lv, o) AS coalesce(CASE WHEN o BETWEEN 0 AND "
        f"{top_option} THEN CASE lv {options} END END, CAST(o AS VARCHAR))",
        f"CREATE OR REPLACE MACRO errno_label(e) AS CASE WHEN e = 0 THEN '{names.OK}' ELSE "
        f"coalesce(CASE WHEN e BETWEEN 1 AND {max(names.ERRNOS)} THEN {_list(names.ERRNOS)}"
        "[e + 1] END, CAST(e AS VARCHAR)) END",
        *(_table_macro(name, table) for name, table in LABELS.items()),
        "CREATE OR REPLACE MACRO value_label(lv, o, v) AS CASE "
        + " ".join(
            f"WHEN lv = {lv} AND o = {o} THEN {_label_of(table)}(v)"
            for (lv, o), table in names.VALUE_NAMES.items()
        )
        + " END",
        # an endpoint as people write it: 10.0.0.1:80, [2001:db8::1]:443, /run/x.sock
        "CREATE OR REPLACE MACRO endpoint_label(addr, port) AS CASE "
        "WHEN port IS NULL THEN addr "
        "WHEN addr LIKE '%:%' THEN '[' || addr || ']:' || CAST(port AS VARCHAR) "
        "ELSE addr || ':' || CAST(port AS VARCHAR) END",
        *symbolviews.macros(None),  # the recorded names, until symbols are registered
    ]


# Macros that name a column's numbers: family_label(family) -> 'AF_INET', ...
LABELS: dict[str, Mapping[int, str]] = {
    "family_label": names.FAMILIES,
    "sock_type_label": names.SOCK_TYPES,
    "protocol_label": names.PROTOCOLS,
    "state_label": names.STATES,
}


def _label_of(table: Mapping[int, str]) -> str:
    if table is names.ERRNOS:
        return "errno_label"
    return next(name for name, t in LABELS.items() if t is table)


def _table_macro(name: str, table: Mapping[int, str]) -> str:
    """A macro naming v by `table`; an unknown value as its number, NULL as NULL."""
    return (
        f"CREATE OR REPLACE MACRO {name}(v) AS coalesce(CASE WHEN v BETWEEN 0 AND {max(table)} "
        f"THEN {_list(table)}[v + 1] END, CAST(v AS VARCHAR))"
    )


def _list(table: Mapping[int, str]) -> str:
    """A SQL list literal whose element i + 1 is table[i] (NULL where there is none)."""
    items = (sql_string(table[i]) if i in table else "NULL" for i in range(max(table) + 1))
    return f"[{', '.join(items)}]"


def register(
    con: duckdb.DuckDBPyConnection,
    rec: Recording,
    names: ViewNames,
    filters: Filters,
    *,
    skip_bad: bool = False,
) -> tuple[Recording, Window, dict[str, RecordingSpan]]:
    """Create the views and tables of `rec` on `con` under `names` (two recordings can share
    one connection under different names), with the spans inside the --since/--until window.
    Returns the recording registered, which lacks the files DuckDB could not read when
    `skip_bad` (otherwise such a file is a UserError), its window and its spans."""
    for macro in macros():
        con.execute(macro)
    _create_name_tables(con)
    register_storage(con, rec)
    try:
        return rec, *_create_views(con, rec, names, filters)
    except UnreadableFiles as err:
        if not err.files:
            raise
        rec = rec.leave_out(err.files, skip_bad=skip_bad)
        return rec, *_create_views(con, rec, names, filters)


def _create_views(
    con: duckdb.DuckDBPyConnection,
    rec: Recording,
    names: ViewNames,
    filters: Filters,
) -> tuple[Window, dict[str, RecordingSpan]]:
    window = filters.window(rec.start_ns)
    spans = recording_spans(rec.files, window)
    files_table(rec).create(con, names.files)
    recordings_table(spans).create(con, names.recordings)
    try:
        # DuckDB parses footers with its own reader, and a file's only when a scan reaches it:
        # read those it has not read yet now, so that damage our reader missed is named here,
        # not mid-report.
        unvetted = [f for f in rec.files if not f.vetted]
        if unvetted:
            con.execute(f"SELECT count(*) FROM parquet_file_metadata({_paths(unvetted)})")
        sql, file_lists = events_sql(rec, spans, names.events_all)
        for variable, paths in file_lists.items():
            con.execute(f"SET VARIABLE {variable} = ?", [paths])
        con.execute(f"CREATE OR REPLACE VIEW {names.events_all} AS {sql}")
    except duckdb.Error as err:
        raise UnreadableFiles(unreadable_files(con, rec), first_line(err)) from None
    return window, spans


def recordings_table(spans: Mapping[str, RecordingSpan]) -> Table:
    """The `recordings` table: each recording's span within --since/--until (see `span`)."""
    rows = sorted(spans.values(), key=lambda s: s.recording_id)
    return Table(
        {
            "recording_id": strings([s.recording_id for s in rows]),
            "host": strings([s.host for s in rows]),
            "start_ns": integers([s.start_ns for s in rows]),
            "end_ns": integers([s.end_ns for s in rows]),
            "span_ns": integers([s.covered_ns for s in rows]),
            "recording_span_s": doubles([s.seconds for s in rows]),
        }
    )


def file_paths(rec: Recording) -> list[str]:
    """The absolute paths the views read (all the sandbox lets SQL open)."""
    return absolute_paths(rec.files)


class UnreadableFiles(UserError):
    """Files that passed the footer checks (pyarrow) but that DuckDB cannot read."""

    def __init__(self, files: list[SkippedFile], message: str) -> None:
        first = f"{files[0].path}: {files[0].problem} ({SKIP_HINT})" if files else message
        super().__init__(first if files else f"cannot read the recording: {message}")
        self.files = files


def unreadable_files(con: duckdb.DuckDBPyConnection, rec: Recording) -> list[SkippedFile]:
    """Each file DuckDB cannot open on its own (found only after reading them together failed,
    so the common case costs nothing)."""
    bad = []
    for f in rec.files:
        try:
            con.execute(f"SELECT count(*) FROM parquet_file_metadata({_paths([f])})")
        except duckdb.Error as err:
            problem = f"damaged Parquet file, DuckDB cannot read it ({first_line(err)})"
            bad.append(SkippedFile(f.path, problem))
    return bad


def events_sql(
    rec: Recording, spans: Mapping[str, RecordingSpan], view: str
) -> tuple[str, dict[str, list[str]]]:
    """SELECT over the files with decoded names; files of different recordings, or that sample
    stacks at different periods, are read in separate `read_parquet` calls, so that each row
    knows its recording (`recording_id`, as in `files`), that recording's span in seconds
    within the window (`recording_span_s`: a rate is sum(weight / recording_span_s)) and its
    stack weight.

    Each call's file list is a DuckDB variable (returned: name -> paths, named after `view`),
    not a literal: a view is bound again in every query that reads it, and a list of 1,000
    paths took its binding from 0.046 to 0.066 s (docs/benchmarks.md)."""
    by_part: dict[tuple[int, str, bool], list[RecordingFile]] = {}
    for f in rec.files:
        period = max(1, f.meta.stack_sample_period) if f.meta.stacks == "full" else 1
        by_part.setdefault((period, f.meta.recording_id, f.meta.max_rate == 0), []).append(f)
    mixed = len({f.columns for f in rec.files}) > 1
    options = ", union_by_name = true" if mixed else ""
    parts = []
    file_lists = {}
    for i, ((period, recording_id, unsampled), files) in enumerate(sorted(by_part.items())):
        variable = f"{view}_files_{i}"
        file_lists[variable] = absolute_paths(files)
        parts.append(
            f"SELECT *{_neutral_columns(files, unsampled)}, {_absent_columns(files)}"
            f"CASE WHEN stack IS NULL THEN NULL ELSE {period} END AS stack_weight, "
            f"{sql_string(recording_id)} AS recording_id, "
            f"{span_seconds(spans.get(recording_id))} AS recording_span_s "
            f"FROM read_parquet(getvariable('{variable}'){options})"
        )
    decoded = decoded_sql("(" + "\nUNION ALL BY NAME\n".join(parts) + ")")
    return f"SELECT {symbolviews.view_columns()} FROM ({decoded})", file_lists


def decoded_sql(source: str) -> str:
    """The rows of `source` with the decoded columns (the same on every engine)."""
    return f"""
SELECT *, callsite AS callsite_recorded, stack AS stack_recorded,
    ns_to_time(ts_ns) AS time,
    level_label(level) AS level_name,
    optname_label(level, optname) AS optname_name,
    CASE WHEN ret < 0 THEN -ret ELSE 0 END AS errno,
    errno_label(CASE WHEN ret < 0 THEN -ret ELSE 0 END) AS errno_name,
    family_label(family) AS family_name,
    sock_type_label(sock_type) AS sock_type_name,
    protocol_label(protocol) AS protocol_name,
    state_label(state) AS state_name,
    value_label(level, optname, value) AS value_name
FROM {source}
"""


def _absent_columns(files: Sequence[RecordingFile]) -> str:
    """NULLs for the columns none of these files has: context columns not recorded, columns
    added to the format since the files were written."""
    have = {c for f in files for c in f.columns}
    return "".join(
        f"CAST({schema.NEUTRAL_VALUES.get(c, 'NULL')} AS {_SQL_TYPES[typ]}) AS {c}, "
        for c, (typ, _) in schema.optional_columns().items()
        if c not in have
    )


def _neutral_columns(files: Sequence[RecordingFile], unsampled: bool) -> str:
    """` REPLACE (...)` for the columns these files hold that read as their neutral value
    (schema.NEUTRAL_VALUES): where some files lack a column and others have it (read by
    name), the value where a file lacks it; and `weight` in files of a recording made without
    --max-rate, which is 1 in every row by the format (schema.RecordingMetadata.max_rate), so
    the column is not read at all (reports then count rows: `{count}` in reports.py)."""
    have = [set(f.columns) for f in files]
    present = [c for c in schema.NEUTRAL_VALUES if any(c in h for h in have)]
    constant = {"weight"} if unsampled else set()
    replaced = [
        f"CAST({schema.NEUTRAL_VALUES[c]} AS {_SQL_TYPES[schema.COLUMNS[c][0]]}) AS {c}"
        if c in constant
        else f"coalesce({c}, {schema.NEUTRAL_VALUES[c]}) AS {c}"
        for c in present
        if c in constant or not all(c in h for h in have)
    ]
    return f" REPLACE ({', '.join(replaced)})" if replaced else ""


_SQL_TYPES = {"int32": "INTEGER", "int64": "BIGINT", "string": "VARCHAR"}


def span_seconds(span: RecordingSpan | None) -> str:
    """A DOUBLE literal (a bare 1.5 would be a DECIMAL); NULL for no time in the window."""
    seconds = repr(span.seconds) if span and span.covered_ns else "NULL"
    return f"CAST({seconds} AS DOUBLE)"


def _create_name_tables(con: duckdb.DuckDBPyConnection) -> None:
    for name, table in name_tables().items():
        table.create(con, name)


def name_tables() -> dict[str, Table]:
    """level_names, optname_names, errno_names: the tables of `names`, for ad hoc joins."""
    options = [(lv, o, n) for lv, opts in names.OPTNAMES.items() for o, n in opts.items()]
    return {
        "level_names": Table(
            {
                "level": integers(list(names.LEVELS), big=False),
                "level_name": strings(list(names.LEVELS.values())),
            }
        ),
        "optname_names": Table(
            {
                "level": integers([lv for lv, _, _ in options], big=False),
                "optname": integers([o for _, o, _ in options], big=False),
                "optname_name": strings([n for _, _, n in options]),
            }
        ),
        "errno_names": Table(
            {
                "errno": integers(list(names.ERRNOS), big=False),
                "errno_name": strings(list(names.ERRNOS.values())),
            }
        ),
    }


def register_storage(con: duckdb.DuckDBPyConnection, rec: Recording) -> None:
    """Let DuckDB read the recording's s3:// (gs://, az://) files through pyarrow's
    filesystems (`storage`), before the connection is sealed."""
    schemes = {f.path.scheme for f in rec.files if isinstance(f.path, ObjectPath)}
    if not schemes:  # local files: fsspec (0.15 s of imports) is not needed
        return
    registered = set(con.list_filesystems())
    for fs in storage.fsspec_filesystems(schemes):
        if fs.protocol[0] not in registered:
            con.register_filesystem(fs)


def _paths(files: Sequence[RecordingFile]) -> str:
    """A SQL list of the files' absolute paths (DuckDB resolves relative ones from its cwd)."""
    return f"[{', '.join(sql_string(p) for p in absolute_paths(files))}]"


@dataclass(frozen=True)
class ViewNames:
    """The names one recording's views take on a connection: `events`, `events_all`, `files`,
    `recordings`, or with a prefix (`base_events`, ...) when two recordings share it."""

    prefix: str = ""

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def events_all(self) -> str:
        return f"{self.prefix}events_all"

    @property
    def files(self) -> str:
        return f"{self.prefix}files"

    @property
    def recordings(self) -> str:
        return f"{self.prefix}recordings"


def sql_string(value: str) -> str:
    """A SQL string literal (quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"
