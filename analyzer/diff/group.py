"""One group of a diff as the queries return it, and its raw test results (internal: the
public model is `model.GroupDiff`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Bins = tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]  # base, new: (ids, values, counts)
Spread = tuple[tuple[float, float], tuple[float, float]]


@dataclass
class Group:
    """One group: its totals per side, its rows of groups.sql per recording (replicates) or
    latency bins (single pair), and its raw (unadjusted) test results."""

    row: dict[str, Any]
    key: tuple[Any, ...]
    replicates: list[dict[str, Any]] = field(default_factory=list)
    bins: Bins | None = None
    p: dict[str, float] = field(default_factory=dict)  # metric: raw p-value
    se: dict[str, float] = field(default_factory=dict)  # percentile: bootstrap se (single)
    beyond: dict[str, float] = field(default_factory=dict)  # metric: change beyond the host's
    spread: dict[str, Spread] = field(default_factory=dict)  # metric: replicates' (min, max)

    @property
    def calls(self) -> tuple[int, int]:
        return int(self.row["base_calls"]), int(self.row["new_calls"])

    @property
    def status(self) -> str:
        calls = self.calls
        return "new" if not calls[0] else "vanished" if not calls[1] else "both"
