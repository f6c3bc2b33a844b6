"""Wall-clock time in the analyzer: the one conversion between ns since the epoch and datetimes,
and `--since` / `--until` (a wall-clock time, or an offset from the start of the recording).

The files store int64 ns since the Unix epoch, UTC; DuckDB's TIMESTAMP and Python's datetime
hold microseconds. Conversions go through integers only (a float of seconds since 1970 keeps
no more than a few hundred ns), and the datetimes are naive UTC, like DuckDB's TIMESTAMP values.
"""

from __future__ import annotations

import datetime as dt
import re

from sockopt_trace.errors import UserError
from sockopt_trace.units import parse_duration

EPOCH = dt.datetime(1970, 1, 1)
_OFFSET = re.compile(r"\+?\s*\d+(\.\d+)?\s*[a-z]*")


def to_datetime(ns: int) -> dt.datetime:
    """Naive UTC datetime of `ns` since the epoch (to the microsecond, rounded down)."""
    return EPOCH + dt.timedelta(microseconds=ns // 1000)


def to_ns(when: dt.datetime) -> int:
    """ns since the epoch of a datetime: naive is UTC (as DuckDB's TIMESTAMP), aware converted."""
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    delta = when - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def iso(ns: int) -> str:
    """'2025-01-31T12:00:00.123456Z': ISO 8601 UTC, microseconds always shown."""
    return to_datetime(ns).isoformat(timespec="microseconds") + "Z"


def is_offset(text: str) -> bool:
    """'30s', '+5m': an offset from the recording's start, not a time of day."""
    return bool(_OFFSET.fullmatch(text.strip().lower()))


def parse_time_bound(text: str, origin_ns: int, option: str = "--since") -> int:
    """Nanoseconds since the epoch from '2025-01-31T12:00:00' (UTC unless an offset is given,
    e.g. '+01:00' or 'Z') or from an offset after `origin_ns` such as '30s', '+5m', '1.5h'."""
    value = text.strip()
    if is_offset(value):
        return origin_ns + round(parse_duration(value.lstrip("+ "), option) * 1e9)
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UserError(
            f"bad {option} {text!r}: give a time like 2025-01-31T12:00:00 (UTC unless it has an "
            "offset) or an offset from the recording's start like 30s, 5m or 1h"
        ) from None
    return to_ns(when)
