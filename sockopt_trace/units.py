"""Parse the human units used on the command line: durations (30s, 5m, 1h) and sizes (64MB)."""

from __future__ import annotations

import re

from sockopt_trace.errors import UserError

_TIME = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_SIZE = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "gib": 1 << 30,
}


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds from '30s', '1.5m', '2h', '500ms' or a bare number of seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", text.lower())
    if not m or (m.group(2) and m.group(2) not in _TIME):
        raise UserError(f"bad {what} {text!r}: use a number with s, m or h (e.g. 30s, 5m, 1h)")
    seconds = float(m.group(1)) * _TIME.get(m.group(2) or "s", 1.0)
    if seconds <= 0:
        raise UserError(f"bad {what} {text!r}: must be more than zero")
    return seconds


def parse_size(text: str, what: str = "size") -> int:
    """Bytes from '64MB', '1G', '512k' or a bare number of bytes (powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", text.lower())
    if not m or m.group(2) not in _SIZE:
        raise UserError(f"bad {what} {text!r}: use a number with k, M or G (e.g. 64M, 1G)")
    size = int(float(m.group(1)) * _SIZE[m.group(2)])
    if size <= 0:
        raise UserError(f"bad {what} {text!r}: must be more than zero")
    return size


def parse_mode(text: str) -> int:
    """File permissions from octal text such as 0640; never more than 0666."""
    try:
        mode = int(text, 8)
    except ValueError:
        raise UserError(f"bad --file-mode {text!r}: give octal permissions such as 0640") from None
    if not 0 <= mode <= 0o666:
        raise UserError(f"bad --file-mode {text!r}: between 0000 and 0666 (no execute bits)")
    return mode
