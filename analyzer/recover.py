"""Deal with the `.partial` files a killed recorder leaves: salvage what is whole, set aside
what is not, and say which stretch of time is missing.

A recorder killed with SIGKILL (or by a power cut) leaves the file it was writing without its
Parquet footer, so nothing in it can be read. If it got as far as the footer (e.g. it failed
only at the final rename), the file is whole: it is renamed to its final name. Otherwise it is
renamed to `*.parquet.quarantined`, which readers ignore, and the time it covered is reported
from its neighbours: from the end of the previous sealed file of the same recording to the
moment the partial file was last written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sockopt_trace import schema
from sockopt_trace.errors import UserError

NAME = re.compile(r"^(?P<prefix>.+)-(?P<seq>\d{6})\.parquet")


@dataclass
class Outcome:
    path: Path
    action: str  # "salvaged" | "quarantined"
    new_path: Path
    events: int | None  # known for salvaged files
    lost_from_ns: int | None  # the stretch of time a quarantined file held
    lost_to_ns: int | None


def recover(directory: Path, dry_run: bool = False) -> list[Outcome]:
    if not directory.is_dir():
        raise UserError(f"{directory} is not a recording directory")
    ends = _sealed_ends(directory)
    outcomes = []
    for partial in sorted(directory.rglob("*" + schema.PARTIAL_SUFFIX)):
        base = partial.name[: -len(schema.PARTIAL_SUFFIX)]
        try:
            meta = schema.read_file_metadata(str(partial))
        except Exception:  # no footer, no metadata: unreadable
            meta = None
        m = NAME.match(partial.name)
        if meta is not None:
            target = partial.with_name(base + schema.FILE_SUFFIX)
            outcome = Outcome(partial, "salvaged", target, meta.events, None, None)
            if m:
                ends[(m["prefix"], int(m["seq"]))] = meta.end_ns
        else:
            target = partial.with_name(base + schema.QUARANTINE_SUFFIX)
            prev = ends.get((m["prefix"], int(m["seq"]) - 1)) if m else None
            outcome = Outcome(
                partial, "quarantined", target, None, prev, partial.stat().st_mtime_ns
            )
        if target.exists():
            raise UserError(f"cannot recover {partial}: {target.name} exists already")
        if not dry_run:
            partial.rename(target)
        outcomes.append(outcome)
    return outcomes


def _sealed_ends(directory: Path) -> dict[tuple[str, int], int]:
    """(name prefix, sequence) -> end_ns of every readable sealed file."""
    ends = {}
    for path in directory.rglob("*" + schema.FILE_SUFFIX):
        m = NAME.match(path.name)
        if not m:
            continue
        try:
            ends[(m["prefix"], int(m["seq"]))] = schema.read_file_metadata(str(path)).end_ns
        except Exception:
            continue  # not ours to judge here: `info` reports bad files
    return ends
