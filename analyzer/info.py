"""What `info` says about a recording, from file metadata alone (no scan of the rows): each
recording (host, how it was recorded, its span, events, lost events, files), then their total;
the files; gaps in file sequences, partial and skipped files when there are any."""

from __future__ import annotations

from typing import Any

from sockopt_trace import schema
from sockopt_trace.analyzer import storage
from sockopt_trace.analyzer.recording import FilePath, Recording
from sockopt_trace.analyzer.render import Result
from sockopt_trace.analyzer.storage import ObjectPath
from sockopt_trace.analyzer.summary import (
    TOTAL,
    RecordingSummary,
    files_table,
    sequence_gaps,
    summarize,
    total,
)
from sockopt_trace.analyzer.timespec import to_datetime

WHAT = ("recordings", "files")
RECORDING_COLUMNS = [
    "recording",
    "host",
    "recording_start",
    "recording_span_s",
    "events",
    "calls_per_s",
    "lost",
    "files",
    "probe",
    "stacks",
    "filters",
    "command_line",
]
# On a narrow terminal: never left out, and left out first.
RECORDING_KEEP = ("recording", "host", "recording_span_s", "events", "lost", "files")
RECORDING_DROP = ("stacks", "probe", "recording_start", "calls_per_s", "filters")
# Every fact, for csv and json; tables show RECORDING_COLUMNS.
MORE_COLUMNS = [
    "recording_id",
    "recording_end",
    "kernel",
    "recorder_version",
    *(f"lost_{reason}" for reason in schema.LOSS_REASONS),
    "stacks_lost",
    "sequence_gaps",
]
FILE_COLUMNS = ["path", "host", "recording_id", "sequence", "start_time", "end_time", "events"]
FILE_COLUMNS += ["lost", "probe", "stacks"]
FILE_KEEP = ("path", "events", "lost")
FILE_DROP = ("stacks", "probe", "recording_id", "host", "end_time", "sequence")


def describe(rec: Recording, what: str | None = None) -> list[Result]:
    """The sections of `info`: recordings, files, then gaps, partial and skipped files when
    there are any; `what` ("recordings" or "files") gives that one table alone."""
    if what is not None and what not in WHAT:
        raise ValueError(f"unknown info table {what!r}")
    sections = []
    if what in (None, "recordings"):
        sections.append(recordings_table(rec))
    if what in (None, "files"):
        sections.append(files_result(rec))
    if what is None:
        sections += _problems(rec)
    return sections


def recordings_table(rec: Recording) -> Result:
    """One row per recording, then their total when there are several."""
    summaries = summarize(rec)
    rows = [_row(s) for s in summaries]
    if len(summaries) > 1:
        rows.append(_row(total(summaries, rec)))
    columns = RECORDING_COLUMNS + MORE_COLUMNS
    return Result(
        columns,
        rows,
        "recordings",
        hidden=tuple(MORE_COLUMNS),
        keep=RECORDING_KEEP,
        drop=RECORDING_DROP,
    )


def _row(s: RecordingSummary) -> tuple[Any, ...]:
    is_total = s.recording_id == TOTAL
    facts: dict[str, Any] = {
        "recording": TOTAL if is_total else s.recording_id[:8],
        "host": _joined(s.hosts, "hosts") if is_total else ", ".join(s.hosts),
        "command_line": "" if is_total else " | ".join(s.command_lines),
        "filters": "" if is_total else " | ".join(f for f in s.filters if f),
        "probe": ", ".join(s.probes),
        "stacks": ", ".join(s.stacks),
        "recording_start": to_datetime(s.start_ns),
        "recording_span_s": s.recording_span_s,
        "events": s.events,
        "calls_per_s": s.calls_per_s,
        "lost": s.lost_total,
        "files": s.files,
        "recording_id": "" if is_total else s.recording_id,
        "recording_end": to_datetime(s.end_ns),
        "kernel": ", ".join(s.kernels),
        "recorder_version": ", ".join(s.recorder_versions),
        **{f"lost_{reason}": s.lost.get(reason, 0) for reason in schema.LOSS_REASONS},
        "stacks_lost": s.stacks_lost,
        "sequence_gaps": s.sequence_gaps,
    }
    return tuple(facts[c] for c in RECORDING_COLUMNS + MORE_COLUMNS)


def files_result(rec: Recording) -> Result:
    table = files_table(rec).select(FILE_COLUMNS)
    rows = [tuple(r.values()) for r in table.to_pylist()]
    return Result(FILE_COLUMNS, rows, "files", keep=FILE_KEEP, drop=FILE_DROP)


def _problems(rec: Recording) -> list[Result]:
    sections = []
    rows: list[tuple[Any, ...]]
    gaps = sequence_gaps(rec.files)
    if gaps:
        columns = ["recording_id", "host", "problem", "sequences", "from_time", "to_time"]
        rows = [
            (g.recording_id, g.host, g.problem, g.sequences, _time(g.from_ns), _time(g.to_ns))
            for g in gaps
        ]
        sections.append(Result(columns, rows, "gaps"))
    if rec.partial:
        rows = [(str(p), _size(p)) for p in rec.partial]
        sections.append(Result(["path", "bytes"], rows, "partial files (ignored)"))
    if rec.skipped:
        rows = [(str(s.path), s.problem) for s in rec.skipped]
        sections.append(Result(["path", "problem"], rows, "skipped files"))
    if rec.ignored:
        rows = [(str(p), "matched by the pattern, but not a recording file") for p in rec.ignored]
        sections.append(Result(["path", "problem"], rows, "ignored files"))
    return sections


def _joined(values: tuple[str, ...], noun: str) -> str:
    return values[0] if len(values) == 1 else f"{len(values)} {noun}: {', '.join(values)}"


def _time(ns: int | None) -> Any:
    return None if ns is None else to_datetime(ns)


def _size(path: FilePath) -> int | None:
    try:
        return storage.size(path) if isinstance(path, ObjectPath) else path.stat().st_size
    except OSError:
        return None
