"""What an analysis leaves out: `--where`, `--since`, `--until`, as one value every command,
report, diff and page takes (`Filters`), and the time window they resolve to (`Window`)."""

from __future__ import annotations

from dataclasses import dataclass

from sockopt_trace.analyzer.timespec import parse_time_bound


@dataclass(frozen=True)
class Window:
    """[since_ns, until_ns) in ns since the epoch; None: unbounded on that side."""

    since_ns: int | None = None
    until_ns: int | None = None

    def clip(self, start_ns: int, end_ns: int) -> tuple[int, int]:
        """[start, end) narrowed to the window (empty when end <= start)."""
        if self.since_ns is not None:
            start_ns = max(start_ns, self.since_ns)
        if self.until_ns is not None:
            end_ns = min(end_ns, self.until_ns)
        return start_ns, end_ns

    @property
    def bounded(self) -> bool:
        return self.since_ns is not None or self.until_ns is not None


@dataclass(frozen=True)
class Filters:
    """--where (SQL over the events columns), --since and --until, as the user gave them."""

    where: str | None = None
    since: str | None = None
    until: str | None = None

    def window(self, origin_ns: int) -> Window:
        """The time bounds; offsets such as '30s' count from `origin_ns` (the recording's start)."""
        return Window(
            parse_time_bound(self.since, origin_ns, "--since") if self.since else None,
            parse_time_bound(self.until, origin_ns, "--until") if self.until else None,
        )

    def describe(self) -> str:
        """'--since 5s, --where comm = 'x'' or 'none'."""
        parts = [f"{k} {v}" for k, v in (("--since", self.since), ("--until", self.until)) if v]
        if self.where and self.where.strip():
            parts.append(f"--where {self.where.strip()}")
        return ", ".join(parts) or "none"

    def __bool__(self) -> bool:
        return bool((self.where and self.where.strip()) or self.since or self.until)
