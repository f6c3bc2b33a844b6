"""Every canned query: a complete header, portable SQL (docs/design.md), reads only the views,
runs."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

import pytest

from sockopt_trace.analyzer.database import Loaded, Source, connect
from sockopt_trace.analyzer.dialect import to_spark
from sockopt_trace.analyzer.diff import diff_queries
from sockopt_trace.analyzer.dimensions import DIMENSIONS
from sockopt_trace.analyzer.load import load
from sockopt_trace.analyzer.recording import open_recording
from sockopt_trace.analyzer.reports import (
    COUNT,
    PLACEHOLDERS,
    load_reports,
    parse_report,
    prepare,
    run_report,
)
from sockopt_trace.analyzer.templates import load_templates
from sockopt_trace.analyzer.views import ViewNames
from tests.synth import write_recording

QUERY_DIR = Path(str(importlib.resources.files("sockopt_trace.queries")))
SQL_FILES = sorted(QUERY_DIR.glob("*.sql"))
DIFF_FILES = sorted((QUERY_DIR / "diff").glob("*.sql"))  # read two recordings: see diff.py
HTML_FILES = sorted((QUERY_DIR / "html").glob("*.sql"))  # the pages' own (DuckDB only)

# What breaks or silently changes on Spark through sqlglot (docs/design.md, portability facts).
FORBIDDEN = {
    "quantile_disc": r"\bquantile_disc\b",
    "percentile_cont/percentile_disc": r"\bpercentile_(cont|disc)\b",
    "approximate quantiles": r"\bapprox_quantile\b|\breservoir_quantile\b",
    "time_bucket": r"\btime_bucket\b",
    "epoch functions": r"\bepoch\w*\s*\(",
    "PIVOT": r"\b(UN)?PIVOT\b",
    "list comprehension": r"\[[^\]]*\bfor\b[^\]]*\bin\b",
    "ordered list()": r"\blist\s*\(",
    "DuckDB time conversion (use ns_to_time)": r"\b(make_timestamp|to_timestamp)\b",
    # DuckDB divides an integer avg() in long double, Spark sums it in double: the last bit
    # can differ. CAST(sum(x) AS DOUBLE) / count(x) is the same IEEE division on both.
    "avg() (use CAST(sum(x) AS DOUBLE) / count(x))": r"\b(avg|mean)\s*\(",
}


def body(text: str) -> str:
    """The SQL without comments (so a comment may mention anything)."""
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    root = tmp_path_factory.mktemp("lint")
    write_recording(root, 5000, files=2, seed=7, stacks="full", stack_sample_period=2)
    return load([root])


def test_there_are_the_ten_reports() -> None:
    assert sorted(p.stem for p in SQL_FILES) == [
        "callsites",
        "errors",
        "histogram",
        "latency",
        "peers",
        "processes",
        "slowest",
        "summary",
        "timeline",
        "values",
    ]
    assert set(load_reports()) == {p.stem for p in SQL_FILES}


@pytest.mark.parametrize("path", SQL_FILES + DIFF_FILES, ids=lambda p: p.stem)
def test_header(path: Path) -> None:
    text = path.read_text()
    report = parse_report(text, path.name)
    assert report.name == path.stem
    assert len(report.answers) > 20 and report.columns
    declared = {p.name for p in report.params}
    used = set(re.findall(r"\$([a-z_]+)", body(text)))
    assert declared == used, f"params declared {declared}, used {used}"
    for p in report.params:
        p.parse(p.default)  # the default is a valid value of its type
        assert p.help
    has_placeholders = {ph for ph in PLACEHOLDERS if ph in text}
    if report.by is None:
        assert not has_placeholders and "<by>" not in report.columns
        assert COUNT not in text  # a count of rows is 0, a sum NULL, where there are none
    else:
        # {names} (the label columns, to order by) is optional: histogram ranks by the keys
        assert has_placeholders >= set(PLACEHOLDERS) - {"{names}"}
        assert report.columns.startswith("<by>, ")
        assert set(report.by) <= set(DIMENSIONS)
    for column in (*report.keep, *report.drop):  # names of real result columns
        assert re.search(rf"\b{column}\b", report.columns.replace("<by>", "")), column


@pytest.mark.parametrize("path", SQL_FILES + DIFF_FILES, ids=lambda p: p.stem)
def test_portable_constructs_only(path: Path) -> None:
    sql = body(path.read_text())
    for what, pattern in FORBIDDEN.items():
        assert not re.search(pattern, sql, re.IGNORECASE), f"{path.name} uses {what}"


@pytest.mark.parametrize("path", SQL_FILES + DIFF_FILES + HTML_FILES, ids=lambda p: p.stem)
def test_percentiles_only_through_the_shared_template(path: Path) -> None:
    """One definition (queries/lib/percentiles.sql): exact, bounded memory, same on Spark."""
    sql = body(path.read_text())
    assert not re.search(r"(?<!\{)\b(quantile\w*|percentile\w*|median)\s*\(", sql, re.IGNORECASE)
    if "{percentile(" in sql:
        assert "{ranks(" in sql, "percentile() aggregates the rows that ranks() ranks"


def test_templates_are_documented_and_used() -> None:
    templates = load_templates()
    every = SQL_FILES + DIFF_FILES + HTML_FILES
    used = {m for p in every for m in re.findall(r"\{(\w+)\(", p.read_text())}
    assert used <= set(templates), used - set(templates)
    for path in sorted((QUERY_DIR / "lib").glob("*.sql")):
        header = path.read_text().split("-- define:", 1)[0]
        for key in ("name", "answers", "columns"):
            assert re.search(rf"^-- {key}: .+", header, re.MULTILINE), (path.name, key)


@pytest.mark.parametrize("path", SQL_FILES + DIFF_FILES, ids=lambda p: p.stem)
def test_reads_only_the_views(path: Path) -> None:
    sql = body(path.read_text())
    ctes = set(re.findall(r"(\w+)\s+AS\s*\(", sql, re.IGNORECASE))
    sources = set(re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", sql, re.IGNORECASE))
    views = (
        {"base_events", "new_events", "base_recordings", "new_recordings"}
        if path in DIFF_FILES
        else {"events", "files", "recordings"}
    )
    assert sources, path.name
    assert sources <= ctes | views, sources - ctes


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.stem)
def test_explains_and_runs_with_every_dimension(path: Path, loaded: Loaded) -> None:
    report = parse_report(path.read_text(), path.name)
    dims_choices = (
        [None] if report.by is None else [None, *([d] for d in DIMENSIONS), list(DIMENSIONS)]
    )
    for dims in dims_choices:
        sql, values = prepare(report, by=dims)
        plan = loaded.con.execute("EXPLAIN " + sql, values).fetchall()
        assert plan
        result = run_report(loaded.con, report.name, by=dims)
        rows = list(result.rows)
        assert rows, (report.name, dims)
        columns = report.columns.replace("<by>", ", ".join(dims or report.by or ()))
        assert result.columns == [c.strip() for c in columns.split(",")]


@pytest.mark.parametrize("path", DIFF_FILES, ids=lambda p: p.stem)
def test_diff_queries_explain_and_run_with_every_dimension(path: Path, tmp_path: Path) -> None:
    write_recording(tmp_path / "a", 3000, seed=8, stacks="full", stack_sample_period=2)
    write_recording(tmp_path / "b", 3000, seed=9, stacks="full")
    sides = [open_recording([tmp_path / side]) for side in ("a", "b")]
    both, _ = connect(
        [
            Source(rec, names=ViewNames(f"{name}_"))
            for rec, name in zip(sides, ("base", "new"), strict=True)
        ]
    )
    report = parse_report(path.read_text(), path.name)
    assert report.name in diff_queries() and report.by
    every = {p.name: 1 for p in report.params if p.name == "min_calls"}  # tiny groups too
    for dims in [None, *([d] for d in DIMENSIONS), list(DIMENSIONS)]:
        sql, values = prepare(report, by=dims, params=every)
        assert both.con.execute("EXPLAIN " + sql, values).fetchall()
        cursor = both.con.execute(sql, values)
        assert cursor.fetchall(), (report.name, dims)
        columns = report.columns.replace("<by>", ", ".join(dims or report.by))
        assert [d[0] for d in cursor.description] == [c.strip() for c in columns.split(",")]


@pytest.mark.parametrize(
    "snippet",
    [
        "quantile_disc(x, 0.5)",
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY x)",
        "time_bucket(INTERVAL '1s', time)",
        "epoch_ms(time)",
        "PIVOT events ON comm",
        "[x * 2 for x in xs]",
        "list(x ORDER BY y)",
        "make_timestamp(ts_ns // 1000)",
        "avg(latency_ns)",
    ],
)
def test_the_lint_catches_what_it_forbids(snippet: str) -> None:
    assert any(re.search(p, snippet, re.IGNORECASE) for p in FORBIDDEN.values())


@pytest.mark.parametrize("path", SQL_FILES + DIFF_FILES, ids=lambda p: p.stem)
def test_transpiles_to_spark_with_every_dimension(path: Path) -> None:
    """Every canned query must run on Spark as well (--engine spark): sqlglot plus our repairs
    (analyzer/dialect.py) must give Spark SQL for it, whatever --by says."""
    report = parse_report(path.read_text(), path.name)
    dims_choices = (
        [None] if report.by is None else [None, *([d] for d in DIMENSIONS), list(DIMENSIONS)]
    )
    for dims in dims_choices:
        sql, _ = prepare(report, by=dims)
        spark_sql = to_spark(sql)
        assert "$" not in spark_sql and "_label(" not in spark_sql.lower()
