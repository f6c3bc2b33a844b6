"""A table laid out for a terminal of a given width, never wrapping a number or a name.

When the table is wider than the terminal, `layout` narrows it in this order, each step only
as far as needed: headers are abbreviated (`calls_per_s` -> `calls/s`, `p99_ns` -> `p99`, the
unit then said in the note); free text (call sites, stacks, paths, command lines) is cut to a
reasonable length with an ellipsis; the least important columns are left out (the caller says
which go first; key columns never); free text is cut further. What was done is said in one dim
line under the table. Without a width (a pipe, a file) nothing is narrowed.

Used by every table the command line prints, and meant for any other text renderer (diff's).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

SEPARATOR = "  "
MIN_TEXT = 24  # free text is first cut no shorter than this
MIN_TEXT_LAST = 10  # and then, if columns had to go anyway, no shorter than this
BAR_WIDTH = 40  # histogram bars: the most, and what a pipe gets
ELLIPSIS = "…"
DIM, RESET = "\x1b[2m", "\x1b[0m"
# Header abbreviations, tried in this order, each for every header at once (one style).
_SUFFIXES = (("_per_s", "/s"), ("_pct", "%"), ("_ns", ""))


@dataclass
class Table:
    """Cells already formatted as text (see `cells`), and what may be done to fit them."""

    headers: list[str]
    rows: list[list[str]]
    right: list[bool]  # right-aligned (numbers)
    cuttable: list[bool]  # free text that may be cut with an ellipsis
    cut_left: set[int] = field(default_factory=set)  # cut at the start (paths: keep the name)
    keep: set[int] = field(default_factory=set)  # columns never left out
    drop: list[int] = field(default_factory=list)  # columns left out first, least important first
    notes: dict[int, str] = field(default_factory=dict)  # said under the table if column shown
    bars: tuple[int, list[int]] | None = None  # (count column, group columns): draw a histogram


def layout(table: Table, width: int | None) -> tuple[list[str], str | None]:
    """(the lines of the table, the note under it or None). Lines are never wider than `width`
    unless even the key columns alone are."""
    headers = list(table.headers)
    rows = [list(r) for r in table.rows]
    columns = list(range(len(headers)))
    notes: list[str] = []
    units: dict[str, list[int]] = {}
    if width is not None and _width(headers, rows, columns, table.bars) > width:
        units = _abbreviate(headers, rows, columns, width, table.bars)
        cut = _cut(table, headers, rows, columns, width, MIN_TEXT)
        dropped = []
        listed = [i for i in table.drop if i not in table.keep]
        for i in _drop_order(table, columns):
            if i not in listed:  # the caller's list is done: cut text shorter before the rest
                cut |= _cut(table, headers, rows, columns, width, MIN_TEXT_LAST)
            if _width(headers, rows, columns, table.bars) <= width:
                break
            columns.remove(i)
            dropped.append(table.headers[i])
        cut |= _cut(table, headers, rows, columns, width, MIN_TEXT_LAST)
        if dropped:
            notes.append(f"left out {', '.join(dropped)}")
        cut &= set(columns)  # a column cut, then left out, is said to be left out
        if cut:
            notes.append(f"cut {', '.join(table.headers[i] for i in sorted(cut))}")
    notes += [note for i, note in table.notes.items() if i in columns]
    for unit, which in units.items():
        shown = [headers[i] for i in which if i in columns]
        notes += [f"{unit}: {', '.join(shown)}"] if shown else []
    hint = ""
    if width is not None and len(columns) < len(headers):
        hint = "--format csv or a wider terminal shows all"
    if table.bars is not None:
        spare = (width or 0) - _width(headers, rows, columns, None) - len(SEPARATOR) - 2
        bar_width = max(10, min(BAR_WIDTH, spare)) if width is not None else BAR_WIDTH
        headers, rows, columns = with_bars(table.bars, headers, rows, columns, bar_width)
    return _draw(headers, rows, columns, table.right), _note(notes, hint, width)


def _note(notes: list[str], hint: str, width: int | None) -> str | None:
    """'(a; b; hint)' in one line: the hint goes first if it does not fit, then the end."""
    if not notes and not hint:
        return None
    note = "(" + "; ".join([*notes, hint] if hint else notes) + ")"
    if width is None or len(note) <= width:
        return note
    note = "(" + "; ".join(notes) + ")" if notes else note
    return note if len(note) <= width else note[: width - 2] + ELLIPSIS + ")"


def wrap(text: str, width: int | None) -> list[str]:
    """A title or other prose in lines of at most `width`, broken at spaces."""
    if width is None or len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, break_on_hyphens=False) or [text]


def dim(line: str, color: bool) -> str:
    return f"{DIM}{line}{RESET}" if color else line


def _widths(headers: list[str], rows: list[list[str]], columns: Sequence[int]) -> list[int]:
    return [max([len(headers[i]), *(len(r[i]) for r in rows)]) for i in columns]


def _width(
    headers: list[str],
    rows: list[list[str]],
    columns: Sequence[int],
    bars: tuple[int, list[int]] | None,
) -> int:
    ws = _widths(headers, rows, columns)
    extra = len(SEPARATOR) + 12 if bars is not None else 0  # a bar of 10 at the least
    return 1 + sum(ws) + len(SEPARATOR) * (len(ws) - 1) + extra


def _abbreviate(
    headers: list[str],
    rows: list[list[str]],
    columns: Sequence[int],
    width: int,
    bars: tuple[int, list[int]] | None,
) -> dict[str, list[int]]:
    """Shorten the headers that end in a unit, one unit at a time and every such header at
    once, until the table fits; returns the units taken out and the columns they left."""
    units: dict[str, list[int]] = {}
    for suffix, short in _SUFFIXES:
        if _width(headers, rows, columns, bars) <= width:
            break
        for i in columns:
            name = headers[i]
            if name.endswith(suffix) and name != suffix.strip("_"):
                headers[i] = name[: -len(suffix)] + short
                if not short:
                    units.setdefault(suffix.strip("_"), []).append(i)
    return units


def _cut(
    table: Table,
    headers: list[str],
    rows: list[list[str]],
    columns: Sequence[int],
    width: int,
    floor: int,
) -> set[int]:
    """Cut the free-text columns to the longest length (not below `floor`) at which the table
    fits, or to `floor`; returns the columns cut."""
    texts = [i for i in columns if table.cuttable[i]]
    if not texts:
        return set()
    over = _width(headers, rows, columns, table.bars) - width
    if over <= 0:
        return set()
    longest = max(len(r[i]) for r in rows for i in texts) if rows else 0
    cap = longest
    while cap > floor and over > 0:
        cap -= 1
        over = _width(headers, _capped(rows, texts, cap), columns, table.bars) - width
    cut = set()
    for row in rows:
        for i in texts:
            if len(row[i]) > cap:
                keep = max(1, cap - 1)
                left = i in table.cut_left
                row[i] = ELLIPSIS + row[i][-keep:] if left else row[i][:keep] + ELLIPSIS
                cut.add(i)
    return cut


def _capped(rows: list[list[str]], texts: list[int], cap: int) -> list[list[str]]:
    return [[c[:cap] if i in texts else c for i, c in enumerate(r)] for r in rows]


def _drop_order(table: Table, columns: list[int]) -> list[int]:
    """The caller's order first, then the other columns from the right; never a kept one."""
    rest = [i for i in reversed(columns) if i not in table.drop]
    return [i for i in [*table.drop, *rest] if i in columns and i not in table.keep]


def with_bars(
    bars: tuple[int, list[int]],
    headers: list[str],
    rows: list[list[str]],
    columns: list[int],
    bar_width: int,
) -> tuple[list[str], list[list[str]], list[int]]:
    """A last column of @ bars scaled to the largest count of each group (bpftrace's hist())."""
    count, groups = bars
    values = [int(r[count].replace(",", "") or 0) for r in rows]
    peak: dict[tuple[str, ...], int] = {}
    for r, v in zip(rows, values, strict=True):
        key = tuple(r[g] for g in groups)
        peak[key] = max(peak.get(key, 0), v)
    out = []
    for r, v in zip(rows, values, strict=True):
        top = peak[tuple(r[g] for g in groups)]
        n = round(bar_width * v / top) if top else 0
        if v and not n:
            n = 1  # a bucket with calls always shows
        out.append([*r, "|" + "@" * n + " " * (bar_width - n) + "|"])
    return [*headers, ""], out, [*columns, len(headers)]


def _draw(
    headers: list[str], rows: list[list[str]], columns: list[int], right: list[bool]
) -> list[str]:
    ws = _widths(headers, rows, columns)

    def line(cells: list[str]) -> str:
        parts = []
        for w, i in zip(ws, columns, strict=True):
            cell = cells[i]
            aligned = i < len(right) and right[i]
            parts.append(cell.rjust(w) if aligned else cell.ljust(w))
        return (" " + SEPARATOR.join(parts)).rstrip()

    rule = "─" * (1 + sum(ws) + len(SEPARATOR) * (len(ws) - 1))
    return [line(headers), rule, *(line(r) for r in rows)]
