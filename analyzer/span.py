"""The one definition of how long a recording ran, and of a rate of calls.

- **recording span**: from the moment the recorder attached to the moment it stopped, from the
  files' metadata (each file covers [start_ns, end_ns), and a recording's files follow each
  other without gaps). Time a missing file would have covered is not counted (its calls are not
  there either), and --since/--until narrow it. Every rate divides by it.
- **calls span**: from the first call to the last; shown for information only (a recording
  with 2 calls has a calls span of almost nothing, not a rate of millions per second).
- **rate**: each recording's calls over its own recording span, summed over the recordings
  read together: hosts recording at once add up (a fleet's rate), and a 1-second recording read
  with a 60-second one keeps its own rate instead of being diluted by the other's time.

The same numbers reach SQL as the `recordings` table (one row per recording, its span within
--since/--until), which the canned reports join to turn calls into rates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sockopt_trace.analyzer.filters import Window
from sockopt_trace.analyzer.recording import RecordingFile


@dataclass(frozen=True)
class RecordingSpan:
    """One recording (one recording_id) within the window."""

    recording_id: str
    host: str
    start_ns: int  # the recorder attached (or --since)
    end_ns: int  # the recorder stopped (or --until)
    covered_ns: int  # by its files, within [start, end): end - start unless files are missing

    @property
    def seconds(self) -> float:
        return self.covered_ns / 1e9


def covered_ns(intervals: Iterable[tuple[int, int]]) -> int:
    """Length of the union of [start, end) intervals (overlaps count once)."""
    total, reach = 0, None
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if reach is None or start >= reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def recording_spans(
    files: Iterable[RecordingFile], window: Window = Window()
) -> dict[str, RecordingSpan]:
    """Each recording's span within `window`, by recording id (recordings the window misses
    entirely are left out)."""
    by_id: dict[str, list[RecordingFile]] = defaultdict(list)
    for f in files:
        by_id[f.meta.recording_id].append(f)
    spans = {}
    for rid, group in sorted(by_id.items()):
        clipped = [window.clip(f.meta.start_ns, f.meta.end_ns) for f in group]
        clipped = [(s, e) for s, e in clipped if e > s]
        if clipped:
            start, end = min(s for s, _ in clipped), max(e for _, e in clipped)
            spans[rid] = RecordingSpan(rid, group[0].meta.host, start, end, covered_ns(clipped))
    return spans


def wall_clock_ns(spans: Iterable[RecordingSpan]) -> int:
    """The wall-clock time during which at least one of the recordings ran."""
    return covered_ns((s.start_ns, s.end_ns) for s in spans)


def rate(calls: Mapping[str, float], spans: Mapping[str, RecordingSpan]) -> float | None:
    """Calls per second: each recording's `calls` (by recording id) over its span, summed.
    None when no recording with calls has a span (nothing to divide by)."""
    parts = [n / spans[r].seconds for r, n in calls.items() if r in spans and spans[r].covered_ns]
    return sum(parts) if parts else None
