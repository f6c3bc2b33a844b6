"""Folded call stacks: what the flame graphs and the folded and speedscope exports are made of.

One folded line per distinct (process name, stack, option): `comm;outer;...;inner;LEVEL/OPTION`,
with the number of calls and the time they spent in getsockopt. The process name is the root
frame (as `perf script | stackcollapse-perf.pl` makes it) and the option asked is the leaf, so
a flame graph shows who calls, from where, and for what.

The frames come from the `stack` column when the recording has full stacks; each row then counts
for `weight * stack_weight` calls (its own weight, 1 unless --max-rate sampled the calls, times
N when 1 in N stacks was sampled), and rows without a stack are left out (they are the unsampled
calls that the sampled ones stand for). Without full stacks the
call site is the one frame between process and option. Aggregation happens in DuckDB: a
recording of any size gives one row per distinct stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import duckdb

from sockopt_trace.analyzer.database import execute
from sockopt_trace.analyzer.recording import Recording
from sockopt_trace.analyzer.symbolviews import (
    CALLSITE_KEYS,
    CALLSITE_LABEL,
    STACK_KEYS,
    STACK_LABEL,
)
from sockopt_trace.schema import UNKNOWN_FRAME


@dataclass(frozen=True)
class StackSource:
    column: str  # "stack" or "callsite"
    weight: str  # SQL expression: how many calls a row stands for
    sample_period: int  # largest 1-in-N stack sampling period among the files (1: every call)

    @property
    def full(self) -> bool:
        return self.column == "stack"

    @property
    def keys(self) -> tuple[str, ...]:
        """The recorded columns to group by (symbolviews.py: name the groups, not the rows)."""
        return STACK_KEYS if self.full else CALLSITE_KEYS

    @property
    def label(self) -> str:
        return STACK_LABEL if self.full else CALLSITE_LABEL

    def describe(self) -> str:
        """One line for people: where the frames come from."""
        if not self.full:
            return "no stacks were recorded (record --stacks for them): one frame per call site"
        if self.sample_period > 1:
            return f"full stacks, 1 call in {self.sample_period} sampled and counted for the rest"
        return "full stacks of every call"


def stack_source(rec: Recording) -> StackSource:
    """Full stacks if any file of the recording has them, else call sites."""
    full = [f.meta for f in rec.files if f.meta.stacks == "full"]
    if not full:
        return StackSource("callsite", "weight", 1)
    period = max(max(1, m.stack_sample_period) for m in full)
    return StackSource("stack", "weight * stack_weight", period)


def folded_sql(source: StackSource, events: str = "events") -> str:
    """SELECT folded, calls, time_ns: one row per distinct folded stack, most calls first.

    Groups by the raw columns and builds the text only for the result rows; `;` inside a
    process or option name would split a frame, so it becomes `:`. Rows that name the same
    stack (two call sites of one function) are then added up.
    """
    keys = ", ".join(source.keys)
    return f"""
WITH grouped AS (
    SELECT comm, {keys}, level, optname,
        sum({source.weight}) AS calls,
        sum(latency_ns * {source.weight}) AS time_ns
    FROM {events}
    WHERE {source.weight} IS NOT NULL
    GROUP BY comm, {keys}, level, optname
),
named AS (
    SELECT comm, {source.label} AS frames, level, optname, sum(calls) AS calls,
        sum(time_ns) AS time_ns
    FROM grouped
    GROUP BY ALL
)
SELECT replace(coalesce(comm, '{UNKNOWN_FRAME}'), ';', ':')
        || ';' || coalesce(nullif(frames, ''), '{UNKNOWN_FRAME}')
        || ';' || replace(level_label(level) || '/' || optname_label(level, optname), ';', ':')
        AS folded,
    CAST(calls AS BIGINT) AS calls,
    CAST(time_ns AS BIGINT) AS time_ns
FROM named
ORDER BY calls DESC, folded
"""


def folded_stacks(
    con: duckdb.DuckDBPyConnection,
    source: StackSource,
    *,
    events: str = "events",
    batch: int = 10_000,
) -> Iterator[tuple[str, int, int]]:
    """(folded, calls, time_ns) rows, most calls first, fetched `batch` at a time."""
    cursor = execute(con, folded_sql(source, events))
    while chunk := cursor.fetchmany(batch):
        yield from chunk
