"""From recording paths and filters to a ready, sealed DuckDB connection (CLI, diff, pages)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sockopt_trace.analyzer.database import Loaded, Setup, Source, connect
from sockopt_trace.analyzer.filters import Filters
from sockopt_trace.analyzer.recording import open_recording
from sockopt_trace.analyzer.views import ViewNames

Specs = Sequence[str | Path]


def load(
    specs: Specs,
    filters: Filters = Filters(),
    *,
    skip_bad: bool = False,
    allow_external: bool = False,
    threads: int | None = None,
    setup: Sequence[Setup] = (),
) -> Loaded:
    """Open and validate the recording, register its views and filter `events`.

    `filters.since`/`until` are wall-clock times or offsets from the recording's start (see
    `timespec`); `filters.where` is a SQL boolean expression over the `events` columns.
    """
    rec = open_recording(specs, skip_bad=skip_bad)
    [loaded] = connect(
        [Source(rec, filters)],
        skip_bad=skip_bad,
        threads=threads,
        setup=setup,
        allow_external=allow_external,
    )
    return loaded


def load_pair(
    base: Specs,
    new: Specs,
    filters: Filters = Filters(),
    *,
    skip_bad: bool = False,
    allow_external: bool = False,
    threads: int | None = None,
    setup: Sequence[Setup] = (),
) -> tuple[Loaded, Loaded]:
    """Two recordings on one connection, as `base_events`/`base_files`/... and `new_...`."""
    sources = [
        Source(open_recording(specs, skip_bad=skip_bad), filters, ViewNames(f"{side}_"))
        for side, specs in (("base", base), ("new", new))
    ]
    b, n = connect(
        sources,
        skip_bad=skip_bad,
        threads=threads,
        setup=setup,
        allow_external=allow_external,
    )
    return b, n
