"""What `record` is asked to do and what it reports back: the library's contract with the CLI
(and with Python callers), kept apart from the machinery that runs a recording."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from sockopt_trace.recorder.flight import FlightConfig
from sockopt_trace.recorder.probe import ProbeConfig
from sockopt_trace.recorder.retention import RetentionConfig
from sockopt_trace.recorder.upload import UploadConfig
from sockopt_trace.recorder.writer import WriterConfig


@dataclass
class RecordOptions:
    output: Path
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    writer: WriterConfig | None = None
    duration: float | None = None
    command: list[str] = field(default_factory=list)
    force: bool = False
    status: bool | None = None  # None: only when stderr is a terminal
    quiet: bool = False  # no messages at all, errors only
    command_line: list[str] = field(default_factory=lambda: list(sys.argv))
    log: bool = False  # one line per event worth knowing (sealed files, uploads), even if quiet
    upload: UploadConfig | None = None
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    flight: FlightConfig | None = None


@dataclass
class RecordResult:
    files: list[Path]
    events: int
    lost: dict[str, int]
    probe: str
    exit_code: int
    kernel_counters: dict[str, int]
    uploaded: int = 0
