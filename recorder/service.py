"""What a long-running recorder adds around the recording (issue 19): readiness and status for
a supervisor, the event log, background uploads and bounded disk, called by the session at the
few moments they care about."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sockopt_trace import schema
from sockopt_trace.recorder.eventlog import EventLog
from sockopt_trace.recorder.retention import Retention
from sockopt_trace.recorder.sdnotify import Notifier
from sockopt_trace.recorder.status import StatusLine
from sockopt_trace.recorder.upload import Uploader


@dataclass
class Service:
    """The service parts of one recording; each optional part is None when not asked for."""

    notifier: Notifier
    status: StatusLine
    log: EventLog
    uploader: Uploader | None
    retention: Retention | None

    def sealed(self, path: Path, meta: schema.RecordingMetadata, size: int) -> None:
        self.log.sealed(path, meta, size)
        if self.uploader is not None:
            self.uploader.add(path, meta)
        if self.retention is not None:
            self.retention.sealed(path, meta, size)

    def tick(self) -> None:
        if self.retention is not None:
            self.retention.tick()

    def announce(self, message: str) -> None:
        """Worth a line even without --log (a dump someone asked for), in the log if on."""
        if self.log.enabled:
            self.log(message)
        else:
            self.status.info(message)

    def finish(self, at_once: bool) -> int:
        """Bounded: uploads go on for their drain time (none if asked to stop at once)."""
        if self.uploader is None:
            return 0
        self.uploader.finish(0 if at_once else None)
        return self.uploader.uploaded
