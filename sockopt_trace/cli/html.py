"""`sockopt-trace html REC [NEW] -o report.html`: a self-contained HTML report, or a diff page."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sockopt_trace.cli.analysis import AllowExternal, Since, SkipBad, Until, Where
from sockopt_trace.cli.app import app
from sockopt_trace.cli.output import output_stream

HELP = (
    "Write a self-contained HTML page (opens offline, in any browser): for one recording, the "
    "summary, latency distributions with percentiles, rate and p99 over time, an interactive "
    "flame graph (calls or time) and the errors; for two (BASE NEW), the diff table with "
    "confidence, overlaid distributions and a differential flame graph.\n\n"
    "Each recording is one argument: a Parquet file, a directory (searched recursively) or a "
    "quoted glob. Needs plotly: pip install 'sockopt-trace\\[html]'.\n\n"
    "Examples:\n\n\b\n"
    "  sockopt-trace html rec/ -o report.html\n"
    "  sockopt-trace html before/ after/ -o diff.html\n"
    "  sockopt-trace html 'fleet/*/' --by comm,callsite --since 5m -o fleet.html"
)


@app.command("html", help=HELP)
def html(
    recs: Annotated[
        list[str],
        typer.Argument(
            metavar="REC [NEW]",
            help="One recording for a report; two (base, then new) for a comparison.",
            show_default=False,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    by: Annotated[
        str | None,
        typer.Option("--by", "-b", help="Group latencies by these (default comm,level,optname)."),
    ] = None,
    top: Annotated[int, typer.Option("--top", "-n", help="Groups to draw (0: all).")] = 8,
    where: Where = None,
    since: Since = None,
    until: Until = None,
    plotly_js: Annotated[
        str,
        typer.Option(
            "--plotly-js",
            help="How the page gets plotly.js: inline (4.8 MB, opens offline), cdn (needs the "
            "network), or a directory: plotly-VERSION.min.js is written there once and loaded "
            "from it (small pages that share it, offline).",
        ),
    ] = "inline",
    skip_bad: SkipBad = False,
    allow_external: AllowExternal = False,
) -> None:
    if len(recs) > 2:
        raise typer.BadParameter(
            "give one recording (a report) or two (BASE NEW, a diff); to read several files "
            "as one recording, give their directory or a quoted glob",
            param_hint="REC [NEW]",
        )
    from sockopt_trace.analyzer.filters import Filters
    from sockopt_trace.analyzer.htmlreport import choose, diff_html, report_html

    filters = Filters(where, since, until)
    plotly = choose(plotly_js, output)
    if len(recs) == 2:  # a shell-expanded glob looks the same: say that this compares
        print(
            f"sockopt-trace: comparing {recs[1]} (new) with {recs[0]} (base); to read several "
            "files as one recording, give their directory or a quoted glob",
            file=sys.stderr,
        )
    page = report_html if len(recs) == 1 else diff_html
    text = page(
        *([r] for r in recs),
        filters=filters,
        by=by,
        top=top,
        skip_bad=skip_bad,
        allow_external=allow_external,
        plotly=plotly,
    )
    data = text.encode()
    with output_stream(output) as out:
        out.write(data)
    print(f"sockopt-trace: wrote {output} ({len(data) / 1e6:.1f} MB)", file=sys.stderr)
