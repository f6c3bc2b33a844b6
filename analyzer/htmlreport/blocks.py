"""The HTML building blocks of the pages: sortable tables of results, fact tables, cards,
notices and lead paragraphs, every text escaped."""

from __future__ import annotations

import decimal
import html
from collections.abc import Sequence
from typing import Any

from sockopt_trace.analyzer.htmlreport.fmt import duration, number, percent
from sockopt_trace.analyzer.render import Result, human


def _cell(column: str, value: Any) -> tuple[str, Any, bool]:
    """(text, raw value for sorting, numeric) of one table cell."""
    if value is None:
        return "", "", False
    if isinstance(value, decimal.Decimal):
        value = float(value)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if numeric and column.endswith("_ns"):
        return duration(value), value, True
    if numeric and column.endswith("_pct"):
        return percent(value), value, True
    if numeric and column.endswith("_per_s"):
        return number(value, 1), value, True
    if isinstance(value, int) and not isinstance(value, bool) and column in ("pid", "tid", "fd"):
        return str(value), value, True
    return human(value), value if numeric else "", numeric


def heading(column: str) -> str:
    for suffix, replacement in (("_ns", ""), ("_pct", " %"), ("_per_s", "/s")):
        if column.endswith(suffix) and column != suffix.strip("_"):
            column = column[: -len(suffix)] + replacement
            break
    return column.replace("_", " ")


def table(res: Result, *, max_rows: int | None = None, empty: str = "None.") -> str:
    rows = list(res.rows)[:max_rows] if max_rows else list(res.rows)
    if not rows:
        return f'<p class="empty">{html.escape(empty)}</p>'
    cells = [[_cell(c, v) for c, v in zip(res.columns, row, strict=True)] for row in rows]
    numeric = [any(r[i][2] for r in cells) for i in range(len(res.columns))]
    head = "".join(
        f'<th class="{"num" if n else ""}">{html.escape(heading(c))}</th>'
        for c, n in zip(res.columns, numeric, strict=True)
    )
    body = []
    for r in cells:
        tds = "".join(
            f'<td class="{"num" if n else "wrap"}" data-v="{html.escape(str(raw))}">'
            f"{html.escape(text)}</td>"
            for (text, raw, _), n in zip(r, numeric, strict=True)
        )
        body.append(f"<tr>{tds}</tr>")
    return (
        f'<table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def facts_table(facts: Sequence[tuple[str, str]]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts if v
    )
    return f'<table class="facts">{rows}</table>'


def cards(items: Sequence[tuple[str, str, bool]]) -> str:
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card{" bad" if bad else ""}"><div class="value">{html.escape(v)}</div>'
            f'<div class="label">{html.escape(k)}</div></div>'
            for k, v, bad in items
        )
        + "</div>"
    )


def notices(lines: Sequence[str]) -> str:
    return "".join(f'<p class="notice">{html.escape(line)}</p>' for line in lines)


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def lead(text: str) -> str:
    return f'<p class="lead">{text}</p>'
