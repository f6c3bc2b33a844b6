"""The call-site names a load puts on its connection: the recordings' sidecars, after naming
what their recorders left as module+offset (symbolize.py) where no sidecar covers it yet.

Naming needs ELF parsing and llvm-symbolizer (0.14 s of imports, measured with
`python -X importtime`): imported only when some file has unnamed call sites, not for every
report's start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sockopt_trace.analyzer.recording import Recording
from sockopt_trace.analyzer.sidecar import Sidecar, local_files, symbols_table
from sockopt_trace.analyzer.tables import Table
from sockopt_trace.errors import UserError


def prepare(recordings: Sequence[Recording]) -> tuple[Table, list[str]]:
    """The symbols the views of these recordings should use: their sidecars, after naming what
    their recorders left unnamed and no sidecar covers yet (from /usr/lib/debug and
    DEBUGINFOD_URLS); and what the user should know about it."""
    notes: list[str] = []
    merged: dict[Path, Sidecar] = {}
    for rec in recordings:
        if not any((f.meta.unresolved_sites or 0) > 0 for _, f in local_files(rec)):
            continue
        try:
            from sockopt_trace.analyzer.debuginfo import DebugInfo
            from sockopt_trace.analyzer.symbolize import symbolize

            done = symbolize(rec, DebugInfo(), only_new=True)
        except UserError as err:  # no symbolizer here, say: the report goes on without names
            notes.append(f"call sites left unnamed: {err}")
            continue
        notes += done.notes
        merged.update(done.merged)
        total = sum(o.locations for o in done.objects)
        if done.named:
            saved = f" (saved in {', '.join(map(str, done.sidecars))})" if done.sidecars else ""
            notes.append(f"named {done.named} of {total} unnamed call sites and frames{saved}")
        elif total:
            notes.append(
                f"{total} call sites and frames are unnamed (stripped binaries) and no debug "
                "information was found for them here: `sockopt-trace symbolize --debug-dir DIR`, "
                "/usr/lib/debug or DEBUGINFOD_URLS can name them"
            )
    directories = sorted({d for rec in recordings for d, _ in local_files(rec)})
    sidecars = [merged[d] if d in merged else Sidecar.read(d) for d in directories]
    notes += [s.problem for s in sidecars if s.problem]
    return symbols_table(sidecars), notes
