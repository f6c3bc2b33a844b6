"""The canned reports: `queries/*.sql`, each with a header that says what it answers.

Header (leading `--` lines, `key: value`):
    -- name: latency                                  (the file's stem)
    -- answers: how slow are getsockopt calls, per group?
    -- by: comm, level, optname                       (optional: default grouping; allows --by)
    -- param: top (int, default 20): groups to show  (repeatable; types: int, float, str,
                                                      duration, or choices a|b|c)
    -- columns: <by>, calls, mean_ns, ...
    -- layout: record                                 (optional: one row, shown as field/value;
                                                      histogram: a bar per row of `calls`)
    -- keep: latency_ns, comm                         (optional: never left out on a terminal;
                                                      default: the --by columns, or the first)
    -- drop: p999_ns, mean_ns                         (optional: left out first to fit one)

Nothing the user types is pasted into a report's SQL: parameter values are bound as DuckDB
`$name` parameters (durations as integer nanoseconds), and grouping dimensions are looked up in
the allow-list `DIMENSIONS`. Shared SQL (percentiles) comes from templates, `{name(args)}`,
expanded last (see `templates`). A report with `by` groups by the raw columns and decodes names only
in its result rows, through four placeholders replaced as text:
- `{keys}`: the raw columns to select and group by (`comm, level, optname`; --by optname groups
  by level and optname, since an option number means something only within its level);
- `{labels}`: the select list that names them (`comm, level_label(level) AS level, ...`; for
  the command line's reports the raw number too: `level, level_label(level) AS level_name`,
  so that csv and json carry both, and tables show the name);
- `{names}`: the columns that name the dimensions (`comm, level, ...`, or `level_name`);
- `{weight}`: how many calls a row stands for: `weight` (1, or the --max-rate sampling period),
  times `stack_weight` when grouping by stack, so that sampled stacks count for the calls they
  stand for (rows without a stack then have a NULL weight and are left out);
- `{count}` (optional): the calls of a group, `sum({weight})`; over DuckDB, where every row
  weighs 1 (no file sampled by --max-rate, no grouping by stack), `count(*)` instead, as a
  HUGEINT like the sum: the same numbers, and DuckDB's `count(*)` costs less than its `sum`
  (a 100M-event latency report 14% less CPU, docs/benchmarks.md).
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from sockopt_trace.analyzer.database import execute
from sockopt_trace.analyzer.dimensions import DIMENSIONS, parse_by
from sockopt_trace.analyzer.render import Result
from sockopt_trace.analyzer.templates import expand
from sockopt_trace.errors import UserError
from sockopt_trace.units import parse_duration

if TYPE_CHECKING:
    from sockopt_trace.analyzer.spark import SparkConnection

ALL = 2**31 - 1  # LIMIT for "all rows" (--top 0): Spark takes an INT there, not a BIGINT
HEADER_KEYS = ("name", "answers", "by", "param", "columns", "layout", "keep", "drop")
LAYOUTS = ("table", "record", "histogram")
PLACEHOLDERS = ("{keys}", "{labels}", "{names}", "{weight}")
COUNT = "{count}"
_FIELD = re.compile(r"--\s*([a-z_]+):\s*(.*)")
_PARAM = re.compile(r"([a-z_][a-z0-9_]*)\s*\(\s*([a-z|_]+)\s*,\s*default\s+([^)]*)\)\s*:\s*(.+)")


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # int, float, str, duration, or choices "a|b"
    default: str
    help: str

    def parse(self, value: Any) -> Any:
        """The value to bind, from a string (command line) or an already typed value."""
        text = str(value).strip()
        try:
            if self.type == "int":
                return int(text)
            if self.type == "float":
                return float(text)
            if self.type == "duration":
                return round(parse_duration(text, f"{self.name} duration") * 1e9)
        except ValueError:
            raise UserError(f"bad value {text!r} for {self.name}: expected {self.type}") from None
        if "|" in self.type and text not in self.type.split("|"):
            raise UserError(f"bad value {text!r} for {self.name}: choose {self.type}")
        return text


@dataclass(frozen=True)
class Report:
    name: str
    answers: str
    columns: str
    sql: str
    params: tuple[Param, ...] = ()
    by: tuple[str, ...] | None = None  # default dimensions; None: the report takes no --by
    layout: str = "table"  # or record (one row of facts), histogram (bars of calls)
    keep: tuple[str, ...] = ()  # columns never left out to fit a terminal
    drop: tuple[str, ...] = ()  # columns left out first to fit one

    @property
    def record(self) -> bool:
        return self.layout == "record"

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.params) or "none"
        raise UserError(f"report '{self.name}' has no parameter '{name}' (it has: {known})")


def parse_report(text: str, source: str) -> Report:
    """Parse a report file; raises ValueError on a malformed header (a bug in the file)."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        m = _FIELD.fullmatch(line.strip())
        if m:
            if m.group(1) not in HEADER_KEYS:
                raise ValueError(f"{source}: unknown header field '{m.group(1)}'")
            fields.setdefault(m.group(1), []).append(m.group(2).strip())
    for key in ("name", "answers", "columns"):
        if len(fields.get(key, [])) != 1:
            raise ValueError(f"{source}: the header needs exactly one '-- {key}:' line")
    params = []
    for spec in fields.get("param", []):
        m = _PARAM.fullmatch(spec)
        if not m:
            raise ValueError(f"{source}: bad param {spec!r}: want NAME (TYPE, default X): HELP")
        params.append(Param(*(g.strip() for g in m.groups())))
    by = None
    if "by" in fields:
        by = tuple(d.strip() for d in fields["by"][0].split(",") if d.strip())
        unknown = [d for d in by if d not in DIMENSIONS]
        if unknown or not by:
            raise ValueError(f"{source}: bad default dimensions {fields['by'][0]!r}")
    layout = fields.get("layout", ["table"])
    if len(layout) != 1 or layout[0] not in LAYOUTS:
        raise ValueError(f"{source}: layout must be one of {', '.join(LAYOUTS)}, not {layout}")
    keep, drop = (_names(fields.get(key, [])) for key in ("keep", "drop"))
    return Report(
        fields["name"][0],
        fields["answers"][0],
        fields["columns"][0],
        text,
        tuple(params),
        by,
        layout[0],
        keep,
        drop,
    )


def _names(lines: list[str]) -> tuple[str, ...]:
    return tuple(n.strip() for line in lines for n in line.split(",") if n.strip())


@functools.cache
def load_queries(folder: str = "") -> dict[str, Report]:
    """The queries of the package's `queries/` by name: the canned reports, or with `folder`
    the queries that one command runs (`diff`, `html`), which share the format."""
    root = importlib.resources.files("sockopt_trace.queries")
    if folder:
        root = root.joinpath(folder)
    reports = {}
    for item in sorted(root.iterdir(), key=lambda i: i.name):
        if item.name.endswith(".sql"):
            report = parse_report(item.read_text(), f"{folder}/{item.name}".lstrip("/"))
            reports[report.name] = report
    return reports


def load_reports() -> dict[str, Report]:
    """The canned reports, `queries/*.sql`, by name."""
    return load_queries()


def get_report(name: str) -> Report:
    reports = load_reports()
    if name not in reports:
        close = difflib.get_close_matches(name, reports, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UserError(f"unknown report '{name}': {hint}choose from {', '.join(reports)}")
    return reports[name]


def prepare(
    report: Report,
    *,
    by: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    raw: bool = False,
    unweighted: bool = False,
) -> tuple[str, dict[str, Any]]:
    """(SQL with the dimensions in, bound parameter values) for one run of `report`; `raw`:
    decoded dimensions come as their numbers plus `<dimension>_name`; `unweighted`: every row
    of the events weighs 1 (`{count}` is then a count of rows)."""
    values = {p.name: p.parse(p.default) for p in report.params}
    for name, value in (params or {}).items():
        values[name] = report.param(name).parse(value)
    if "top" in values:  # -n/--top: how many, 0 for all, in every command
        if values["top"] < 0:
            raise UserError(f"bad --top {values['top']}: 0 (all) or more")
        values["top"] = values["top"] or ALL
    sql = report.sql
    if report.by is None:
        if by:
            raise UserError(f"report '{report.name}' does not take --by")
        return expand(sql), values
    dims = parse_by(by) if by else list(report.by)
    keys = dict.fromkeys(k for d in dims for k in DIMENSIONS[d].keys)
    texts = (", ".join(keys), ", ".join(_labels(dims, raw)), ", ".join(label_columns(dims, raw)))
    weight = "weight * stack_weight" if "stack" in dims else "weight"
    count = "CAST(count(*) AS HUGEINT)" if unweighted and "stack" not in dims else f"sum({weight})"
    for placeholder, text in zip((*PLACEHOLDERS, COUNT), (*texts, weight, count), strict=True):
        sql = sql.replace(placeholder, text)
    return expand(sql), values


def _labels(dims: Sequence[str], raw: bool) -> list[str]:
    out: list[str] = []
    for d in dims:
        dim = DIMENSIONS[d]
        if dim.label == d:
            out.append(d)
        elif raw:
            out += [k for k in dim.keys if k not in out]
            out.append(f"{dim.label} AS {d}_name")
        else:
            out.append(f"{dim.label} AS {d}")
    return out


def label_columns(dims: Sequence[str], raw: bool = False) -> list[str]:
    """The result columns that name each dimension (`level`, or `level_name` when `raw`)."""
    return [f"{d}_name" if raw and DIMENSIONS[d].label != d else d for d in dims]


def run_report(
    con: duckdb.DuckDBPyConnection | SparkConnection,
    name: str,
    *,
    by: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    raw: bool = False,
) -> Result:
    """Run a canned report over the `events`/`files` views of `con` (DuckDB, or Spark).

    `raw`: the numbers of decoded columns too (`level` beside `level_name`), for csv and json;
    tables show the names under the plain header. The rows are fetched (reports are small: top
    N groups, or one row per interval), so the connection is free for the next query, e.g. the
    other side of a diff.
    """
    report = get_report(name)
    if isinstance(con, duckdb.DuckDBPyConnection):
        unweighted = COUNT in report.sql and unweighted_events(con)
        sql, values = prepare(report, by=by, params=params, raw=raw, unweighted=unweighted)
        cursor: Any = execute(con, sql, values)
    else:
        sql, values = prepare(report, by=by, params=params, raw=raw)
        cursor = con.execute(sql, values)
    columns = [d[0] for d in cursor.description]
    dims = (parse_by(by) if by else list(report.by)) if report.by is not None else []
    named = [c[: -len("_name")] for c in columns if c.endswith("_name") and c != "_name"]
    raw_keys = (
        {k for d in dims if DIMENSIONS[d].label != d for k in DIMENSIONS[d].keys} if raw else set()
    )
    hidden = [c for c in columns if c in raw_keys or c in named]
    keep = report.keep or tuple(label_columns(dims, raw)) or None
    return Result(
        columns,
        cursor.fetchall(),
        report.name,
        record=report.record,
        hidden=tuple(hidden),
        headers={f"{n}_name": n for n in named if f"{n}_name" in columns},
        keep=keep,
        drop=report.drop,
        bars=("calls", tuple(label_columns(dims, raw))) if report.layout == "histogram" else None,
    )


def unweighted_events(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether every row of `events` weighs 1: none of its files was recorded with --max-rate
    (the format: weight is then 1 in every row, and the view does not read the column)."""
    row = execute(con, "SELECT coalesce(bool_and(max_rate = 0), true) FROM files", {}).fetchone()
    return bool(row and row[0])
