"""Name call sites and stack frames from debug information found on the analysis machine.

`sockopt-trace symbolize REC` runs it over every file; reports, diff, html and export run it
(`naming.prepare`) over the files whose recorder left call sites as module+offset and that no
sidecar covers yet, from /usr/lib/debug and DEBUGINFOD_URLS. Results go to the sidecar (sidecar.py);
the views then show them (database.py).
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from sockopt_trace.analyzer import addr2line
from sockopt_trace.analyzer.debuginfo import DebugInfo, Found
from sockopt_trace.analyzer.recording import Recording, RecordingFile
from sockopt_trace.analyzer.render import Result
from sockopt_trace.analyzer.sidecar import Sidecar, local_files, location_key


@dataclass(frozen=True)
class Location:
    build_id: str | None
    path: str | None
    address: int
    recorded: str | None = field(default=None, compare=False)  # the recorder's text, if a site

    @property
    def key(self) -> str:
        return location_key(self.build_id, self.path, self.address)


@dataclass
class ObjectResult:
    """What was found for one object (file) of the recording."""

    path: str | None
    build_id: str | None
    locations: int
    named: int = 0
    lines: int = 0  # named with file:line
    origin: str = ""  # where its debug information came from, or why none


@dataclass
class Symbolized:
    objects: list[ObjectResult] = field(default_factory=list)
    sidecars: list[Path] = field(default_factory=list)  # written
    merged: dict[Path, Sidecar] = field(default_factory=dict)  # by directory, written or not
    notes: list[str] = field(default_factory=list)  # what the user should know

    @property
    def named(self) -> int:
        return sum(o.named for o in self.objects)

    def result(self) -> Result:
        """One row per object, for `sockopt-trace symbolize` to print."""
        columns = ["object", "build_id", "locations", "named", "with_lines", "from"]
        rows = [
            (o.path or "", o.build_id or "", o.locations, o.named, o.lines, o.origin)
            for o in self.objects
        ]
        total = sum(o.locations for o in self.objects)
        saved = f"; saved in {', '.join(map(str, self.sidecars))}" if self.sidecars else ""
        return Result(columns, rows, f"named {self.named} of {total} call sites and frames{saved}")


def locations(files: Sequence[RecordingFile]) -> list[Location]:
    """Every distinct call site and stack frame of these files that has a location."""
    paths = [str(f.path.resolve()) for f in files]
    columns = {c for f in files for c in f.columns}
    if "callsite_address" not in columns:
        return []  # recorded before locations were kept
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    source = "read_parquet($files, union_by_name = true)"
    rows = con.execute(
        "SELECT DISTINCT callsite_build_id, callsite_object, callsite_address, callsite "
        f"FROM {source} WHERE callsite_address IS NOT NULL",
        {"files": paths},
    ).fetchall()
    found = {Location(b, p, a, c) for b, p, a, c in rows}
    if "stack_locations" in columns:
        stacks = con.execute(
            f"SELECT DISTINCT stack_locations FROM {source} WHERE stack_locations IS NOT NULL",
            {"files": paths},
        ).fetchall()
        for (folded,) in stacks:  # a location already found as a call site keeps its text
            found.update(filter(None, (_frame(t) for t in folded.split(";"))))
    return sorted(found, key=lambda loc: (loc.key,))


def _frame(token: str) -> Location | None:
    """A `stack_locations` frame, KEY:0xOFFSET:0xADDRESS, as a Location (None if it has no
    address). KEY is a build-id (hex) or an escaped path."""
    key, _, rest = token.rpartition(":")
    key, _, _offset = key.rpartition(":")
    if not rest.startswith("0x") or not key:
        return None
    is_build_id = all(c in "0123456789abcdef" for c in key) and not key.startswith("/")
    path = None if is_build_id else key.replace("%3B", ";").replace("%25", "%")
    return Location(key if is_build_id else None, path, int(rest, 16))


def symbolize_locations(
    locs: Sequence[Location], debug: DebugInfo, cache: Path
) -> tuple[list[dict[str, str | None]], list[ObjectResult]]:
    """Sidecar rows for the locations that debug information names, and a summary per object."""
    by_object: dict[tuple[str | None, str | None], list[Location]] = defaultdict(list)
    for loc in locs:
        by_object[(loc.build_id, loc.path if not loc.build_id else None)].append(loc)
    rows: list[dict[str, str | None]] = []
    results = []
    for (build_id, path), group in sorted(by_object.items(), key=lambda kv: str(kv[0])):
        shown = path or _any_path(group)
        result = ObjectResult(shown, build_id, len(group))
        results.append(result)
        found = debug.find(build_id, shown)
        if found is None:
            result.origin = "no debug information found"
            continue
        target = _symbol_file(found, build_id, cache)
        answers = addr2line.symbolize(target, [loc.address for loc in group])
        result.origin = found.source
        for loc, answer in zip(group, answers, strict=True):
            if answer is None:
                continue
            result.named += 1
            result.lines += answer.has_lines
            rows.append(_row(loc, answer, found.source))
    return rows, results


def _any_path(group: Sequence[Location]) -> str | None:
    return next((loc.path for loc in group if loc.path), None)


def _symbol_file(found: Found, build_id: str | None, cache: Path) -> Path:
    """The file to hand the symbolizer: a stripped binary's MiniDebugInfo when that is all
    there is, else what was found."""
    if found.debug:
        return found.path
    name = build_id or hashlib.sha1(str(found.path).encode()).hexdigest()
    mini = addr2line.minidebuginfo(found.path, cache / "minidebuginfo" / f"{name}.elf")
    return mini or found.path


def _row(loc: Location, answer: addr2line.Symbolized, origin: str) -> dict[str, str | None]:
    frames = answer.frames
    outer = frames[0]
    head = f"{outer.function}+{answer.offset:#x}" if answer.offset is not None else outer.function
    if answer.has_lines:
        parts = [f"{head} ({_where(outer)})", *(f"{f.function} ({_where(f)})" for f in frames[1:])]
        callsite = " > ".join(parts)
    else:
        callsite = " > ".join([head, *(f.function for f in frames[1:])])
    inner = frames[-1]
    return {
        "key": loc.key,
        "callsite": callsite,
        "frames": ";".join(f.function.replace(";", ":") for f in frames),
        "source": f"{inner.file}:{inner.line}" if inner.line else "",
        "origin": origin,
        "recorded": loc.recorded,
    }


def _where(frame: addr2line.Frame) -> str:
    return f"{os.path.basename(frame.file) or '??'}:{frame.line}"


def symbolize(rec: Recording, debug: DebugInfo, *, only_new: bool = False) -> Symbolized:
    """Name what can be named in `rec`'s files (with `only_new`, only in the files that have
    unnamed call sites and no sidecar covers yet), and save it in each directory's sidecar."""
    out = Symbolized()
    by_dir: dict[Path, list[RecordingFile]] = defaultdict(list)
    for directory, f in local_files(rec):
        by_dir[directory].append(f)
    for directory, files in by_dir.items():
        sidecar = Sidecar.read(directory)
        if sidecar.problem:
            out.notes.append(sidecar.problem)
        if only_new:
            files = [f for f in files if (f.meta.unresolved_sites or 0) > 0]
            files = [f for f in files if f.path.name not in sidecar.files]
        if not files:
            continue
        rows, results = symbolize_locations(locations(files), debug, debug.cache)
        out.objects.extend(results)
        sidecar.merge(rows, (f.path.name for f in files))
        out.merged[directory] = sidecar
        try:
            sidecar.write()
            out.sidecars.append(sidecar.path)
        except OSError as err:  # read-only recordings: a report names again next time
            if rows:
                out.notes.append(f"could not save the symbols in {sidecar.path}: {err.strerror}")
    out.notes.extend(f"debuginfod {e}" for e in debug.errors)
    return out
