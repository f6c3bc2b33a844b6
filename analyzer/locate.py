"""Find a recording's files from what a user named: Parquet files, directories (searched
recursively, so a folder of several hosts' recordings works), globs, storage prefixes
(s3://, gs://, az://), or several of these; with the partial files, loss ledgers and retention
summaries beside them. Only names are looked at here: recording.py opens and checks the files.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

from sockopt_trace import schema
from sockopt_trace.analyzer import storage
from sockopt_trace.analyzer.storage import ObjectPath
from sockopt_trace.errors import UserError
from sockopt_trace.ledger import LEDGER_SUFFIX
from sockopt_trace.retention import RETENTION_NAME, Removed

FilePath = Path | ObjectPath  # a local file, or an object in s3://, gs://, az:// storage


def find_files(
    specs: Iterable[str | Path],
) -> tuple[list[FilePath], list[FilePath], list[Path], list[Path]]:
    """(files to read, partial files seen, files a glob matched that are not recording files,
    loss ledgers), each without duplicates, in a stable order. A file named on its own is read
    whatever its name (and fails in one line if it is not a recording)."""
    found: dict[FilePath, None] = {}
    partial: dict[FilePath, None] = {}
    ignored: dict[Path, None] = {}
    ledgers: dict[Path, None] = {}
    for spec in specs:
        if isinstance(spec, str) and storage.is_url(spec):
            files, part = _scan_prefix(storage.parse_url(spec))
            found.update(dict.fromkeys(files))
            partial.update(dict.fromkeys(part))
            continue
        matched = glob.has_magic(str(spec)) and not Path(spec).exists()
        for path in _expand(str(spec)):
            if path.is_dir() and matched and not _holds_recording(path):
                ignored[path] = None  # a glob over directories: say so, read the others
            elif path.is_dir():
                files, part, led = _scan_dir(path)
                found.update(dict.fromkeys(files))
                partial.update(dict.fromkeys(part))
                ledgers.update(dict.fromkeys(led))
            elif path.name.endswith(LEDGER_SUFFIX):
                ledgers[path] = None
            elif matched and path.name.endswith(schema.PARTIAL_SUFFIX):
                partial[path] = None
            elif matched and not path.name.endswith(schema.FILE_SUFFIX):
                ignored[path] = None
            elif path.name.endswith(schema.PARTIAL_SUFFIX):
                raise UserError(
                    f"{path}: a partial file (still being written, or its recorder was killed): "
                    "it has no Parquet footer and cannot be read; wait for the recorder to "
                    "rename it, or delete it"
                )
            else:
                found[path] = None
    return list(found), list(partial), list(ignored), list(ledgers)


def _expand(spec: str) -> list[Path]:
    path = Path(spec)
    if path.exists():
        return [path]
    if glob.has_magic(spec):
        matches = sorted(glob.glob(spec, recursive=True))
        if not matches:
            raise UserError(f"{spec}: no files match this pattern")
        return [Path(m) for m in matches]
    raise UserError(f"{spec}: no such file or directory")


def _scan_prefix(prefix: ObjectPath) -> tuple[list[FilePath], list[FilePath]]:
    """The recording files and partial files under a storage prefix (or that one object)."""
    suffixes = (schema.FILE_SUFFIX, schema.PARTIAL_SUFFIX)
    objects = storage.list_files(prefix, suffixes)
    files: list[FilePath] = [o for o in objects if o.key.endswith(schema.FILE_SUFFIX)]
    partial: list[FilePath] = [o for o in objects if o.key.endswith(schema.PARTIAL_SUFFIX)]
    if not files:
        raise UserError(f"{prefix}: no recording files (*{schema.FILE_SUFFIX}) under this prefix")
    return files, partial


def _holds_recording(directory: Path) -> bool:
    """Whether a directory holds anything of a recording: files, partial files or ledgers."""
    suffixes = (schema.FILE_SUFFIX, schema.PARTIAL_SUFFIX, LEDGER_SUFFIX)
    return any(p.name.endswith(suffixes) for p in directory.rglob("*"))


def _scan_dir(directory: Path) -> tuple[list[FilePath], list[FilePath], list[Path]]:
    files: list[FilePath] = sorted(
        p for p in directory.rglob(f"*{schema.FILE_SUFFIX}") if p.is_file()
    )
    partial: list[FilePath] = sorted(directory.rglob(f"*{schema.PARTIAL_SUFFIX}"))
    ledgers = sorted(p for p in directory.rglob(f"*{LEDGER_SUFFIX}") if p.is_file())
    if not files and not ledgers:
        why = (
            f"only {plural(len(partial), 'partial file')} (a recorder is still writing, or was "
            "killed before closing a file)"
            if partial
            else "no files at all"
            if not any(directory.iterdir())
            else "other files only"
        )
        raise UserError(
            f"{directory}: no recording files (*{schema.FILE_SUFFIX}) in this directory: {why}"
        )
    return files, partial, ledgers


def retention_files(specs: Iterable[str | Path]) -> list[Path]:
    """The retention summaries of the directories given (sockopt_trace/retention.py)."""
    found: dict[Path, None] = {}
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found.update(dict.fromkeys(sorted(path.rglob(RETENTION_NAME))))
    return list(found)


def read_retention(path: Path) -> Removed | None:
    try:
        return Removed.from_bytes(path.read_bytes())
    except (OSError, ValueError):  # not ours to judge: a summary is a note, not data
        return None


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
