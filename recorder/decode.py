"""Turn a batch of kernel `struct event` rows into the recording format's Arrow columns."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from sockopt_trace import schema
from sockopt_trace.recorder.context import ContextDecoder
from sockopt_trace.recorder.grouping import dictionary, group_rows
from sockopt_trace.recorder.symbols import Symbolizer


def comm_strings(comms: np.ndarray) -> pa.Array:
    """Decode 16-byte kernel names once per distinct value; odd bytes are escaped, not lost."""
    if not len(comms):
        return pa.array([], pa.string())
    words = np.ascontiguousarray(comms).view("<u8").reshape(len(comms), -1)
    index, first = group_rows(*(words[:, i] for i in range(words.shape[1])))
    names: list[str | None] = [
        bytes(comms[row]).rstrip(b"\0").decode("utf-8", "backslashreplace")
        for row in first.tolist()
    ]
    return dictionary(index, names)


def constant(value: str, n: int) -> pa.Array:
    return dictionary(np.zeros(n, dtype=np.int32), [value])


class Decoder:
    """Callable used by the writer: (sorted events, clock offset) -> columns."""

    def __init__(
        self,
        host: str,
        symbolizer: Symbolizer | None,
        walk_stack: Callable[[int], list[int]],
        context: ContextDecoder | None = None,
    ) -> None:
        self.host = host
        self.symbolizer = symbolizer
        self.walk_stack = walk_stack
        self.context = context  # the context columns, when the kernel recorded them

    def file_facts(self) -> dict[str, int]:
        """Metadata of the file being sealed: its call sites left as module+offset."""
        return {"unresolved_sites": self.symbolizer.take_unresolved()} if self.symbolizer else {}

    def __call__(self, ev: np.ndarray, clock_offset: int) -> dict[str, pa.Array]:
        n = len(ev)
        pids = ev["pid"].astype(np.int32)
        # Call sites and stacks are independent: --stacks --no-callsites has stacks only.
        sites = {name: null_column(name, n) for name in CALLSITE_COLUMNS}
        stacks = {name: null_column(name, n) for name in ("stack", "stack_locations")}
        if self.symbolizer is not None and ev["callsite"].any():
            sites = self.symbolizer.callsites(pids, ev["callsite"], ev["ts_ns"])
        if self.symbolizer is not None:
            stacks = self.symbolizer.folded_stacks(
                pids, ev["stack_id"], ev["callsite"], ev["ts_ns"], self.walk_stack
            )
            self.symbolizer.decoded(n)
        return {
            "ts_ns": pa.array(ev["ts_ns"].astype(np.int64) + clock_offset),
            "latency_ns": pa.array(ev["latency_ns"].astype(np.int64)),
            "host": constant(self.host, n),
            "pid": pa.array(pids),
            "tid": pa.array(ev["tid"].astype(np.int32)),
            "comm": comm_strings(ev["comm"]),
            "uid": pa.array(ev["uid"].astype(np.int64)),
            "fd": pa.array(ev["fd"]),
            "level": pa.array(ev["level"]),
            "optname": pa.array(ev["optname"]),
            "optlen_in": pa.array(ev["optlen_in"]),
            "optlen_out": pa.array(ev["optlen_out"]),
            "ret": pa.array(ev["ret"]),
            **sites,
            **stacks,
            "weight": pa.array(ev["weight"].astype(np.int32)),
            **(self.context(ev) if self.context is not None else {}),
        }


CALLSITE_COLUMNS = (
    "callsite",
    "callsite_object",
    "callsite_build_id",
    "callsite_offset",
    "callsite_address",
)


def null_column(name: str, n: int) -> pa.Array:
    """A column of nulls of the format's type for `name` (dictionary-typed for strings)."""
    if schema.COLUMNS[name][0] == "string":
        return dictionary(np.zeros(n, np.int32), [None])
    return pa.nulls(n, pa.int64())
