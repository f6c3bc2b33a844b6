"""How values read in tables for people: one number style per column, IDs as they are.

A column gets one style from all its values (`column_format`): integers with thousands
separators (IDs such as pid, fd or ts_ns without), nanoseconds without decimals, other decimals
with as many places as the column's largest value needs; times to the microsecond, without the
date when every time of the column falls on one day (the date then goes in the table's note).
Text has its control characters escaped so that a row stays one line.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable, Sequence
from typing import Any

# Integer columns that identify rather than count: no thousands separators.
ID_COLUMNS = frozenset(
    {
        "pid",
        "tid",
        "uid",
        "gid",
        "fd",
        "ts_ns",
        "start_ns",
        "end_ns",
        "first_ns",
        "last_ns",
        "sequence",
        "ret",
        "level",
        "optname",
        "errno",
        "optlen_in",
        "optlen_out",
        "bin",
        "group_rank",
        "socket",
        "inode",
        "cgroup",
        "cgroup_id",
        "value",
    }
)
_CONTROL = {i: f"\\x{i:02x}" for i in range(32)} | {9: "\\t", 10: "\\n", 13: "\\r", 127: "\\x7f"}

Format = Callable[[Any], str]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool)


def is_id(column: str) -> bool:
    return column in ID_COLUMNS or column.endswith("_id")


def text(value: Any) -> str:
    """Any value as one line of text (control characters escaped)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if is_number(value):
        return number(float(value), _places(abs(float(value))))
    return str(value).translate(_CONTROL)


def number(value: float, places: int) -> str:
    """`value` with `places` decimals and thousands separators; '<0.01' rather than a 0.00 that
    hides a small value."""
    if not math.isfinite(value):
        return str(value)
    shown = f"{value:,.{places}f}"
    if value and float(shown.replace(",", "")) == 0:
        return f"{'>-' if value < 0 else '<'}{10**-places:.{places}f}"
    return shown


def _places(largest: float) -> int:
    """Decimals for a column whose largest value is `largest`: none from 1,000, one from 1,
    else enough for three significant digits of it."""
    if largest >= 1000:
        return 0
    if largest >= 1 or largest == 0:
        return 1
    return min(9, 2 - math.floor(math.log10(largest)))


def column_format(column: str, values: Sequence[Any]) -> tuple[Format, str | None]:
    """(how each value of the column reads, a note for the table or None), from all its values."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, dt.datetime) for v in present):
        days = {v.date() for v in present}
        if len(days) == 1 and len(present) > 1:
            (day,) = days
            return (lambda v: "" if v is None else v.strftime("%H:%M:%S.%f")), f"{column} on {day}"
        return text, None
    if not present or not all(is_number(v) for v in present):
        return text, None
    floats = [float(v) for v in present if math.isfinite(float(v))]
    integral = all(isinstance(v, int) or float(v).is_integer() for v in present if v == v)
    if integral and (is_id(column) or all(isinstance(v, int) for v in present)):
        if is_id(column):
            return (lambda v: "" if v is None else str(int(v))), None
        return (lambda v: "" if v is None else f"{int(v):,}"), None
    places = 0 if column.endswith("_ns") or integral else _places(max(map(abs, floats), default=0))

    def fmt(v: Any) -> str:
        if v is None:
            return ""
        return number(float(v), places)

    return fmt, None
