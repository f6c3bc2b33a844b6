"""The one way to get a DuckDB connection over recordings, locked so that SQL cannot touch the host.

    con, [side] = connect([Source(rec, Filters(where="comm = 'nginx'"))])

`connect` registers each recording's views (`views`), runs the `setup` hooks (extra tables or
views, e.g. a symbol sidecar, which return the paths they read), and then seals the
connection: external access off except for the recordings' own files (`allowed_paths`), no
extension installed or loaded, and the configuration locked so that no `SET` undoes it. Only
then is `--where` applied, so that user SQL (report filters, `query`, `-p` values are bound,
not pasted) can read the recording and nothing else: not `read_csv('/etc/passwd')`, not
`COPY ... TO`, not `ATTACH`, not `INSTALL`. `allow_external=True` (`--allow-external-sql`)
leaves it open for people who join their own files.

No progress bar on any connection: DuckDB would draw it on stderr, pipes included.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic

import duckdb
from typing_extensions import TypeVar

from sockopt_trace.analyzer.filters import Filters, Window
from sockopt_trace.analyzer.recording import Recording, first_line
from sockopt_trace.analyzer.span import RecordingSpan
from sockopt_trace.analyzer.views import ViewNames, file_paths, register, sql_string
from sockopt_trace.errors import UserError

SANDBOX_HINT = "SQL here reads only the recording; --allow-external-sql lifts this"
_SANDBOX_ERRORS = ("disabled by configuration", "configuration has been locked")
_READ_ERRORS = (duckdb.Error, duckdb.IOException, duckdb.InvalidInputException)
DAMAGED_TEXT = "damaged data in this recording file"
RECOPY = "recopy it, or read the recording without it"
_DAMAGED = re.compile(r'Failed to read file "(?P<path>[^"]+)": (?P<why>.+)')


@dataclass(frozen=True)
class Source:
    """A recording to put on a connection: its filters, and where its views go."""

    recording: Recording
    filters: Filters = field(default_factory=Filters)
    names: ViewNames = field(default_factory=ViewNames)


# The engine's connection: DuckDB's, or `spark.SparkConnection` for --engine spark.
Con = TypeVar("Con", default=duckdb.DuckDBPyConnection)


@dataclass
class Loaded(Generic[Con]):
    """One recording on a connection: the files read, the window and spans after the filters."""

    recording: Recording
    con: Con
    filters: Filters = field(default_factory=Filters)
    window: Window = field(default_factory=Window)
    names: ViewNames = field(default_factory=ViewNames)
    spans: dict[str, RecordingSpan] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what else to tell (e.g. symbolizing)

    @property
    def since_ns(self) -> int | None:
        return self.window.since_ns

    @property
    def until_ns(self) -> int | None:
        return self.window.until_ns


# A hook that adds tables or views to the connection before it is sealed; it gets the recordings
# as registered and returns the paths (files, directories) its views go on reading afterwards.
Setup = Callable[[duckdb.DuckDBPyConnection, Sequence[Loaded]], Iterable[str]]


def new_connection(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection, open until `connect` seals it (footerbatch.py reads the
    recording's footers on it first)."""
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute("SET enable_progress_bar = false")
    # Footers parsed once per connection: views.py reads every file's first (to name a damaged
    # one), and the report's scan reuses them (1,000 files: 0.3-0.4 s -> 0.2 s).
    con.execute("SET parquet_metadata_cache = true")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def connect(
    sources: Sequence[Source],
    *,
    skip_bad: bool = False,
    threads: int | None = None,
    setup: Sequence[Setup] = (),
    allow_external: bool = False,
    con: duckdb.DuckDBPyConnection | None = None,
) -> list[Loaded]:
    """A connection (`con`, from new_connection, or a new one) with every source registered
    and filtered, sealed unless `allow_external`; one `Loaded` per source, all on it."""
    con = con if con is not None else new_connection(threads)
    try:
        loaded = []
        for source in sources:
            rec, window, spans = register(
                con,
                source.recording,
                source.names,
                source.filters,
                skip_bad=skip_bad,
            )
            loaded.append(Loaded(rec, con, source.filters, window, source.names, spans))
        paths = [p for item in loaded for p in file_paths(item.recording)]
        for hook in setup:
            paths += list(hook(con, loaded))
        if not allow_external:
            seal(con, paths)
        for item in loaded:
            filter_events(con, item.filters.where, item.window, item.names)
    except BaseException:
        con.close()
        raise
    return loaded


def seal(con: duckdb.DuckDBPyConnection, allowed_paths: Sequence[str]) -> None:
    """No file, network or extension access but `allowed_paths`, and no way to change that."""
    listed = ", ".join(sql_string(p) for p in dict.fromkeys(allowed_paths))
    con.execute(f"SET allowed_paths = [{listed}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def where_clause(where: str | None, window: Window) -> str:
    """` WHERE ...` for --where and the time window ('' for none), on every engine."""
    conditions = []
    if where and where.strip():
        conditions.append(f"(\n{where}\n)")
    if window.since_ns is not None:
        conditions.append(f"ts_ns >= {int(window.since_ns)}")
    if window.until_ns is not None:
        conditions.append(f"ts_ns < {int(window.until_ns)}")
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def filter_events(
    con: duckdb.DuckDBPyConnection,
    where: str | None = None,
    window: Window = Window(),
    names: ViewNames = ViewNames(),
) -> None:
    """Define `events` as the rows of `events_all` that pass the filters.

    `where` is user SQL by design (a boolean expression over the view's columns); it is put on
    its own lines so that a trailing `--` comment cannot swallow the rest, and the view must stay
    one statement (no `; DROP ...`). The time bounds are integers, written in as literals.
    """
    clause = where_clause(where, window)
    sql = f"CREATE OR REPLACE VIEW {names.events} AS SELECT * FROM {names.events_all}{clause}"
    try:
        if len(con.extract_statements(sql)) != 1:
            raise UserError(f"bad --where {where!r}: give one condition, not several statements")
        con.execute(sql)
        if where:
            con.execute(f"SELECT * FROM {names.events} LIMIT 0")  # bind now: name the bad column
    except duckdb.Error as err:
        raise UserError(f"bad --where {where!r}: {sql_error(err)}") from None


def execute(
    con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """Run SQL; a DuckDB error becomes a one-line UserError (bad SQL is bad input), and so does
    SQL without a statement (empty, or comments only)."""
    try:
        cursor = con.execute(sql, dict(params) if params else None)
    except duckdb.Error as err:
        message = sql_error(err)
        if _DAMAGED.search(first_line(err)):  # the file named first, not the query
            raise UserError(message) from None
        # DuckDB's plain Error is what a damaged page (thrift header) raises
        found = damaged_file(con) if type(err) in _READ_ERRORS else None
        if found:
            raise UserError(f"{found[0]}: {DAMAGED_TEXT} ({found[1]}); {RECOPY}") from None
        raise UserError(f"query failed: {message}") from None
    if cursor is None:
        raise UserError('no SQL to run: give a statement, e.g. "SELECT count(*) FROM events"')
    return cursor


def sql_error(err: duckdb.Error) -> str:
    """DuckDB's message in one line, saying why when the sandbox refused, and naming the file
    first when a file's data (not its footer, which is checked up front) is damaged."""
    message = first_line(err)
    if any(s in message for s in _SANDBOX_ERRORS):
        return f"{message} ({SANDBOX_HINT})"
    damaged = _DAMAGED.search(message)
    if damaged:
        return f"{damaged['path']}: {DAMAGED_TEXT} ({damaged['why']}); {RECOPY}"
    return message


def damaged_file(con: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    """(path, DuckDB's complaint) of the first file of the connection's recordings whose data
    cannot be read, found by decoding every column of each file: only done after a query failed
    with a read error that did not say which file (a damaged page header, say)."""
    tables = con.execute(
        "SELECT table_name FROM duckdb_tables() "
        "WHERE table_name = 'files' OR suffix(table_name, '_files')"
    ).fetchall()
    for (table,) in tables:
        for (path,) in con.execute(f"SELECT path FROM {table}").fetchall():
            try:
                con.execute(f"SELECT sum(hash(f)) FROM read_parquet({sql_string(path)}) AS f")
            except duckdb.Error as err:
                return path, first_line(err)
    return None
