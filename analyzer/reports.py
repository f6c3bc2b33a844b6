"""The canned reports: `queries/*.sql`, each with a header that says what it answers.

Header (leading `--` lines, `key: value`):
    -- name: latency                                  (the file's stem)
    -- answers: how slow are getsockopt calls, per group?
    -- by: comm, level, optname                       (optional: default grouping; allows --by)
    -- param: top (int, default 20): groups to show  (repeatable; types: int, float, str,
                                                      duration, or choices a|b|c)
    -- columns: <by>, calls, mean_ns, ...
    -- layout: record                                 (optional: one row, shown as field/value)

Nothing the user types is pasted into a report's SQL: parameter values are bound as DuckDB
`$name` parameters (durations as integer nanoseconds), and grouping dimensions are looked up in
the allow-list `DIMENSIONS`. Shared SQL (percentiles) comes from templates, `{name(args)}`,
expanded last (see `templates`). A report with `by` groups by the raw columns and decodes names only
in its result rows, through four placeholders replaced as text:
- `{keys}`: the raw columns to select and group by (`comm, level, optname`; --by optname groups
  by level and optname, since an option number means something only within its level);
- `{labels}`: the select list that names them (`comm, level_label(level) AS level, ...`);
- `{names}`: the dimensions' names, the columns that `{labels}` produces (`comm, level, ...`);
- `{weight}`: `1`, or `stack_weight` when grouping by stack, so that sampled stacks count for
  the calls they stand for (rows without a stack then have a NULL weight and are left out).
"""

from __future__ import annotations

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

HEADER_KEYS = ("name", "answers", "by", "param", "columns", "layout")
PLACEHOLDERS = ("{keys}", "{labels}", "{names}", "{weight}")
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
    record: bool = False  # one row of facts (layout: record)

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
    if layout not in (["table"], ["record"]):
        raise ValueError(f"{source}: layout must be table or record, not {layout}")
    return Report(
        fields["name"][0],
        fields["answers"][0],
        fields["columns"][0],
        text,
        tuple(params),
        by,
        layout == ["record"],
    )


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
        raise UserError(f"unknown report '{name}': choose from {', '.join(reports)}")
    return reports[name]


def prepare(
    report: Report,
    *,
    by: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """(SQL with the dimensions in, bound parameter values) for one run of `report`."""
    values = {p.name: p.parse(p.default) for p in report.params}
    for name, value in (params or {}).items():
        values[name] = report.param(name).parse(value)
    sql = report.sql
    if report.by is None:
        if by:
            raise UserError(f"report '{report.name}' does not take --by")
        return expand(sql), values
    dims = parse_by(by) if by else list(report.by)
    keys = dict.fromkeys(k for d in dims for k in DIMENSIONS[d].keys)
    labels = (d if DIMENSIONS[d].label == d else f"{DIMENSIONS[d].label} AS {d}" for d in dims)
    texts = (", ".join(keys), ", ".join(labels), ", ".join(dims))
    weight = "stack_weight" if "stack" in dims else "1"
    for placeholder, text in zip(PLACEHOLDERS, (*texts, weight), strict=True):
        sql = sql.replace(placeholder, text)
    return expand(sql), values


def run_report(
    con: duckdb.DuckDBPyConnection | SparkConnection,
    name: str,
    *,
    by: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Result:
    """Run a canned report over the `events`/`files` views of `con` (DuckDB, or Spark).

    The rows are fetched (reports are small: top N groups, or one row per interval), so the
    connection is free for the next query, e.g. the other side of a diff.
    """
    report = get_report(name)
    sql, values = prepare(report, by=by, params=params)
    if isinstance(con, duckdb.DuckDBPyConnection):
        cursor: Any = execute(con, sql, values)
    else:
        cursor = con.execute(sql, values)
    columns = [d[0] for d in cursor.description]
    return Result(columns, cursor.fetchall(), report.name, record=report.record)
