"""The recording format: the one contract between the recorder and the analyzer.

A recording is a directory of Parquet files (zstd). Each file holds one row per completed
getsockopt(2) call and carries a JSON `RecordingMetadata` under the key-value metadata key
`METADATA_KEY`. A file still being written is named `*.parquet.partial` and renamed to
`*.parquet` only after its footer is written, so every `*.parquet` is whole.

Portability (DESIGN.md): wall-clock time is int64 nanoseconds since the Unix epoch (UTC), not a
Parquet TIMESTAMP(NANOS) column, which Spark refuses; the analyzer's view turns it into a
timestamp. Columns only ever get added; anything else bumps `FORMAT_VERSION`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

FORMAT_NAME = "sockopt-trace"
FORMAT_VERSION = 1
OLDEST_READABLE_VERSION = 1  # files of versions from this one to FORMAT_VERSION are read
METADATA_KEY = b"sockopt_trace"
FILE_SUFFIX = ".parquet"
PARTIAL_SUFFIX = ".parquet.partial"
QUARANTINE_SUFFIX = ".parquet.quarantined"  # a partial file `recover` could not salvage
UNKNOWN_FRAME = "[unknown]"  # a call site or stack frame no symbol names (callsite, stack)
FIRST_SEQUENCE = 1  # a recording's files are numbered 1, 2, 3, ... (FileName.sequence)
LOCK_NAME = ".sockopt-trace.lock"  # held by the recorder writing into a directory

# Column name -> (type, meaning). The order is the order in every file.
COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "ts_ns": (pa.int64(), "wall-clock time of syscall entry, ns since the Unix epoch, UTC"),
    "latency_ns": (pa.int64(), "time from syscall entry to exit, ns"),
    "host": (pa.string(), "host name of the recording machine"),
    "pid": (pa.int32(), "process id (kernel tgid)"),
    "tid": (pa.int32(), "thread id (kernel pid)"),
    "comm": (pa.string(), "thread name at the time of the call (invalid UTF-8 escaped)"),
    "uid": (pa.int64(), "real user id"),
    "fd": (pa.int32(), "socket file descriptor argument"),
    "level": (pa.int32(), "level argument (SOL_SOCKET=1, IPPROTO_TCP=6, ...)"),
    "optname": (pa.int32(), "option name argument"),
    "optlen_in": (pa.int32(), "*optlen passed in (-1 if unreadable)"),
    "optlen_out": (pa.int32(), "*optlen on return (-1 if unreadable)"),
    "ret": (pa.int32(), "return value: 0, or -errno"),
    "callsite": (pa.string(), "the instruction after the call into libc's getsockopt, symbolized"),
    "stack": (pa.string(), "folded user stack outer;...;inner, null unless stacks were on"),
}

ARROW_SCHEMA = pa.schema([pa.field(name, typ) for name, (typ, _) in COLUMNS.items()])

# How every writer of the format encodes columns (see parquet_write_options): strings through
# Parquet dictionaries, the sorted timestamp and the mostly constant integers with delta encoding
# (constant runs cost nothing), latency through a dictionary (few distinct values in practice).
STRING_COLUMNS = tuple(n for n, (t, _) in COLUMNS.items() if t == pa.string())
DICTIONARY_COLUMNS = (*STRING_COLUMNS, "latency_ns")
DELTA_COLUMNS = tuple(n for n in COLUMNS if n not in DICTIONARY_COLUMNS)

# Why a completed call has no row. Counted exactly, per file, in `RecordingMetadata.lost`.
LOSS_REASONS = (
    "ringbuf_full",  # the kernel could not reserve ring buffer space (ring and writer both full)
    "entry_map_full",  # too many threads inside getsockopt at once to remember their entry
    "exit_without_entry",  # exit seen without its entry (the call began before attaching)
    "kernel_skipped",  # runs of our programs the kernel skipped (one already running on the CPU)
    "write_error",  # rows that were in memory when writing failed (disk full, I/O error)
    "discarded_at_stop",  # rows taken from the kernel, not written: stopped at once (2nd signal)
)
# Counted by earlier recorders, never now; still read and shown when a file has them.
RETIRED_LOSS_REASONS = (
    "queue_full",  # user space dropped batches; back-pressure now reaches the kernel's ring
)


@dataclass
class Clock:
    """CLOCK_MONOTONIC (the kernel's bpf_ktime_get_ns) and CLOCK_REALTIME read at one instant,
    so that wall = mono + offset_ns."""

    monotonic_ns: int
    realtime_ns: int

    @property
    def offset_ns(self) -> int:
        return self.realtime_ns - self.monotonic_ns


@dataclass
class TraceFilters:
    """What the recorder was told to trace (all empty: every process): the kernel-side filters,
    as given on its command line."""

    pids: list[int] = field(default_factory=list)
    comms: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)  # `record -- COMMAND`

    def as_dict(self) -> dict[str, list[Any]]:
        return dataclasses.asdict(self)


@dataclass
class RecordingMetadata:
    """What every file says about itself; written as JSON under `METADATA_KEY` (the nested
    structures as JSON objects, the same as version 1 always wrote them)."""

    host: str
    kernel: str
    probe: str
    recorder_version: str
    recording_id: str
    sequence: int
    command_line: list[str]
    filters: TraceFilters
    clock: Clock
    # The span this file covers, wall clock: it holds every recorded call that completed in
    # [start_ns, end_ns); the next file of the recording starts at end_ns.
    start_ns: int
    end_ns: int
    events: int
    lost: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LOSS_REASONS, 0))
    stacks_lost: int = 0  # rows kept whose stack could not be captured (stack map full)
    # Whether the kernel could report runs of our programs it skipped (kernel_skipped): if
    # not, such calls may be missing without being counted.
    skipped_runs_counted: bool = False
    stacks: str = "callsite"  # "off" | "callsite" | "full"
    stack_sample_period: int = 1  # 1 in N calls carries a full stack when stacks == "full"
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        """Accept the nested structures as parsed JSON objects (as from_bytes and callers
        that build metadata from plain data pass them)."""
        if isinstance(self.filters, dict):
            known = {f.name for f in dataclasses.fields(TraceFilters)}
            self.filters = TraceFilters(**{k: v for k, v in self.filters.items() if k in known})
        if isinstance(self.clock, dict):
            self.clock = Clock(**self.clock)

    def to_bytes(self) -> bytes:
        return json.dumps(dataclasses.asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> RecordingMetadata:
        """Parse metadata; raises FormatError if it is not this format or not a version this
        code reads, ValueError if it does not parse."""
        try:
            data = json.loads(raw)
        except ValueError:
            raise ValueError("not JSON") from None
        check_format(data)
        fields = dataclasses.fields(cls)
        names = {f.name for f in fields}
        required = {  # fields without a default: added later, a field gets one (optional)
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        missing = required - set(data)
        if missing:
            raise ValueError(f"metadata lacks {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    @property
    def lower_bound(self) -> bool:
        """The file's rows may be fewer than the calls made in its span: some were lost, or
        the kernel could not say whether it skipped any."""
        return self.lost_total > 0 or not self.skipped_runs_counted


@dataclass(frozen=True)
class FileName:
    """How a recording's files are named: PREFIX-SEQUENCE.parquet, where PREFIX is the host
    name and the first 8 hex digits of the recording id, so that recordings can share a
    directory, and the sequence (from 1, at least 6 digits) sorts the files of one recording."""

    prefix: str
    sequence: int

    _PATTERN = re.compile(r"^(?P<prefix>.+)-(?P<seq>\d{6,})\.parquet(?:\.partial|\.quarantined)?$")

    @staticmethod
    def recording_prefix(host: str, recording_id: str) -> str:
        return f"{host}-{recording_id[:8]}"

    @property
    def stem(self) -> str:
        return f"{self.prefix}-{self.sequence:06d}"

    @property
    def final(self) -> str:
        return self.stem + FILE_SUFFIX

    @property
    def partial(self) -> str:
        return self.stem + PARTIAL_SUFFIX

    @property
    def quarantined(self) -> str:
        return self.stem + QUARANTINE_SUFFIX

    @classmethod
    def parse(cls, name: str) -> FileName | None:
        """The name of a final, partial or quarantined file; None for any other name."""
        m = cls._PATTERN.match(name)
        return cls(m["prefix"], int(m["seq"])) if m else None


class FormatError(ValueError):
    """Not this format, or a version of it this code does not read; the message says which."""


def check_format(data: object) -> None:
    """The version policy, for every reader (analyzer, recover): format name, then version.
    Raises FormatError."""
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        found = data.get("format") if isinstance(data, dict) else None
        raise FormatError(f"not a {FORMAT_NAME} recording (format {found!r})")
    version = data.get("format_version")
    if not isinstance(version, int):
        raise FormatError(f"metadata has no format version ({version!r})")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"written in format version {version}, newer than this sockopt-trace reads "
            f"({FORMAT_VERSION}): upgrade sockopt-trace to read it"
        )
    if version < OLDEST_READABLE_VERSION:
        raise FormatError(
            f"written in format version {version}, which this sockopt-trace no longer reads "
            f"(it reads {OLDEST_READABLE_VERSION} to {FORMAT_VERSION}): use an older "
            "sockopt-trace"
        )


def parquet_write_options() -> dict[str, Any]:
    """Keyword arguments for `pyarrow.parquet.ParquetWriter` that every writer of the format uses.

    zstd plus the encodings above get a row to a few bytes on disk; statistics on the time column
    let readers skip row groups outside --since/--until. No Arrow schema is stored: the files are
    plain Parquet, and string columns read back as strings whatever Arrow type wrote them.
    """
    return {
        "compression": "zstd",
        "compression_level": 3,
        "use_dictionary": list(DICTIONARY_COLUMNS),
        "column_encoding": dict.fromkeys(DELTA_COLUMNS, "DELTA_BINARY_PACKED"),
        "write_statistics": ["ts_ns", "pid"],
        "store_schema": False,
    }


def read_file_metadata(path: str) -> RecordingMetadata:
    """The metadata of one recording file, from the Parquet footer's key-value metadata.

    Read it there, not from the Arrow schema's metadata: the recorder adds it when it seals the
    file, after the Arrow schema was serialized. Raises KeyError if the key is absent and
    ValueError if it does not parse; pyarrow errors if the file is not Parquet.
    """
    import pyarrow.parquet as pq

    kv = pq.ParquetFile(path).metadata.metadata or {}
    return RecordingMetadata.from_bytes(kv[METADATA_KEY])
