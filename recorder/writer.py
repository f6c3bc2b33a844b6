"""Write decoded events into a recording directory of rotated, compressed Parquet files.

Every file is created as `NAME.parquet.partial` (O_EXCL, O_NOFOLLOW, mode 0640) and renamed to
`NAME.parquet` only once its footer and metadata are written, so a reader never sees a final name
on an incomplete file. Rows are buffered into row groups, sorted by time (which lets the delta
encoding of the timestamp column work), and converted from numpy to Arrow without per-row
Python objects.

Files are back to back: file k holds exactly the calls that completed (entry + latency, on
CLOCK_MONOTONIC) in [start_ns, end_ns), and file k+1 starts where file k ends, so that the span
of a missing file is exact. A cut at time T is safe once every call completed before T has come
out of the ring: the consumer's caught-up time, or the latest completion seen, minus SETTLE_NS
for calls other CPUs were still putting into the ring then. Calls completed after the cut wait
in the buffer for the next file. Losses are counted into the file sealed after they are seen,
and meanwhile kept on disk in the loss ledger (sidecar.py).
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
from sockopt_trace.recorder.clock import clock_mapping, unless_stepped
from sockopt_trace.recorder.events import event_dtype
from sockopt_trace.recorder.losses import Tally
from sockopt_trace.recorder.sidecar import Sidecar

DAY_NS = 86_400 * 10**9
SETTLE_NS = 20_000_000
LEDGER_EVERY_S = 1.0


# The format's schema with string columns as Arrow dictionaries, which the decoder builds anyway;
# the Parquet file is the same (plain strings, no Arrow schema stored).
def write_schema(context: bool = False) -> pa.Schema:
    """The columns a file gets (with the context columns if recorded)."""
    columns = {**schema.COLUMNS, **(schema.CONTEXT_COLUMNS if context else {})}
    strings = pa.dictionary(pa.int32(), pa.string())
    return pa.schema(
        [
            pa.field(f.name, strings) if pa.types.is_string(f.type) else f
            for f in schema.arrow_schema(columns)
        ]
    )


WRITE_SCHEMA = write_schema()


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
    context: bool = False  # files carry schema.CONTEXT_COLUMNS (record's default)


class WriteError(Exception):
    """Writing failed (disk full, I/O error); `rows_lost` were in memory and are gone."""

    def __init__(self, message: str, rows_lost: int) -> None:
        super().__init__(message)
        self.rows_lost = rows_lost


class RecordingWriter:
    """Turns batches of `struct event` rows into rotated Parquet files.

    `to_columns` converts a sorted numpy batch into the format's columns (call sites and stacks
    are symbolized there); `tally` returns the cumulative counts, so that each file carries the
    losses of its own span; `file_facts`, if given, returns what else the file being sealed
    should say about its rows (metadata fields), counted since the previous file was sealed.
    The loss ledger is created at once: a directory in which nothing can be written is refused
    before recording starts (WriteError).
    """

    def __init__(self, config: WriterConfig, tally: Callable[[], Tally]) -> None:
        self.config = config
        self.base: dict[str, Any] = {}
        self.to_columns: Callable[[np.ndarray, int], dict[str, pa.Array]] = _no_columns
        self.file_facts: Callable[[], dict[str, Any]] | None = None
        self.tally = tally
        self.recording_id = uuid.uuid4().hex
        self.prefix = schema.FileName.recording_prefix(config.host, self.recording_id)
        self.sequence = schema.FIRST_SEQUENCE - 1  # of the last file opened
        self.files: list[Path] = []
        self.rows_written = 0  # into files, sealed or not
        self.rows_sealed = 0  # in files sealed under their final name
        self.bytes_closed = 0
        self._buffer = np.zeros(config.row_group_rows, dtype=event_dtype(config.context))
        self._schema = write_schema(config.context)
        self._pending_rows = 0
        self._pending_since = 0.0
        self._file: Any = None
        self._writer: pq.ParquetWriter | None = None
        self._file_rows = 0
        self._partial_path = config.directory
        self._clock: schema.Clock | None = None  # the rows' clock mapping (wall = mono + offset)
        self._span_start_mono = time.monotonic_ns()
        self._span_start_wall: int | None = None  # set by the first seal: files are contiguous
        self._seen_exit = 0  # latest completion added (CLOCK_MONOTONIC)
        self._written_exit = 0  # latest completion written into the current file
        self._first_exit: int | None = None  # earliest completion written into any file
        self._caught_up = 0
        self._base = tally()
        self._next_rotation = time.monotonic() + config.rotate_seconds
        self._ledger_due = 0.0
        try:
            self.sidecar = Sidecar(
                config.directory,
                self.prefix,
                config.host,
                self.recording_id,
                time.time_ns(),
                config.file_mode,
            )
        except OSError as err:
            raise WriteError(f"cannot write in {config.directory}: {err.strerror}", 0) from None
        # called with the size of a whole file just before it takes its final name (retention
        # makes room then), and with (path, metadata, bytes) once it has it
        self.before_seal: Callable[[int], None] | None = None
        self.on_sealed: Callable[[Path, schema.RecordingMetadata, int], None] | None = None

    # -- public -----------------------------------------------------------------------------
    def begin(
        self,
        start_mono_ns: int,
        base_metadata: dict[str, Any],
        to_columns: Callable[[np.ndarray, int], dict[str, pa.Array]],
        file_facts: Callable[[], dict[str, Any]] | None = None,
        counted_from: Tally | None = None,
    ) -> None:
        """Recording starts: the first file's span starts at `start_mono_ns` (when the probes
        were attached); `base_metadata` goes into every file; `to_columns` decodes rows;
        `file_facts` says what else a file being sealed should say about its rows. The first
        file counts losses from `counted_from` (now by default; a flight recorder's dump starts
        in the past)."""
        self.base = base_metadata
        self.to_columns = to_columns
        self.file_facts = file_facts
        self._span_start_mono = start_mono_ns
        self._base = self.tally() if counted_from is None else counted_from
        self._next_rotation = time.monotonic() + self.config.rotate_seconds

    def add(self, batch: np.ndarray) -> None:
        """Copy a batch into the row-group buffer, writing a row group whenever it fills."""
        if len(batch):
            self._seen_exit = max(self._seen_exit, int(_exits(batch).max()))
        while len(batch):
            if not self._pending_rows:
                self._pending_since = time.monotonic()
            take = min(len(batch), self._row_group_limit() - self._pending_rows)
            dst = self._buffer[self._pending_rows : self._pending_rows + take]
            dst.view(np.uint8)[:] = batch[:take].view(np.uint8)
            self._pending_rows += take
            batch = batch[take:]
            if self._pending_rows >= self._row_group_limit():
                self._flush(self._watermark())
                if self._pending_rows >= self._row_group_limit():  # nothing settled: rare
                    self._flush(None)

    def tick(self, caught_up_ns: int = 0) -> None:
        """Called regularly with the consumer's caught-up time: every rotation interval (counted
        from the start of the recording, whatever the rate) seal what has been recorded so far,
        so that a killed recorder loses at most the last interval; flush an old row group;
        keep the loss ledger current."""
        self._caught_up = max(self._caught_up, caught_up_ns)
        now = time.monotonic()
        if now >= self._next_rotation or self._past_midnight():
            self._next_rotation += self.config.rotate_seconds * (
                1 + (now - self._next_rotation) // self.config.rotate_seconds
            )
            self._cut(self._watermark())
        elif self._pending_rows and now - self._pending_since >= self.config.flush_seconds:
            self._flush(self._watermark())
        if now >= self._ledger_due:
            self._ledger_due = now + LEDGER_EVERY_S
            self.update_ledger()

    def _past_midnight(self) -> bool:
        """In the fleet layout, the file open since the previous UTC day must be sealed (once
        every call of that day is in, so that the next file starts on the new day)."""
        if self.config.layout != "fleet" or self._writer is None:
            return False
        settled_day = (self._watermark() + self._clock_offset) // DAY_NS
        return settled_day != self._file_start_wall() // DAY_NS

    def seal_now(self) -> None:
        """Seal what has been recorded so far (SIGUSR1, `sockopt-trace dump`): a file even if
        no call came since the last one, so that the asker always gets one."""
        if self._writer is None:
            self._open_file()
        self._cut(self._watermark())

    def close(self, stop_mono_ns: int) -> None:
        """Write everything and seal the last file, whose span ends at `stop_mono_ns` (when the
        probes were detached). A recording always has at least one file, even with no events:
        it carries the span, the settings and any losses. Then the ledger is not needed."""
        self._flush(None)
        if self._writer is None and (not self.files or self._unsealed().lost):
            self._open_file()
        if self._writer is not None:
            self._seal(max(stop_mono_ns, self._written_exit + 1))
        self.sidecar.remove()

    def abandon(self, write_footer: bool = True) -> int:
        """After a write error, or to stop at once: let go of the current file, which keeps
        its .partial name. Returns how many rows that loses (in the unsealed file and not yet
        written). Without `write_footer`, nothing more is written."""
        lost = self._file_rows + self._pending_rows
        self._file_rows = self._pending_rows = 0
        if self._writer is not None and write_footer:
            with contextlib.suppress(Exception):  # a footer may still fit; then it is salvageable
                self._writer.close()
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._writer = None
        return lost

    def finish_ledger(self, state: str, extra: dict[str, int]) -> None:
        """The recording ended without sealing everything: the ledger keeps, for good, what no
        sealed file says (`extra`: losses the writer could not know of, e.g. rows it dropped)."""
        led = self.sidecar.ledger
        led.state = state
        unsealed = self._unsealed().lost
        led.lost = {k: v for k, v in _add(unsealed, extra).items() if v}
        led.to_ns = time.time_ns()
        self.sidecar.write(sync=True)
        self.sidecar.close()

    def update_ledger(self) -> None:
        """Rewrite the ledger with the losses no sealed file carries yet (fsync'ed if they
        changed) and the time, which tells `recover` how long the recorder was alive."""
        led = self.sidecar.ledger
        lost = {k: v for k, v in self._unsealed().lost.items() if v}
        changed = lost != led.lost
        led.lost, led.to_ns = lost, time.time_ns()
        self.sidecar.write(sync=changed)

    @property
    def bytes_written(self) -> int:
        current = self._file.tell() if self._file is not None and not self._file.closed else 0
        return self.bytes_closed + current

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    # -- rows -------------------------------------------------------------------------------
    @property
    def _clock_offset(self) -> int:
        """wall = mono + this, for rows and spans alike (0 before the first file)."""
        return self._clock.offset_ns if self._clock is not None else 0

    def _watermark(self) -> int:
        """Every call completed before this time (CLOCK_MONOTONIC) has been added."""
        settled = max(self._seen_exit, self._caught_up) - SETTLE_NS
        return max(settled, self._written_exit + 1, self._span_start_mono)

    def _row_group_limit(self) -> int:
        """Rows per row group: the buffer's size, or fewer when files rotate at a small size
        (so that rotation can happen at all), judged by the bytes per row seen so far."""
        per_row = self.bytes_written / self.rows_written if self.rows_written else 2.0
        fit = int(self.config.rotate_bytes / max(per_row, 0.25))
        return max(1024, min(len(self._buffer), fit))

    def _flush(self, before: int | None) -> None:
        """Write the buffered rows that completed before `before` (all if None) as a row group;
        the rest stay buffered. Rotates by size afterwards."""
        if not self._pending_rows:
            return
        pending = self._buffer[: self._pending_rows]
        if before is None:
            rows, keep = pending, pending[:0]
        else:
            early = _exits(pending) < before
            if not early.any():
                return
            rows, keep = pending[early], pending[~early]
        if self._writer is None:
            self._open_file()
        # Symbolizing and converting happen outside the guard below: their failures are not
        # the disk's, and must neither stop the recording as one nor count as write_error.
        table = pa.table(self.to_columns(rows, self._clock_offset), schema=self._schema)
        ts = rows["ts_ns"]
        if len(ts) > 1 and (ts[1:] < ts[:-1]).any():  # calls overlap across threads/CPUs
            table = table.take(pa.array(np.argsort(ts, kind="stable")))
        self._buffer[: len(keep)] = keep
        self._pending_rows = len(keep)
        try:
            assert self._writer is not None
            self._writer.write_table(table, row_group_size=len(rows))
        except OSError as err:
            raise WriteError(f"writing {self._partial_path}: {err.strerror}", len(rows)) from err
        self._file_rows += len(rows)
        self.rows_written += len(rows)
        exits = _exits(rows)
        self._written_exit = max(self._written_exit, int(exits.max()))
        earliest = int(exits.min())  # rows from other CPUs may complete before earlier ones
        if self._first_exit is None or earliest < self._first_exit:
            self._first_exit = earliest
        if self._file.tell() >= self.config.rotate_bytes:
            self._cut(self._watermark())

    def _cut(self, at: int) -> None:
        """Seal the current file at `at` (CLOCK_MONOTONIC): the rows completed before it go
        in; the next file starts there. With no file open, the span simply continues."""
        self._flush(at)
        if self._writer is not None:
            self._seal(at)

    def _unsealed(self) -> Tally:
        now = self.tally()
        lost = {k: v - self._base.lost.get(k, 0) for k, v in now.lost.items()}
        return Tally(
            {k: v for k, v in lost.items() if v},
            now.stacks_lost - self._base.stacks_lost,
            now.sampled_out - self._base.sampled_out,
        )

    # -- files ------------------------------------------------------------------------------
    def _open_file(self) -> None:
        self.sequence += 1
        name = schema.FileName(self.prefix, self.sequence)
        self._clock = unless_stepped(self._clock, clock_mapping())
        directory = self.config.directory
        try:
            if self.config.layout == "fleet":
                day = time.strftime("%Y-%m-%d", time.gmtime(self._file_start_wall() / 1e9))
                directory = directory / f"host={self.config.host}" / f"date={day}"
                directory.mkdir(parents=True, exist_ok=True, mode=0o750)
            self._final_path = directory / name.final
            self._partial_path = directory / name.partial
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(self._partial_path, flags, self.config.file_mode)
            os.fchmod(fd, self.config.file_mode)  # exact mode whatever the umask
            self._file = os.fdopen(fd, "wb", buffering=1 << 20)
            self._writer = pq.ParquetWriter(
                self._file, self._schema, **schema.parquet_write_options()
            )
        except OSError as err:
            raise WriteError(f"creating {self._partial_path}: {err.strerror}", 0) from err
        self._file_rows = 0
        self._written_exit = 0

    def _file_start_wall(self) -> int:
        """Where the open file's span starts (wall clock): where the previous one ended; the
        first file from the attach, or its first call if earlier."""
        if self._span_start_wall is not None:
            return self._span_start_wall
        first = min(self._span_start_mono, self._first_exit or self._span_start_mono)
        return first + self._clock_offset

    def _seal(self, end_mono: int) -> None:
        assert self._writer is not None and self._clock is not None
        counts = self.tally()
        lost = {k: v - self._base.lost.get(k, 0) for k, v in counts.lost.items()}
        start_ns = self._file_start_wall()
        end_ns = max(end_mono + self._clock_offset, start_ns)
        meta = schema.RecordingMetadata(
            **self.base,
            recording_id=self.recording_id,
            sequence=self.sequence,
            clock=self._clock,
            start_ns=start_ns,
            end_ns=end_ns,
            events=self._file_rows,
            lost={r: lost.get(r, 0) for r in schema.LOSS_REASONS},
            stacks_lost=counts.stacks_lost - self._base.stacks_lost,
            **(self.file_facts() if self.file_facts else {}),
            sampled_out=counts.sampled_out - self._base.sampled_out,
        )
        try:
            self._writer.add_key_value_metadata({schema.METADATA_KEY: meta.to_bytes()})
            self._writer.close()
            self._file.flush()
            os.fsync(self._file.fileno())
            size = self._file.tell()
            self._file.close()
            if self.before_seal is not None:
                self.before_seal(size)
            os.rename(self._partial_path, self._final_path)
        except OSError as err:
            raise WriteError(f"sealing {self._partial_path}: {err.strerror}", 0) from err
        finally:
            self._writer = None
        self._base = counts
        self._span_start_wall = end_ns
        self._span_start_mono = end_mono
        self.bytes_closed += size
        self.files.append(self._final_path)
        self.rows_sealed += self._file_rows
        self._file_rows = 0
        led = self.sidecar.ledger
        led.sealed, led.from_ns, led.lost = self.sequence, end_ns, {}
        self.update_ledger()
        if self.on_sealed is not None:
            self.on_sealed(self._final_path, meta, size)


def _no_columns(rows: np.ndarray, clock_offset: int) -> dict[str, pa.Array]:
    raise RuntimeError("RecordingWriter.begin() was not called")


def _exits(rows: np.ndarray) -> np.ndarray:
    """When each call completed (CLOCK_MONOTONIC ns)."""
    return rows["ts_ns"].astype(np.int64) + rows["latency_ns"].astype(np.int64)


def _add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {*a, *b}}
