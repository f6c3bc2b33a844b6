"""`--since` / `--until`: a wall-clock time, or an offset from the start of the recording."""

from __future__ import annotations

import datetime as dt
import re

from sockopt_trace.errors import UserError
from sockopt_trace.units import parse_duration

_OFFSET = re.compile(r"\+?\s*\d+(\.\d+)?\s*[a-z]*")


def parse_time_bound(text: str, origin_ns: int, option: str = "--since") -> int:
    """Nanoseconds since the epoch from '2025-01-31T12:00:00' (UTC unless an offset is given,
    e.g. '+01:00' or 'Z') or from an offset after `origin_ns` such as '30s', '+5m', '1.5h'."""
    value = text.strip()
    if _OFFSET.fullmatch(value.lower()):
        return origin_ns + round(parse_duration(value.lstrip("+ "), option) * 1e9)
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UserError(
            f"bad {option} {text!r}: give a time like 2025-01-31T12:00:00 (UTC unless it has an "
            "offset) or an offset from the recording's start like 30s, 5m or 1h"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
