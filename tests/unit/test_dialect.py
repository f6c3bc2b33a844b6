"""The DuckDB -> Spark layer: each repair of sqlglot's output, shown against sqlglot alone.
(That the repaired SQL gives DuckDB's answers on a real Spark: tests/unit/test_spark.py.)"""

from __future__ import annotations

import pytest
import sqlglot

from sockopt_trace.analyzer.dialect import NotPortable, to_spark
from sockopt_trace.errors import UserError


def sqlglot_alone(sql: str) -> str:
    return sqlglot.transpile(sql, read="duckdb", write="spark")[0]


def test_macros_are_inlined() -> None:
    assert "LEVEL_LABEL" in sqlglot_alone("SELECT level_label(level) FROM t")
    out = to_spark("SELECT level_label(level), errno_label(errno) FROM t")
    assert "LABEL" not in out.upper() and "'SOL_SOCKET'" in out and "'ENOPROTOOPT'" in out


def test_time_is_a_utc_wall_clock_timestamp() -> None:
    out = to_spark("SELECT ns_to_time(ts_ns) AS time FROM t")
    assert "CAST(TIMESTAMP_MICROS((ts_ns) DIV 1000) AS TIMESTAMP_NTZ)" in out


def test_decimal_literals_become_double() -> None:
    assert "100.0 * calls" in sqlglot_alone("SELECT 100.0 * calls / total FROM t")
    out = to_spark("SELECT 100.0 * calls / total FROM t")
    assert "CAST(100.0 AS DOUBLE) * calls / total" in out
    assert "1e9" in to_spark("SELECT x / 1e9 FROM t")  # already a double in both


def test_computed_list_index_is_one_based() -> None:
    # sqlglot shifts a literal index to Spark's 0-based [] but not a computed one
    assert "[i + 1]" in sqlglot_alone("SELECT ['a', 'b'][i + 1] FROM t")
    out = to_spark("SELECT ['a', 'b'][i + 1] FROM t")
    assert "TRY_ELEMENT_AT(ARRAY('a', 'b'), CAST(i + 1 AS INT))" in out
    assert "TRY_ELEMENT_AT(q, 1)" in to_spark("SELECT q[1] FROM t")


def test_row_becomes_struct() -> None:
    assert "ROW(a, b)" in sqlglot_alone("SELECT count(DISTINCT row(a, b)) FROM t")
    assert "STRUCT(a, b)" in to_spark("SELECT count(DISTINCT row(a, b)) FROM t")


@pytest.mark.parametrize(
    ("duckdb", "wrong"),
    [
        ("SELECT quantile_cont(x, 0.5) FROM t", "PERCENTILE_CONT(x, 0.5)"),
        ("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM t", "PERCENTILE_APPROX"),
    ],
)
def test_exact_percentiles_stay_exact(duckdb: str, wrong: str) -> None:
    assert wrong in sqlglot_alone(duckdb)
    assert "PERCENTILE(x, CAST(0.5 AS DOUBLE))" in to_spark(duckdb)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT list(x ORDER BY y) FROM t",
        "SELECT quantile_disc(x, 0.5) FROM t",
        "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY x) FROM t",
    ],
)
def test_what_has_no_faithful_form_is_refused(sql: str) -> None:
    with pytest.raises(NotPortable):
        to_spark(sql)


def test_parameters_become_spark_markers() -> None:
    assert to_spark("SELECT * FROM t LIMIT $top").endswith("LIMIT :top")


def test_unreadable_sql_is_one_line() -> None:
    with pytest.raises(Exception, match="cannot read the SQL") as info:
        to_spark("SELEC FROM (")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT reflect('java.lang.System', 'getenv', 'HOME')",
        "SELECT * FROM read_parquet('/etc/x.parquet')",
        "SELECT * FROM 'x/y.parquet'",
        "CREATE TABLE t AS SELECT 1",
        "SELECT 1; SELECT 2",
    ],
)
def test_user_sql_only_reads_the_recording(sql: str) -> None:
    with pytest.raises(UserError):
        to_spark(sql, user=True)
    assert to_spark("SELECT count(*) FROM events", user=True)
