"""`record --max-size/--max-files/--max-age`: bounded disk. The oldest sealed files of the
directory go first; never a file still being written (only sealed `*.parquet` files count, and
every recording's in the directory, as the disk does not care which run wrote them).

Each round first rewrites the directory's retention summary (sockopt_trace/retention.py: what
was removed and the span it covered, and the names of this round), then unlinks the files, so
that what is gone is always accounted for; a round a crash interrupted is finished at the next
start. Without any limit nothing is ever deleted.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sockopt_trace import schema
from sockopt_trace.recorder.eventlog import utc_clock
from sockopt_trace.retention import RETENTION_NAME, Removed


@dataclass
class RetentionConfig:
    max_bytes: int = 0  # total size of the sealed files; 0: no limit
    max_files: int = 0
    max_age_s: float = 0.0  # files that ended longer ago than this go

    @property
    def active(self) -> bool:
        return bool(self.max_bytes or self.max_files or self.max_age_s)

    def describe(self) -> str:
        parts = [
            f"--max-size {self.max_bytes:,} bytes" if self.max_bytes else "",
            f"--max-files {self.max_files:,}" if self.max_files else "",
            f"--max-age {self.max_age_s:g} s" if self.max_age_s else "",
        ]
        return ", ".join(p for p in parts if p)


@dataclass
class Sealed:
    meta: schema.RecordingMetadata
    size: int


class Retention:
    def __init__(self, directory: Path, config: RetentionConfig, log: Callable[[str], None]):
        self.directory = directory
        self.config = config
        self.log = log
        self.path = directory / RETENTION_NAME
        self.removed = Removed()
        with contextlib.suppress(FileNotFoundError, ValueError):
            self.removed = Removed.from_bytes(self.path.read_bytes())
        for name in self.removed.last_round:  # a round a crash cut short
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
        self.files: dict[str, Sealed] = {}
        for path in directory.glob(f"*{schema.FILE_SUFFIX}"):
            try:
                meta = schema.read_file_metadata(str(path))
                self.files[path.name] = Sealed(meta, path.stat().st_size)
            except Exception:  # not a recording file of ours: never ours to delete
                continue
        self._next_check = 0.0

    def make_room(self, size: int) -> None:
        """A file of `size` bytes is about to be sealed: remove what the limits need so that
        they hold with it there too (the disk never holds more than the limit)."""
        self.enforce(coming=size)

    def sealed(self, path: Path, meta: schema.RecordingMetadata, size: int) -> None:
        self.files[path.name] = Sealed(meta, size)
        self.enforce()

    def tick(self) -> None:
        """Called often: --max-age is checked once a second even when nothing is sealed."""
        now = time.monotonic()
        if self.config.max_age_s and now >= self._next_check:
            self._next_check = now + 1.0
            self.enforce()

    def enforce(self, now_ns: int | None = None, coming: int | None = None) -> list[str]:
        """Remove the oldest files until every limit holds (counting a file of `coming` bytes
        about to be sealed); returns their names."""
        if not self.config.active:
            return []
        now_ns = time.time_ns() if now_ns is None else now_ns
        for name in [n for n in self.files if not (self.directory / n).exists()]:
            del self.files[name]  # gone otherwise (uploaded with --upload-delete)
        order = sorted(self.files, key=lambda n: (self.files[n].meta.start_ns, n))
        total = sum(s.size for s in self.files.values()) + (coming or 0)
        count = len(order) + (coming is not None)
        cfg = self.config
        victims: list[tuple[str, str]] = []
        for name in order:
            end_ns = self.files[name].meta.end_ns
            if cfg.max_bytes and total > cfg.max_bytes:
                limit = "max-size"
            elif cfg.max_files and count > cfg.max_files:
                limit = "max-files"
            elif cfg.max_age_s and end_ns < now_ns - cfg.max_age_s * 1e9:
                limit = "max-age"
            else:
                break
            victims.append((name, limit))
            total -= self.files[name].size
            count -= 1
        if victims:
            self._remove(victims, total)
        return [name for name, _ in victims]

    def _remove(self, victims: list[tuple[str, str]], left: int) -> None:
        files0, size0, events0 = self.removed.files, self.removed.size, self.removed.events
        self.removed.last_round = []
        for name, limit in victims:
            sealed = self.files[name]
            self.removed.add(name, sealed.meta, sealed.size, limit)
        self._write()  # accounted for first, then removed
        for name, _ in victims:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / name).unlink()
            del self.files[name]
        files = self.removed.files - files0
        size = self.removed.size - size0
        events = self.removed.events - events0
        limits = ", ".join(sorted({limit for _, limit in victims}))
        starts = min((s.meta.start_ns for s in self.files.values()), default=None)
        self.log(
            f"retention removed {files:,} files ({size:,} bytes, {events:,} events) for "
            f"{limits} ({self.config.describe()}); {len(self.files):,} files, {left:,} bytes "
            f"left" + (f", data from {utc_clock(starts)} UTC" if starts is not None else "")
        )

    def _write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(self.removed.to_bytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
