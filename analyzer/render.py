"""Results and the four ways to print them: a terminal table (rich), csv, json, markdown.

Every command (info, report, query, and later diff) prints through `render`, so formats behave
the same everywhere: csv and json are for machines (exact values, ISO times with Z, streamed);
table and markdown are for people (thousands separators, a few decimals, a one-row record shown
as field/value pairs, at most `max_rows` rows).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.table import Table

FORMATS = ("table", "csv", "json", "markdown")


@dataclass
class Result:
    """A titled table of rows; `rows` may be a one-shot iterator (a streaming cursor).

    `record`: the result is one row of many facts (summary, info), which people read better as
    field/value pairs in table and markdown.
    """

    columns: list[str]
    rows: Iterable[Sequence[Any]]
    title: str | None = None
    record: bool = False
    hidden: tuple[str, ...] = ()  # columns for csv and json only (raw numbers, every detail)

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
) -> bool:
    """Print `results` in `fmt`; returns True if table/markdown left rows out (`max_rows`).

    Several results print one after the other (json: one object keyed by title).
    """
    many = not isinstance(results, Result)
    items = list(results) if many else [results]  # type: ignore[arg-type]
    if fmt == "json":
        _json(items, out, keyed=many)
        return False
    if fmt == "csv":
        for i, res in enumerate(items):
            if many:
                out.write(("\n" if i else "") + f"# {res.title}\n")
            _csv(res, out)
        return False
    truncated = False
    for i, res in enumerate(items):
        rows = list(itertools.islice(res.rows, max_rows + 1 if max_rows else None))
        if max_rows and len(rows) > max_rows:
            rows, truncated = rows[:max_rows], True
        columns = res.columns
        if res.hidden:
            keep = [i for i, c in enumerate(columns) if c not in res.hidden]
            columns = [columns[i] for i in keep]
            rows = [tuple(r[i] for i in keep) for r in rows]
        if res.record and len(rows) == 1:
            rows = list(zip(columns, rows[0], strict=True))
            columns = ["field", "value"]
        if fmt == "markdown":
            _markdown(res.title if many else None, columns, rows, out, first=i == 0)
        else:
            _table(res.title if many else None, columns, rows, out)
    return truncated


def human(value: Any) -> str:
    """How a value reads in a table: 12,345 / 312.7 / 0.0123 / 2025-01-31 12:00:00.123456."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):  # same width on every row, whole seconds or not
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (float, decimal.Decimal)):
        v = float(value)
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if v != 0 and abs(v) < 1:
            return f"{v:.3g}"
        return f"{v:,.1f}" if abs(v) < 10_000 else f"{v:,.0f}"
    return str(value)


def plain(value: Any) -> Any:
    """A JSON-ready value: exact numbers, ISO 8601 UTC times, NaN as null."""
    if isinstance(value, dt.datetime):
        return value.isoformat() + ("Z" if value.tzinfo is None else "")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if value is None or isinstance(value, (int, float, str, bool)):
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


def _numeric_columns(columns: list[str], rows: list[Sequence[Any]]) -> list[bool]:
    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)

    return [
        bool(rows)
        and all(is_number(r[i]) for r in rows if r[i] is not None)
        and any(r[i] is not None for r in rows)
        for i in range(len(columns))
    ]


def _markdown(
    title: str | None, columns: list[str], rows: list[Sequence[Any]], out: TextIO, *, first: bool
) -> None:
    if title:
        out.write(("" if first else "\n") + f"### {title}\n\n")
    numeric = _numeric_columns(columns, rows)

    def cell(v: Any) -> str:
        return human(v).replace("|", "\\|").replace("\n", " ")

    out.write("| " + " | ".join(columns) + " |\n")
    out.write("|" + "|".join("---:" if n else "---" for n in numeric) + "|\n")
    for row in rows:
        out.write("| " + " | ".join(cell(v) for v in row) + " |\n")


def _table(title: str | None, columns: list[str], rows: list[Sequence[Any]], out: TextIO) -> None:
    # No markup: values such as "[unknown]" are data. A pipe gets a wide page, not wrapping.
    console = Console(file=out, markup=False, highlight=False, emoji=False, soft_wrap=False)
    if not console.is_terminal:
        console.width = 250
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=False)
    for name, numeric in zip(columns, _numeric_columns(columns, rows), strict=True):
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(*(human(v) for v in row))
    console.print(table)
