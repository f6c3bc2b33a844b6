"""One line per event worth knowing (`record --log`): on stderr, which systemd sends to the journal.

A recorder that runs for weeks is read through its log: each sealed file with its counts and
losses, what retention removed, uploads that failed and recovered, dumps. Lines are plain
`sockopt-trace: EVENT ...` text with numbers a person can read and grep can count; nothing is
logged per call or per batch, so the volume is a few lines per rotation interval.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from sockopt_trace import schema
from sockopt_trace.recorder.status import StatusLine


class EventLog:
    def __init__(self, enabled: bool, status: StatusLine) -> None:
        self.enabled = enabled
        self._status = status
        self._lock = threading.Lock()  # the uploader logs from its own thread

    def __call__(self, message: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._status.say(message)

    def sealed(self, path: Path, meta: schema.RecordingMetadata, size: int) -> None:
        lost = ", ".join(f"{k} {v:,}" for k, v in meta.lost.items() if v)
        self(
            f"sealed {path.name}: {meta.events:,} events, {size:,} bytes, "
            f"{utc_clock(meta.start_ns)} to {utc_clock(meta.end_ns)} UTC, "
            f"lost {meta.lost_total:,}" + (f" ({lost})" if lost else "")
        )


def utc_clock(ns: int) -> str:
    """2026-12-01T02:32:11.037: wall-clock ns as people read them in a log (UTC, ms)."""
    text = dt.datetime.fromtimestamp(ns / 1e9, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[:-3]
