"""--engine spark: every canned report on a real Apache Spark (local[2], one JVM for the whole
module) gives DuckDB's answers exactly, on the samples and on a synthetic multi-host recording
with sampled stacks; the CLI runs reports and ad hoc SQL there."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from sockopt_trace.analyzer import spark
from sockopt_trace.analyzer.load import load
from sockopt_trace.analyzer.reports import load_reports, run_report
from sockopt_trace.cli import diff, query, report  # noqa: F401 (they register their commands)
from sockopt_trace.cli.app import app
from sockopt_trace.errors import UserError
from tests.synth import write_recording

MASTER = "local[2]"
SAMPLES = Path(__file__).resolve().parents[2] / "sample_traces"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three hosts; one samples full stacks 1 in 3 (weights), one has no call sites, one is
    in a Hive-style directory (`=` in the path, as `record --layout fleet` writes it)."""
    root = tmp_path_factory.mktemp("fleet")
    write_recording(root / "a", 6_000, files=2, seed=11, stacks="full", stack_sample_period=3)
    write_recording(root / "host=host-b", 4_000, seed=12, host="host-b")
    write_recording(root / "c", 500, seed=13, host="host-c", stacks="off")
    return root


@pytest.fixture(scope="module")
def session() -> Iterator[None]:
    spark.session(MASTER)
    yield


def rows_of(result) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [tuple(r) for r in result.rows]


CASES = [(name, None) for name in sorted(load_reports())] + [
    ("latency", ["host", "callsite"]),
    ("latency", ["stack"]),
    ("callsites", ["comm", "stack"]),
    ("errors", ["host", "errno"]),
    ("processes", ["tid", "comm"]),
    ("values", ["peer", "state"]),
]


@pytest.mark.parametrize("where", [SAMPLES, "fleet"], ids=["samples", "fleet"])
def test_every_report_equals_duckdbs(session: None, fleet: Path, where: Path | str) -> None:
    recs = [fleet if where == "fleet" else where]
    on_spark = spark.load(recs, master=MASTER)
    on_duckdb = load(recs)
    for name, dims in CASES:
        params = {"top": 1000} if any(p.name == "top" for p in load_reports()[name].params) else {}
        if name == "timeline":
            params = {"interval": "10ms"}
        expected = run_report(on_duckdb.con, name, by=dims, params=params)
        got = run_report(on_spark.con, name, by=dims, params=params)
        assert got.columns == expected.columns, name
        assert rows_of(got) == rows_of(expected), (name, dims)


def test_filters_and_ad_hoc_sql_through_the_cli(session: None, fleet: Path) -> None:
    runner = CliRunner()
    common = ["--engine", "spark", "--spark-master", MASTER, "-f", "csv"]
    sql = "SELECT host, optname_name, count(*) AS n FROM events GROUP BY ALL ORDER BY ALL"
    spark_out = runner.invoke(app, ["query", str(fleet), sql, *common])
    duck_out = runner.invoke(app, ["query", str(fleet), sql, "-f", "csv"])
    assert spark_out.exit_code == 0, spark_out.output
    assert spark_out.stdout == duck_out.stdout and spark_out.stdout.count("\n") > 10
    args = ["report", str(fleet), "latency", "--where", "host = 'host-b'", "--since", "1ms"]
    spark_out = runner.invoke(app, [*args, *common])
    duck_out = runner.invoke(app, [*args, "-f", "csv"])
    assert spark_out.exit_code == 0, spark_out.output
    assert spark_out.stdout == duck_out.stdout


def test_sql_without_a_spark_form_is_one_line(session: None, fleet: Path) -> None:
    runner = CliRunner()
    common = ["--engine", "spark", "--spark-master", MASTER]
    for sql, words in [
        ("SELECT list(comm ORDER BY ts_ns) FROM events", "no faithful"),
        ("SELECT nosuchcolumn FROM events", "query failed on Spark"),
        ("SELECT reflect('java.lang.System', 'getenv', 'HOME')", "not allowed"),
        ("SELECT * FROM read_parquet('/etc/x.parquet')", "reads only the recording"),
    ]:
        out = runner.invoke(app, ["query", str(fleet), sql, *common])
        assert out.exit_code != 0 and words in str(out.exception or out.output)
    out = runner.invoke(app, ["report", str(fleet), "--where", "nosuch > 1", *common])
    assert out.exit_code != 0 and "bad --where" in str(out.exception or out.output)


DIFF_CASES = [
    (["nginx-before"], ["nginx-after"], []),
    (["steady-before"], ["steady-after"], []),
    (["steady-before"], ["steady-after"], ["--by", "comm,optname,callsite"]),
    (["steady-before"], ["steady-after"], ["--pool", "--since", "1s"]),
]


@pytest.mark.parametrize(("base", "new", "extra"), DIFF_CASES)
def test_diff_equals_duckdbs(
    session: None, base: list[str], new: list[str], extra: list[str]
) -> None:
    """The whole diff (groups, one-sided call sites, tests, warnings) as json, on each engine."""
    runner = CliRunner()
    args = ["diff", *(str(SAMPLES / b) for b in base), *(str(SAMPLES / n) for n in new)]
    args += [*extra, "-f", "json", "--top", "0"]
    duck_out = runner.invoke(app, args)
    spark_out = runner.invoke(app, [*args, "--engine", "spark", "--spark-master", MASTER])
    assert duck_out.exit_code == 0, duck_out.output
    assert spark_out.exit_code == 0, spark_out.output
    assert spark_out.stdout == duck_out.stdout and re.search(r'"new_p99_ns": \d', spark_out.stdout)


def test_diff_of_replicates_with_a_window_equals_duckdbs(session: None, fleet: Path) -> None:
    """Replicates cut by --since/--until: each recording registered on its own, the side's
    views their union (DuckDB's UNION ALL BY NAME, Spark's unionByName)."""
    runner = CliRunner()
    sides = ["--base", str(fleet / "a"), "--base", str(fleet / "host=host-b"), "--new"]
    args = ["diff", *sides, str(fleet / "c"), "--since", "100us", "-f", "json", "--top", "0"]
    duck_out = runner.invoke(app, args)
    spark_out = runner.invoke(app, [*args, "--engine", "spark", "--spark-master", MASTER])
    assert duck_out.exit_code == 0, duck_out.output
    assert spark_out.exit_code == 0, spark_out.output
    assert spark_out.stdout == duck_out.stdout and "spread between recordings" in duck_out.stdout


def test_bad_files_fail_in_one_line_with_duckdbs_exit_code(session: None, tmp_path: Path) -> None:
    """Files Spark cannot read, found while it runs the query (pages damaged behind a good
    footer, a file gone after it was opened), and files refused up front (missing, foreign):
    one line naming the file and exit 2 on both engines, never an internal error (70)."""
    runner = CliRunner()
    damaged = tmp_path / "damaged"
    [path] = write_recording(damaged, 20_000, files=1, row_group_rows=5_000)
    data = bytearray(path.read_bytes())
    for i in range(100, len(data) * 3 // 4, 7):  # pages, not the footer
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    for bad, words in [
        (damaged, "damaged data"),
        (tmp_path / "missing.parquet", "no such file"),
        (foreign, "not a sockopt-trace recording"),
    ]:
        for extra in ([], ["--engine", "spark", "--spark-master", MASTER]):
            out = runner.invoke(app, ["report", str(bad), "latency", *extra])
            assert isinstance(out.exception, UserError), (bad, extra, out.exception)
            message = str(out.exception)
            assert "\n" not in message and words in message and str(bad) in message, message
    # the exit code, as the real command line gives it (a process of its own, its own JVM)
    argv = [sys.executable, "-m", "sockopt_trace", "report", str(damaged), "latency"]
    spark_argv = [*argv, "--engine", "spark", "--spark-master", MASTER]
    for args in (argv, spark_argv):
        done = subprocess.run(args, capture_output=True, text=True, timeout=300)
        errors = [line for line in done.stderr.splitlines() if "sockopt-trace:" in line]
        assert done.returncode == 2, done.stderr[-2000:]
        assert len(errors) == 1 and "damaged data" in errors[0], errors
    gone = tmp_path / "gone"
    [path] = write_recording(gone, 1_000, files=1)
    loaded = spark.load([gone], master=MASTER)
    path.unlink()
    with pytest.raises(UserError) as caught:
        run_report(loaded.con, "latency")
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_weighted_percentiles_on_spark_equal_duckdbs_of_the_calls_expanded(
    session: None, tmp_path: Path
) -> None:
    """--max-rate weights on Spark: every percentile report over weighted rows equals DuckDB's
    over the same rows repeated `weight` times, to the last digit; diff too."""
    from tests.unit.test_weights import PERCENTILE_REPORTS, weighted_and_expanded

    weighted, expanded, _ = weighted_and_expanded(tmp_path)
    on_spark, on_duckdb = spark.load([weighted], master=MASTER), load([expanded])
    for name, by, params in PERCENTILE_REPORTS:
        got = run_report(on_spark.con, name, by=by, params=params)
        want = run_report(on_duckdb.con, name, by=by, params=params)
        assert rows_of(got) == rows_of(want) and len(want.rows) > 1, (name, by)
    runner = CliRunner()
    args = ["diff", str(SAMPLES / "steady-before"), "-f", "csv", "--top", "0"]
    spark_out = runner.invoke(
        app, [*args, str(weighted), "--engine", "spark", "--spark-master", MASTER]
    )
    duck_out = runner.invoke(app, [*args, str(expanded)])
    assert spark_out.exit_code == 0, spark_out.output
    assert spark_out.stdout == duck_out.stdout and spark_out.stdout.count("\n") > 3
