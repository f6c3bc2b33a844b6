"""Why a report has nothing to show, in one line: the reader should not have to guess whether
the recording is empty, the time window misses it, the filter matched nothing, or the report's
question has no answer in it (no failed call, no stacks recorded)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sockopt_trace.analyzer.timespec import to_datetime

if TYPE_CHECKING:
    from sockopt_trace.analyzer.database import Loaded
    from sockopt_trace.analyzer.spark import SparkConnection


def why_empty(
    loaded: Loaded | Loaded[SparkConnection], report: str, dims: Sequence[str] = ()
) -> str:
    """The reason `report` (grouped by `dims`) found no rows in `loaded`."""
    rec, window, names = loaded.recording, loaded.window, loaded.names
    if rec.events == 0:
        return f"the recording holds no calls ({_files(len(rec.files))}, nothing was recorded)"
    if window.bounded:
        inside = _count(loaded, names.events_all, _window_sql(loaded))
        if inside == 0:
            return (
                f"no calls {_between(loaded)}: the recording covers {_time(rec.start_ns)} to "
                f"{_time(rec.end_ns)} UTC ({rec.events:,} calls)"
            )
    else:
        inside = rec.events
    scope = " in the time window" if window.bounded else ""
    where = loaded.filters.where
    if where and where.strip() and _count(loaded, names.events) == 0:
        return f"--where matched none of the {inside:,} calls{scope}"
    if "stack" in dims and _count(loaded, names.events, "stack IS NOT NULL") == 0:
        return "no stacks were recorded (record --stacks records them); --by callsite works"
    if report == "errors":
        return f"no call failed: all {_count(loaded, names.events):,} calls{scope} returned 0"
    return "no rows"


def _count(loaded: Loaded | Loaded[SparkConnection], view: str, condition: str = "") -> int:
    """Rows of `view` (on DuckDB or Spark: both connections execute DuckDB's dialect)."""
    where = f" WHERE {condition}" if condition else ""
    rows = loaded.con.execute(f"SELECT count(*) FROM {view}{where}").fetchall()
    return int(rows[0][0]) if rows else 0


def _window_sql(loaded: Loaded | Loaded[SparkConnection]) -> str:
    w = loaded.window
    parts = [f"ts_ns >= {int(w.since_ns)}"] if w.since_ns is not None else []
    parts += [f"ts_ns < {int(w.until_ns)}"] if w.until_ns is not None else []
    return " AND ".join(parts)


def _between(loaded: Loaded | Loaded[SparkConnection]) -> str:
    w = loaded.window
    if w.since_ns is not None and w.until_ns is not None:
        return f"between {_time(w.since_ns)} and {_time(w.until_ns)}"
    if w.since_ns is not None:
        return f"from {_time(w.since_ns)} on"
    return f"before {_time(w.until_ns or 0)}"


def _time(ns: int) -> str:
    return to_datetime(ns).isoformat(sep=" ", timespec="milliseconds")


def _files(n: int) -> str:
    return f"{n} file{'' if n == 1 else 's'}"
