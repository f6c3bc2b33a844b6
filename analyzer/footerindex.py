"""Footers DuckDB has already read, kept between runs, so that a file is checked once, not on
every report.

Checking a recording's footers costs more than the answer when it has many small files: for
1,000 files DuckDB's three metadata queries and the views' first read took 0.7 s of a 2.2 s
report, against 0.45 s for a hand-written query that checks nothing (docs/benchmarks.md). A
file's footer cannot change while its size, inode, mtime and ctime stay the same (any write
changes ctime), so the index keeps each vetted footer under those four numbers, one JSON file
per recording directory in the user's cache (`usercache.cache_root()`), readable by the user
alone. A footer enters only once DuckDB has read it (footerbatch.py); a file read by another
reader, changed, or damaged is simply read again. The index is an optimisation: any failure to
read or write it is a miss, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from sockopt_trace.analyzer.footer import Footer, FooterBatch
from sockopt_trace.analyzer.usercache import cache_root

VERSION = 1
KEEP_SECONDS = 30 * 86400  # an index not used for this long is removed (when one is written)
Stamp = list[int]  # size, inode, mtime_ns, ctime_ns


def indexed(batch: FooterBatch, reader: str, root: Path | None = None) -> FooterBatch:
    """`batch`, answering from the index for files unchanged since it read them, and
    remembering what it reads. `reader` names the batch's reader and version: an index that
    another one wrote is not used. `root`: the index's directory (None: in the user's cache,
    or no index if the user turned it off)."""
    where = root if root is not None else index_dir()
    if where is None:
        return batch
    return lambda paths: _read(batch, reader, where, paths)


def index_dir() -> Path | None:
    """The directory of the footer index, or None when SOCKOPT_TRACE_CACHE is set to "off"."""
    if os.environ.get("SOCKOPT_TRACE_CACHE", "").lower() in ("off", "0", "no"):
        return None
    return cache_root() / "footers"


def _read(batch: FooterBatch, reader: str, root: Path, paths: Sequence[Path]) -> dict[Path, Footer]:
    found: dict[Path, Footer] = {}
    missing: list[Path] = []
    stamps: dict[Path, Stamp] = {}
    by_dir: dict[Path, list[Path]] = {}
    for p in paths:
        by_dir.setdefault(p.parent, []).append(p)
    for directory, files in by_dir.items():
        entries = _load(_index_file(root, directory), reader)
        for p in files:
            try:
                st = p.stat()
            except OSError:
                missing.append(p)  # the batch's reader names the problem
                continue
            stamps[p] = [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
            hit = _footer(entries.get(p.name), stamps[p])
            if hit is None:
                missing.append(p)
            else:
                found[p] = hit
    read = batch(missing) if missing else {}
    found.update(read)
    for directory, files in by_dir.items():
        if any(p in read for p in files):  # a directory all answered from its index stays
            index = _index_file(root, directory)
            _save(index, reader, {p: found[p] for p in files if p in found}, stamps)
    return found


def _index_file(root: Path, directory: Path) -> Path:
    key = hashlib.sha256(str(directory.absolute()).encode()).hexdigest()[:24]
    return root / f"{key}.json"


def _load(path: Path, reader: str) -> Mapping[str, object]:
    try:
        data = json.loads(path.read_bytes())
        os.utime(path)  # used: kept for KEEP_SECONDS more
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != VERSION or data.get("reader") != reader:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def _footer(entry: object, stamp: Stamp) -> Footer | None:
    """The footer of an index entry made for a file with this stamp (None: absent, stale or
    not of the shape written here; what it says is checked as any footer is, recording.py)."""
    if not isinstance(entry, list) or len(entry) != 4 or entry[0] != stamp:
        return None
    _, rows, metadata, columns = entry
    if not (isinstance(rows, int) and isinstance(metadata, dict) and isinstance(columns, dict)):
        return None
    try:
        kv = {k.encode("latin-1"): v.encode("latin-1") for k, v in metadata.items()}
    except (AttributeError, UnicodeEncodeError):
        return None
    return Footer(rows, kv, dict(columns))


def _save(
    path: Path, reader: str, footers: Mapping[Path, Footer], stamps: Mapping[Path, Stamp]
) -> None:
    """Replace the directory's index with these footers (files gone from the directory leave
    it), atomically; silently nothing if the cache cannot be written."""
    files = {
        p.name: [
            stamps[p],
            f.num_rows,
            {k.decode("latin-1"): v.decode("latin-1") for k, v in f.metadata.items()},
            f.columns,
        ]
        for p, f in footers.items()
        if p in stamps
    }
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".index-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(
                    {"version": VERSION, "reader": reader, "files": files},
                    fh,
                    separators=(",", ":"),
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _forget_unused(path.parent)
    except OSError:
        pass


def _forget_unused(root: Path) -> None:
    """Remove the indexes of directories not read for KEEP_SECONDS (moved, deleted, done with):
    the index stays about as large as what a user works on."""
    old = time.time() - KEEP_SECONDS
    for index in root.glob("*.json"):
        with contextlib.suppress(OSError):
            if index.stat().st_mtime < old:
                index.unlink()
