"""Write decoded events into a recording directory of rotated, compressed Parquet files.

Every file is created as `NAME.parquet.partial` (O_EXCL, O_NOFOLLOW, mode 0640) and renamed to
`NAME.parquet` only once its footer and metadata are written, so a reader never sees a final name
on an incomplete file. Rows are buffered into row groups, sorted by time (which lets the delta
encoding of the timestamp column work), and converted from numpy to Arrow without per-row
Python objects.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sockopt_trace import schema
from sockopt_trace.errors import ExitCode, UserError
from sockopt_trace.recorder.events import event_dtype

OUTPUT_ERROR = ExitCode.OUTPUT
DAY_NS = 86_400 * 10**9
# The format's schema with string columns as Arrow dictionaries, which the decoder builds anyway;
# the Parquet file is the same (plain strings, no Arrow schema stored).
WRITE_SCHEMA = pa.schema(
    [
        pa.field(
            f.name, pa.dictionary(pa.int32(), pa.string()) if f.type == pa.string() else f.type
        )
        for f in schema.ARROW_SCHEMA
    ]
)


def clock_mapping() -> dict[str, int]:
    """Pair CLOCK_MONOTONIC (bpf_ktime_get_ns) with CLOCK_REALTIME, from the tightest of a few
    reads, so that wall = mono - monotonic_ns + realtime_ns."""
    best: tuple[int, int, int] | None = None
    for _ in range(5):
        r0 = time.clock_gettime_ns(time.CLOCK_REALTIME)
        m = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        r1 = time.clock_gettime_ns(time.CLOCK_REALTIME)
        if best is None or r1 - r0 < best[0]:
            best = (r1 - r0, m, (r0 + r1) // 2)
    assert best is not None
    return {"monotonic_ns": best[1], "realtime_ns": best[2]}


def prepare_directory(path: Path, force: bool) -> None:
    """Create the output directory, or refuse one that already holds a recording."""
    if path.is_symlink():
        raise UserError(f"{path} is a symbolic link: give a real directory", OUTPUT_ERROR)
    if path.exists() and not path.is_dir():
        raise UserError(
            f"{path} exists and is not a directory: choose another -o DIR", OUTPUT_ERROR
        )
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o750)
    except OSError as err:
        raise UserError(f"cannot create {path}: {err.strerror}", OUTPUT_ERROR) from None
    if not path.is_dir():
        raise UserError(f"{path} exists and is not a directory", OUTPUT_ERROR)
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{path} is not writable: choose another -o DIR", OUTPUT_ERROR)
    existing = [p.name for p in path.iterdir() if p.name.endswith((".parquet", ".partial"))]
    if existing and not force:
        raise UserError(
            f"{path} already holds a recording ({len(existing)} files): "
            "use another -o DIR, or --force to add to it",
            OUTPUT_ERROR,
        )


@dataclass
class WriterConfig:
    directory: Path
    host: str = field(default_factory=socket.gethostname)
    rotate_bytes: int = 256 << 20
    rotate_seconds: float = 60.0
    row_group_rows: int = 1 << 18
    flush_seconds: float = 5.0
    file_mode: int = 0o640
    # "flat": every file in `directory`; "fleet": in directory/host=NAME/date=YYYY-MM-DD/ (UTC),
    # the Hive-style layout that analyzers prune by host and date, files sealed at midnight UTC
    # so that each holds calls of its directory's date only
    layout: str = "flat"


class WriteError(Exception):
    """Writing failed (disk full, I/O error); `rows_lost` were in memory and are gone."""

    def __init__(self, message: str, rows_lost: int) -> None:
        super().__init__(message)
        self.rows_lost = rows_lost


class RecordingWriter:
    """Turns batches of `struct event` rows into rotated Parquet files.

    `to_columns` converts a sorted numpy batch into the format's columns (call sites and stacks
    are symbolized there); `losses` returns cumulative loss counters so each file can carry the
    losses of its own span; `file_facts`, if given, returns what else the file being sealed
    should say about its rows (metadata fields), counted since the previous file was sealed.
    """

    def __init__(
        self,
        config: WriterConfig,
        base_metadata: dict[str, Any],
        to_columns: Callable[[np.ndarray, int], dict[str, pa.Array]],
        losses: Callable[[], dict[str, int]],
        file_facts: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.config = config
        self.file_facts = file_facts
        self.base = base_metadata
        self.to_columns = to_columns
        self.losses = losses
        self.recording_id = uuid.uuid4().hex
        self.sequence = 0
        self.files: list[Path] = []
        self.rows_written = 0  # into files, sealed or not
        self.rows_sealed = 0  # in files sealed under their final name
        self.bytes_closed = 0
        self._buffer = np.zeros(config.row_group_rows, dtype=event_dtype())  # touched once, reused
        self._pending_rows = 0
        self._pending_since = 0.0
        self._file: Any = None
        self._writer: pq.ParquetWriter | None = None
        self._span_start = time.time_ns()  # files cover the recording without gaps
        self._losses_base = losses()  # losses since the previous file was sealed go in the next
        self._next_rotation = time.monotonic() + config.rotate_seconds

    # -- public -----------------------------------------------------------------------------
    def add(self, batch: np.ndarray) -> None:
        """Copy a batch into the row-group buffer, writing a row group whenever it fills."""
        while len(batch):
            if not self._pending_rows:
                self._pending_since = time.monotonic()
            take = min(len(batch), self._row_group_limit() - self._pending_rows)
            dst = self._buffer[self._pending_rows : self._pending_rows + take]
            dst.view(np.uint8)[:] = batch[:take].view(np.uint8)
            self._pending_rows += take
            batch = batch[take:]
            if self._pending_rows >= self._row_group_limit():
                self.flush()

    def _row_group_limit(self) -> int:
        """Rows per row group: the buffer's size, or fewer when files rotate at a small size
        (so that rotation can happen at all), judged by the bytes per row seen so far."""
        per_row = self.bytes_written / self.rows_written if self.rows_written else 2.0
        fit = int(self.config.rotate_bytes / max(per_row, 0.25))
        return max(1024, min(len(self._buffer), fit))

    def tick(self) -> None:
        """Called regularly: flush an old row group; every rotation interval (counted from the
        start of the recording, whatever the rate) seal what has been recorded so far, so that
        a killed recorder loses at most the last interval."""
        now = time.monotonic()
        if now >= self._next_rotation or self._past_midnight():
            self._next_rotation += self.config.rotate_seconds * (
                1 + (now - self._next_rotation) // self.config.rotate_seconds
            )
            self.flush()
            if self._writer is not None:
                self._close_file()
        elif self._pending_rows and now - self._pending_since >= self.config.flush_seconds:
            self.flush()

    def _past_midnight(self) -> bool:
        """In the fleet layout, the file open since the previous UTC day must be sealed."""
        return (
            self.config.layout == "fleet"
            and self._writer is not None
            and time.time_ns() // DAY_NS != self._start_ns // DAY_NS
        )

    def flush(self) -> None:
        if not self._pending_rows:
            return
        rows = self._buffer[: self._pending_rows]
        self._pending_rows = 0
        try:
            if self._writer is None:
                self._open_file()
            table = pa.table(self.to_columns(rows, self._clock_offset), schema=WRITE_SCHEMA)
            ts = rows["ts_ns"]
            if len(ts) > 1 and (ts[1:] < ts[:-1]).any():  # calls overlap across threads/CPUs
                table = table.take(pa.array(np.argsort(ts, kind="stable")))
            assert self._writer is not None
            self._writer.write_table(table, row_group_size=len(rows))
            self._file_rows += len(rows)
            self.rows_written += len(rows)
            first, last = table["ts_ns"][0].as_py(), table["ts_ns"][-1].as_py()
            self._ts_range = (min(self._ts_range[0], first), max(self._ts_range[1], last))
        except OSError as err:
            raise WriteError(f"writing {self._partial_path}: {err.strerror}", len(rows)) from err
        if self._file.tell() >= self.config.rotate_bytes:
            self._close_file()

    def close(self) -> None:
        """Flush and seal the current file. Safe to call twice. A recording always has at
        least one file, even with no events: it carries the span, the settings and any losses."""
        self.flush()
        if self._writer is None and (not self.files or any(self._unsealed_losses().values())):
            try:
                self._open_file()
            except OSError as err:
                raise WriteError(
                    f"creating a file in {self.config.directory}: {err.strerror}", 0
                ) from err
        if self._writer is not None:
            self._close_file()

    def _unsealed_losses(self) -> dict[str, int]:
        now = self.losses()
        return {k: v - self._losses_base.get(k, 0) for k, v in now.items()}

    def abandon(self) -> int:
        """After a write error: let go of the current file, which keeps its .partial name.
        Returns how many rows that loses (in the unsealed file and not yet written)."""
        lost = self._file_rows + self._pending_rows
        self._file_rows = self._pending_rows = 0
        if self._writer is not None:
            with contextlib.suppress(Exception):  # a footer may still fit; then it is salvageable
                self._writer.close()
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._writer = None
        return lost

    @property
    def bytes_written(self) -> int:
        current = self._file.tell() if self._file is not None and not self._file.closed else 0
        return self.bytes_closed + current

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    # -- files ------------------------------------------------------------------------------
    def _open_file(self) -> None:
        self.sequence += 1
        name = f"{self.config.host}-{self.recording_id[:8]}-{self.sequence:06d}"
        directory = self.config.directory
        if self.config.layout == "fleet":
            day = time.strftime("%Y-%m-%d", time.gmtime(self._span_start / 1e9))
            directory = directory / f"host={self.config.host}" / f"date={day}"
            directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._final_path = directory / f"{name}{schema.FILE_SUFFIX}"
        self._partial_path = directory / f"{name}{schema.PARTIAL_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self._partial_path, flags, self.config.file_mode)
        os.fchmod(fd, self.config.file_mode)  # exact mode whatever the umask
        self._file = os.fdopen(fd, "wb", buffering=1 << 20)
        self._writer = pq.ParquetWriter(self._file, WRITE_SCHEMA, **schema.parquet_write_options())
        self._clock = clock_mapping()
        self._clock_offset = self._clock["realtime_ns"] - self._clock["monotonic_ns"]
        self._start_ns = self._span_start
        self._ts_range = (2**63 - 1, 0)
        self._file_rows = 0

    def _close_file(self) -> None:
        assert self._writer is not None
        now = self.losses()
        lost = {k: now.get(k, 0) - self._losses_base.get(k, 0) for k in now}
        self._losses_base = now
        stacks_lost = lost.pop("stacks_lost", 0)
        end_ns = time.time_ns()
        self._span_start = end_ns
        meta = schema.RecordingMetadata(
            **self.base,
            recording_id=self.recording_id,
            sequence=self.sequence,
            clock=self._clock,
            start_ns=min(self._start_ns, self._ts_range[0]),
            end_ns=max(end_ns, self._ts_range[1]),
            events=self._file_rows,
            lost={r: lost.get(r, 0) for r in schema.LOSS_REASONS},
            stacks_lost=stacks_lost,
            **(self.file_facts() if self.file_facts else {}),
        )
        try:
            self._writer.add_key_value_metadata({schema.METADATA_KEY: meta.to_bytes()})
            self._writer.close()
            self._file.flush()
            os.fsync(self._file.fileno())
            size = self._file.tell()
            self._file.close()
            os.rename(self._partial_path, self._final_path)
        except OSError as err:
            raise WriteError(f"sealing {self._partial_path}: {err.strerror}", 0) from err
        finally:
            self._writer = None
        self.bytes_closed += size
        self.files.append(self._final_path)
        self.rows_sealed += self._file_rows
        self._file_rows = 0
