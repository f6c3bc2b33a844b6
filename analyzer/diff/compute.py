"""Compute a diff: both sides on one sealed DuckDB connection, the canned queries, then `judge`.

Each side is a set of recording files. Its recordings (told apart by their recording id: one
per `record` run, e.g. one subdirectory each from `record --repeat`) are either compared as
*replicates* (3 or more recordings in all: each change is judged against the variation between
recordings of the same side), or read as one recording (a single pair, or `replicates=False`:
several hosts recorded at the same time, say). Views: `base_events`, `new_events` and each
side's `recordings` table (one row per recording, its span: `analyzer.span`); with replicates
and --since/--until, each recording is registered on its own (an offset counts from its own
start) and those views are the union of theirs.

Queries (`queries/diff/`): `groups.sql` (per group and side, or per group and recording for
replicates: calls, rate, errors, time, exact p50/p90/p99, calls and errors per time slot of
each recording) and `latency.sql` (single pair: calls per latency bin, for the percentile
tests). Every percentile diff shows is exact, from the shared template
(queries/lib/percentiles.sql) in one place: the CTE `quantiles` of `groups.sql` (a side of
replicates shows the geometric mean of its runs').
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np

from sockopt_trace.analyzer import symbolviews
from sockopt_trace.analyzer.database import Loaded, Source, connect, execute, new_connection
from sockopt_trace.analyzer.diff import judge
from sockopt_trace.analyzer.diff.group import Bins, Group
from sockopt_trace.analyzer.diff.model import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_CHANGE,
    MIN_BEYOND,
    PERCENTILES,
    SIDES,
    SLOTS,
    DiffResult,
    Replicate,
    Side,
)
from sockopt_trace.analyzer.dimensions import parse_by
from sockopt_trace.analyzer.filters import Filters
from sockopt_trace.analyzer.footerbatch import duckdb_footers
from sockopt_trace.analyzer.naming import prepare as prepare_symbols
from sockopt_trace.analyzer.recording import Recording, open_recording
from sockopt_trace.analyzer.reports import Report, load_queries, prepare
from sockopt_trace.analyzer.span import wall_clock_ns
from sockopt_trace.analyzer.summary import stacks_setting
from sockopt_trace.analyzer.views import ViewNames
from sockopt_trace.errors import UserError
from sockopt_trace.schema import RecordingMetadata

if TYPE_CHECKING:
    from sockopt_trace.analyzer.spark import SparkConnection

    # the connection diff runs on: DuckDB's, or Spark's (--engine spark)
    Con = duckdb.DuckDBPyConnection | SparkConnection

# the columns of groups.sql that add up over a side's recordings
SUMMED = (
    "calls",
    "rate",
    "errors",
    "total_ns",
    "time_rate",
    "slots_with_calls",
    "calls_sq",
    "errors_sq_per_call",
)


def diff_queries() -> dict[str, Report]:
    """The canned diff queries, `queries/diff/*.sql`, by name (groups, latency)."""
    return load_queries("diff")


def diff(
    base: Sequence[str | Path],
    new: Sequence[str | Path],
    *,
    by: Sequence[str] | str | None = None,
    filters: Filters = Filters(),
    alpha: float = DEFAULT_ALPHA,
    min_change: float = DEFAULT_MIN_CHANGE,
    skip_bad: bool = False,
    allow_external: bool = False,
    replicates: bool | None = None,
    engine: str = "duckdb",
    master: str | None = None,
) -> DiffResult:
    """Compare the recordings `new` with the recordings `base` (each: files, directories or
    globs; a side's recordings are told apart by their recording ids).

    `by`: dimensions of the report allow-list (default comm, level, optname); `filters` as for
    reports, applied to both (offsets from each recording's start). `replicates`: None judges
    against the variation between recordings when there are 3 or more in all; False reads each
    side as one recording; True requires replicates. `engine`: "duckdb", or "spark" on
    `master` (`spark.session`): the same queries and answers; call sites there as recorded, as
    `report --engine spark` shows them. Raises UserError on bad input.
    """
    if not 0 < alpha < 1:
        raise UserError(f"bad --alpha {alpha:g}: between 0 and 1, e.g. 0.01")
    if not 0 <= min_change < 100:
        raise UserError(f"bad --min-change {min_change:g}: a fraction, e.g. 0.1 for 10%")
    dims = tuple(parse_by(by)) if by else tuple(diff_queries()["groups"].by or ())
    duck = None if engine == "spark" else new_connection()  # footers read on it first
    try:
        footers = duckdb_footers(duck) if duck is not None else None
        recordings = [
            open_recording(specs, skip_bad=skip_bad, footers=footers) for specs in (base, new)
        ]
        ids = [_recording_ids(r) for r in recordings]
        count = len(ids[0]) + len(ids[1])
        replicated = count >= 3 if replicates is None else replicates
        if replicated and count < 3:
            raise UserError(
                f"replicates need 3 recordings or more in all, found {len(ids[0])} base and "
                f"{len(ids[1])} new: record several runs (sockopt-trace record --repeat N -o DIR "
                "-- COMMAND)"
            )
        bounded = replicated and bool(filters.since or filters.until)
        sources = []
        for name, rec, rids in zip(SIDES, recordings, ids, strict=True):
            if bounded:  # each recording on its own, so that offsets count from its own start
                parts = [_only(rec, rid) for rid in rids]
                sources += [
                    Source(r, filters, ViewNames(f"{name}{i}_")) for i, r in enumerate(parts)
                ]
            else:
                sources.append(Source(rec, filters, ViewNames(f"{name}_")))
        loaded: Sequence[Loaded[Any]]
        if engine == "spark":
            from sockopt_trace.analyzer import spark

            notes: list[str] = []
            loaded = spark.connect(sources, master=master)
        else:
            symbols, notes = prepare_symbols(recordings)  # call sites named as `report` names them
            loaded = connect(
                sources,
                skip_bad=skip_bad,
                allow_external=allow_external,
                setup=[symbolviews.setup(symbols)],
                con=duck,
            )
    except BaseException:
        if duck is not None:
            duck.close()
        raise
    con = loaded[0].con
    try:
        base_side, new_side = (
            _side(con, name, specs, rec, [x for x in loaded if x.names.prefix.startswith(name)])
            for name, specs, rec in zip(SIDES, (base, new), recordings, strict=True)
        )
        sides = (base_side, new_side)
        rows = _fetch_groups(con, dims, replicated, percentiles=True)
        callsites: list[Group] = []
        if "callsite" not in dims and _has_callsites(*(s.recording for s in sides)):
            compared = _fetch_groups(con, ("callsite",), replicated, percentiles=False)
            callsites = [g for g in compared if g.status != "both"]
    finally:
        con.close()
    warnings = notes + settings_warnings(base_side.recording, new_side.recording, dims)
    return judge.judge(dims, sides, rows, callsites, warnings, alpha, min_change, replicated)


def _recording_ids(rec: Recording) -> list[str]:
    """The recording ids of a side's files, the earliest recording first."""
    starts: dict[str, int] = {}
    for f in rec.files:
        rid = f.meta.recording_id
        starts[rid] = min(starts.get(rid, f.meta.start_ns), f.meta.start_ns)
    return sorted(starts, key=lambda r: (starts[r], r))


def _only(rec: Recording, recording_id: str) -> Recording:
    return Recording(tuple(f for f in rec.files if f.meta.recording_id == recording_id))


def _side(
    con: Con,
    name: str,
    specs: Sequence[str | Path],
    opened: Recording,
    loaded: list[Loaded[Any]],
) -> Side:
    """The side as registered: its recordings and their spans (`span.recording_spans`, within
    --since/--until); with one source per recording, the side's views are their union."""
    if len(loaded) > 1 or loaded[0].names.prefix != f"{name}_":
        for view in ("events", "recordings"):
            parts = [getattr(x.names, view) for x in loaded]
            if isinstance(con, duckdb.DuckDBPyConnection):
                union = "\nUNION ALL BY NAME\n".join(f"SELECT * FROM {p}" for p in parts)
                con.execute(f"CREATE OR REPLACE VIEW {name}_{view} AS {union}")
            else:
                con.union_view(f"{name}_{view}", parts)
    files = tuple(f for x in loaded for f in x.recording.files)
    replicates = []
    for x in loaded:
        for rid, span in x.spans.items():
            if span.covered_ns:
                own = Recording(tuple(f for f in files if f.meta.recording_id == rid))
                replicates.append(Replicate(rid, own, span.start_ns, span.end_ns, span.seconds))
    if not replicates:
        raise UserError(f"the {name} recording covers no time within --since/--until")
    replicates.sort(key=lambda r: (r.start_ns, r.recording_id))
    # Files DuckDB could not read (with --skip-bad) are left out of the side too.
    skipped = (*opened.skipped, *(s for x in loaded for s in x.recording.skipped))
    recording = Recording(files, opened.partial, tuple(dict.fromkeys(skipped)))
    spans = [s for x in loaded for s in x.spans.values()]
    return Side(
        name,
        tuple(map(str, specs)),
        recording,
        tuple(replicates),
        min(r.start_ns for r in replicates),
        max(r.end_ns for r in replicates),
        sum(r.seconds for r in replicates),
        wall_clock_ns(spans) / 1e9,
    )


def _has_callsites(*recordings: Recording) -> bool:
    return all(any(f.meta.stacks != "off" for f in r.files) for r in recordings)


def _fetch_groups(
    con: Con, dims: Sequence[str], replicated: bool, *, percentiles: bool
) -> list[Group]:
    """The groups by `dims` (groups.sql): each side's totals, or each recording's (replicates);
    and, for a single pair's percentile tests, the latency bins."""
    queries = diff_queries()
    params = {"slots": SLOTS, "per_recording": int(replicated)}
    by_key: dict[tuple[Any, ...], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for row in _fetch(con, queries["groups"], dims, params):
        by_key.setdefault(tuple(row[d] for d in dims), ([], []))[int(row["side"])].append(row)
    groups = [
        Group(_totals(parts), key, [*parts[0], *parts[1]] if replicated else [])
        for key, parts in by_key.items()
    ]
    if percentiles and not replicated:
        min_calls = math.ceil(MIN_BEYOND / max(min(p, 1 - p) for p in PERCENTILES.values()))
        bins = _latency_bins(con, queries["latency"], dims, min_calls)
        for g in groups:
            g.bins = bins.get(g.key)
    return groups


def _totals(parts: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> dict[str, Any]:
    """A group's values per side (`base_calls`, `new_q`, ...) from its rows of groups.sql:
    one per side, or one per recording, added up (percentiles: the runs' geometric mean, as
    the replicates' test sees them)."""
    row: dict[str, Any] = {}
    for side, rows in zip(SIDES, parts, strict=True):
        for column in SUMMED:
            row[f"{side}_{column}"] = sum(float(r[column]) for r in rows)
        quantiles = [r["q"] for r in rows if r["q"] is not None]
        if len(quantiles) > 1:
            logs = np.log(np.maximum(np.array(quantiles, dtype=float), 1e-9))
            quantiles = [list(np.exp(logs.mean(axis=0)))]
        row[f"{side}_q"] = quantiles[0] if quantiles else None
    return row


def _latency_bins(
    con: Con, report: Report, dims: Sequence[str], min_calls: int
) -> dict[tuple[Any, ...], Bins]:
    """Each group's latency bins on each side, from queries/diff/latency.sql. Its rows come
    sorted by group, side and bin, and may be millions (--by tid,fd): they are cut into groups
    with numpy rather than read one by one."""
    sql, values = prepare(report, by=list(dims), params={"min_calls": min_calls})
    columns = _run(con, sql, values).fetchnumpy()
    n = len(columns["bin"])
    labels = [np.ma.filled(np.ma.asarray(columns[d]).astype(object), None) for d in dims]
    starts = np.zeros(n, dtype=bool)
    starts[:1] = True
    for label in labels:
        starts[1:] |= label[1:] != label[:-1]
    bounds = [*np.flatnonzero(starts), n]
    side = np.asarray(columns["side"])
    data = [np.asarray(columns[c], dtype=np.float64) for c in ("bin", "latency_ns", "calls")]
    out = {}
    for a, b in itertools.pairwise(bounds):
        cut = a + int(np.searchsorted(side[a:b], 1))
        key = tuple(_plain(label[a]) for label in labels)
        out[key] = (tuple(d[a:cut] for d in data), tuple(d[cut:b] for d in data))
    return out


def _plain(value: Any) -> Any:
    """A Python value for a numpy one, so keys compare and hash like the other query's."""
    return value.item() if isinstance(value, np.generic) else value


def _run(con: Con, sql: str, values: dict[str, Any]) -> Any:
    """A cursor over the rows of `sql` on either engine; an error is a one-line UserError."""
    if isinstance(con, duckdb.DuckDBPyConnection):
        return execute(con, sql, values)
    return con.execute(sql, values)


def _fetch(
    con: Con, report: Report, dims: Sequence[str], params: dict[str, Any]
) -> list[dict[str, Any]]:
    sql, values = prepare(report, by=list(dims), params=params)
    cursor = _run(con, sql, values)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, values_, strict=True)) for values_ in cursor.fetchall()]


def settings_warnings(base: Recording, new: Recording, dims: Sequence[str]) -> list[str]:
    """What the reader must know before trusting the comparison: settings that differ between
    the recordings, lost events and files left out in either, call sites missing on a side."""
    lines = []
    settings = {
        "hosts": lambda m: m.host,
        "probe modes": lambda m: m.probe,
        "kernels": lambda m: m.kernel,
        "recorder versions": lambda m: m.recorder_version,
        "filters": _filters,
        "stack settings": stacks_setting,
    }
    for what, get in settings.items():
        values = [sorted({get(f.meta) for f in rec.files}) for rec in (base, new)]
        if values[0] != values[1]:
            shown = [", ".join(v) for v in values]
            lines.append(f"the recordings differ in {what}: base {shown[0]}; new {shown[1]}")
    for name, rec in zip(SIDES, (base, new), strict=True):
        lines += [f"{name} recording: {line}" for line in rec.notices()]
        if ("callsite" in dims or "stack" in dims) and not _has_callsites(rec):
            lines.append(
                f"{name} recording: recorded without call sites (--no-stacks): its call sites "
                "are all empty"
            )
    return lines


def _filters(meta: RecordingMetadata) -> str:
    """The recorder's filters, pids aside: a process restarted between the recordings has a
    new pid, so only whether calls were filtered by pid is compared."""
    filters: dict[str, object] = {
        k: v for k, v in meta.filters.as_dict().items() if v and k != "pids"
    }
    if meta.filters.pids:
        filters["pids"] = "some"
    return json.dumps(filters, sort_keys=True) if filters else "none"
