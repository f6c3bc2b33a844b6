"""The recording format: the one contract between the recorder and the analyzer.

A recording is a directory of Parquet files (zstd). Each file holds one row per completed
getsockopt(2) call and carries a JSON `RecordingMetadata` under the key-value metadata key
`METADATA_KEY`. A file still being written is named `*.parquet.partial` and renamed to
`*.parquet` only after its footer is written, so every `*.parquet` is whole.

Portability (docs/design.md, portability facts): wall-clock time is int64 nanoseconds since
the Unix epoch (UTC), not a Parquet TIMESTAMP(NANOS) column, which Spark refuses; the
analyzer's view turns it into a timestamp. Columns only ever get added; anything else bumps
`FORMAT_VERSION`.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
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

# A column's type, named as Arrow names it (pyarrow.type_for_alias reads it back).
ColumnType = Literal["int32", "int64", "string"]

# Column name -> (type, meaning). The order is the order in every file.
COLUMNS: dict[str, tuple[ColumnType, str]] = {
    "ts_ns": ("int64", "wall-clock time of syscall entry, ns since the Unix epoch, UTC"),
    "latency_ns": ("int64", "time from syscall entry to exit, ns"),
    "host": ("string", "host name of the recording machine"),
    "pid": ("int32", "process id (kernel tgid)"),
    "tid": ("int32", "thread id (kernel pid)"),
    "comm": ("string", "thread name at the time of the call (invalid UTF-8 escaped)"),
    "uid": ("int64", "real user id"),
    "fd": ("int32", "socket file descriptor argument"),
    "level": ("int32", "level argument (SOL_SOCKET=1, IPPROTO_TCP=6, ...)"),
    "optname": ("int32", "option name argument"),
    "optlen_in": ("int32", "*optlen passed in (-1 if unreadable)"),
    "optlen_out": ("int32", "*optlen on return (-1 if unreadable)"),
    "ret": ("int32", "return value: 0, or -errno"),
    "callsite": ("string", "the instruction after the call into libc's getsockopt, symbolized"),
    "stack": ("string", "folded user stack outer;...;inner, null unless stacks were on"),
    # Where the call site is, for naming it later from debug information (symbolize)
    "callsite_object": ("string", "path of the file the call site is in, as mapped"),
    "callsite_build_id": ("string", "GNU build-id of that file, hex"),
    "callsite_offset": ("int64", "file offset of the call site in that file"),
    "callsite_address": ("int64", "ELF virtual address of the call site in that file"),
    "stack_locations": (
        "string",
        "the stack's frames as BUILDID:0xOFFSET:0xADDRESS (the path where no build-id), "
        "outer;...;inner",
    ),
    # Added in 0.2 (files without it: every row weighs 1). With --max-rate, a successful call
    # is kept with probability 1/period and then stands for `period` calls.
    "weight": ("int32", "calls this row stands for: 1, or the sampling period (--max-rate)"),
}
# Columns files written before they existed lack (still format version 1): readers see nulls.
ADDED_COLUMNS = (
    "callsite_object",
    "callsite_build_id",
    "callsite_offset",
    "callsite_address",
    "stack_locations",
    "weight",  # readers give it its neutral value (NEUTRAL_VALUES): 1, every row one call
)
# What a reader puts in an added column a file lacks, where NULL would say the wrong thing.
NEUTRAL_VALUES: dict[str, int] = {"weight": 1}


def arrow_schema(columns: Mapping[str, tuple[ColumnType, str]] = COLUMNS) -> pa.Schema:
    """The Arrow schema of these columns (the writers'; the analyzer reads footers without
    pyarrow, whose import is a third of a small report's start-up)."""
    import pyarrow as pa

    return pa.schema([pa.field(name, pa.type_for_alias(typ)) for name, (typ, _) in columns.items()])


# What each call was about (issue 16): columns a file carries when the recorder was asked for
# them, after COLUMNS. A file without some of them reads as nulls there (the analyzer's views).
CONTEXT_COLUMNS: dict[str, tuple[ColumnType, str]] = {
    # Which container or service: the caller's cgroup v2, named at record time.
    "cgroup_id": ("int64", "the caller's cgroup v2 id (the inode number of its directory)"),
    "cgroup": ("string", "that cgroup's path from the v2 root; null if it was gone unnamed"),
    "unit": ("string", "the innermost systemd unit in the cgroup path (nginx.service)"),
    "pod": ("string", "the Kubernetes pod uid in the cgroup path"),
    "container": ("string", "the container id in the cgroup path (Docker, containerd, ...)"),
    # Which socket: null where the fd was not read as a socket.
    "family": ("int32", "socket address family (AF_UNIX=1, AF_INET=2, AF_INET6=10, ...)"),
    "sock_type": ("int32", "socket type (SOCK_STREAM=1, SOCK_DGRAM=2, ...)"),
    "protocol": ("int32", "socket protocol (IPPROTO_TCP=6, IPPROTO_UDP=17, ...)"),
    "state": ("int32", "sk_state after the call: TCP state numbers (Unix and UDP use them)"),
    "local_addr": ("string", "local IP address, or for AF_UNIX the bound path (@: abstract)"),
    "local_port": ("int32", "local port (inet)"),
    "peer_addr": ("string", "peer IP address, or the peer's Unix path; null: no peer"),
    "peer_port": ("int32", "peer port (inet); null: no peer"),
    # What the call returned (successful calls only; null otherwise).
    "value": ("int64", "*optval as an integer (4 bytes: int32; 8 or more: the first 8)"),
    "tcpi_state": ("int32", "TCP_INFO: tcpi_state"),
    "tcpi_retransmits": ("int32", "TCP_INFO: tcpi_retransmits (current consecutive)"),
    "tcpi_rtt_us": ("int32", "TCP_INFO: tcpi_rtt, smoothed RTT, microseconds"),
    "tcpi_rttvar_us": ("int32", "TCP_INFO: tcpi_rttvar, microseconds"),
    "tcpi_snd_cwnd": ("int32", "TCP_INFO: tcpi_snd_cwnd, segments"),
    "tcpi_lost": ("int32", "TCP_INFO: tcpi_lost, segments"),
    "tcpi_total_retrans": ("int32", "TCP_INFO: tcpi_total_retrans"),
    "tcpi_delivery_rate": ("int64", "TCP_INFO: tcpi_delivery_rate, bytes per second"),
}


def optional_columns() -> dict[str, tuple[ColumnType, str]]:
    """The columns a file may lack, which readers see as nulls: context columns recorded only
    when asked for, and columns added since the first files were written."""
    return {**{c: COLUMNS[c] for c in ADDED_COLUMNS}, **CONTEXT_COLUMNS}


# How every writer of the format encodes columns (see parquet_write_options): strings through
# Parquet dictionaries, the sorted timestamp and the mostly constant integers with delta encoding
# (constant runs cost nothing), latency through a dictionary (few distinct values in practice).
# level, optname and weight through dictionaries too: every report groups by the first two and
# sums the third, and DuckDB decodes a dictionary's indexes faster than deltas of values that
# jump between a handful of options (100M synthetic events: latency report 7.66 -> 7.09 s,
# median of 5 interleaved; files 6% smaller; pyarrow's write 3% less CPU; docs/benchmarks.md).
# Ports plain: calls on client and server sockets interleave, service ports with ephemeral ones,
# and the deltas between them are large where zstd finds the repeats in plain values (measured
# on a recording of the nginx sample's workload: local_port 1.88 bytes/event delta, 0.69 plain).
_ALL = {**COLUMNS, **CONTEXT_COLUMNS}
STRING_COLUMNS = tuple(n for n, (t, _) in _ALL.items() if t == "string")
DICTIONARY_COLUMNS = (
    *STRING_COLUMNS,
    *("latency_ns", "callsite_offset", "callsite_address", "level", "optname", "weight"),
)
PLAIN_COLUMNS = ("local_port", "peer_port")
DELTA_COLUMNS = tuple(n for n in _ALL if n not in (*DICTIONARY_COLUMNS, *PLAIN_COLUMNS))

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
    cgroup: str = ""  # `record --cgroup PATH`: the cgroup v2 directory (and those below it)

    def as_dict(self) -> dict[str, Any]:
        # dataclasses.asdict, without its generic deep copy (a third of the files table's
        # cost at 1,000 files): the fields are flat lists and a string
        return {f.name: copy.copy(getattr(self, f.name)) for f in _FILTER_FIELDS}


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
    # distinct call sites and stack frames in this file that the recorder could name only as
    # module+offset (stripped binaries): `symbolize` can name them from debug information.
    # None in files of recorders that did not count them.
    unresolved_sites: int | None = None
    # --max-rate: calls per second the recorder aimed to keep (0: every call kept, weight 1);
    # `sampled_out`: calls of this file's span that sampling left out (events + sampled_out
    # calls were made; every row's `weight` says how many of them it stands for).
    max_rate: int = 0
    sampled_out: int = 0
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
        names, required = _metadata_fields()
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


_FILTER_FIELDS = dataclasses.fields(TraceFilters)


@functools.cache
def _metadata_fields() -> tuple[frozenset[str], frozenset[str]]:
    """RecordingMetadata's field names, and those without a default (a field added later gets
    one, being optional): computed once, not for each of a recording's files."""
    fields = dataclasses.fields(RecordingMetadata)
    required = (
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    return frozenset(f.name for f in fields), frozenset(required)


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


def fleet_prefix(host: str, start_ns: int) -> str:
    """Where a file goes in the fleet layout: `host=NAME/date=YYYY-MM-DD` (Hive-style, the UTC
    date the file starts), so that many hosts' recordings are read as one and pruned by host
    and date without opening a file."""
    day = datetime.datetime.fromtimestamp(start_ns // 1_000_000_000, datetime.timezone.utc)
    name = host.replace("/", "_") or "unknown"
    return f"host={name}/date={day:%Y-%m-%d}"


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
        "column_encoding": {
            **dict.fromkeys(DELTA_COLUMNS, "DELTA_BINARY_PACKED"),
            **dict.fromkeys(PLAIN_COLUMNS, "PLAIN"),
        },
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
