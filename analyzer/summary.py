"""What a recording's files say about it, from their metadata alone (no scan of the rows): one
summary per recording, and their total. `info`, the HTML pages and `diff` all describe
recordings with it; the `files` table of the DuckDB views comes from here too.
"""

from __future__ import annotations

import json
import shlex
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sockopt_trace import schema
from sockopt_trace.analyzer.filters import Window
from sockopt_trace.analyzer.recording import Recording, RecordingFile
from sockopt_trace.analyzer.span import recording_spans, wall_clock_ns
from sockopt_trace.analyzer.tables import Column, Table, integers, strings, timestamps
from sockopt_trace.analyzer.timespec import to_datetime
from sockopt_trace.ledger import Ledger
from sockopt_trace.schema import RecordingMetadata

_FILTER_OPTIONS = {"pids": "--pid", "comms": "--comm"}
_FILTER_ORDER = {"pids": 0, "comms": 1}
TOTAL = "total"


@dataclass(frozen=True)
class RecordingSummary:
    """One recording (one recording_id), or several pooled (`recording_id` TOTAL): each field
    that may differ between recordings is the sorted set of its values."""

    recording_id: str
    hosts: tuple[str, ...]
    command_lines: tuple[str, ...]
    filters: tuple[str, ...]  # the recorder's filters as its options ('' when there were none)
    probes: tuple[str, ...]
    stacks: tuple[str, ...]  # callsite, off, full, full (1 in N sampled)
    kernels: tuple[str, ...]
    recorder_versions: tuple[str, ...]
    start_ns: int
    end_ns: int
    recording_span_s: float  # `span`: summed over recordings for a total
    events: int
    calls_per_s: float | None  # `span.rate`: events over the span, summed for a total
    lost: dict[str, int] = field(default_factory=dict)  # by reason (schema.LOSS_REASONS)
    stacks_lost: int = 0
    files: int = 0
    sequence_gaps: int = 0  # missing or duplicated file sequence numbers
    recordings: int = 1
    wall_clock_s: float = 0.0  # time during which any of the recordings ran
    # the rows may be fewer than the calls made: some were lost, or the kernel could not say
    # whether it skipped runs of the programs (schema.RecordingMetadata.lower_bound)
    lower_bound: bool = False
    sampled_out: int = 0  # calls --max-rate's sampling left out (events + sampled_out: calls)
    max_rates: tuple[int, ...] = ()  # the --max-rate of sampled files

    @property
    def calls(self) -> int:
        """Calls made (exact): the rows, and the calls sampling left out."""
        return self.events + self.sampled_out

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())


def summarize(rec: Recording, window: Window = Window()) -> list[RecordingSummary]:
    """One summary per recording, in order of start; recordings `window` misses are left out.
    Losses a recording's loss ledger holds (no sealed file carries them) count with it; a
    recording with a ledger alone (it sealed no file) has no span and no events."""
    by_id: dict[str, list[RecordingFile]] = defaultdict(list)
    for f in rec.files:
        by_id[f.meta.recording_id].append(f)
    ledgers: dict[str, list[Ledger]] = defaultdict(list)
    for g in rec.ledgers:
        ledgers[g.ledger.recording_id].append(g.ledger)
    spans = recording_spans(rec.files, window)
    out = [
        _ledger_only(rid, group)
        for rid, group in ledgers.items()
        if rid not in by_id and any(_in_window(window, g.from_ns, g.to_ns) for g in group)
    ]
    for rid, files in by_id.items():
        if rid not in spans:
            continue
        s = spans[rid]
        metas = [f.meta for f in files]
        events = sum(f.rows for f in files)
        out.append(
            RecordingSummary(
                recording_id=rid,
                hosts=_values(m.host for m in metas),
                command_lines=_values(shlex.join(m.command_line) for m in metas),
                filters=_values(_filters(m) for m in metas),
                probes=_values(m.probe for m in metas),
                stacks=_values(stacks_setting(m) for m in metas),
                kernels=_values(m.kernel for m in metas),
                recorder_versions=_values(m.recorder_version for m in metas),
                start_ns=s.start_ns,
                end_ns=s.end_ns,
                recording_span_s=s.seconds,
                events=events,
                calls_per_s=events / s.seconds if s.covered_ns else None,
                lost=_lost([m.lost for m in metas] + [g.lost for g in ledgers.get(rid, [])]),
                stacks_lost=sum(m.stacks_lost for m in metas),
                files=len(files),
                sequence_gaps=len(sequence_gaps(files)),
                wall_clock_s=s.seconds,
                lower_bound=any(m.lower_bound for m in metas)
                or any(g.lost_total for g in ledgers.get(rid, [])),
                sampled_out=sum(m.sampled_out for m in metas),
                max_rates=tuple(sorted({m.max_rate for m in metas if m.max_rate})),
            )
        )
    return sorted(out, key=lambda r: (r.start_ns, r.recording_id))


def _in_window(window: Window, start_ns: int, end_ns: int) -> bool:
    start, end = window.clip(start_ns, end_ns)
    return end >= start


def _ledger_only(rid: str, group: list[Ledger]) -> RecordingSummary:
    """A recording that sealed no file: what its loss ledger says (no span: nothing recorded)."""
    return RecordingSummary(
        recording_id=rid,
        hosts=_values(g.host for g in group),
        command_lines=(),
        filters=(),
        probes=(),
        stacks=(),
        kernels=(),
        recorder_versions=(),
        start_ns=min(g.from_ns for g in group),
        end_ns=max(g.to_ns for g in group),
        recording_span_s=0.0,
        events=0,
        calls_per_s=None,
        lost=_lost(g.lost for g in group),
        lower_bound=True,
    )


def total(summaries: Sequence[RecordingSummary], rec: Recording | None = None) -> RecordingSummary:
    """The recordings together: counts, spans and rates summed, settings pooled."""
    rates = [s.calls_per_s for s in summaries if s.calls_per_s is not None]
    spans = recording_spans(rec.files) if rec is not None else {}

    def pooled(name: str) -> tuple[str, ...]:
        return _values(v for s in summaries for v in getattr(s, name))

    return RecordingSummary(
        recording_id=TOTAL,
        hosts=pooled("hosts"),
        command_lines=pooled("command_lines"),
        filters=pooled("filters"),
        probes=pooled("probes"),
        stacks=pooled("stacks"),
        kernels=pooled("kernels"),
        recorder_versions=pooled("recorder_versions"),
        start_ns=min((s.start_ns for s in summaries), default=0),
        end_ns=max((s.end_ns for s in summaries), default=0),
        recording_span_s=sum(s.recording_span_s for s in summaries),
        events=sum(s.events for s in summaries),
        calls_per_s=sum(rates) if rates else None,
        lost=_lost(s.lost for s in summaries),
        stacks_lost=sum(s.stacks_lost for s in summaries),
        files=sum(s.files for s in summaries),
        sequence_gaps=sum(s.sequence_gaps for s in summaries),
        recordings=len(summaries),
        wall_clock_s=wall_clock_ns(spans.values()) / 1e9,
        lower_bound=any(s.lower_bound for s in summaries),
        sampled_out=sum(s.sampled_out for s in summaries),
        max_rates=tuple(sorted({r for s in summaries for r in s.max_rates})),
    )


def stacks_setting(meta: RecordingMetadata) -> str:
    """'callsite', 'off', 'full' or 'full (1 in N sampled)'."""
    period = meta.stack_sample_period
    if meta.stacks == "full" and period > 1:
        return f"{meta.stacks} (1 in {period} sampled)"
    return meta.stacks


def files_table(rec: Recording) -> Table:
    """One row per file, from its metadata (the `files` table of the views, and `info`)."""
    metas = [f.meta for f in rec.files]
    cols: dict[str, Column] = {
        "path": strings([str(f.path) for f in rec.files]),
        "host": strings([m.host for m in metas]),
        "kernel": strings([m.kernel for m in metas]),
        "probe": strings([m.probe for m in metas]),
        "recorder_version": strings([m.recorder_version for m in metas]),
        "recording_id": strings([m.recording_id for m in metas]),
        "sequence": integers([m.sequence for m in metas]),
        "start_time": timestamps([to_datetime(m.start_ns) for m in metas]),
        "end_time": timestamps([to_datetime(m.end_ns) for m in metas]),
        "start_ns": integers([m.start_ns for m in metas]),
        "end_ns": integers([m.end_ns for m in metas]),
        "events": integers([f.rows for f in rec.files]),
        "lost": integers([m.lost_total for m in metas]),
    }
    for reason in (*schema.LOSS_REASONS, *schema.RETIRED_LOSS_REASONS):
        cols[f"lost_{reason}"] = integers([m.lost.get(reason, 0) for m in metas])
    cols["stacks"] = strings([m.stacks for m in metas])
    cols["stack_sample_period"] = integers([m.stack_sample_period for m in metas])
    cols["stacks_lost"] = integers([m.stacks_lost for m in metas])
    cols["max_rate"] = integers([m.max_rate for m in metas])  # 0: not sampled, every weight 1
    cols["filters"] = strings([json.dumps(m.filters.as_dict(), sort_keys=True) for m in metas])
    cols["command_line"] = strings([shlex.join(m.command_line) for m in metas])
    return Table(cols)


@dataclass(frozen=True)
class Gap:
    """Missing or duplicated sequence numbers in a recording, and the time missing files held."""

    recording_id: str
    host: str
    problem: str  # missing | duplicate
    sequences: str  # "3" or "3-5"
    from_ns: int | None  # end of the file before (None: the gap is at the start)
    to_ns: int | None  # start of the file after


def sequence_gaps(files: Iterable[RecordingFile]) -> list[Gap]:
    """Missing and duplicated file sequence numbers per recording id, with the time window
    that the missing files covered (from the end of the file before to the start of the next)."""
    by_id: dict[str, list[RecordingFile]] = defaultdict(list)
    for f in files:
        by_id[f.meta.recording_id].append(f)
    gaps: list[Gap] = []
    for rid, group in sorted(by_id.items()):
        group.sort(key=lambda f: f.meta.sequence)
        host = group[0].meta.host
        previous: RecordingFile | None = None
        expected = schema.FIRST_SEQUENCE
        for f in group:
            seq = f.meta.sequence
            if previous is not None and seq == previous.meta.sequence:
                gaps.append(Gap(rid, host, "duplicate", str(seq), None, None))
                continue
            if seq > expected:
                missing = str(expected) if seq - 1 == expected else f"{expected}-{seq - 1}"
                after = previous.meta.end_ns if previous else None
                gaps.append(Gap(rid, host, "missing", missing, after, f.meta.start_ns))
            previous, expected = f, seq + 1
    return gaps


def _values(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values)))


def _filters(meta: RecordingMetadata) -> str:
    """The processes the recorder traced, as the options that select them ('--pid 12 --comm
    nginx'; the pids of a traced `-- COMMAND` included); '' when it traced every process. The
    command itself is in the command line."""
    parts = []
    for key, value in sorted(
        meta.filters.as_dict().items(), key=lambda kv: _FILTER_ORDER.get(kv[0], 9)
    ):
        if not value or key == "command":
            continue
        values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        option = _FILTER_OPTIONS.get(key, f"--{key}")
        parts += [f"{option} {shlex.quote(v)}" for v in values]
    return " ".join(parts)


def _lost(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    """Losses by reason summed: every current reason, and a retired one where it was counted."""
    totals = dict.fromkeys(schema.LOSS_REASONS, 0)
    for lost in counts:
        for reason, n in lost.items():
            totals[reason] = totals.get(reason, 0) + n
    return {k: v for k, v in totals.items() if v or k in schema.LOSS_REASONS}
