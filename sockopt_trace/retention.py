"""What retention removed from a recording directory: the part of the format that says from
when the data starts, and how much is gone on purpose.

`record --max-size/--max-files/--max-age` delete the oldest sealed files. A reader of what is
left must not mistake the missing start for silence, so the recorder keeps a summary beside the
files (`RETENTION_NAME`, JSON): how many files, calls, bytes and losses were removed, the span
they covered, and the names of the last round. It is rewritten (fsync'ed, renamed into place)
before each round's files are unlinked, so a crash in between leaves the round listed and the
next start finishes it. `info` reads it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from sockopt_trace.schema import FORMAT_NAME, FORMAT_VERSION

RETENTION_NAME = ".sockopt-trace.retention.json"
KIND = "retention"


@dataclass
class Removed:
    """Totals over every file retention removed from one directory."""

    files: int = 0
    events: int = 0  # rows
    calls: int = 0  # calls those rows stood for, plus the calls sampling left out
    size: int = 0  # bytes
    lost: int = 0
    from_ns: int | None = None  # span the removed files covered (wall clock, UTC)
    to_ns: int | None = None
    by_limit: dict[str, int] = field(default_factory=dict)  # "max-size" -> files removed for it
    last_round: list[str] = field(default_factory=list)  # names: finished by the next start
    kind: str = KIND
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def add(self, name: str, meta: Any, size: int, limit: str) -> None:
        """Count one file (`meta`: its schema.RecordingMetadata) removed for `limit`."""
        self.files += 1
        self.events += meta.events
        self.calls += meta.events + meta.sampled_out
        self.size += size
        self.lost += meta.lost_total
        self.from_ns = meta.start_ns if self.from_ns is None else min(self.from_ns, meta.start_ns)
        self.to_ns = meta.end_ns if self.to_ns is None else max(self.to_ns, meta.end_ns)
        self.by_limit[limit] = self.by_limit.get(limit, 0) + 1
        self.last_round.append(name)

    def to_bytes(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Removed:
        """Parse a summary; raises ValueError on anything else."""
        data: Any = json.loads(raw)
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise ValueError("not a sockopt-trace retention summary")
        if data.get("format") != FORMAT_NAME or not isinstance(data.get("format_version"), int):
            raise ValueError("not a sockopt-trace retention summary")
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as err:
            raise ValueError(f"unreadable retention summary: {err}") from None
