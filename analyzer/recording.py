"""Validate the files of a recording before anything queries them.

The files are found from what the user named by locate.py. Every file is checked against the
format contract in `sockopt_trace.schema` (footer, metadata, format name and version, columns),
so that a bad file is named in one line instead of failing deep inside a query.
`*.parquet.partial` files (still being written, or left by a killed recorder) are never read,
only reported.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sockopt_trace import schema
from sockopt_trace.analyzer import storage
from sockopt_trace.analyzer.footer import (
    Footer,
    FooterBatch,
    FooterError,
    read_footer,
    reader_for,
)
from sockopt_trace.analyzer.locate import (
    FilePath,
    find_files,
    plural,
    read_retention,
    retention_files,
)
from sockopt_trace.analyzer.storage import ObjectPath, Prune
from sockopt_trace.analyzer.timespec import iso
from sockopt_trace.errors import UserError
from sockopt_trace.ledger import Ledger
from sockopt_trace.retention import Removed
from sockopt_trace.schema import RecordingMetadata

SKIP_HINT = "--skip-bad skips files that are not readable recordings"


class BadFile(ValueError):
    """A file that is not a readable recording of this format version."""


@dataclass(frozen=True)
class RecordingFile:
    path: FilePath
    meta: RecordingMetadata
    rows: int  # from the Parquet footer
    columns: tuple[str, ...]
    # DuckDB read this footer, now or unchanged before (footerbatch, footerindex): the views
    # need not read it again to find damage before a report starts
    vetted: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class SkippedFile:
    path: FilePath
    problem: str


@dataclass(frozen=True)
class LedgerFile:
    """A recording's loss ledger (sockopt_trace/ledger.py): losses no sealed file carries."""

    path: Path
    ledger: Ledger


@dataclass(frozen=True)
class Recording:
    """The validated files of one or more recordings, and what was left out and why."""

    files: tuple[RecordingFile, ...]
    partial: tuple[FilePath, ...] = ()
    skipped: tuple[SkippedFile, ...] = ()
    ignored: tuple[Path, ...] = ()  # what a glob matched that is no recording (README.md, a dir)
    ledgers: tuple[LedgerFile, ...] = ()
    retention: tuple[tuple[Path, Removed], ...] = ()  # what retention removed, per directory

    @property
    def events(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def hosts(self) -> list[str]:
        return sorted({f.meta.host for f in self.files} | {g.ledger.host for g in self.ledgers})

    @property
    def lost(self) -> dict[str, int]:
        """Events lost in all files and ledgers, per reason: every current reason, zero or
        not, and any other a file or ledger counts."""
        totals = dict.fromkeys(schema.LOSS_REASONS, 0)
        counts = [f.meta.lost for f in self.files] + [g.ledger.lost for g in self.ledgers]
        for lost in counts:
            for reason, n in lost.items():
                totals[reason] = totals.get(reason, 0) + n
        return {k: v for k, v in totals.items() if v or k in schema.LOSS_REASONS}

    @property
    def sampled_out(self) -> int:
        """Calls that --max-rate's sampling left out (the rows kept stand for them)."""
        return sum(f.meta.sampled_out for f in self.files)

    @property
    def max_rates(self) -> list[int]:
        """The --max-rate of the files that were sampled (0: every call kept)."""
        return sorted({f.meta.max_rate for f in self.files if f.meta.max_rate})

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    @property
    def start_ns(self) -> int:
        """From the first file's start (or a loss ledger's, when it is earlier)."""
        return min([f.meta.start_ns for f in self.files] + [g.ledger.from_ns for g in self.ledgers])

    @property
    def end_ns(self) -> int:
        return max([f.meta.end_ns for f in self.files] + [g.ledger.to_ns for g in self.ledgers])

    def leave_out(self, bad: Sequence[SkippedFile], *, skip_bad: bool) -> Recording:
        """This recording without the `bad` files: a UserError naming the first one unless
        `skip_bad`, and a UserError anyway if no file is left."""
        if not bad:
            return self
        if not skip_bad:
            raise UserError(f"{bad[0].path}: {bad[0].problem} ({SKIP_HINT})")
        paths = {b.path for b in bad}
        files = tuple(f for f in self.files if f.path not in paths)
        skipped = (*self.skipped, *bad)
        if not files:
            problems = "; ".join(f"{s.path}: {s.problem}" for s in skipped[:3])
            raise UserError(f"no readable recording files: {problems}")
        return Recording(files, self.partial, skipped, self.ignored, self.ledgers, self.retention)

    def notices(self) -> list[str]:
        """One line each about what the reader should know: lost events, spans with no data,
        files left out."""
        lines = []
        if self.lost_total:
            reasons = ", ".join(f"{k} {v:,}" for k, v in self.lost.items() if v)
            lines.append(
                f"the recording lost {self.lost_total:,} events ({reasons}): counts are low "
                "and percentiles may be biased"
            )
        for g in self.ledgers:
            led = g.ledger
            span = f"from {iso(led.from_ns)} to {iso(led.to_ns)}"
            if led.lost_total:
                reasons = ", ".join(f"{k} {v:,}" for k, v in led.lost.items() if v)
                lines.append(f"lost {led.lost_total:,} events {span} ({reasons}; {g.path.name})")
            for w in led.no_data:
                lines.append(f"no data from {iso(w.from_ns)} to {iso(w.to_ns)}: {w.why}")
            if led.state == "recording":
                lines.append(
                    f"nothing sealed after {iso(led.from_ns)} (last sign of life "
                    f"{iso(led.to_ns)}): the recorder is still running, or was killed "
                    f"(then: sockopt-trace recover {g.path.parent})"
                )
        if self.sampled_out:
            calls = self.events + self.sampled_out
            rates = ", ".join(f"{r:,}" for r in self.max_rates)
            lines.append(
                f"sampled (--max-rate {rates} calls/s): {self.events:,} of {calls:,} calls kept, "
                "each row weighing the calls it stands for: counts, rates, time and percentiles "
                "are estimates of all calls (failed calls and first calls kept whole)"
            )
        if self.partial:
            lines.append(
                f"ignored {plural(len(self.partial), 'partial file')} (still being written, "
                f"or the recorder was killed): {_names(self.partial)}"
            )
        files = [p for p in self.ignored if not p.is_dir()]
        if files:
            lines.append(
                f"ignored {plural(len(files), 'file')} that the pattern matched but that "
                f"{'is' if len(files) == 1 else 'are'} not *{schema.FILE_SUFFIX}: {_names(files)}"
            )
        dirs = [p for p in self.ignored if p.is_dir()]
        if dirs:
            lines.append(
                f"ignored {len(dirs)} {'directory' if len(dirs) == 1 else 'directories'} that the "
                f"pattern matched but that {'holds' if len(dirs) == 1 else 'hold'} no recording: "
                f"{_names(dirs)}"
            )
        if self.skipped:
            shown = "; ".join(f"{s.path}: {s.problem}" for s in self.skipped[:3])
            more = f"; and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
            lines.append(f"skipped {plural(len(self.skipped), 'bad file')}: {shown}{more}")
        for where, removed in self.retention:
            if removed.files and removed.to_ns is not None:
                lines.append(
                    f"retention removed {plural(removed.files, 'file')} of {where.parent} "
                    f"({removed.calls:,} calls up to {iso(removed.to_ns)}): the data there "
                    "starts later"
                )
        return lines


def open_recording(
    specs: Sequence[str | Path],
    *,
    skip_bad: bool = False,
    prune: Prune | None = None,
    ledgers_only: bool = False,
    footers: FooterBatch | None = None,
) -> Recording:
    """Resolve `specs` to recording files and validate each one; `prune` leaves out the
    files of a fleet layout's host=/date= directories that cannot hold a call asked for,
    without opening them.

    Raises UserError (exit code 2) naming the first bad file, unless `skip_bad`, which leaves
    bad files out and lists them in `Recording.skipped` (an error still if none is left).
    `ledgers_only` accepts a recording that has only loss ledgers (a recorder that failed or
    was killed before it sealed a file): `info` shows what they say. `footers` reads many local
    footers at once (footerbatch.py); a file it leaves out is read on its own.
    """
    if not specs:
        raise UserError("no recording given: name a recording directory, file or glob")
    candidates, partial, ignored, ledger_paths = find_files(specs)
    if not candidates and not ledger_paths:
        raise UserError(
            f"{' '.join(map(str, specs))}: no recording files (*{schema.FILE_SUFFIX}) among the "
            f"files matched ({_names(ignored)})"
        )
    if prune is not None and candidates:
        candidates = [p for p in candidates if prune.keeps(str(p))]
        if not candidates:
            raise UserError("no recording files left after --where host / --since / --until")
    retention = tuple(
        (p, r) for p in retention_files(specs) if (r := read_retention(p)) is not None
    )
    good: list[RecordingFile] = []
    bad: list[SkippedFile] = []
    reader = reader_for(len(candidates))
    local = [p for p in candidates if isinstance(p, Path)]
    read = footers(local) if footers is not None and local else {}
    for path in candidates:
        try:
            good.append(_checked(path, read.get(path) if isinstance(path, Path) else None, reader))
        except BadFile as err:
            bad.append(SkippedFile(path, str(err)))
    ledgers, unreadable = [], []
    for lpath in ledger_paths:  # never fatal: a ledger adds to what the files say
        try:
            ledgers.append(LedgerFile(lpath, Ledger.from_bytes(lpath.read_bytes())))
        except (OSError, ValueError) as err:
            unreadable.append(SkippedFile(lpath, f"unreadable loss ledger ({first_line(err)})"))
    rec = Recording(
        tuple(good), tuple(partial), tuple(unreadable), tuple(ignored), tuple(ledgers), retention
    )
    if not candidates:  # loss ledgers only
        if ledgers_only and ledgers:
            return rec
        raise UserError(_only_ledgers(ledgers, unreadable))
    return rec.leave_out(bad, skip_bad=skip_bad)


def _only_ledgers(ledgers: list[LedgerFile], unreadable: list[SkippedFile]) -> str:
    if not ledgers:
        return f"{unreadable[0].path}: {unreadable[0].problem}, and no recording files"
    lost = sum(g.ledger.lost_total for g in ledgers)
    return (
        f"{ledgers[0].path.parent}: no sealed recording files, only "
        f"{plural(len(ledgers), 'loss ledger')} ({lost:,} events lost): "
        "sockopt-trace info shows what they say"
    )


def read_file(
    path: FilePath, reader: Callable[[BinaryIO, int], Footer] = read_footer
) -> RecordingFile:
    """Read and check one file's footer and metadata (not its rows). Raises BadFile."""
    try:
        if isinstance(path, ObjectPath):
            size = storage.size(path)
            source: Any = storage.open_input(path)
        else:
            size = path.stat().st_size
            source = path.open("rb")
    except OSError as err:
        raise BadFile(f"cannot read: {err.strerror or first_line(err)}") from None
    with source:
        if size == 0:
            raise BadFile("empty file (0 bytes), not a Parquet file; delete it")
        try:
            if source.read(4) != b"PAR1":
                raise BadFile("not a Parquet file")
            footer = reader(source, size)
        except (FooterError, OSError) as err:
            raise BadFile(
                "truncated or damaged Parquet file (no readable footer): it was not closed "
                f"cleanly; delete it or recopy it ({first_line(err)})"
            ) from None
    return check_file(path, footer)


def check_file(path: FilePath, footer: Footer, *, vetted: bool = False) -> RecordingFile:
    """The file of this footer, checked against the format contract. Raises BadFile."""
    meta = parse_metadata(footer.metadata.get(schema.METADATA_KEY))
    return RecordingFile(path, meta, footer.num_rows, check_columns(footer.columns), vetted)


def _checked(
    path: FilePath, footer: Footer | None, reader: Callable[[BinaryIO, int], Footer]
) -> RecordingFile:
    """The file, from the batch's footer if it passes, else read on its own: that reader's
    errors are the ones users see, whichever reader found the problem. Raises BadFile."""
    if footer is not None:
        try:
            return check_file(path, footer, vetted=True)
        except BadFile:
            pass
    return read_file(path, reader)


def parse_metadata(raw: bytes | None) -> RecordingMetadata:
    """The file's RecordingMetadata, after checking format name and version (the format's
    policy, schema.check_format). Raises BadFile."""
    key = schema.METADATA_KEY.decode()
    if raw is None:
        raise BadFile(f"a Parquet file, but not a {schema.FORMAT_NAME} recording (no '{key}' key)")
    try:
        return RecordingMetadata.from_bytes(raw)
    except schema.FormatError as err:
        raise BadFile(str(err)) from None
    except (ValueError, TypeError) as err:
        raise BadFile(f"unreadable '{key}' metadata: {err}") from None


def check_columns(columns: dict[str, str]) -> tuple[str, ...]:
    """Every contract column present with its type (`columns`: name -> type, as the footer
    says), context columns checked where present (extra columns are allowed, and columns added
    since the format began may be missing). Raises BadFile."""
    return _check_columns(tuple(columns.items()))


@functools.lru_cache(maxsize=64)
def _check_columns(columns: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """check_columns, once for each set of columns (a recording's files mostly share one)."""
    found_types = dict(columns)
    for name, (typ, _) in {**schema.COLUMNS, **schema.CONTEXT_COLUMNS}.items():
        found = found_types.get(name)
        if found is None and (name in schema.CONTEXT_COLUMNS or name in schema.ADDED_COLUMNS):
            continue  # recorded only when asked for, or by newer recorders
        if found is None:
            raise BadFile(f"column '{name}' is missing: not a {schema.FORMAT_NAME} recording")
        if found != typ:  # Parquet has one string type: dictionaries, large strings alike
            raise BadFile(f"column '{name}' has type {found}, expected {typ}")
    return tuple(found_types)


def absolute_paths(files: Sequence[RecordingFile]) -> list[str]:
    """The files' absolute paths (objects' URLs as they are): each directory resolved once,
    not each of a long recording's thousands of files."""
    parents: dict[Path, str] = {}
    out = []
    for f in files:
        if isinstance(f.path, ObjectPath):
            out.append(str(f.path))
            continue
        parent = parents.get(f.path.parent)
        if parent is None:
            parent = parents[f.path.parent] = str(f.path.parent.resolve())
        out.append(os.path.join(parent, f.path.name))
    return out


def first_line(err: BaseException) -> str:
    """Library messages (DuckDB's, Arrow's) can run over several lines: keep the first."""
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _names(paths: Sequence[FilePath], most: int = 3) -> str:
    shown = ", ".join(str(p) for p in paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")
