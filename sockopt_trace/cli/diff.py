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
    Engine,
    EngineOpt,
    Format,
    FormatOpt,
    Since,
    SkipBad,
    SparkMaster,
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
    "Compare recordings: what got slower, more frequent, or failed more.\n\n"
    "BASE and NEW are each a recording (a Parquet file, a directory or a glob) or several: "
    "a directory of runs (one subdirectory per run, as `record --repeat N` writes) or "
    "--base/--new repeated. A side's recordings are told apart by their recording ids.\n\n"
    "For each group (default: comm, level, optname; --by any of "
    + ", ".join(DIMENSIONS)
    + "): calls per second (calls over each recording's wall-clock span), p50/p90/p99 "
    "latency, error rate, and time in getsockopt per second of wall clock, before and after. "
    "Groups are ranked by the change in that time (the impact). Groups and call sites found in "
    "one side only are listed on their own.\n\n"
    "With 3 recordings or more in all (replicates), each change is judged against the "
    "variation between recordings of the same side: one value per recording, net of each "
    "recording's effect on all its groups, Student's t with variances moderated over the "
    "groups; a change every group shares (the host's) is tested against the spread of whole "
    "recordings. With one recording per side, changes are tested within the two runs (Poisson "
    "rate test, Mood's quantile test, Fisher's exact test, corrected for bursts), which cannot "
    "see run-to-run noise: a change then counts only if it also exceeds the other groups' by "
    "more than identical runs differ; otherwise it is marked ? (within noise).\n\n"
    "A change is significant (*) when its p-value, Bonferroni-adjusted over all the tests, is "
    f"below --alpha (default {DEFAULT_ALPHA:g}) and it is not negligible: at least --min-change "
    f"(default {DEFAULT_MIN_CHANGE * 100:g}%) for rates and percentiles, {MIN_ERROR_POINTS:g} "
    f"points for error rates. A percentile needs {MIN_BEYOND} calls beyond it in each "
    "recording (else ~, not tested). See docs/diff.md.\n\n"
    "--fail-on METRIC:+THRESHOLD[,...] exits with code 1 when a significant change passes it, "
    "naming the groups on stderr: p50/p90/p99:+20% (relative) or :+5us (absolute), rate:+50%, "
    "errors:+1% (error-rate percentage points). With one recording per side it warns that "
    f"run-to-run noise cannot be ruled out, and exits {ExitCode.INCONCLUSIVE:d} (inconclusive) "
    "when only changes within that noise (?) pass a threshold: record replicates (record "
    "--repeat N). With replicates, ? marks a change past chance for its own test but not over "
    f"all the tests run; it too exits {ExitCode.INCONCLUSIVE:d}: record more. Exit codes: "
    f"0 no such change, {ExitCode.REGRESSION:d} a regression, "
    f"{ExitCode.INCONCLUSIVE:d} inconclusive, {ExitCode.USAGE:d} bad input (`sockopt-trace "
    "--help` lists every exit code).\n\n"
    "Settings that differ between the recordings (hosts, probe, filters, stacks, lost events) "
    "are reported: in a warnings table for table and markdown, on stderr for csv and json. "
    "How each change was tested: --explain (json always has it). --engine spark runs the "
    "same queries on Apache Spark, with the same answers.\n\n"
    "Examples:\n\n\b\n"
    "  sockopt-trace diff before/ after/\n"
    "  sockopt-trace diff --base run1/ --base run2/ --base run3/ --new run4/ --new run5/\n"
    "  sockopt-trace diff before/ after/ --by comm,callsite --format markdown\n"
    "  sockopt-trace diff before/ after/ --fail-on p99:+20%,errors:+1% --format json"
)


@app.command("diff", help=HELP)
def diff_command(
    base: Annotated[
        str | None,
        typer.Argument(
            metavar="BASE",
            help="The recording(s) before: a Parquet file, a directory (of runs) or a glob.",
            show_default=False,
        ),
    ] = None,
    new: Annotated[
        str | None,
        typer.Argument(
            metavar="NEW", help="The recording(s) after (same forms).", show_default=False
        ),
    ] = None,
    more_base: Annotated[
        list[str] | None,
        typer.Option("--base", help="A recording before (repeat for replicates)."),
    ] = None,
    more_new: Annotated[
        list[str] | None,
        typer.Option("--new", help="A recording after (repeat for replicates)."),
    ] = None,
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
    pool: Annotated[
        bool,
        typer.Option(
            "--pool",
            help="Read each side's recordings as one (several hosts recorded at once), not as "
            "replicates.",
        ),
    ] = False,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", help="Table and markdown: also print how each change was tested."
        ),
    ] = False,
    skip_bad: SkipBad = False,
    allow_external: AllowExternal = False,
    engine: EngineOpt = Engine.duckdb,
    spark_master: SparkMaster = None,
) -> None:
    from sockopt_trace.analyzer import render_diff
    from sockopt_trace.analyzer.diff import diff, inconclusive, parse_fail_on, regressions
    from sockopt_trace.analyzer.filters import Filters

    rules = parse_fail_on(fail_on)  # bad input fails before the recordings are read
    dims = parse_by(by) if by else None
    if top < 0:
        raise UserError(f"bad --top {top}: 0 (all) or more")
    if spark_master and engine is not Engine.spark:
        raise UserError("--spark-master goes with --engine spark")
    sides = _sides([x for x in (base, new) if x], more_base or [], more_new or [])
    result = diff(
        sides[0],
        sides[1],
        by=dims,
        filters=Filters(where, since, until),
        alpha=alpha,
        min_change=parse_percent(min_change, "--min-change"),
        skip_bad=skip_bad,
        replicates=False if pool else None,
        allow_external=allow_external,
        engine=engine.value,
        master=spark_master,
    )
    for i, side in enumerate((result.base, result.new)):
        if not sum(g.calls[i] for g in result.groups):
            scope = " that pass --where/--since/--until" if where or since or until else ""
            warn(f"the {side.name} side has no calls{scope}: every group is one-sided")
    sections: Result | list[Result]
    if fmt in (Format.table, Format.markdown):
        sections = render_diff.sections(result, top or None, explain=explain)
    else:
        for line in [*render_diff.limits(result), *result.warnings]:
            warn(line)
        machine = render_diff.machine_sections(result, top or None)
        groups = next(r for r in machine if r.title == "groups")
        sections = machine if fmt is Format.json else groups
    emit(sections, fmt, 0)
    if rules and not result.replicated:
        warn(
            "--fail-on with one recording per side: a change between two runs cannot be told "
            f"from run-to-run noise; compare replicates ({render_diff.REPEAT_HINT})"
        )
    for trip in (tripped := regressions(result, rules)):
        print(
            f"sockopt-trace: regression: {render_diff.trip_line(trip, result.dims)}",
            file=sys.stderr,
        )
    if tripped:
        raise typer.Exit(ExitCode.REGRESSION)
    for trip in (unsure := inconclusive(result, rules)):
        line = render_diff.trip_line(trip, result.dims)
        why = (
            f"past chance for this test, not over all {result.tests}: record more replicates"
            if result.replicated
            else "within run-to-run noise"
        )
        print(f"sockopt-trace: inconclusive: {line}: {why}", file=sys.stderr)
    if unsure:
        raise typer.Exit(ExitCode.INCONCLUSIVE)


def _sides(positional: list[str], base: list[str], new: list[str]) -> list[list[str]]:
    """BASE NEW; or --base (repeated) and NEW; or BASE and --new (repeated); or both lists."""
    if len(positional) == 2:
        return [[positional[0], *base], [positional[1], *new]]
    if len(positional) == 1 and bool(base) != bool(new):
        return [base, positional] if base else [positional, new]
    if not positional and base and new:
        return [base, new]
    raise UserError("give the recordings to compare: BASE NEW, or --base (repeated) and NEW")


def parse_percent(text: str, option: str) -> float:
    """A fraction from '10%', '10' or '0.1%'."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise UserError(f"bad {option} {text!r}: give a percentage such as 10%") from None
    if value < 0:
        raise UserError(f"bad {option} {text!r}: give a percentage such as 10%")
    return value / 100
