"""`sockopt-trace export REC... --format folded|speedscope|chrome|csv`: data for other tools."""

from __future__ import annotations

import gzip
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, BinaryIO, cast

import typer

from sockopt_trace.cli.analysis import (
    AllowExternal,
    Recs,
    Since,
    SkipBad,
    Until,
    Where,
    open_and_warn,
)
from sockopt_trace.cli.app import app
from sockopt_trace.cli.output import output_stream

HELP = (
    "Export a recording for other tools: folded stacks (flamegraph.pl, inferno, speedscope), "
    "speedscope JSON, Chrome/Perfetto trace JSON (one slice per call), or CSV.\n\n"
    "Stacks are `comm;outer;...;inner;LEVEL/OPTION`; without recorded stacks (record --stacks) "
    "the call site is the one frame in between. A file name ending in .gz is written gzipped "
    "(a Chrome trace: about 10 bytes per call instead of 240).\n\n"
    "Examples:\n\n\b\n"
    "  sockopt-trace export rec/ -f folded | flamegraph.pl > calls.svg\n"
    "  sockopt-trace export rec/ -f folded --weight time | inferno-flamegraph > time.svg\n"
    "  sockopt-trace export rec/ -f speedscope -o rec.speedscope.json\n"
    "  sockopt-trace export rec/ -f chrome -o trace.json.gz   (open in ui.perfetto.dev)\n"
    "  sockopt-trace export rec/ -f csv --where \"errno_name <> 'OK'\" -o errors.csv"
)


class ExportFormat(str, Enum):
    folded = "folded"
    speedscope = "speedscope"
    chrome = "chrome"
    csv = "csv"


class Weight(str, Enum):
    calls = "calls"
    time = "time"


@app.command("export", help=HELP)
def export(
    recs: Recs,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", help="Output format.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    weight: Annotated[
        Weight,
        typer.Option(
            "--weight",
            help="folded: count calls or nanoseconds spent; speedscope: the profile shown first.",
        ),
    ] = Weight.calls,
    where: Where = None,
    since: Since = None,
    until: Until = None,
    skip_bad: SkipBad = False,
    allow_external: AllowExternal = False,
) -> None:
    from sockopt_trace.analyzer.export import export as write_export
    from sockopt_trace.analyzer.filters import Filters

    filters = Filters(where, since, until)
    loaded = open_and_warn(recs, skip_bad=skip_bad, filters=filters, allow_external=allow_external)
    with output_stream(output) as out:
        if output is not None and output.name.endswith(".gz"):  # e.g. trace.json.gz: ~20x less
            with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as packed:
                n = write_export(loaded, fmt.value, cast(BinaryIO, packed), weight=weight.value)
        else:
            n = write_export(loaded, fmt.value, out, weight=weight.value)
    if output is not None:
        unit = "stacks" if fmt in (ExportFormat.folded, ExportFormat.speedscope) else "calls"
        size = output.stat().st_size
        print(f"sockopt-trace: wrote {n:,} {unit} to {output} ({size:,} bytes)", file=sys.stderr)
