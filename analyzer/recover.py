"""Deal with what a killed recorder leaves: salvage what is whole, set aside what is not, and
write down which stretch of time is missing.

A recorder killed with SIGKILL (or by a power cut) leaves the file it was writing without its
Parquet footer, so nothing in it can be read. If it got as far as the footer and metadata (e.g.
it failed only at the final rename), the file is whole: it is renamed to its final name.
Otherwise it is renamed to `*.parquet.quarantined`, which readers ignore. Either way, the
calls after the last sealed file are gone, and that span goes into the recording's loss ledger
as time with no data: from the end of the last sealed file (exact: files are back to back) to
the recorder's last sign of life (its last ledger update, or its last write), so that `info`
shows the gap instead of silence. A directory a live recorder still holds is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from sockopt_trace import schema
from sockopt_trace.errors import ExitCode, UserError
from sockopt_trace.ledger import LEDGER_SUFFIX, Ledger, Window


@dataclass
class Outcome:
    path: Path
    action: str  # "salvaged" | "quarantined" | "marked killed" (a ledger)
    new_path: Path
    events: int | None  # known for salvaged files
    lost_from_ns: int | None  # the stretch of time with no data
    lost_to_ns: int | None


def recover(directory: Path, dry_run: bool = False) -> list[Outcome]:
    if not directory.is_dir():
        raise UserError(f"{directory} is not a recording directory")
    _refuse_if_recording(directory)
    ends, ids = _sealed_ends(directory)
    ledgers = {p: _read_ledger(p) for p in sorted(directory.rglob("*" + LEDGER_SUFFIX))}
    outcomes = []
    for partial in sorted(directory.rglob("*" + schema.PARTIAL_SUFFIX)):
        name = schema.FileName.parse(partial.name)
        try:
            meta = schema.read_file_metadata(str(partial))
        except schema.FormatError as err:  # whole, but not for this version to judge
            raise UserError(f"cannot recover {partial}: {err}") from None
        except Exception:  # no footer, no metadata: unreadable
            meta = None
        stem = partial.name[: -len(schema.PARTIAL_SUFFIX)]
        ledger_path = partial.with_name(f"{name.prefix}{LEDGER_SUFFIX}") if name else None
        ledger = ledgers.get(ledger_path) if ledger_path else None
        last = max(partial.stat().st_mtime_ns, ledger.to_ns if ledger else 0)
        if meta is not None:
            target = partial.with_name(name.final if name else stem + schema.FILE_SUFFIX)
            outcome = Outcome(partial, "salvaged", target, meta.events, None, None)
            if name:
                ends[(name.prefix, name.sequence)] = meta.end_ns
            if ledger is not None and meta.sequence > ledger.sealed:
                _sealed_now(ledger, meta)
                ledger.to_ns = max(last, meta.end_ns)
        else:
            target = partial.with_name(
                name.quarantined if name else stem + schema.QUARANTINE_SUFFIX
            )
            prev = ends.get((name.prefix, name.sequence - 1)) if name else None
            start = prev if prev is not None else (ledger.from_ns if ledger else None)
            outcome = Outcome(partial, "quarantined", target, None, start, last)
            if ledger_path is not None and name is not None and start is not None:
                ledger = _killed(ledger, name, ids.get(name.prefix), start, last, target.name)
                ledgers[ledger_path] = ledger
        if target.exists():
            raise UserError(f"cannot recover {partial}: {target.name} exists already")
        if not dry_run:
            partial.rename(target)
        outcomes.append(outcome)
    for path, ledger in ledgers.items():  # killed with nothing unsealed, or after a salvage
        if ledger is not None and ledger.state == "recording":
            why = "the recorder was killed after its last sealed file"
            if ledger.to_ns > ledger.from_ns:
                ledger.no_data.append(Window(ledger.from_ns, ledger.to_ns, why))
            ledger.state = "killed"
            outcomes.append(
                Outcome(path, "marked killed", path, None, ledger.from_ns, ledger.to_ns)
            )
    if not dry_run:
        for path, ledger in ledgers.items():
            if ledger is not None:
                _write_ledger(path, ledger)
    return outcomes


def _refuse_if_recording(directory: Path) -> None:
    """A live recorder holds the directory's lock file (recorder/output.py): its partial file
    is being written, not left behind."""
    lock = directory / schema.LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return  # no lock file: nobody records here
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        raise UserError(
            f"a recorder (pid {holder or '?'}) is still writing into {directory}: "
            "stop it first; recover is for what a killed recorder left"
        ) from None
    finally:
        os.close(fd)


def _sealed_now(ledger: Ledger, meta: schema.RecordingMetadata) -> None:
    """A salvaged file carries the losses of its span: the ledger no longer holds them."""
    ledger.lost = {k: v - meta.lost.get(k, 0) for k, v in ledger.lost.items()}
    ledger.lost = {k: v for k, v in ledger.lost.items() if v > 0}
    ledger.sealed, ledger.from_ns = meta.sequence, meta.end_ns


def _killed(
    ledger: Ledger | None,
    name: schema.FileName,
    recording_id: str | None,
    start: int,
    last: int,
    quarantined: str,
) -> Ledger:
    """The span a killed recorder's unfinished file held, as a span with no data. A recorder
    that stopped on a write error or at once has counted those calls already (the ledger says
    how many), so nothing is added then."""
    if ledger is not None and ledger.state not in ("recording", "killed"):
        return ledger
    if ledger is None:
        host, _, rid = name.prefix.rpartition("-")
        ledger = Ledger(host, recording_id or rid, "killed", name.sequence - 1, start, last)
    ledger.state = "killed"
    why = f"the recorder was killed: {quarantined} could not be read"
    ledger.no_data.append(Window(start, last, why))
    return ledger


def _read_ledger(path: Path | None) -> Ledger | None:
    if path is None:
        return None
    try:
        return Ledger.from_bytes(path.read_bytes())
    except (OSError, ValueError):
        return None


def _write_ledger(path: Path, ledger: Ledger) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_bytes(ledger.to_bytes())
        os.replace(tmp, path)
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror}", ExitCode.OUTPUT) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _sealed_ends(directory: Path) -> tuple[dict[tuple[str, int], int], dict[str, str]]:
    """(name prefix, sequence) -> end_ns of every readable sealed file, and name prefix ->
    recording id."""
    ends, ids = {}, {}
    for path in directory.rglob("*" + schema.FILE_SUFFIX):
        name = schema.FileName.parse(path.name)
        if not name:
            continue
        try:
            meta = schema.read_file_metadata(str(path))
        except Exception:
            continue  # not ours to judge here: `info` reports bad files
        ends[(name.prefix, name.sequence)] = meta.end_ns
        ids[name.prefix] = meta.recording_id
    return ends, ids
