"""`sockopt-trace diff BASE NEW`: what changed between two recordings, with confidence."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from sockopt_trace.analyzer.diffsettings import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_CHANGE,
    MIN_BEYOND,
    MIN_ERROR_POINTS,
)
from sockopt_trace.analyzer.dimensions import DIMENSIONS, parse_by
from sockopt_trace.cli.analysis import (
    AllowExternal,
    By,
    Format,
    FormatOpt,
    Since,
    SkipBad,
    Until,
    Where,
    emit,
    warn,
)
from sockopt_trace.cli.app import app
from sockopt_trace.errors import ExitCode, UserError

if TYPE_CHECKING:
    from sockopt_trace.analyzer.render import Result

HELP = (
    "Compare two recordings: what got slower, more frequent, or failed more.\n\n"
    "For each group (default: comm, level, optname; --by any of "
    + ", ".join(DIMENSIONS)
    + "): calls per second (each recording's calls over its own wall-clock span), p50/p90/p99 "
    "latency, error rate, and time in getsockopt per second of wall clock, before and after. "
    "Groups are ranked by the change in that time (the impact). Groups and call sites found in "
    "one recording only are listed on their own.\n\n"
    "Every change comes with a test, so that noise between two recordings of the same workload "
    "is not reported as a regression: calls/s by a Poisson rate test (exact; counts divided by "
    "their over-dispersion across time slots), percentiles by Mood's quantile test (Fisher's "
    "exact test) with a bootstrap interval, error rates by Fisher's exact test. A change is "
    "significant (*) when its p-value, Bonferroni-adjusted over all the tests, is below --alpha "
    f"(default {DEFAULT_ALPHA:g}) and it is not negligible: at least --min-change (default "
    f"{DEFAULT_MIN_CHANGE * 100:g}%) for rates and percentiles, {MIN_ERROR_POINTS:g} points for "
    f"error rates. A percentile needs {MIN_BEYOND} calls beyond it in each recording (else ~, "
    "not tested). See docs/diff.md.\n\n"
    "--fail-on METRIC:+THRESHOLD[,...] exits with code 1 when a significant change passes it, "
    "naming the groups on stderr: p50/p90/p99:+20% (relative) or :+5us (absolute), rate:+50%, "
    "errors:+1% (error-rate percentage points). Exit codes: 0 no such regression, "
    f"{ExitCode.REGRESSION:d} a regression, {ExitCode.USAGE:d} bad input (`sockopt-trace --help` "
    "lists every exit code).\n\n"
    "Settings that differ between the recordings (hosts, probe, filters, stacks, lost events) "
    "are reported: in a warnings table for table and markdown, on stderr for csv and json.\n\n"
    "Examples:\n\n\b\n"
    "  sockopt-trace diff before/ after/\n"
    "  sockopt-trace diff before/ after/ --by comm,callsite --format markdown\n"
    "  sockopt-trace diff before/ after/ --fail-on p99:+20%,errors:+1% --format json"
)


@app.command("diff", help=HELP)
def diff_command(
    base: Annotated[
        str,
        typer.Argument(
            metavar="BASE",
            help="The recording before: a Parquet file, a directory or a glob.",
            show_default=False,
        ),
    ],
    new: Annotated[
        str,
        typer.Argument(metavar="NEW", help="The recording after (same forms).", show_default=False),
    ],
    by: By = None,
    where: Where = None,
    since: Since = None,
    until: Until = None,
    top: Annotated[
        int, typer.Option("--top", "-n", help="Groups shown per section (0: all).")
    ] = 20,
    fmt: FormatOpt = Format.table,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 on a significant regression past this: p99:+20%, p50:+5us, rate:+50%, "
            "errors:+1% (points); comma-separated or repeated.",
        ),
    ] = None,
    alpha: Annotated[
        float,
        typer.Option("--alpha", help="Chance of reporting any change when there is none."),
    ] = DEFAULT_ALPHA,
    min_change: Annotated[
        str,
        typer.Option(
            "--min-change", help="Smaller changes of rates and percentiles are negligible."
        ),
    ] = f"{DEFAULT_MIN_CHANGE * 100:g}%",
    skip_bad: SkipBad = False,
    allow_external: AllowExternal = False,
) -> None:
    from sockopt_trace.analyzer.diff import diff, parse_fail_on, regressions
    from sockopt_trace.analyzer.filters import Filters

    rules = parse_fail_on(fail_on)  # bad input fails before the recordings are read
    dims = parse_by(by) if by else None
    if top < 0:
        raise UserError(f"bad --top {top}: 0 (all) or more")
    result = diff(
        [base],
        [new],
        by=dims,
        filters=Filters(where, since, until),
        alpha=alpha,
        min_change=parse_percent(min_change, "--min-change"),
        skip_bad=skip_bad,
        allow_external=allow_external,
    )
    human = fmt in (Format.table, Format.markdown)
    sections: Result | list[Result]
    if human:
        sections = result.sections(top or None)
    else:
        for line in result.warnings:
            warn(line)
        machine = result.machine_sections(top or None)
        sections = machine if fmt is Format.json else machine[1]
    emit(sections, fmt, 0)
    tripped = regressions(result, rules)
    for line in tripped:
        print(f"sockopt-trace: regression: {line}", file=sys.stderr)
    if tripped:
        raise typer.Exit(ExitCode.REGRESSION)


def parse_percent(text: str, option: str) -> float:
    """A fraction from '10%', '10' or '0.1%'."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise UserError(f"bad {option} {text!r}: give a percentage such as 10%") from None
    if value < 0:
        raise UserError(f"bad {option} {text!r}: give a percentage such as 10%")
    return value / 100
