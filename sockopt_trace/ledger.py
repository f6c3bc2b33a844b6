"""The loss ledger: the part of the recording format that holds what no sealed file says yet.

Each sealed file carries the losses of its own span. Losses counted after the last seal (and,
after a SIGKILL, the span the unfinished file held) would vanish with the recorder; the ledger
keeps them on disk. The recorder writes it beside the files as `PREFIX.losses.json` (same
prefix as the recording's files, see `schema.FileName`), rewriting it in place whenever what it
knows changes, and deletes it when the recording ends cleanly (the last sealed file then says
everything). `recover` adds the span a killed recorder's unfinished file covered; `info` and the
reports read it like the files' metadata.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from sockopt_trace.schema import FORMAT_NAME, FORMAT_VERSION, check_format

LEDGER_SUFFIX = ".losses.json"
LEDGER_KIND = "losses"
# States: recording (the recorder is running, or was killed: then `recover` says "killed"),
# failed (stopped by a write error), aborted (stopped at once by a second signal), killed.
STATES = ("recording", "failed", "aborted", "killed")


@dataclass
class Window:
    """A stretch of time [from_ns, to_ns) (wall clock, ns since the epoch, UTC)."""

    from_ns: int
    to_ns: int
    why: str


@dataclass
class Ledger:
    host: str
    recording_id: str
    state: str
    sealed: int  # sequence number of the last sealed file (0: none yet)
    from_ns: int  # end of the last sealed file (or the start): nothing after it is sealed
    to_ns: int  # the last time the recorder wrote the ledger
    lost: dict[str, int] = field(default_factory=dict)  # counted in [from_ns, to_ns), by reason
    no_data: list[Window] = field(default_factory=list)  # calls in these spans are in no file
    kind: str = LEDGER_KIND
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    def to_bytes(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Ledger:
        """Parse a ledger; raises ValueError on anything else (padding spaces are fine)."""
        data: Any = json.loads(raw)
        if not isinstance(data, dict) or data.get("kind") != LEDGER_KIND:
            raise ValueError("not a sockopt-trace loss ledger")
        check_format(data)  # the same version policy as the files'
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            data["no_data"] = [Window(**w) for w in data.get("no_data", [])]
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError as err:
            raise ValueError(f"unreadable loss ledger: {err}") from None
