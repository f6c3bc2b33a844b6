"""How numbers read on the pages: durations with units, counts with separators, percentages."""

from __future__ import annotations

import math
from typing import Any

_UNITS = ((1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1.0, "ns"))


def duration(ns: Any) -> str:
    """812 ns, 1.23 µs, 45.6 ms, 2.1 s (three significant digits)."""
    if ns is None or (isinstance(ns, float) and math.isnan(ns)):
        return ""
    v = float(ns)
    for scale, unit in _UNITS:
        if abs(v) >= scale or scale == 1.0:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} ns"


def number(n: Any, decimals: int = 0) -> str:
    if n is None:
        return ""
    return f"{float(n):,.{decimals}f}" if decimals or isinstance(n, float) else f"{int(n):,}"


def percent(p: Any) -> str:
    if p is None:
        return ""
    v = float(p)
    if v != 0 and abs(v) < 0.1:
        return f"{v:.2g}%"
    return f"{v:.1f}%"
