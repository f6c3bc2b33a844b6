"""The symbols sidecar: names found for a recording's call sites after it was made, kept
beside its files so that the recording itself stays byte for byte what the host wrote.

One file per recording directory, `sockopt-trace.symbols` (Parquet, but not named `*.parquet`,
so that nothing takes it for a recording file). One row per location, keyed like
`stack_locations` frames: `KEY:0xADDRESS`, KEY the build-id (or the path of an object without
one). Its metadata lists the recording files it covers, so that a report symbolizes only what
no sidecar has looked at yet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sockopt_trace.analyzer.recording import Recording, RecordingFile
from sockopt_trace.analyzer.tables import Table, strings

NAME = "sockopt-trace.symbols"
META_KEY = b"sockopt_trace_symbols"
VERSION = 1
# Its columns, all strings. pyarrow is imported only where a sidecar is read or written:
# most reports have none, and its import is a third of a small report's start-up.
COLUMNS = (
    "key",  # KEY:0xADDRESS
    "callsite",  # function+0xoff (file:line) > inlined (file:line)
    "frames",  # outer;...;inner function names (inlined expanded)
    "source",  # file:line of the innermost frame, "" without lines
    "origin",  # where the names came from
    "recorded",  # the recorder's text for it as a call site, if one
)


def location_key(build_id: str | None, path: str | None, address: int) -> str:
    """The lookup key of a location: as the recorder writes frames, without the offset."""
    key = build_id or (path or "").replace("%", "%25").replace(";", "%3B")
    return f"{key}:{address:#x}"


@dataclass
class Sidecar:
    """The symbols of one directory and the recording files they cover."""

    path: Path
    rows: dict[str, dict[str, str | None]] = field(default_factory=dict)  # key -> row
    files: set[str] = field(default_factory=set)
    problem: str | None = None  # why an existing sidecar could not be read

    @classmethod
    def read(cls, directory: Path) -> Sidecar:
        sidecar = cls(directory / NAME)
        if not sidecar.path.exists():
            return sidecar
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(sidecar.path)
            meta = json.loads((pf.metadata.metadata or {})[META_KEY])
            if meta.get("version") != VERSION:
                raise ValueError(f"version {meta.get('version')!r}")
            table = pf.read(columns=list(COLUMNS))
        except Exception as err:  # any damage: reports go on without it, and say so
            sidecar.problem = f"{sidecar.path}: unreadable symbols sidecar, ignored ({err})"
            return sidecar
        sidecar.files = set(meta.get("files", []))
        sidecar.rows = {row["key"]: row for row in table.to_pylist()}
        return sidecar

    def merge(self, rows: Iterable[dict[str, str | None]], files: Iterable[str]) -> None:
        for row in rows:
            key = str(row["key"])
            recorded = row.get("recorded") or self.rows.get(key, {}).get("recorded")
            self.rows[key] = {**row, "recorded": recorded}
        self.files.update(files)

    def write(self) -> None:
        """Written under a temporary name and renamed: a reader never sees half of it."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [self.rows[key] for key in sorted(self.rows)]
        schema = pa.schema([pa.field(name, pa.string()) for name in COLUMNS])
        table = pa.Table.from_pylist(rows, schema)
        meta = {"version": VERSION, "files": sorted(self.files)}
        table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
        partial = self.path.with_name(f".{NAME}.{os.getpid()}")
        try:
            pq.write_table(table, partial, compression="zstd")
            partial.rename(self.path)
        finally:
            partial.unlink(missing_ok=True)


def symbols_table(sidecars: Sequence[Sidecar]) -> Table:
    """Every row of these sidecars, one per key (the first sidecar that has a key wins)."""
    rows: dict[str, dict[str, str | None]] = {}
    for sidecar in sidecars:
        for key, row in sidecar.rows.items():
            rows.setdefault(key, row)
    kept = list(rows.values())
    return Table({name: strings([row.get(name) for row in kept]) for name in COLUMNS})


def local_files(rec: Recording) -> list[tuple[Path, RecordingFile]]:
    """(directory, file) of the files on this machine's file system: a recording in object
    storage has no directory to keep a sidecar in (symbolize a local copy of it)."""
    return [(f.path.parent, f) for f in rec.files if isinstance(f.path, Path)]
