"""The diff's default thresholds, apart from its computation: the CLI's help quotes them
without loading DuckDB or numpy."""

from __future__ import annotations

MIN_BEYOND = 10  # calls needed beyond a percentile (below p50, above p90/p99) on each side
DEFAULT_ALPHA = 0.01
DEFAULT_MIN_CHANGE = 0.10  # relative change below which rates and percentiles are negligible
MIN_ERROR_POINTS = 0.1  # error-rate change (percentage points) below which it is negligible
