"""Results and the four ways to print them: a terminal table, csv, json, markdown.

Every command prints through `render`, so formats behave the same everywhere: csv and json are
for machines (every column, raw numbers beside decoded names, ISO times with Z, floats without
binary noise, streamed); table and markdown are for people (decoded names only, one number
style per column from `cells`, a one-row record shown as field/value pairs, at most `max_rows`
rows). On a terminal (`width`) a table is fitted to it by `terminal.layout`; into a pipe it
stays whole.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import decimal
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from sockopt_trace.analyzer import cells, terminal

FORMATS = ("table", "csv", "json", "markdown")
BARS = terminal.BAR_WIDTH  # histogram bars in markdown
# Text columns that are names: never cut to fit a terminal (free text such as call sites is).
NAMES = frozenset(
    {
        "comm",
        "host",
        "level",
        "optname",
        "errno",
        "field",
        "side",
        "status",
        "action",
        "probe",
        "stacks",
        "metric",
        "top_option",
        "top_comm",
        "problem",
        "sequences",
        "significant",
        "name",
    }
)


# Text columns cut at the start when they must be cut, so that the file's name stays.
PATHS = frozenset({"path", "file"})


@dataclass
class Result:
    """A titled table of rows; `rows` may be a one-shot iterator (a streaming cursor).

    `record`: the result is one row of many facts (summary), which people read better as
    field/value pairs in table and markdown. `hidden`: columns for csv and json only (raw
    numbers, every detail); `headers`: what people see a column called (`level_name` shown as
    `level` when the raw `level` is hidden). `keep`: columns never left out to fit a terminal;
    `drop`: columns left out first, least important first. `bars`: (count column, group
    columns) draws a histogram bar per row in table and markdown.
    """

    columns: list[str]
    rows: Iterable[Sequence[Any]]
    title: str | None = None
    record: bool = False
    hidden: tuple[str, ...] = ()
    headers: dict[str, str] | None = None
    keep: tuple[str, ...] | None = None
    drop: tuple[str, ...] = ()
    bars: tuple[str, tuple[str, ...]] | None = None

    @classmethod
    def from_cursor(cls, cursor: Any, title: str | None = None, batch: int = 10_000) -> Result:
        """Rows fetched `batch` at a time, so a huge ad hoc result streams to csv/json."""
        columns = [d[0] for d in cursor.description]

        def rows() -> Iterator[Sequence[Any]]:
            while chunk := cursor.fetchmany(batch):
                yield from chunk

        return cls(columns, rows(), title)


def render(
    results: Result | Sequence[Result],
    fmt: str,
    out: TextIO,
    *,
    max_rows: int | None = None,
    width: int | None = None,
    color: bool = False,
) -> bool:
    """Print `results` in `fmt`; returns True if table/markdown left rows out (`max_rows`).

    Several results print one after the other (json: one object keyed by title; csv takes one
    result only: one table). `width`: the terminal's, to fit tables to; `color`: dim the notes.
    """
    many = not isinstance(results, Result)
    items = list(results) if not isinstance(results, Result) else [results]
    if fmt == "json":
        _json(items, out, keyed=many)
        return False
    if fmt == "csv":
        if len(items) != 1:
            raise ValueError("csv prints one table")
        _csv(items[0], out)
        return False
    truncated = False
    first = True
    for res in items:
        rows = list(itertools.islice(res.rows, max_rows + 1 if max_rows else None))
        if max_rows and len(rows) > max_rows:
            rows, truncated = rows[:max_rows], True
        for title, part, part_rows in _parts(res, rows, many):
            table = people_table(part, part_rows, short_times=width is not None)
            if fmt == "markdown":
                _markdown(title, table, out, first=first)
            else:
                if title:  # prose: wrapped at words to fit
                    out.write("\n".join(terminal.wrap(title, width)) + "\n")
                lines, note = terminal.layout(table, width)
                out.write("\n".join(lines) + "\n")
                if note:
                    out.write(terminal.dim(note, color) + "\n")
            first = False
    return truncated


def _parts(
    res: Result, rows: list[Sequence[Any]], many: bool
) -> list[tuple[str | None, Result, list[Sequence[Any]]]]:
    """(title, result, rows) to print: the result, or for a histogram one part per group, titled
    by the group's names (as bpftrace prints one histogram per key)."""
    title = res.title if many else None
    if res.bars is None or not res.bars[1]:
        return [(title, res, rows)]
    groups = [res.columns.index(g) for g in res.bars[1]]
    rest = [i for i in range(len(res.columns)) if i not in groups]
    part = dataclasses.replace(
        res, columns=[res.columns[i] for i in rest], rows=[], bars=(res.bars[0], ()), keep=None
    )
    out: list[tuple[str | None, Result, list[Sequence[Any]]]] = []
    for key, members in itertools.groupby(rows, key=lambda r: tuple(r[g] for g in groups)):
        name = " ".join(cells.text(k) for k in key)
        heading = f"{title}: {name}" if title else name
        out.append((heading, part, [tuple(r[i] for i in rest) for r in members]))
    return out


def people_table(res: Result, rows: list[Sequence[Any]], *, short_times: bool) -> terminal.Table:
    """The cells people see: hidden columns out, names as `headers` says, one style per column."""
    visible = [i for i, c in enumerate(res.columns) if c not in res.hidden]
    columns = [res.columns[i] for i in visible]
    data = [[r[i] for i in visible] for r in rows]
    headers = [(res.headers or {}).get(c, c) for c in columns]
    if res.record and len(data) == 1:
        values = data[0]
        formatted = [
            cells.column_format(c, [v])[0](v) for c, v in zip(columns, values, strict=True)
        ]
        return terminal.Table(
            ["field", "value"],
            [[h, t] for h, t in zip(headers, formatted, strict=True)],
            [False, False],
            [False, True],
            keep={0, 1},
        )
    texts: list[list[str]] = [[] for _ in data]
    right, cuttable, notes = [], [], {}
    for j, column in enumerate(columns):
        values = [r[j] for r in data]
        fmt, note = cells.column_format(column, values)
        if note and not short_times:
            fmt, note = cells.text, None
        if note:
            notes[j] = note
        for row, v in zip(texts, values, strict=True):
            row.append(fmt(v))
        present = [v for v in values if v is not None]
        numeric = bool(present) and all(cells.is_number(v) for v in present)
        right.append(numeric)
        strings = bool(present) and all(isinstance(v, str) for v in present)
        name = headers[j] in NAMES or column in NAMES or column.endswith("_id")
        cuttable.append(strings and not name)
    keep = res.keep if res.keep is not None else tuple(columns[:1])
    bars = None
    if res.bars is not None and res.bars[0] in columns:
        count, groups = res.bars
        bars = (columns.index(count), [columns.index(g) for g in groups if g in columns])
    return terminal.Table(
        headers,
        texts,
        right,
        cuttable,
        keep={columns.index(c) for c in keep if c in columns},
        drop=[columns.index(c) for c in res.drop if c in columns],
        cut_left={j for j, c in enumerate(columns) if c in PATHS},
        notes=notes,
        bars=bars,
    )


def human(value: Any) -> str:
    """How one value reads on its own (a column of values reads by `cells.column_format`)."""
    return cells.text(value)


def plain(value: Any) -> Any:
    """A JSON-ready value: exact numbers (floats without binary noise), ISO 8601 UTC times, NaN
    as null."""
    if isinstance(value, dt.datetime):
        return value.isoformat() + ("Z" if value.tzinfo is None else "")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else plain(float(value))
    if isinstance(value, float):
        # 12 significant digits: 2554.0900000000183 (interpolation noise) is 2554.09.
        return float(f"{value:.12g}") if math.isfinite(value) else None
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if value is None or isinstance(value, (int, str, bool)):
        return value
    return str(value)


def _json(items: list[Result], out: TextIO, *, keyed: bool) -> None:
    if keyed:
        out.write("{")
    for i, res in enumerate(items):
        if keyed:
            out.write(("," if i else "") + f"\n{json.dumps(res.title)}: ")
        out.write("[")
        for j, row in enumerate(res.rows):
            record = {c: plain(v) for c, v in zip(res.columns, row, strict=True)}
            out.write(("," if j else "") + "\n  " + json.dumps(record, ensure_ascii=False))
        out.write("\n]")
    out.write("\n}\n" if keyed else "\n")


def _csv(res: Result, out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(res.columns)
    for row in res.rows:
        writer.writerow(["" if v is None else _csv_value(plain(v)) for v in row])


def _csv_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _markdown(title: str | None, table: terminal.Table, out: TextIO, *, first: bool) -> None:
    if title:
        out.write(("" if first else "\n") + f"### {title}\n\n")

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    headers, rows, right = table.headers, table.rows, table.right
    if table.bars is not None:  # the histogram's bars, as on a terminal (without the frame)
        columns = list(range(len(headers)))
        headers, rows, _ = terminal.with_bars(table.bars, headers, rows, columns, BARS)
        rows = [[*r[:-1], r[-1].strip("| ")] for r in rows]
        right = [*right, False]
    out.write("| " + " | ".join(headers) + " |\n")
    out.write("|" + "|".join("---:" if r else "---" for r in right) + "|\n")
    for row in rows:
        out.write("| " + " | ".join(cell(c) for c in row) + " |\n")
