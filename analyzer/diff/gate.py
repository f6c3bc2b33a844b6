"""`--fail-on`: the rules that make a diff fail a CI run, and which groups trip them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sockopt_trace.analyzer.diff.model import METRICS, PERCENTILES, DiffResult, GroupDiff
from sockopt_trace.errors import UserError

_RULE = re.compile(
    r"(?P<metric>[a-z0-9]+)\s*:\s*(?P<sign>[+-]?)\s*(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>%|[a-zµ]*)"
)
_TIME_UNITS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}


@dataclass(frozen=True)
class FailRule:
    """A regression that fails a run: `p99:+20%`, `p99:+5us`, `rate:+50%`, `errors:+1%`."""

    text: str
    metric: str  # p50 | p90 | p99 | rate | errors
    threshold: float  # fraction (relative), ns (percentile, absolute) or points (errors)
    relative: bool

    def tripped(self, g: GroupDiff, *, noise: bool = False) -> bool:
        """A significant increase past the threshold (or, `noise`, one that passes the
        threshold but is within run-to-run noise: a single pair's ?)."""
        c = g.change(self.metric)
        if not (c.noise if noise else c.significant) or not c.diff or c.diff <= 0:
            return False
        if self.metric == "errors":
            return c.diff >= self.threshold
        return (c.rel or 0.0) >= self.threshold if self.relative else c.diff >= self.threshold


@dataclass(frozen=True)
class Trip:
    """A group whose significant change passes a rule's threshold."""

    rule: FailRule
    group: GroupDiff


def parse_fail_on(texts: Sequence[str] | str | None) -> list[FailRule]:
    """Rules from 'p99:+20%,rate:+50%' (or a list of such strings). Raises UserError."""
    items = [texts] if isinstance(texts, str) else list(texts or [])
    rules = []
    for text in (t.strip() for item in items for t in item.split(",")):
        if not text:
            continue
        m = _RULE.fullmatch(text.lower())
        hint = "e.g. p99:+20%, p99:+5us, rate:+50%, errors:+1% (error-rate points)"
        if not m or m["metric"] not in METRICS or m["unit"] not in ("%", "", *_TIME_UNITS):
            raise UserError(f"bad --fail-on {text!r}: give METRIC:+THRESHOLD, {hint}")
        if m["sign"] == "-":
            raise UserError(f"bad --fail-on {text!r}: only increases fail a run (use +N)")
        metric, value, unit = m["metric"], float(m["value"]), m["unit"]
        if unit == "%":
            rule = FailRule(text, metric, value if metric == "errors" else value / 100, True)
        elif metric not in PERCENTILES:
            raise UserError(f"bad --fail-on {text!r}: {metric} needs a threshold in %, {hint}")
        elif not unit:
            raise UserError(f"bad --fail-on {text!r}: {metric} needs a unit: % or ns, us, ms, s")
        else:
            rule = FailRule(text, metric, value * _TIME_UNITS[unit], False)
        if rule.threshold <= 0:
            raise UserError(f"bad --fail-on {text!r}: the threshold must be more than zero")
        rules.append(rule)
    return rules


def regressions(result: DiffResult, rules: Sequence[FailRule]) -> list[Trip]:
    """Each (rule, group) where a significant regression passes the rule's threshold."""
    return [Trip(r, g) for r in rules for g in result.groups if r.tripped(g)]


def inconclusive(result: DiffResult, rules: Sequence[FailRule]) -> list[Trip]:
    """Each (rule, group) whose increase passes the threshold and chance, but not run-to-run
    noise (a single pair): neither a regression nor its absence is shown."""
    return [Trip(r, g) for r in rules for g in result.groups if r.tripped(g, noise=True)]
