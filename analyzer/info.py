"""What `info` says about a recording, from file metadata alone (no scan of the rows).

Also the `files` table of the DuckDB views, so both show the same facts.
"""

from __future__ import annotations

import json
import shlex
from collections import defaultdict
from typing import Any

import pyarrow as pa

from sockopt_trace import schema
from sockopt_trace.analyzer.recording import Recording, RecordingFile
from sockopt_trace.analyzer.render import Result
from sockopt_trace.analyzer.timespec import to_datetime


def files_table(rec: Recording) -> pa.Table:
    """One row per file, from its metadata (also what `info` shows)."""
    metas = [f.meta for f in rec.files]
    cols: dict[str, Any] = {
        "path": [str(f.path) for f in rec.files],
        "host": [m.host for m in metas],
        "kernel": [m.kernel for m in metas],
        "probe": [m.probe for m in metas],
        "recorder_version": [m.recorder_version for m in metas],
        "recording_id": [m.recording_id for m in metas],
        "sequence": pa.array([m.sequence for m in metas], pa.int64()),
        "start_time": _timestamps([m.start_ns for m in metas]),
        "end_time": _timestamps([m.end_ns for m in metas]),
        "start_ns": pa.array([m.start_ns for m in metas], pa.int64()),
        "end_ns": pa.array([m.end_ns for m in metas], pa.int64()),
        "events": pa.array([f.rows for f in rec.files], pa.int64()),
        "lost": pa.array([m.lost_total for m in metas], pa.int64()),
    }
    for reason in (*schema.LOSS_REASONS, *schema.RETIRED_LOSS_REASONS):
        cols[f"lost_{reason}"] = pa.array([m.lost.get(reason, 0) for m in metas], pa.int64())
    cols["stacks"] = [m.stacks for m in metas]
    cols["stack_sample_period"] = pa.array([m.stack_sample_period for m in metas], pa.int64())
    cols["stacks_lost"] = pa.array([m.stacks_lost for m in metas], pa.int64())
    cols["filters"] = [json.dumps(m.filters.as_dict(), sort_keys=True) for m in metas]
    cols["command_line"] = [shlex.join(m.command_line) for m in metas]
    return pa.table(cols)


def _timestamps(ns: list[int]) -> pa.Array:
    return pa.array([n // 1000 for n in ns], pa.timestamp("us"))


def describe(rec: Recording) -> list[Result]:
    """Sections: the recording overall, each recording in it (kept apart by recording id),
    its files, then (when there are any) losses with their time windows, gaps (missing files,
    spans with no data), partial files and skipped files."""
    gaps = sequence_gaps(rec.files) + ledger_gaps(rec)
    sections = [_overview(rec, len(gaps)), _recordings(rec), _files(rec)]
    losses = loss_windows(rec)
    if losses:
        columns = ["recording_id", "host", "from_time", "to_time", "lost", "reasons", "source"]
        sections.append(Result(columns, losses, "losses"))
    if gaps:
        columns = ["recording_id", "host", "problem", "sequences", "from_time", "to_time"]
        sections.append(Result(columns, gaps, "gaps"))
    if rec.partial:
        sizes = [(str(p), _size(p)) for p in rec.partial]
        sections.append(Result(["path", "bytes"], sizes, "partial files (ignored)"))
    if rec.skipped:
        problems = [(str(s.path), s.problem) for s in rec.skipped]
        sections.append(Result(["path", "problem"], problems, "skipped files"))
    return sections


def sequence_gaps(files: tuple[RecordingFile, ...]) -> list[tuple[Any, ...]]:
    """Missing and duplicated file sequence numbers per recording id, with the time window
    that the missing files covered (from the end of the file before to the start of the next)."""
    by_id: dict[str, list[RecordingFile]] = defaultdict(list)
    for f in files:
        by_id[f.meta.recording_id].append(f)
    rows: list[tuple[Any, ...]] = []
    for rid, group in sorted(by_id.items()):
        group.sort(key=lambda f: f.meta.sequence)
        host = group[0].meta.host
        previous: RecordingFile | None = None
        expected = schema.FIRST_SEQUENCE
        for f in group:
            seq = f.meta.sequence
            if previous is not None and seq == previous.meta.sequence:
                rows.append((rid, host, "duplicate", str(seq), None, None))
                continue
            if seq > expected:
                missing = str(expected) if seq - 1 == expected else f"{expected}-{seq - 1}"
                after = to_datetime(previous.meta.end_ns) if previous else None
                rows.append((rid, host, "missing", missing, after, to_datetime(f.meta.start_ns)))
            previous, expected = f, seq + 1
    return rows


def ledger_gaps(rec: Recording) -> list[tuple[Any, ...]]:
    """Spans the loss ledgers say have no data: a killed recorder's unreadable file (written
    there by `recover`), or nothing sealed yet by a recorder still running or killed."""
    rows: list[tuple[Any, ...]] = []
    for g in rec.ledgers:
        led = g.ledger
        for w in led.no_data:
            rows.append(
                (
                    led.recording_id,
                    led.host,
                    f"no data: {w.why}",
                    str(led.sealed + 1),
                    to_datetime(w.from_ns),
                    to_datetime(w.to_ns),
                )
            )
        if led.state == "recording":
            problem = "nothing sealed yet: recorder running, or killed (then: recover)"
            rows.append(
                (
                    led.recording_id,
                    led.host,
                    problem,
                    str(led.sealed + 1),
                    to_datetime(led.from_ns),
                    to_datetime(led.to_ns),
                )
            )
    return rows


def loss_windows(rec: Recording) -> list[tuple[Any, ...]]:
    """Every loss with the time window it happened in: a file's span, or the span a ledger
    covers after the last sealed file."""
    sources = [
        (m.recording_id, m.host, m.start_ns, m.end_ns, m.lost, f.path.name)
        for f in rec.files
        for m in [f.meta]
    ] + [
        (
            g.ledger.recording_id,
            g.ledger.host,
            g.ledger.from_ns,
            g.ledger.to_ns,
            g.ledger.lost,
            g.path.name,
        )
        for g in rec.ledgers
    ]
    rows = [
        (rid, host, to_datetime(start), to_datetime(end), sum(lost.values()), _reasons(lost), src)
        for rid, host, start, end, lost, src in sources
        if sum(lost.values())
    ]
    return sorted(rows, key=lambda r: (r[2], r[0]))


def _reasons(lost: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in lost.items() if v)


def _recordings(rec: Recording) -> Result:
    columns = ["recording_id", "host", "start_time", "end_time", "span_s", "events", "lost"]
    columns.append("files")
    rows = [
        (
            s.recording_id,
            s.host,
            to_datetime(s.start_ns),
            to_datetime(s.end_ns),
            (s.end_ns - s.start_ns) / 1e9,
            s.events,
            s.lost,
            s.files,
        )
        for s in rec.spans()
    ]
    return Result(columns, rows, "recordings")


def _overview(rec: Recording, gaps: int) -> Result:
    metas = [f.meta for f in rec.files]
    lost = rec.lost
    stacks = sorted({m.stacks + _sampling(m.stack_sample_period) for m in metas})
    row: dict[str, Any] = {
        "hosts": ", ".join(rec.hosts),
        "first_time": to_datetime(rec.start_ns),
        "last_time": to_datetime(rec.end_ns),
        "span_s": rec.recorded_ns / 1e9,
        "events": rec.events,
        "lost": rec.lost_total,
        **{f"lost_{reason}": n for reason, n in lost.items()},
        "stacks_lost": sum(m.stacks_lost for m in metas),
        "probe": ", ".join(sorted({m.probe for m in metas})),
        "stacks": ", ".join(stacks),
        "kernels": ", ".join(sorted({m.kernel for m in metas})),
        "recorder_versions": ", ".join(sorted({m.recorder_version for m in metas})),
        "lower_bound": any(m.lower_bound for m in metas) or rec.lost_total > 0,
        "recordings": len(rec.spans()),
        "files": len(rec.files),
        "sequence_gaps": gaps,
        "partial_files": len(rec.partial),
        "skipped_files": len(rec.skipped),
    }
    return Result(list(row), [tuple(row.values())], "recording", record=True)


def _files(rec: Recording) -> Result:
    columns = ["path", "host", "recording_id", "sequence", "start_time", "end_time", "events"]
    columns += ["lost", "probe", "stacks"]
    table = files_table(rec).select(columns)
    return Result(columns, [tuple(r.values()) for r in table.to_pylist()], "files")


def _sampling(period: int) -> str:
    return f" (1 in {period} sampled)" if period > 1 else ""


def _size(path: Any) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
