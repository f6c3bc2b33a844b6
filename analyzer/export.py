"""Exports to the tools people already use, streamed so that 10M+ events cost bounded memory.

- `folded`: `comm;outer;...;inner;LEVEL/OPTION N` lines (flamegraph.pl, inferno, speedscope),
  N calls or nanoseconds (`weight`); see `stacks` for how frames are chosen.
- `speedscope`: speedscope's JSON file format, two sampled profiles over the same stacks (calls,
  and time in nanoseconds); the one named by `weight` opens first.
- `chrome`: the Trace Event Format (chrome://tracing, the Perfetto UI): one complete event
  (`"ph": "X"`) per call on its process/thread track, with the call's arguments, plus process and
  thread name metadata. Timestamps are microseconds from the recording's start (a double keeps
  nanoseconds there, not in microseconds since 1970); `otherData.start_time` says when that was.
  With several hosts, pids are made unique per host (host index x 4194304, the kernel's pid limit,
  added to each) and process names say the host.
- `csv`: one row per call, with the decoded names.

Per-call formats are produced by DuckDB in Arrow batches (to_json, CSV writer), never as Python
objects per row; the stack formats read one row per distinct stack.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import BinaryIO

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from sockopt_trace import __version__
from sockopt_trace.analyzer.database import execute, sql_string
from sockopt_trace.analyzer.load import Loaded
from sockopt_trace.analyzer.recording import first_line
from sockopt_trace.analyzer.stacks import folded_stacks, stack_source
from sockopt_trace.analyzer.timespec import iso
from sockopt_trace.errors import UserError

FORMATS = ("folded", "speedscope", "chrome", "csv")
WEIGHTS = ("calls", "time")
BATCH_ROWS = 100_000
PID_LIMIT = 4_194_304  # PID_MAX_LIMIT on 64-bit Linux: every pid is below it
SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"

CSV_COLUMNS = (
    "strftime(time, '%Y-%m-%dT%H:%M:%S.%fZ') AS time",
    "ts_ns",
    "latency_ns",
    "host",
    "pid",
    "tid",
    "comm",
    "uid",
    "fd",
    "level",
    "level_name",
    "optname",
    "optname_name",
    "optlen_in",
    "optlen_out",
    "ret",
    "errno",
    "errno_name",
    "callsite",
    "stack",
)


def export(loaded: Loaded, fmt: str, out: BinaryIO, *, weight: str = "calls") -> int:
    """Write `loaded`'s events in `fmt` to `out`; returns how many calls (per-call formats) or
    distinct stacks (stack formats) were written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    if weight not in WEIGHTS:
        raise ValueError(f"unknown weight {weight!r}")
    writer = {"folded": _folded, "speedscope": _speedscope, "chrome": _chrome, "csv": _csv}[fmt]
    return writer(loaded, out, weight)


def _folded(loaded: Loaded, out: BinaryIO, weight: str) -> int:
    n = 0
    source = stack_source(loaded.recording)
    for folded, calls, time_ns in folded_stacks(loaded.con, source):
        value = calls if weight == "calls" else time_ns
        out.write(f"{folded} {value}\n".encode())
        n += 1
    return n


def _speedscope(loaded: Loaded, out: BinaryIO, weight: str) -> int:
    frames: dict[str, int] = {}
    samples: list[list[int]] = []
    calls: list[int] = []
    times: list[int] = []
    source = stack_source(loaded.recording)
    for folded, n_calls, time_ns in folded_stacks(loaded.con, source):
        samples.append([frames.setdefault(name, len(frames)) for name in folded.split(";")])
        calls.append(n_calls)
        times.append(time_ns)
    name = _title(loaded)

    def profile(what: str, unit: str, weights: list[int]) -> dict:
        return {
            "type": "sampled",
            "name": f"{name}: {what}",
            "unit": unit,
            "startValue": 0,
            "endValue": sum(weights),
            "samples": samples,
            "weights": weights,
        }

    profiles = [
        profile("getsockopt calls", "none", calls),
        profile("time in getsockopt", "nanoseconds", times),
    ]
    document = {
        "$schema": SPEEDSCOPE_SCHEMA,
        "name": name,
        "exporter": f"sockopt-trace {__version__}",
        "activeProfileIndex": 0 if weight == "calls" else 1,
        "shared": {"frames": [{"name": f} for f in frames]},
        "profiles": profiles,
    }
    out.write(json.dumps(document, separators=(",", ":")).encode())
    out.write(b"\n")
    return len(samples)


def _chrome(loaded: Loaded, out: BinaryIO, weight: str) -> int:
    rec = loaded.recording
    start_ns = rec.start_ns
    hosts = rec.hosts
    if len(hosts) > 1:
        cases = " ".join(f"WHEN {sql_string(h)} THEN {i}" for i, h in enumerate(hosts))
        pid = f"pid + {PID_LIMIT} * CASE host {cases} END"
    else:
        pid = "pid"
    header = {
        "displayTimeUnit": "ns",
        "otherData": {
            "exporter": f"sockopt-trace {__version__}",
            "recording": _title(loaded),
            "hosts": ", ".join(hosts),
            "start_time": iso(start_ns),
            "start_ns": start_ns,
        },
    }
    out.write(json.dumps(header, separators=(",", ":"))[:-1].encode())
    out.write(b',"traceEvents":[\n')
    metadata = _track_names(loaded, pid, multi_host=len(hosts) > 1)
    out.write(",\n".join(json.dumps(m, separators=(",", ":")) for m in metadata).encode())
    stack = ", stack: stack" if stack_source(rec).full else ""
    sql = f"""
SELECT to_json({{
    name: optname_name, cat: level_name, ph: 'X',
    ts: CAST(ts_ns - {int(start_ns)} AS DOUBLE) / 1000,
    dur: CAST(latency_ns AS DOUBLE) / 1000,
    pid: {pid}, tid: tid,
    args: {{level: level_name, optname: optname_name, ret: ret, errno: errno_name, fd: fd,
           optlen_in: optlen_in, optlen_out: optlen_out, callsite: callsite{stack}}}
}}) FROM events
"""
    n = 0
    first = not metadata
    for column in _batches(loaded, sql):
        lines = column.to_pylist()
        out.write((("" if first else ",\n") + ",\n".join(lines)).encode())
        first = False
        n += len(lines)
    out.write(b"\n]}\n")
    return n


def _track_names(loaded: Loaded, pid: str, *, multi_host: bool) -> list[dict]:
    """Process and thread name metadata events: a process is named after its main thread (or
    its first seen thread), each thread after its last name."""
    rows = execute(
        loaded.con,
        f"SELECT {pid} AS trace_pid, host, pid, tid, arg_max(comm, ts_ns), min(ts_ns) "
        "FROM events GROUP BY ALL ORDER BY trace_pid, tid",
    ).fetchall()
    processes: dict[int, tuple[bool, int, str]] = {}
    events = []
    for trace_pid, host, real_pid, tid, comm, first_ns in rows:
        name = comm or "?"
        rank = (tid != real_pid, first_ns)
        if trace_pid not in processes or rank < processes[trace_pid][:2]:
            label = f"{name} {real_pid}" + (f" ({host})" if multi_host else "")
            processes[trace_pid] = (*rank, label)
        events.append(_meta("thread_name", trace_pid, tid, f"{name} {tid}"))
    for trace_pid, (_, _, label) in processes.items():
        events.append(_meta("process_name", trace_pid, 0, label))
    return events


def _meta(kind: str, pid: int, tid: int, name: str) -> dict:
    return {"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": {"name": name}}


def _csv(loaded: Loaded, out: BinaryIO, weight: str) -> int:
    sql = f"SELECT {', '.join(CSV_COLUMNS)} FROM events"
    reader = _reader(loaded, sql)
    n = 0
    with pacsv.CSVWriter(out, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            n += batch.num_rows
    return n


def _batches(loaded: Loaded, sql: str) -> Iterator[pa.Array]:
    """The first column of `sql`'s result, one Arrow array per batch of rows."""
    for batch in _reader(loaded, sql):
        yield batch.column(0)


def _reader(loaded: Loaded, sql: str) -> pa.RecordBatchReader:
    """`sql`'s rows in Arrow batches, streamed from DuckDB (never all at once)."""
    try:
        return loaded.con.sql(sql).to_arrow_reader(BATCH_ROWS)
    except duckdb.Error as err:
        raise UserError(f"export failed: {first_line(err)}") from None


def _title(loaded: Loaded) -> str:
    rec = loaded.recording
    return f"getsockopt on {', '.join(rec.hosts)} from {iso(rec.start_ns)}"
