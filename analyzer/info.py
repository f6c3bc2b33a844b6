"""What `info` says about a recording, from file metadata alone (no scan of the rows): each
recording (host, how it was recorded, its span, events, lost events, files), then their total;
the files; losses with their time windows, gaps (missing files, spans with no data), partial
and skipped files when there are any. Loss ledgers (sockopt_trace/ledger.py) count too."""

from __future__ import annotations

from typing import Any

from sockopt_trace import schema
from sockopt_trace.analyzer import storage
from sockopt_trace.analyzer.locate import FilePath
from sockopt_trace.analyzer.recording import Recording
from sockopt_trace.analyzer.render import Result
from sockopt_trace.analyzer.storage import ObjectPath
from sockopt_trace.analyzer.summary import (
    TOTAL,
    Gap,
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
    "lower_bound",
    "calls",
    "sampled_out",
    "max_rate",
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
    if len(summaries) > 1:
        summaries.append(total(summaries, rec))
    # a retired loss reason only where a file counted it (written by an older recorder)
    retired = [r for r in schema.RETIRED_LOSS_REASONS if any(s.lost.get(r) for s in summaries)]
    more = MORE_COLUMNS + [f"lost_{r}" for r in retired]
    rows = [_row(s, more) for s in summaries]
    return Result(
        RECORDING_COLUMNS + more,
        rows,
        "recordings",
        hidden=tuple(more),
        keep=RECORDING_KEEP,
        drop=RECORDING_DROP,
    )


def _row(s: RecordingSummary, more: list[str]) -> tuple[Any, ...]:
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
        **{f"lost_{reason}": n for reason, n in s.lost.items()},
        "stacks_lost": s.stacks_lost,
        "sequence_gaps": s.sequence_gaps,
        "lower_bound": s.lower_bound,
        "calls": s.calls,  # exact: rows, and the calls sampling left out
        "sampled_out": s.sampled_out,
        "max_rate": ", ".join(f"{r:,}" for r in s.max_rates) or None,
    }
    return tuple(facts.get(c, 0) for c in RECORDING_COLUMNS + more)


def files_result(rec: Recording) -> Result:
    rows = files_table(rec).select(FILE_COLUMNS).rows()
    return Result(FILE_COLUMNS, rows, "files", keep=FILE_KEEP, drop=FILE_DROP)


def _problems(rec: Recording) -> list[Result]:
    sections = []
    rows: list[tuple[Any, ...]]
    losses = loss_windows(rec)
    if losses:
        columns = ["recording_id", "host", "from_time", "to_time", "lost", "reasons", "source"]
        sections.append(Result(columns, losses, "losses"))
    gaps = sequence_gaps(rec.files) + ledger_gaps(rec)
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
        rows = [
            (
                str(p),
                f"matched by the pattern, but {'holds no' if p.is_dir() else 'not a'} recording",
            )
            for p in rec.ignored
        ]
        sections.append(Result(["path", "problem"], rows, "ignored files"))
    if rec.retention:
        sections.append(_retention(rec))
    return sections


def _retention(rec: Recording) -> Result:
    """What retention deleted (--max-size/--max-files/--max-age), per directory."""
    columns = ["directory", "files", "events", "calls", "bytes", "lost", "from_time", "to_time"]
    columns.append("limits")
    rows = [
        (
            str(path.parent),
            r.files,
            r.events,
            r.calls,
            r.size,
            r.lost,
            to_datetime(r.from_ns) if r.from_ns is not None else None,
            to_datetime(r.to_ns) if r.to_ns is not None else None,
            ", ".join(f"{k} {v}" for k, v in sorted(r.by_limit.items())),
        )
        for path, r in rec.retention
    ]
    return Result(columns, rows, "removed by retention (the data left starts after to_time)")


def ledger_gaps(rec: Recording) -> list[Gap]:
    """Spans the loss ledgers say have no data: a killed recorder's unreadable file (written
    there by `recover`), or nothing sealed yet by a recorder still running or killed."""
    gaps: list[Gap] = []
    for g in rec.ledgers:
        led = g.ledger
        after = str(led.sealed + 1)
        for w in led.no_data:
            gaps.append(
                Gap(led.recording_id, led.host, f"no data: {w.why}", after, w.from_ns, w.to_ns)
            )
        if led.state == "recording":
            problem = "nothing sealed yet: recorder running, or killed (then: recover)"
            gaps.append(Gap(led.recording_id, led.host, problem, after, led.from_ns, led.to_ns))
    return gaps


def loss_windows(rec: Recording) -> list[tuple[Any, ...]]:
    """Every loss with the time window it happened in: a file's span, or the span a ledger
    covers after the last sealed file."""
    sources = [
        (f.meta.recording_id, f.meta.host, f.meta.start_ns, f.meta.end_ns, f.meta.lost, f.path)
        for f in rec.files
    ] + [
        (
            g.ledger.recording_id,
            g.ledger.host,
            g.ledger.from_ns,
            g.ledger.to_ns,
            g.ledger.lost,
            g.path,
        )
        for g in rec.ledgers
    ]
    rows = [
        (
            rid,
            host,
            to_datetime(start),
            to_datetime(end),
            sum(lost.values()),
            _reasons(lost),
            src.name,
        )
        for rid, host, start, end, lost, src in sources
        if sum(lost.values())
    ]
    return sorted(rows, key=lambda r: (r[2], r[0]))


def _reasons(lost: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in lost.items() if v)


def _joined(values: tuple[str, ...], noun: str) -> str:
    return values[0] if len(values) == 1 else f"{len(values)} {noun}: {', '.join(values)}"


def _time(ns: int | None) -> Any:
    return None if ns is None else to_datetime(ns)


def _size(path: FilePath) -> int | None:
    try:
        return storage.size(path) if isinstance(path, ObjectPath) else path.stat().st_size
    except OSError:
        return None
