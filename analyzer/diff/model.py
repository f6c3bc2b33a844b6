"""What a diff says: the comparison of two recordings, group by group, as plain data.

Computed by `compute`, judged by `gate` (`--fail-on`), printed by `render_diff` (text, csv,
json) and `htmlreport.difftable` (the page). Nothing here queries or prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sockopt_trace.analyzer.diffsettings import (  # noqa: F401 (the model's thresholds)
    DEFAULT_ALPHA,
    DEFAULT_MIN_CHANGE,
    MIN_BEYOND,
    MIN_ERROR_POINTS,
)

if TYPE_CHECKING:  # the model is data: loading it needs no pyarrow
    from sockopt_trace.analyzer.recording import Recording

SLOTS = 30  # time slots per recording, for the over-dispersion of counts
REPLICATES = 2000  # bootstrap replicates per percentile and recording
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}  # the order of the SQL's quantile lists
METRICS = ("rate", "errors", *PERCENTILES)
SCALED = ("rate", *PERCENTILES)  # the metrics a faster or slower host moves together
SIDES = ("base", "new")
# Single pair: the least change beyond the host's (the median group's) that is not run-to-run
# noise, per metric: the largest seen between real recordings of one workload (docs/diff.md).
NOISE_FLOOR = {"rate": 0.25, "p50": 0.40, "p90": 0.50, "p99": 1.00}


@dataclass(frozen=True)
class Change:
    """One metric of one group in both recordings, and the confidence in its change."""

    base: float | None
    new: float | None
    p: float | None = None  # Bonferroni-adjusted p-value; None: not tested
    p_raw: float | None = None  # the same before the adjustment (for calibration)
    low: float | None = None  # simultaneous confidence interval of new - base (single pair)
    high: float | None = None
    significant: bool = False
    # single pair: more than chance allows within the two runs, but not more than runs differ
    noise: bool = False
    beyond_host: float | None = None  # change beyond the host's: relative, or error points
    spread: tuple[tuple[float, float], tuple[float, float]] | None = None  # replicates' range

    @property
    def diff(self) -> float | None:
        return None if self.base is None or self.new is None else self.new - self.base

    @property
    def rel(self) -> float | None:
        """(new - base) / base; +inf when it appears from zero."""
        if self.base is None or self.new is None:
            return None
        d = self.new - self.base
        if self.base == 0:
            return 0.0 if d == 0 else math.copysign(math.inf, d)
        return d / self.base

    @property
    def tested(self) -> bool:
        return self.p is not None


@dataclass(frozen=True)
class GroupDiff:
    """A group (values of the --by dimensions) in both recordings."""

    key: tuple[Any, ...]
    calls: tuple[int, int]  # base, new
    rate: Change  # calls per second of wall clock
    errors: Change  # % of calls that failed
    time: Change  # microseconds in getsockopt per second of wall clock (not tested: ranks rows)
    percentiles: dict[str, Change]  # p50, p90, p99 latency in ns

    @property
    def status(self) -> str:
        return "new" if not self.calls[0] else "vanished" if not self.calls[1] else "both"

    @property
    def impact(self) -> float:
        """Change in time spent in getsockopt, microseconds per second of wall clock."""
        return (self.time.new or 0.0) - (self.time.base or 0.0)

    def change(self, metric: str) -> Change:
        return self.percentiles[metric] if metric in PERCENTILES else getattr(self, metric)

    @property
    def significant(self) -> list[str]:
        """The metrics whose change is significant."""
        return [m for m in METRICS if self.change(m).significant]

    @property
    def noise(self) -> list[str]:
        """The metrics whose change is within run-to-run noise (single pair)."""
        return [m for m in METRICS if self.change(m).noise]


@dataclass(frozen=True)
class HostChange:
    """How every group moved together between the sides: the host's speed or load, or a
    change that touched every group alike. Replicates test it against the spread of whole
    recordings; a single pair cannot (p None)."""

    shift: float  # relative change of the median group
    spread: float | None  # replicates: how much whole recordings of a side differ (relative sd)
    p: float | None = None  # Bonferroni-adjusted
    significant: bool = False


@dataclass(frozen=True)
class Replicate:
    """One recording (one recording id) of a side, and the wall-clock time it covers."""

    recording_id: str
    recording: Recording
    start_ns: int
    end_ns: int
    seconds: float  # its span (`analyzer.span`), within --since/--until


@dataclass(frozen=True)
class Side:
    """One side as compared: its files, its recordings (replicates; one when pooled), and the
    wall-clock time in scope."""

    name: str  # base | new
    specs: tuple[str, ...]
    recording: Recording
    replicates: tuple[Replicate, ...]
    start_ns: int
    end_ns: int
    seconds: float  # its recordings' spans added up (`analyzer.span`), within --since/--until
    wall_seconds: float  # the wall-clock time during which at least one of them ran


@dataclass
class DiffResult:
    """The comparison: every group (the largest change in time first), the call sites found in
    one recording only, and what the reader must know (warnings, the tests' settings)."""

    dims: tuple[str, ...]
    base: Side
    new: Side
    groups: list[GroupDiff]  # every group, the largest |impact| first
    callsites: list[GroupDiff]  # call sites in one recording only (unless grouped by callsite)
    warnings: list[str]  # settings that differ, lost events, files left out
    alpha: float
    min_change: float
    tests: int  # tests run: the Bonferroni divisor
    host: dict[str, HostChange]  # rate, p50, p90, p99: all groups together (if estimable)
    # judged against the variation between recordings (replicates), or within two runs
    replicated: bool

    @property
    def both(self) -> list[GroupDiff]:
        """The groups found in both recordings, the largest |impact| first."""
        return [g for g in self.groups if g.status == "both"]
